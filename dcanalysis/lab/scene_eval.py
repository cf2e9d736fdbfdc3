"""Evaluating the scene lab: Winoground-style swaps and zero-shot classification of held-out compositions, for
the text-conditional diffusion model (as a Diffusion Classifier) and the contrastive baseline, on the same items.

    python -m dcanalysis.lab.scene_eval --out RUN_DIR --items 300 --per-thing 10 --trials 100

Records are written one per item as they finish through ``dcanalysis.evaluation.run_store`` (the store every
dataset run uses: manifest, fsynced records, lock); a rerun with the same settings skips finished items.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..estimators import accuracy_interval
from ..evaluation.run_store import RunStore, load_records, read_manifest
from ..schedules import Schedule
from ..evaluation.winoground import WinogroundExample, diffusion_scores, same_image_wins, score_table
from . import scenes
from ..paths import RESULTS_DIR
from .registry import load_scene_clip, load_scene_diffusion, model_card
from .text import NULL_CAPTION
from .train_scenes import to_input

SPLITS = ("test_seen", "test_unseen")
TASKS = ("swap", "zero_shot")


COMMITTED_RUN = RESULTS_DIR / "lab" / "scenes"  # the largest evaluation made so far (see its manifest)
# the same evaluation of models retrained with other seeds (data/jobs/train_evaluate_scenes.sh OUT 330 SEED)
REPLICATES = RESULTS_DIR / "lab" / "scenes_replicates"


def _identity(name: str, root: Path | None) -> dict:
    """What makes a trained model itself: a retrained model must not resume another model's run."""
    card = model_card(name, root)
    return {k: card.get(k) for k in ("config_digest", "steps", "device")}


def model_run_dir(base: Path, diffusion: str = "scenes_unet", *, trials: int, seed: int = 0,
                  root: Path | None = None) -> Path:
    """``base/<model>-<config digest>-<steps>-t<trials>-s<seed>``: one cache folder per trained model and
    setting, so a retrained model or other trials start a fresh run beside the old one instead of being refused
    by the old run's manifest."""
    ident = _identity(diffusion, root)
    return Path(base) / f"{diffusion}-{ident['config_digest']}-{ident['steps']}-t{trials}-s{seed}"


def zero_shot_schedule(trials: int, n_candidates: int = len(scenes.ALL_THINGS)) -> Schedule:
    """Algorithm 2 scaled to 20 phrases: a fifth of the trials for all, then the best 5 get the rest."""
    first = max(1, trials // 5)
    return Schedule.from_lists((first, trials), (min(5, n_candidates), 1))


# Display names of the contrastive models; each is scored if its folder exists.
CONTRASTIVE = {"scenes_clip": "contrastive baseline", "scenes_clip_pooled": "contrastive, pooled text (ablation)"}


def _work(tasks, items: int, per_thing: int, seed: int) -> list[tuple]:
    """(task, id, split, payload) for every item; regenerated from the seed, never stored."""
    work = []
    if "swap" in tasks:
        for split in SPLITS:
            for it in scenes.swap_items(items, seed, split):
                work.append(("swap", f"swap/{split}/{it.id:05d}", split, it))
    if "zero_shot" in tasks:
        for k, (image, thing) in enumerate(scenes.single_thing_set(per_thing, seed)):
            work.append(("zero_shot", f"zero_shot/{k:05d}",
                         "test_unseen" if thing in scenes.HELD_OUT else "test_seen", (image, thing)))
    return work


def evaluate_scenes(out: Path, *, items: int = 60, per_thing: int = 2, trials: int = 50, seed: int = 0,
                    device: str = "cpu", batch_size: int = 256, diffusion: str = "scenes_unet",
                    contrastive: tuple[str, ...] | None = None, root: Path | None = None,
                    tasks: tuple[str, ...] = TASKS) -> list[dict]:
    """Run (or resume) the evaluation of ``tasks`` ("swap", "zero_shot"); returns the records of these items.

    ``items`` swap items per split, ``per_thing`` zero-shot images per (colour, shape); each image's noise plan
    comes from (seed, item index), so a bigger run extends a smaller one with the same seed. The diffusion
    model's results are the run's records (resumable); the contrastive models (``contrastive``, default: every
    one of ``CONTRASTIVE`` that is installed) cost milliseconds and are scored afresh on every call.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}.")
    out = Path(out)
    # item counts are not settings (a run may grow); everything that decides a record's value is
    settings = {"trials": trials, "seed": seed, "diffusion": diffusion, "timesteps": "even", "error": "l2",
                "model": _identity(diffusion, root)}
    work = _work(tasks, items, per_thing, seed)
    phrases = [t.phrase for t in scenes.ALL_THINGS]
    complete = _complete(out, settings, work)
    if complete is not None:  # nothing to add: read it, without opening the run for writing
        return _with_contrastive(complete, work, contrastive, device=device, root=root)
    with RunStore(out, settings) as store, torch.no_grad():
        done = store.done
        todo = [w for w in work if w[1] not in done]
        if todo:
            adapter = load_scene_diffusion(diffusion, device=device, root=root)
            swap_clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(trials), seed=seed,
                                                                     batch_size=batch_size))
            zs_clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=zero_shot_schedule(trials), seed=seed,
                                                                   batch_size=batch_size))
        for task, rid, split, payload in tqdm(todo, desc="scene items (diffusion)", mininterval=2):
            t0 = time.time()
            if task == "swap":
                ex = WinogroundExample(rid, tuple(to_input(np.stack(payload.images))), payload.captions, payload.tag)
                dc = diffusion_scores(swap_clf, ex, index=payload.id, null_caption=NULL_CAPTION)
                rec = {"id": rid, "task": task, "split": split, "tag": payload.tag, "captions": list(ex.captions),
                       "diffusion_raw": dc["raw"].tolist(), "diffusion_normalised": dc["normalised"].tolist()}
            else:
                image, thing = payload
                res = zs_clf.classify(to_input(image[None])[0], phrases, image_index=int(rid.split("/")[1]))
                rec = {"id": rid, "task": task, "split": split, "label": thing.phrase,
                       "diffusion_prediction": res.prediction, "diffusion_evaluations": res.n_evaluations}
            rec["seconds"] = round(time.time() - t0, 3)
            store.append([rec])
    return _with_contrastive({r["id"]: r for r in load_records(out)}, work, contrastive, device=device, root=root)


def _complete(out: Path, settings: dict, work: list) -> dict | None:
    """The records by id of the run at ``out`` if it was made with ``settings`` and holds every item of ``work``;
    else None, and the run (other settings, missing items) is left to ``RunStore``, which refuses or resumes it."""
    if not (out / "manifest.json").is_file():
        return None
    recorded = read_manifest(out)["settings"]
    if any(recorded.get(k) != v for k, v in settings.items()):
        return None
    have = {r["id"]: r for r in load_records(out)}
    return have if all(w[1] in have for w in work) else None


def _with_contrastive(records: dict, work: list, contrastive, *, device, root) -> list[dict]:
    """The records (by id) of ``work``, in order, with the contrastive models (``contrastive``, default: every one
    installed) scored on the same items."""
    ordered = [records[w[1]] for w in work]
    names = contrastive if contrastive is not None else installed_contrastive(root)
    for name in names:
        add_contrastive_scores(ordered, work, name, device=device, root=root)
    return ordered


def load_scene_run(out: Path, *, device="cpu", root: Path | None = None) -> list[dict]:
    """The records of a finished (or partial) evaluation, with the contrastive models scored on the same items."""
    out = Path(out)
    seed = read_manifest(out)["settings"]["seed"]
    have = {r["id"]: r for r in load_records(out)}
    items = max((int(i.rsplit("/", 1)[1]) + 1 for i in have if i.startswith("swap/")), default=0)
    per_thing = -(-sum(i.startswith("zero_shot/") for i in have) // len(scenes.ALL_THINGS))
    work = [w for w in _work(TASKS, items, per_thing, seed) if w[1] in have]
    return _with_contrastive(have, work, None, device=device, root=root)


def installed_contrastive(root: Path | None = None) -> list[str]:
    """The contrastive models of ``CONTRASTIVE`` present in ``root`` (default: data/models)."""
    found = []
    for name in CONTRASTIVE:
        try:
            model_card(name, root)
            found.append(name)
        except FileNotFoundError:
            pass
    return found


@torch.no_grad()
def add_contrastive_scores(records: list[dict], work: list[tuple], name: str, *, device="cpu",
                           root: Path | None = None) -> None:
    """Add ``records[i]["contrastive"][name]``: the (2, 2) cosine scores of a swap item, or the predicted phrase."""
    clip, bank = load_scene_clip(name, device=device, root=root)

    def encode_images(ims):
        return clip.encode_image(torch.stack([torch.as_tensor(i) for i in ims]).to(device))

    def encode_texts(caps):
        h, m = bank(caps)
        return clip.encode_text(h.to(device), m.to(device))

    phrases = [t.phrase for t in scenes.ALL_THINGS]
    text = encode_texts(phrases)
    # every image and caption in a few large batches (item by item, a CPU spends its time on per-call overhead);
    # each swap item's scores are then embedding_scores' [caption, image] cosines of its two of each
    swap_at = [i for i, w in enumerate(work) if w[0] == "swap"]
    single_at = [i for i, w in enumerate(work) if w[0] != "swap"]
    if swap_at:
        images = [im for i in swap_at for im in to_input(np.stack(work[i][3].images))]
        img = _encode_in_chunks(encode_images, images)
        txt = _encode_in_chunks(encode_texts, [c for i in swap_at for c in work[i][3].captions])
    for k, i in enumerate(swap_at):
        scores = txt[2 * k:2 * k + 2] @ img[2 * k:2 * k + 2].T
        records[i].setdefault("contrastive", {})[name] = scores.cpu().double().numpy().tolist()
    if single_at:
        singles = _encode_in_chunks(encode_images, [to_input(work[i][3][0][None])[0] for i in single_at])
        for i, best in zip(single_at, (singles @ text.T).argmax(1).tolist()):
            records[i].setdefault("contrastive", {})[name] = phrases[best]


def _encode_in_chunks(encode, xs: list, size: int = 256) -> torch.Tensor:
    """encode(xs) in slices of exactly ``size`` (the last one padded by repeating its last element), concatenated:
    (len(xs), D); xs must not be empty. One batch shape for every call keeps each element's embedding bit for bit
    the same whatever else shares its batch (a CPU's matrix kernels sum in another order at another batch size),
    so a run extended with more items gives its earlier items the same scores."""
    out = []
    for i in range(0, len(xs), size):
        chunk = xs[i:i + size]
        out.append(encode(chunk + [chunk[-1]] * (size - len(chunk)))[:len(chunk)])
    return torch.cat(out)


def _models(records: list[dict]) -> list[tuple]:
    """(getter, display name) of every model present in the records."""
    names = sorted({n for r in records for n in r.get("contrastive", {})}, key=list(CONTRASTIVE).index)
    return [(lambda r, n=n: r["contrastive"][n], CONTRASTIVE[n]) for n in names]


def _swap_models(records: list[dict]) -> list[tuple]:
    """(getter, display name) of every swap score the records hold: the Diffusion Classifier's raw and normalised
    scores, then each contrastive model's."""
    return [(lambda r: r["diffusion_raw"], "Diffusion Classifier"),
            (lambda r: r["diffusion_normalised"], "Diffusion Classifier, normalised")] + _models(records)


def swap_tables(records: list[dict]) -> list[dict]:
    """Winoground text/image/group scores per split, swap tag and model (rows for a DataFrame)."""
    rows = []
    for split in SPLITS:
        recs = [r for r in records if r["task"] == "swap" and r["split"] == split]
        if not recs:
            continue
        tags = [r["tag"] for r in recs]
        for get, name in _swap_models(recs):
            for row in score_table(np.array([get(r) for r in recs]), tags, name):
                rows.append({"split": split, **row})
    return rows


def zero_shot_table(records: list[dict]) -> list[dict]:
    """20-way zero-shot accuracy on single things, seen vs held-out compositions, per model."""
    rows = []
    for split in SPLITS:
        recs = [r for r in records if r["task"] == "zero_shot" and r["split"] == split]
        if not recs:
            continue
        for get, name in [(lambda r: r["diffusion_prediction"], "Diffusion Classifier")] + _models(recs):
            k = sum(get(r) == r["label"] for r in recs)
            lo, hi = accuracy_interval(k, len(recs))
            rows.append({"split": split, "model": name, "accuracy": 100 * k / len(recs), "lo": 100 * lo,
                         "hi": 100 * hi, "n": len(recs)})
    return rows


# how the book names the splits: test scenes whose (colour, shape) pairs were in training, and those held out
SPLIT_NAMES = {"test_seen": "seen in training", "test_unseen": "held out"}


def split_name(split: str) -> str:
    """The book's name of a split (``SPLIT_NAMES``), or the split itself."""
    return SPLIT_NAMES.get(split, split)


def zero_shot_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """``zero_shot_table``'s rows as the book shows them: one row per (pairs, model), human column names, accuracy
    and its 95 % interval in %."""
    import pandas as pd

    return pd.DataFrame([{"(colour, shape) pairs": split_name(r["split"]), "model": r["model"],
                          "top-1 accuracy (%)": round(r["accuracy"], 1),
                          "95 % interval (%)": f"{r['lo']:.1f} to {r['hi']:.1f}", "images": r["n"]}
                         for r in rows]).set_index(["(colour, shape) pairs", "model"])


SWAP_NAMES = {"all": "every swap", "object": "shapes swapped", "attribute": "colours swapped",
              "both": "both swapped"}


SWAP_TICKS = {"all": "every swap", "object": "shapes", "attribute": "colours", "both": "both"}  # figure axes


def scores_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """``swap_tables``' rows over every swap as the book shows them: one row per (pairs, model), one column per
    Winoground score, each "score (95 % interval)" in %."""
    import pandas as pd

    frame = pd.DataFrame([r for r in rows if r["tag"] == "all"])
    frame = frame.assign(pairs=frame.split.map(split_name), score_name=frame.metric + " score",
                         cell=[f"{s:.1f} ({lo:.1f} to {hi:.1f})" for s, lo, hi in zip(frame.score, frame.lo, frame.hi)])
    table = frame.pivot_table(index=["pairs", "model"], columns="score_name", values="cell", aggfunc="first", sort=False)
    return table.rename_axis(index=["(colour, shape) pairs", "model"], columns=None)


def same_image_frame(records: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """Per model (the Diffusion Classifier raw and normalised, each contrastive model the records hold): the % of
    swap items where one image scores higher under both captions (``winoground.same_image_wins``)."""
    import pandas as pd

    swaps = [r for r in records if r["task"] == "swap"]
    share = {name: round(100 * float(same_image_wins(np.array([get(r) for r in swaps])).mean()), 1)
             for get, name in _swap_models(swaps)}
    return pd.DataFrame({"% of items where one image wins under both captions": share}).rename_axis(index="model")


def text_margins(records: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """The Diffusion Classifier's median text margin (x 1000: the smaller of the two caption-vs-caption error gaps
    of an item, positive when the text score counts it right) per pairs split and swap type."""
    import pandas as pd

    swaps = [r for r in records if r["task"] == "swap"]
    s = np.array([r["diffusion_raw"] for r in swaps])  # (item, caption, image)
    frame = pd.DataFrame({"(colour, shape) pairs": [split_name(r["split"]) for r in swaps],
                          "swap": [SWAP_NAMES.get(r["tag"], r["tag"]) for r in swaps],
                          "margin": 1e3 * np.minimum(s[:, 0, 0] - s[:, 1, 0], s[:, 1, 1] - s[:, 0, 1])})
    table = frame.groupby(["(colour, shape) pairs", "swap"], sort=False)["margin"].median().unstack().round(3)
    return table[[n for n in SWAP_NAMES.values() if n in table.columns]].rename_axis(columns=None)


def swap_frame(rows: list[dict], metric: str) -> "pandas.DataFrame":  # noqa: F821
    """``swap_tables``' rows of one Winoground ``metric`` ("text", "image" or "group") as the book shows them: one
    row per (pairs, model), one column per swap type (every swap first), scores in % with one decimal. One table
    per metric keeps each at page width (all three side by side were twelve columns)."""
    import pandas as pd

    frame = pd.DataFrame([r for r in rows if r["metric"] == metric])
    frame = frame.assign(pairs=frame.split.map(split_name), swap=frame.tag.map(SWAP_NAMES))
    table = frame.pivot_table(index=["pairs", "model"], columns="swap", values="score", sort=False)
    table = table[[name for name in SWAP_NAMES.values() if name in table.columns]]
    return table.round(1).rename_axis(index=["(colour, shape) pairs", "model"], columns=None)


def across_seeds(tables: dict[int, list[dict]], value: str, *, bounds: tuple[float, float] | None = None) -> list[dict]:
    """Combine one table per training seed (rows of ``swap_tables`` or ``zero_shot_table``) into one row per
    (split, model[, metric, tag]): the mean of ``value`` ("score" or "accuracy"), its sample standard deviation
    across seeds and a t-based 95 % interval for the mean, plus each seed's value. The intervals inside each
    table are over items; this one is over training runs, the spread a retraining would show. ``bounds`` clips
    the interval to the value's range (with 3 seeds a t-interval easily passes 100 %)."""
    from scipy import stats

    groups: dict[tuple, dict[int, float]] = {}
    for seed, rows in tables.items():
        for r in rows:
            key = tuple((k, r[k]) for k in ("split", "model", "metric", "tag") if k in r)
            groups.setdefault(key, {})[seed] = r[value]
    out = []
    for key, per_seed in groups.items():
        v = np.array(list(per_seed.values()), dtype=float)
        sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        half = float(stats.t.ppf(0.975, len(v) - 1) * sd / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        lo, hi = float(v.mean()) - half, float(v.mean()) + half
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        out.append({**dict(key), "mean": float(v.mean()), "sd": sd, "lo": lo, "hi": hi, "n_seeds": len(v),
                    "per_seed": per_seed})
    return out


def load_replicates(committed: Path = COMMITTED_RUN, replicates: Path = REPLICATES) -> dict[int, dict]:
    """The ``summary.json`` of the shipped run (training seed 0) and of each ``replicates/seed<N>``, by training
    seed. Each replicate must have been evaluated like the shipped run (same trials, evaluation seed, timesteps,
    error, items): only the model may differ, else the spread over seeds would mix in other differences."""
    def settings(run: Path) -> dict:
        manifest = json.loads((run / "manifest.json").read_text())["settings"]
        return {k: v for k, v in manifest.items() if k != "model"}

    runs = {0: committed, **{int(r.name.removeprefix("seed")): r for r in replicates.glob("seed*")}}
    for run in runs.values():
        if not (run / "summary.json").is_file():
            raise FileNotFoundError(f"{run} has no summary.json: evaluate it with `python -m dcanalysis.lab.scene_eval "
                                    f"--out {run} ...` (the command in data/jobs/train_evaluate_scenes.sh).")
    reference = settings(committed)
    out = {}
    for seed, run in sorted(runs.items()):
        if settings(run) != reference:
            raise ValueError(f"{run} was evaluated with {settings(run)}, the shipped run with {reference}: rerun its "
                             "evaluation with the shipped run's settings before combining them.")
        out[seed] = json.loads((run / "summary.json").read_text())
    return out


def seed_tables(summaries: dict[int, dict]) -> tuple[list[dict], list[dict]]:
    """``across_seeds`` of the swap scores and of the zero-shot accuracies (both %) of ``load_replicates``'
    summaries, intervals clipped to 0-100."""
    swaps = across_seeds({s: v["swap"] for s, v in summaries.items()}, "score", bounds=(0.0, 100.0))
    zero_shot = across_seeds({s: v["zero_shot"] for s, v in summaries.items()}, "accuracy", bounds=(0.0, 100.0))
    return swaps, zero_shot


def main(argv=None):
    p = argparse.ArgumentParser(description="Evaluate the scene lab models (swaps and zero-shot compositions).")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--items", type=int, default=60, help="swap items per split")
    p.add_argument("--per-thing", type=int, default=2, help="zero-shot images per (colour, shape)")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models-root", type=Path, default=None,
                   help="folder holding scenes_unet, scenes_clip[_pooled] and scenes_text (default: data/models)")
    a = p.parse_args(argv)
    records = evaluate_scenes(a.out, items=a.items, per_thing=a.per_thing, trials=a.trials, seed=a.seed,
                              device=a.device, batch_size=a.batch_size, root=a.models_root)
    import pandas as pd

    swaps, zero_shot = swap_tables(records), zero_shot_table(records)
    # the contrastive scores are recomputed from the models on every load; this file keeps them with the run,
    # so a replicate whose models are not kept can still be combined (across_seeds)
    root = a.models_root
    summary = {"command": "python -m dcanalysis.lab.scene_eval " + " ".join(argv if argv is not None else sys.argv[1:]),
               "models": {n: _identity(n, root) for n in ["scenes_unet", *installed_contrastive(root)]},
               "swap": swaps, "zero_shot": zero_shot}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(pd.DataFrame(swaps).query("tag == 'all'").to_string(index=False))
    print(pd.DataFrame(zero_shot).to_string(index=False))


if __name__ == "__main__":
    main()
