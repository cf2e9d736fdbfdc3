"""Dataset-level runs that survive crashes: one record per finished image, written at once.

A run directory holds
- ``manifest.json``: model, classifier config, candidates, seed, versions, device. Resuming with other
  settings is refused, so one directory never mixes two experiments.
- ``records-rank{R}.jsonl``: one JSON line per finished image (id, label, prediction, per-candidate mean
  errors, evaluations, seconds, seed), flushed and fsynced before the next image (or group of
  ``images_per_batch`` images) starts. A line cut by a kill is ignored on reading and cut off before the next
  append, so the worst a crash costs is the images in flight.
- ``errors-rank{R}/{id}.npy``: the full (candidates x trials) error table of each image (float32; NaN where
  pruned), written atomically. Every figure of the book is computed from these tables on a CPU.

A restart reads the records, skips finished ids and recomputes none. Ranks (``rank``, ``world_size``) shard
the images round-robin; ``load_records`` merges all ranks.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .classifier import DiffusionClassifier
from .estimators import accuracy_interval
from .images import ImageLoadError


class ManifestMismatchError(ValueError):
    """A run directory was started with different settings."""


def environment() -> dict:
    import diffusers

    return {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else (platform.processor() or "cpu"),
    }


def check_writable(run_dir: Path, *, min_free_bytes: int = 50 * 2**20) -> None:
    """Fail before any work if results could not be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"cannot write results to {str(run_dir)!r} ({e.strerror}); choose another --out.") from e
    free = shutil.disk_usage(run_dir).free
    if free < min_free_bytes:
        raise OSError(f"only {free / 2**20:.0f} MiB free under {str(run_dir)!r}; free some space or choose another --out.")


# How work is batched changes speed, not results: a run may resume with other values of these.
RESULT_NEUTRAL = ("batch_size", "static_shapes")


def _comparable(settings: dict) -> dict:
    d = json.loads(json.dumps(settings))
    d["classifier"] = {k: v for k, v in d.get("classifier", {}).items() if k not in RESULT_NEUTRAL}
    return d


def write_manifest(run_dir: Path, settings: dict, *, rank: int = 0) -> dict:
    """Create the manifest, or check that an existing one has the same settings (batching aside)."""
    path = run_dir / "manifest.json"
    if path.is_file():
        old = json.loads(path.read_text())
        before, now = _comparable(old["settings"]), _comparable(settings)
        if before != now:
            diff = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
            raise ManifestMismatchError(
                f"{str(run_dir)!r} holds a run with other settings {diff} (old, new); resume with the same settings "
                "or use a new --out."
            )
        return old
    manifest = {"settings": settings, "environment": environment(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = path.with_suffix(f".rank{rank}.tmp")  # ranks may start together: never share a temporary file
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)
    return manifest


def repair_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left half-written, so the next append starts on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def load_records(run_dir: Path) -> list[dict]:
    """All complete records of all ranks, sorted by id (a torn last line is skipped)."""
    records = {}
    for path in sorted(Path(run_dir).glob("records-rank*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[r["id"]] = r
    return [records[k] for k in sorted(records)]


def load_error_table(run_dir: Path, image_id: int) -> np.ndarray:
    """The (candidates x trials) error table of one image."""
    hits = list(Path(run_dir).glob(f"errors-rank*/{image_id:07d}.npy"))
    if not hits:
        raise FileNotFoundError(f"no error table for image {image_id} in {run_dir}.")
    return np.load(hits[0])


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
    run_dir = Path(run_dir)
    check_writable(run_dir)
    full = {**settings, "classifier": classifier.config.to_dict(), "candidates": [str(c) for c in candidates],
            "n_items": n_items, "world_size": world_size}
    write_manifest(run_dir, json.loads(json.dumps(full, default=str)), rank=rank)
    table_dir = run_dir / f"errors-rank{rank}"
    table_dir.mkdir(exist_ok=True)
    done = {r["id"] for r in load_records(run_dir)}
    todo = [i for i in range(rank, n_items, world_size) if i not in done]
    cand_index = {str(c): k for k, c in enumerate(candidates)}
    start, correct, seen = time.time(), 0, 0
    bar = tqdm(total=len(todo), desc=f"rank {rank}", disable=not progress, mininterval=2)
    records_path = run_dir / f"records-rank{rank}.jsonl"
    repair_torn_tail(records_path)
    with open(records_path, "a") as out:
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
                    tmp = table_dir / f"{i:07d}.tmp.npy"
                    np.save(tmp, res.errors.float().numpy())
                    tmp.replace(table_dir / f"{i:07d}.npy")
                    pred = cand_index[str(res.prediction)]
                    records[i] = {"id": i, "label": int(label), "prediction": pred,
                                  "mean_errors": res.mean_errors.tolist(), "evaluations": res.n_evaluations,
                                  "seconds": per_image, "seed": classifier.config.seed}
                    correct += pred == int(label)
            for i in chunk:  # in id order, each line complete and on disk before the next chunk starts
                out.write(json.dumps(records[i]) + "\n")
            out.flush()
            os.fsync(out.fileno())
            seen += len(chunk)
            bar.update(len(chunk))
            if progress:
                bar.set_postfix(acc=f"{correct / seen:.3f}", img_s=f"{seen / (time.time() - start):.2f}")
    bar.close()
    mine = [r for r in load_records(run_dir) if r["id"] % world_size == rank]
    return mine


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
    manifest = json.loads((run_dir / "manifest.json").read_text())
    tmp = run_dir / "tables.tmp.npz"
    np.savez_compressed(tmp, ids=np.array([r["id"] for r in records]), labels=np.array([r["label"] for r in records]),
                        errors=errors, timesteps=np.array(manifest["settings"].get("timesteps", [])))
    os.replace(tmp, path)
    return path
