"""Dataset-level runs that survive crashes: one record per finished image, written at once (``run_store``).

Each record holds the image's id, label, prediction, per-candidate mean errors, evaluations, seconds and seed;
``errors-rank{R}/{id}.npy`` holds its full (candidates x trials) error table (float32; NaN where pruned). Every
figure of the book is computed from these tables on a CPU. A restart reads the records, skips finished ids and
recomputes none. Ranks (``rank``, ``world_size``) shard the images round-robin; ``load_records`` merges all ranks.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..classifier import DiffusionClassifier
from ..estimators import accuracy_interval
from ..exceptions import ImageLoadError
from .run_store import RunStore, load_error_table, load_records, read_manifest, write_atomically

# How work is batched changes speed, not results: a run may resume with other values of these.
RESULT_NEUTRAL = ("batch_size", "static_shapes")


@dataclass
class RunSummary:
    n: int
    correct: int
    failed: int
    accuracy: float
    interval: tuple[float, float]
    per_class: dict
    evaluations_per_image: float
    seconds_per_image: float

    def __str__(self) -> str:
        lo, hi = self.interval
        return (f"accuracy {100 * self.accuracy:.2f}% (95% CI {100 * lo:.2f}-{100 * hi:.2f}) on {self.n} images, "
                f"{self.failed} failed; {self.evaluations_per_image:.0f} evaluations and "
                f"{self.seconds_per_image:.3f} s per image")


def summarize(records: Sequence[dict], class_names: Sequence[str] | None = None) -> RunSummary:
    ok = [r for r in records if "error" not in r]
    if not ok:
        raise ValueError("no finished images to summarize.")
    correct = sum(r["prediction"] == r["label"] for r in ok)
    per_class = {}
    for c in sorted({r["label"] for r in ok}):
        rs = [r for r in ok if r["label"] == c]
        name = class_names[c] if class_names else str(c)
        per_class[name] = sum(r["prediction"] == c for r in rs) / len(rs)
    return RunSummary(len(ok), correct, len(records) - len(ok), correct / len(ok), accuracy_interval(correct, len(ok)),
                      per_class, float(np.mean([r["evaluations"] for r in ok])), float(np.mean([r["seconds"] for r in ok])))


def run_dataset(
    classifier: DiffusionClassifier,
    get_item: Callable[[int], tuple[object, int]],
    n_items: int,
    candidates: Sequence,
    run_dir: str | Path,
    *,
    settings: dict,
    rank: int = 0,
    world_size: int = 1,
    time_limit_s: float = 0.0,
    images_per_batch: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Classify items ``0..n_items-1`` (this rank's share) into ``run_dir``, resuming where it stopped.

    ``get_item(i)`` returns (image, label): an image path, PIL image or model-input tensor. Images that
    cannot be read are recorded as failed with the reason, and the run goes on. ``settings`` (model name,
    dataset, ...) joins the classifier config in the manifest. ``images_per_batch`` images share network calls
    (``DiffusionClassifier.classify_batch``); their records are written together once the group is done.
    Returns this rank's records.
    """
    full = {**settings, "classifier": classifier.config.to_dict(), "candidates": [str(c) for c in candidates],
            "n_items": n_items, "world_size": world_size}
    cand_index = {str(c): k for k, c in enumerate(candidates)}
    with RunStore(run_dir, json.loads(json.dumps(full, default=str)), rank=rank, neutral=RESULT_NEUTRAL) as store:
        done = store.done
        todo = [i for i in range(rank, n_items, world_size) if i not in done]
        start, correct, seen = time.time(), 0, 0
        bar = tqdm(total=len(todo), desc=f"rank {rank}", disable=not progress, mininterval=2)
        for chunk_start in range(0, len(todo), images_per_batch):
            if time_limit_s and time.time() - start > time_limit_s:
                print(f"time limit reached; {len(todo) - seen} images left for the next run")
                break
            t0 = time.time()
            chunk = todo[chunk_start:chunk_start + images_per_batch]
            loaded, records = [], {}
            for i in chunk:
                try:
                    image, label = get_item(i)
                    loaded.append((i, classifier.pixels(image), label))
                except ImageLoadError as e:
                    records[i] = {"id": i, "error": str(e), "seed": classifier.config.seed}
            if loaded:
                results = classifier.classify_batch([x for _, x, _ in loaded], candidates,
                                                    image_indices=[i for i, _, _ in loaded])
                per_image = round((time.time() - t0) / len(loaded), 4)
                for (i, _, label), res in zip(loaded, results):
                    store.save_table(i, res.errors.float().numpy())
                    pred = cand_index[str(res.prediction)]
                    records[i] = {"id": i, "label": int(label), "prediction": pred,
                                  "mean_errors": res.mean_errors.tolist(), "evaluations": res.n_evaluations,
                                  "seconds": per_image, "seed": classifier.config.seed}
                    correct += pred == int(label)
            store.append([records[i] for i in chunk])  # in id order, on disk before the next chunk starts
            seen += len(chunk)
            bar.update(len(chunk))
            if progress:
                bar.set_postfix(acc=f"{correct / seen:.3f}", img_s=f"{seen / (time.time() - start):.2f}")
        bar.close()
        return [r for r in store.records() if r["id"] % world_size == rank]


def consolidate_tables(run_dir: str | Path, *, max_images: int | None = None) -> Path:
    """Pack the per-image error tables into one ``tables.npz`` (ids, labels, errors (N, K, T) float16, timesteps).

    The compact form that is committed and read by the book; ``max_images`` keeps the lowest ids only. Images
    whose per-image table is absent are taken from an existing ``tables.npz``, so a committed run that was
    resumed elsewhere (records and ``tables.npz`` carried, per-image tables not) can be packed again.
    """
    run_dir = Path(run_dir)
    records = [r for r in load_records(run_dir) if "error" not in r][:max_images]
    if not records:
        raise ValueError(f"{run_dir} has no finished images.")
    path = run_dir / "tables.npz"
    packed = {}
    if path.is_file():
        with np.load(path) as z:
            packed = dict(zip(z["ids"].tolist(), z["errors"]))

    def table(image_id: int) -> np.ndarray:
        try:
            return load_error_table(run_dir, image_id)
        except FileNotFoundError:
            if image_id in packed:
                return packed[image_id]
            raise

    errors = np.stack([table(r["id"]) for r in records]).astype(np.float16)
    manifest = read_manifest(run_dir)
    write_atomically(path, lambda f: np.savez_compressed(
        f, ids=np.array([r["id"] for r in records]), labels=np.array([r["label"] for r in records]),
        errors=errors, timesteps=np.array(manifest["settings"].get("timesteps", []))))
    return path
