"""Dataset-level runs that survive crashes: one record per finished image, written at once (``run_store``).

Each record holds the image's id, label, prediction, per-candidate mean errors, evaluations, seconds and seed;
``errors-rank{R}/{id}.npy`` holds its full (candidates x trials) error table (float32; NaN where pruned). Every
figure of the book is computed from these tables on a CPU. A restart reads the records, skips finished ids and
recomputes none. Ranks (``rank``, ``world_size``) shard the images round-robin; ``load_records`` merges all ranks.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..classifier import DiffusionClassifier
from ..estimators import accuracy_interval
from ..exceptions import ImageLoadError, ManifestMismatchError, NonFiniteError
from ..images import read_image_bytes
from ..noise import plan_timesteps
from ..processes import describe
from .run_store import (FORMAT, RunStore, load_error_table, load_packed_tables, load_records, read_manifest,
                        read_table, scan_records, settings_digest, table_paths, write_atomically)

log = logging.getLogger(__name__)

# A run's extent and whereabouts, not a setting of any result: a run grows to more images, resumes on another
# number of processes (every rank skips the images any rank finished) and finds its image folder under another
# path (each image's name and content are checked through its identity). The batch settings are NOT neutral: which rows share
# a network call changes the stored errors at float rounding (1e-7 relative on the CPU), so a resume with another
# batch size, images per batch or padding is refused. An out-of-memory halving mid-run is recorded in each record
# computed after it (``max_rows``) and named by ``verify``.
RESULT_NEUTRAL = ("n_items", "world_size", "images")


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


def item_identity(image, name: str) -> dict:
    """What an item is, whatever position it has: its name (a path relative to the dataset root, or a split and
    index) and a sha256 of its bytes (a file's content, a tensor's or PIL image's pixels), 16 hex digits."""
    h = hashlib.sha256()
    if isinstance(image, torch.Tensor):
        h.update(str((tuple(image.shape), str(image.dtype))).encode())
        h.update(image.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(image, Image.Image):
        h.update(f"{image.mode} {image.size}".encode())
        h.update(image.tobytes())
    else:
        try:
            h.update(read_image_bytes(image))
        except ImageLoadError:
            return {"name": name, "sha256": None}  # unreadable: its failure record says why
    return {"name": name, "sha256": h.hexdigest()[:16]}


@dataclass
class Verification:
    """What ``verify_run`` found: ``problems`` (one line each), ids whose record cannot be trusted (``damaged``:
    recomputed on resume), ids outside the run (``foreign``: left out of reports), the counts, and ``notes``
    (facts that are not damage: records checked without their table, records computed after an out-of-memory
    halving, whether labels were checked against the dataset)."""

    problems: list[str]
    damaged: set
    foreign: set
    done: int
    failed: int
    n_items: int
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = (f"{self.done} of {self.n_items} images done ({self.failed} failed), "
                f"{len(self.damaged)} damaged, {len(self.foreign)} outside the run")
        return "\n".join([head] + [f"  {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes])


def _expected_prediction(table: np.ndarray, means=None) -> int:
    """The prediction a (K, N) table implies: among the candidates that received the most trials (the last step's
    survivors and those it dropped), the lowest mean error (``pruning.ranking``); ``means`` (K,) in place of the
    table's own, where those are rounded (a float16 packed table)."""
    trials = (~np.isnan(table)).sum(axis=1)
    top = trials == trials.max()
    ranked = np.full(len(table), np.inf)
    ranked[top] = np.nanmean(table[top], axis=1) if means is None else np.asarray(means, dtype=np.float64)[top]
    return int(np.argmin(ranked))


Items = tuple[Callable[[int], tuple[object, int]], Callable[[int], str]]  # (get_item, item_name) of a dataset


def verify_run(run_dir: str | Path, items: Items | None = None) -> Verification:
    """Check a run directory against itself, and with ``items`` against its dataset.

    Found: lines that are not records; ids outside the run (not ``0..n_items-1``); records made with other settings
    or without their settings digest or image identity (an older or edited record); records lacking fields; tables
    missing, unreadable, of the wrong shape or disagreeing with their record (mean errors, evaluations,
    prediction: an edited record). A table absent as a file is looked up in ``tables.npz`` (a committed run keeps
    only that); where the manifest says tables were not kept (``tables_dropped``), a record is checked against its
    own mean errors instead. With ``items`` = (get_item, item_name), every record's label and image identity are
    compared with the dataset's. A run of named items (no ``n_items``: the scene lab) gets the store-level checks.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    settings = manifest["settings"]
    digest = settings_digest(settings, manifest.get("neutral", RESULT_NEUTRAL if "n_items" in settings else ()))
    records, problems = scan_records(run_dir)
    if manifest.get("format", 1) < FORMAT:
        problems.append(f"written by an older dcanalysis (format {manifest.get('format', 1)}): run "
                        f"`dcanalysis upgrade {run_dir}` once to re-check and stamp its records")
    if "n_items" not in settings:
        return _verify_named_run(records, problems, digest)
    n_items, k = settings["n_items"], len(settings.get("candidates", []))
    packed = load_packed_tables(run_dir)
    dropped = manifest.get("tables_dropped", False)
    damaged, foreign, done, failed, untabled, halved = set(), set(), 0, 0, 0, 0
    for key, (rank, r) in records.items():
        i = r["id"]
        if not isinstance(i, int) or not 0 <= i < n_items:
            foreign.add(key)
            problems.append(f"record id {i!r} in records-rank{rank}.jsonl is not one of this run's images "
                            f"(0..{n_items - 1})")
            continue
        why = None
        if r.get("run") != digest:
            why = "was computed with other settings" if "run" in r else "lacks its settings digest (an older record)"
        elif "item" not in r:
            why = "lacks its image identity (an older or edited record)"
        elif "error" in r:
            failed += 1
            continue
        elif not {"label", "prediction", "mean_errors", "evaluations"} <= r.keys():
            why = "lacks fields"
        else:
            why, checked = _table_problem(run_dir, i, r, k, packed)
            if why is None and not checked:
                if dropped:
                    why, untabled = _self_problem(r, settings, k), untabled + 1
                else:
                    why = "its error table is missing"
        if why is None and items is not None:
            why = _dataset_problem(items, i, r)
        if why:
            damaged.add(i)
            problems.append(f"image {i}: {why}")
        else:
            done += 1
            halved += "max_rows" in r
    notes = []
    if untabled:
        notes.append(f"{untabled} record(s) have no error table (not kept when the run was committed): each was "
                     "checked against its own mean errors")
    if halved:
        notes.append(f"{halved} record(s) were computed after an out-of-memory halving of the batch (their "
                     "'max_rows'): their errors may differ from the run's others at float rounding")
    notes.append("labels and images checked against the dataset" if items is not None else
                 "labels and images not checked against the dataset (give the dataset to check them)")
    return Verification(problems, damaged, foreign, done, failed, n_items, notes)


def _verify_named_run(records: dict, problems: list[str], digest: str) -> Verification:
    """The store-level checks of a run whose items are named, not numbered (the scene lab)."""
    damaged = set()
    for key, (rank, r) in records.items():
        if r.get("run") != digest:
            damaged.add(key)
            problems.append(f"item {key!r}: " + ("was computed with other settings" if "run" in r
                                                   else "lacks its settings digest (an older record)"))
    n = len(records)
    return Verification(problems, damaged, set(), n - len(damaged), 0, n, ["a run of named items: every record "
                                                                           "checked against the run's settings"])


def _table_problem(run_dir: Path, i: int, r: dict, k: int, packed: dict) -> tuple[str | None, bool]:
    """(why image i's error table does not back its record or None, whether a table was found)."""
    paths = table_paths(run_dir, i)
    if paths:
        try:
            table, rtol = read_table(paths[0]).astype(np.float64), 1e-4
        except (ValueError, OSError, EOFError) as e:
            return f"its error table {paths[0].name} is unreadable ({type(e).__name__})", True
    elif i in packed:
        table, rtol = packed[i].astype(np.float64), 2e-3  # stored as float16
    else:
        return None, False
    if table.ndim != 2 or table.shape[0] != k or len(r["mean_errors"]) != k:
        return f"its error table has shape {table.shape}, the run has {k} candidates", True
    with np.errstate(all="ignore"):
        means = np.nanmean(table, axis=1)
    if int((~np.isnan(table)).sum()) != r["evaluations"] or not np.allclose(means, r["mean_errors"], rtol=rtol):
        return "its record does not match its error table (evaluations or mean errors)", True
    # a float16 packed table cannot order a near tie (relative gaps under about 1e-3): there its survivors, with the
    # record's own means (checked against the table above), must still give the recorded prediction
    if r["prediction"] != _expected_prediction(table) and (
            paths or r["prediction"] != _expected_prediction(table, r["mean_errors"])):
        return f"its recorded prediction {r['prediction']} is not the one its error table gives", True
    return None, True


def _self_problem(r: dict, settings: dict, k: int) -> str | None:
    """Why a record without its table contradicts itself, or None: with one stage that scores every candidate on
    every trial (an exhaustive schedule), evaluations = K x trials and the prediction is the lowest mean error."""
    if len(r["mean_errors"]) != k or not 0 <= r["prediction"] < k or not 0 <= r["label"] < k:
        return f"its record has {len(r['mean_errors'])} mean errors or an index outside the run's {k} candidates"
    stages = settings.get("classifier", {}).get("schedule", {}).get("stages", [])
    if len(stages) == 1:
        if r["evaluations"] != k * stages[0]["trials"]:
            return f"its record claims {r['evaluations']} evaluations, the schedule makes {k * stages[0]['trials']}"
        if r["prediction"] != int(np.argmin(r["mean_errors"])):
            return f"its recorded prediction {r['prediction']} is not its lowest mean error"
    return None


def _dataset_problem(items: Items, i: int, r: dict) -> str | None:
    """Why image i's record does not describe the dataset's image i (label or identity), or None."""
    get_item, item_name = items
    try:
        image, label = get_item(i)
        now = item_identity(image, item_name(i))
    except Exception as e:  # noqa: BLE001 (a dataset that cannot list the item: the record cannot be checked)
        return f"the dataset cannot give image {i} ({type(e).__name__}: {e})"
    if int(label) != r["label"]:
        return f"its label {r['label']} is not the dataset's {int(label)} (an edited record)"
    if (now["name"], now["sha256"]) != (r["item"]["name"], r["item"]["sha256"]):
        return (f"it was computed on {r['item']['name']!r} (sha256 {r['item']['sha256']}); the dataset now has "
                f"{now['name']!r} (sha256 {now['sha256']})")
    return None


def trusted_records(run_dir: str | Path, items: Items | None = None) -> tuple[list[dict], Verification]:
    """The run's own undamaged records (foreign ids and damaged records left out), sorted by id, and what
    ``verify_run`` found: what every closing line, table and report counts."""
    check = verify_run(run_dir, items)
    bad = check.foreign | check.damaged
    return [r for r in load_records(run_dir) if r["id"] not in bad], check


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
    item_name: Callable[[int], str] = str,
    retry_failed: bool = False,
    run_ahead: Callable | None = None,
    class_names: Sequence[str] | None = None,
) -> list[dict]:
    """Classify items ``0..n_items-1`` (this rank's share) into ``run_dir``, resuming where it stopped.

    ``get_item(i)`` returns (image, label): an image path, PIL image or model-input tensor; ``item_name(i)`` names
    it (a path relative to the dataset root). Each record holds the item's identity (``item_identity``); resuming
    over items that changed (another file at a position, an edited file) is refused, except that a failed item
    whose file changed is retried. Any failure of one item (unreadable, too large, NaN from the network, any
    exception in its work) is recorded with its reason and the run goes on; ``retry_failed`` recomputes failed
    items. Damaged records (``verify_run``) are recomputed. ``settings`` (model, dataset, ...) joins the
    classifier config in the manifest. ``images_per_batch`` images share network calls
    (``DiffusionClassifier.classify_batch``); their records are written together once the group is done.
    ``run_ahead`` runs each group's network work (as in ``DiffusionClassifier.classify_stream``; e.g.
    ``dcanalysis.engine.overlap.overlapped``, which reads the next images meanwhile); None: a plain loop.
    ``class_names`` (the label of index k is ``class_names[k]``) is a setting: a resume under a reordered class
    list is refused. The run's extent (``n_items``, ``world_size``) is not: a run grows to more images, and resumes
    on another number of processes, recomputing no finished image. Records whose label is not the dataset's (an
    edited record) are recomputed. Returns this rank's records.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} of world size {world_size}: need world_size >= 1 and 0 <= rank < world_size "
                         "(each rank takes the images rank, rank + world_size, ...).")
    if images_per_batch < 1 or n_items < 0:
        raise ValueError(f"need images_per_batch >= 1 and n_items >= 0; got {images_per_batch}, {n_items}.")
    full = {**settings, "classifier": classifier.config.to_dict(), "candidates": [str(c) for c in candidates],
            **({"class_names": list(class_names)} if class_names is not None else {}),
            **({"images_per_batch": images_per_batch} if images_per_batch != 1 else {}),
            "n_items": n_items, "world_size": world_size, "process": describe(classifier.adapter.process)}
    cand_index = {str(c): k for k, c in enumerate(candidates)}
    seed = classifier.config.seed
    with RunStore(run_dir, json.loads(json.dumps(full, default=str)), rank=rank, neutral=RESULT_NEUTRAL) as store:
        check = verify_run(store.run_dir)
        if check.problems:
            log.warning(f"{store.run_dir}: {len(check.damaged)} damaged record(s) will be recomputed"
                        f"{f', {len(check.foreign)} foreign one(s) left out' if check.foreign else ''} "
                        "(dcanalysis verify lists them)")
        todo, relabelled = _todo(store, check, get_item, item_name, rank, world_size, n_items, retry_failed)
        if relabelled:
            log.warning(f"{store.run_dir}: {len(relabelled)} record(s) whose label is not the dataset's (edited) "
                        "will be recomputed")
        start, correct, seen = time.time(), 0, 0
        # disable only when asked: an explicit disable=False would override tqdm's TQDM_DISABLE switch
        bar = tqdm(total=len(todo), desc=f"rank {rank}", mininterval=2, **({} if progress else {"disable": True}))
        chunks = [todo[c:c + images_per_batch] for c in range(0, len(todo), images_per_batch)]

        def loaded():  # in this thread (with run_ahead, while the worker classifies the chunk before)
            for k, chunk in enumerate(chunks):
                if time_limit_s and time.time() - start > time_limit_s:
                    log.info(f"time limit reached; {len(todo) - sum(map(len, chunks[:k]))} images left for the next run")
                    return
                yield chunk, *_load_chunk(classifier, chunk, get_item, item_name, seed)

        def classified(item):  # the GPU's share (with run_ahead, on its worker thread)
            chunk, records, group = item
            return chunk, {**records, **_classify_group(classifier, group, candidates, cand_index, seed)}

        for chunk, records in (map if run_ahead is None else run_ahead)(classified, loaded()):
            for i in chunk:
                if "error" not in records[i]:
                    store.save_table(i, records[i].pop("_table"))
                    correct += records[i]["prediction"] == records[i]["label"]
            store.append([records[i] for i in chunk])  # in id order, on disk before the next results come
            seen += len(chunk)
            bar.update(len(chunk))
            if progress:
                bar.set_postfix(acc=f"{correct / seen:.3f}", img_s=f"{seen / (time.time() - start):.2f}")
        bar.close()
        return [r for r in store.records() if isinstance(r["id"], int) and r["id"] % world_size == rank
                and r["id"] < n_items and r.get("run") == store.digest]


def _todo(store, check: Verification, get_item, item_name, rank, world_size, n_items,
          retry_failed) -> tuple[list[int], list[int]]:
    """This rank's ids still to compute (no rank's record, a damaged one, a failure to retry, or a label that is
    not the dataset's), and those of them whose recorded label was not the dataset's; refuses to resume over items
    that are no longer what was computed."""
    records = {r["id"]: r for r in store.records() if isinstance(r["id"], int)}
    todo, changed, relabelled = [], [], []
    for i in range(rank, n_items, world_size):
        r = records.get(i)
        if r is None or i in check.damaged:
            todo.append(i)
            continue
        try:
            image, label = get_item(i)
            now = item_identity(image, item_name(i))
        except Exception as e:  # noqa: BLE001 (an item that cannot even be listed is retried and recorded)
            label, now = None, {"name": item_name(i), "sha256": None, "why": str(e)}
        if now["name"] != r["item"]["name"] or now["sha256"] != r["item"]["sha256"]:
            if "error" in r:
                todo.append(i)  # a failed file that changed: perhaps fixed, so try it again
            else:
                changed.append((i, r["item"], now))
            continue
        if "error" in r and retry_failed:
            todo.append(i)
        elif "error" not in r and label is not None and int(label) != r["label"]:
            todo.append(i)  # an edited label: the image itself is what was computed, so compute it again
            relabelled.append(i)
    if changed:
        i, before, now = changed[0]
        raise ManifestMismatchError(
            f"{len(changed)} image(s) changed since they were classified: image {i} was {before['name']!r} "
            f"(sha256 {before['sha256']}), is now {now['name']!r} (sha256 {now['sha256']}). Restore the dataset "
            f"as it was to resume {str(store.run_dir)!r}, or start a fresh run in a new --out.")
    return todo, relabelled


def _load_chunk(classifier, chunk, get_item, item_name, seed) -> tuple[dict, list]:
    """The host's share of a group of items: each read, identified and given its noise plan, or, if that fails,
    a failure record. Returns (failure records by id, [(id, model-input tensor, plan, label, identity)])."""
    records, loaded = {}, []
    for i in chunk:
        ident = {"name": item_name(i), "sha256": None}
        try:
            image, label = get_item(i)
            ident = item_identity(image, item_name(i))
            pixels, plans = classifier.host_inputs([image], [i])
            loaded.append((i, pixels[0], plans[0], int(label), ident))
        except Exception as e:  # noqa: BLE001 (recorded with its reason; the run goes on)
            records[i] = _failure(i, e, ident, seed)
    return records, loaded


def _classify_group(classifier, loaded, candidates, cand_index, seed) -> dict:
    """Records of loaded items classified together; an item that fails gets a failure record and the others
    go on (a group that fails is retried item by item, so one bad item does not take its neighbours down)."""
    records = {}
    groups = [loaded] if loaded else []
    while groups:
        group = groups.pop(0)
        t0 = time.time()
        try:
            results = classifier.classify_batch([x for _, x, _, _, _ in group], candidates,
                                                image_indices=[i for i, *_ in group],
                                                plans=[plan for _, _, plan, _, _ in group])
        except torch.cuda.OutOfMemoryError:
            raise  # not one image's fault: the batch size is too large for this GPU
        except Exception as e:  # noqa: BLE001
            if len(group) > 1:
                groups = [[item] for item in group] + groups
            else:
                records[group[0][0]] = _failure(group[0][0], e, group[0][4], seed)
            continue
        per_image = round((time.time() - t0) / len(group), 4)
        halved = getattr(classifier.adapter, "max_rows", None)  # set by engine.batching.Batched after an OOM
        for (i, _, _, label, ident), res in zip(group, results):
            records[i] = {"id": i, "item": ident, "label": label, "prediction": cand_index[str(res.prediction)],
                          "mean_errors": res.mean_errors.tolist(), "evaluations": res.n_evaluations,
                          "seconds": per_image, "seed": seed, "_table": res.errors.float().numpy(),
                          **({"max_rows": halved} if halved else {})}
    return records


def _failure(i: int, e: Exception, ident: dict, seed: int) -> dict:
    reason = str(e) if isinstance(e, (ImageLoadError, NonFiniteError)) else f"{type(e).__name__}: {e}"
    return {"id": i, "item": ident, "error": reason, "seed": seed}


def run_timesteps(settings: dict, ids: Sequence[int]) -> np.ndarray:
    """The timesteps of each image's error-table columns, from a run's manifest settings: (T,) when every image
    shares them (deterministic strategies such as ``even``), else (N, T) in the order of ``ids``."""
    if "timesteps" in settings:  # recorded explicitly (lab.evaluate's runs)
        return np.asarray(settings["timesteps"], dtype=np.int64)
    cfg, process = settings.get("classifier", {}), settings.get("process")
    if process is None:
        raise ValueError("this run's manifest does not record its model's time grid (the run predates "
                         "dcanalysis recording it); its tables cannot say which timestep each trial used. Rerun it "
                         "into a new --out to analyse timesteps.")
    stages = cfg["schedule"].get("stages")
    n = stages[-1]["trials"] if stages else cfg["schedule"]["max_trials"]
    rows = np.stack([plan_timesteps(n, seed=cfg["seed"], image_index=int(i), strategy=cfg["timesteps"],
                                    num_timesteps=process["num_timesteps"]).numpy() for i in ids])
    return rows[0] if (rows == rows[:1]).all() else rows


def consolidate_tables(run_dir: str | Path, *, max_images: int | None = None) -> Path:
    """Pack the per-image error tables into one ``tables.npz`` (ids, labels, errors (N, K, T) float16, timesteps
    (T,) or (N, T): ``run_timesteps``). ``dcanalysis tables RUN_DIR`` runs this.

    The compact form that is committed and read by the book; ``max_images`` keeps the lowest ids only. Images
    whose per-image table is absent are taken from an existing ``tables.npz``, so a committed run that was
    resumed elsewhere (records and ``tables.npz`` carried, per-image tables not) can be packed again.
    """
    run_dir = Path(run_dir)
    records = [r for r in trusted_records(run_dir)[0] if "error" not in r][:max_images]  # the run's own only
    if not records:
        raise ValueError(f"{run_dir} has no finished images (dcanalysis verify says why).")
    path = run_dir / "tables.npz"
    packed = load_packed_tables(run_dir)

    def table(image_id: int) -> np.ndarray:
        try:
            return load_error_table(run_dir, image_id)
        except FileNotFoundError:
            if image_id in packed:
                return packed[image_id]
            raise

    errors = np.stack([table(r["id"]) for r in records]).astype(np.float16)
    settings = read_manifest(run_dir)["settings"]
    ids = [r["id"] for r in records]
    timesteps = run_timesteps(settings, ids)
    write_atomically(path, lambda f: np.savez_compressed(
        f, ids=np.array(ids), labels=np.array([r["label"] for r in records]), errors=errors, timesteps=timesteps))
    return path


def run_logits(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), labels (N,)) of a run's finished images: minus each candidate's per-element mean error, the
    logits of the mean-error softmax (``posterior.mean_error_softmax``; Eq. 7's posterior is these times the number
    of elements D), to which ``calibration`` fits a temperature."""
    ok = [r for r in records if "error" not in r]
    return -np.array([r["mean_errors"] for r in ok]), np.array([r["label"] for r in ok])


# The batch settings a format-1 run left out of its records' digest (``RESULT_NEUTRAL`` before format 2).
FORMAT_1_NEUTRAL = ("batch_size", "static_shapes", "padded_sizes")


def upgrade_run(run_dir: str | Path, items: Items | None = None, *, class_names: Sequence[str] | None = None) -> str:
    """Bring a run written by an older dcanalysis (format 1: records without the settings digest or image identity
    this version checks) to the current format, once, re-checking every record first; returns a one-line account.

    An image run needs ``items`` (its dataset: (get_item, item_name)): every finished record's label must be the
    dataset's, its error table (or, where none was kept, its own mean errors) must back it, and a digest it already
    carries must be the one its manifest's settings give; any failure refuses the whole upgrade, naming the image.
    Each record is then stamped with its image's identity and the new digest, ``class_names`` joins the settings
    if given, and the manifest is marked upgraded (``tables_dropped`` where records have no table). A run of named
    items (the scene lab) is stamped with its digest only. Safe to rerun after a kill (records first, manifest
    last)."""
    from .. import __version__

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest.get("format", 1) >= FORMAT:
        return f"{run_dir}: already format {manifest['format']}; nothing to do"
    settings = dict(manifest["settings"])
    image_run = "n_items" in settings
    if image_run and items is None:
        raise ValueError(f"{run_dir} is a run of images: give its dataset so that every record can be re-checked.")
    if class_names is not None and image_run:
        settings.setdefault("class_names", list(class_names))
    neutral = RESULT_NEUTRAL if image_run else ()
    old_digest = settings_digest(manifest["settings"], FORMAT_1_NEUTRAL if image_run else ())
    digest = settings_digest(settings, neutral)
    k, packed = len(settings.get("candidates", [])), load_packed_tables(run_dir)
    records, problems = scan_records(run_dir)
    if problems:
        raise ManifestMismatchError(f"cannot upgrade {run_dir}: {problems[0]} ({len(problems)} problem(s)); repair "
                                    "the records first.")
    untabled = 0
    stamped: dict[int, list[dict]] = {}
    for key, (rank, r) in sorted(records.items(), key=lambda kv: (type(kv[0]).__name__, kv[0])):
        if r.get("run", old_digest) not in (old_digest, digest):
            raise ManifestMismatchError(f"cannot upgrade {run_dir}: record {key!r} was computed with other settings "
                                        "than its manifest's.")
        r = {**r}
        if image_run:
            i = r["id"]
            if not isinstance(i, int) or not 0 <= i < settings["n_items"]:
                raise ManifestMismatchError(f"cannot upgrade {run_dir}: record id {i!r} is not one of its images.")
            image, label = items[0](i)
            r["item"] = item_identity(image, items[1](i))
            if "error" not in r:
                why, checked = _table_problem(run_dir, i, r, k, packed)
                if why is None and not checked:
                    why, untabled = _self_problem(r, settings, k), untabled + 1
                if why is None and int(label) != r["label"]:
                    why = f"its label {r['label']} is not the dataset's {int(label)}"
                if why:
                    raise ManifestMismatchError(f"cannot upgrade {run_dir}: image {i}: {why}. Recompute the run.")
        r["run"] = digest
        stamped.setdefault(rank, []).append(r)
    for rank, rs in stamped.items():
        text = "".join(json.dumps(r) + "\n" for r in rs)
        write_atomically(run_dir / f"records-rank{rank}.jsonl", lambda f, text=text: f.write(text.encode()))
    manifest = {**manifest, "format": FORMAT, "settings": settings, "neutral": list(neutral),
                **({"tables_dropped": True} if untabled else {}),
                "upgraded": {"from_format": manifest.get("format", 1), "by": f"dcanalysis {__version__}",
                             "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "records": len(records)}}
    write_atomically(run_dir / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    checked = "labels, images and tables" if image_run else "settings digests"
    return (f"{run_dir}: upgraded {len(records)} record(s) to format {FORMAT} ({checked} checked"
            + (f"; {untabled} without a table, checked against their own means" if untabled else "") + ")")
