"""Generative against discriminative as labelled data grows: Ng and Jordan's question, asked of diffusion models.

Ng and Jordan (NeurIPS 2001) showed that a generative classifier (naive Bayes) can approach its asymptotic error
with far fewer labelled examples than its discriminative counterpart (logistic regression), which then overtakes
it as data grows. Here the lab's class-conditional UNet, used as a Diffusion Classifier, and the CNN, ResNet and
ViT baselines are trained on a class-balanced 1 %, 10 % and 100 % of the training split with the shipped models'
recipe (``lab.train --train-fraction``; the 100 % models are the shipped ones), then evaluated on the same test
images and on the shifted sets of chapter 9. The baselines keep the shipped 4,000 steps; the 1 % and 10 % UNets
train for 1,500 steps (``data/jobs/labelled_data_h200.sh`` says why: on the full split the committed training curve
has reached the shipped model's accuracy by then, and each model card records the steps it had).

The Diffusion Classifier runs the sequential paired test (``SequentialTest(step=2, min_trials=4, max_trials=100,
confidence=0.99)``, the setting ``speed.versus_official`` chose on the last 500 test images) with every image
sharing each network call.

    python -m dcanalysis.lab.labelled_data --models DIR --out results.json   # DIR/<dataset>_<model>_<pct>pct/
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..evaluation.analysis import ARCH_NAMES
from ..paths import MODELS_DIR
from ..sequential import SequentialTest
from ..engine.config import EngineConfig
from ..estimators import interval_order
from ..engine.overlap import classify_all
from ..evaluation.lab_datasets import load_lab_dataset, to_model_input
from .evaluate import accuracy_entry, baseline_predictions, shifted_sets
from .registry import classifier_from_folder, diffusion_from_folder

FRACTIONS = (0.01, 0.1, 1.0)
BASELINES = ("cnn", "resnet", "vit")
POLICY = SequentialTest(step=2, min_trials=4, max_trials=100, confidence=0.99)


def model_folder(models: Path, dataset: str, model: str, fraction: float) -> Path:
    """Where a fraction's model lives: the shipped one for 100 %, ``models/<dataset>_<model>_<pct>pct`` else."""
    if fraction == 1.0:
        return MODELS_DIR / f"{dataset}_{model}"
    return Path(models) / f"{dataset}_{model}_{100 * fraction:g}pct"


def diffusion_classifier(folder: Path, *, device, batch: int, seed: int, compile_model: bool,
                         policy: SequentialTest = POLICY) -> DiffusionClassifier:
    """The Diffusion Classifier of the UNet in ``folder``, loaded (and compiled) once for every set it scores."""
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    adapter = diffusion_from_folder(folder, device=device, dtype=dtype)
    # a sequential test's rounds shrink as images finish: three padded sizes waste little
    adapter = EngineConfig(compile=compile_model, padded_sizes=3).apply(adapter, batch_size=batch)
    return DiffusionClassifier(adapter, ClassifierConfig(schedule=policy, batch_size=batch, seed=seed))


def diffusion_predictions(clf: DiffusionClassifier, images: np.ndarray, *, per_call: int,
                          desc: str) -> tuple[np.ndarray, float]:
    """Predictions (N,) of ``clf`` on uint8 images (N, 28, 28), and its evaluations per image."""
    results, _ = classify_all(clf, to_model_input(images), first_index=0, per_call=per_call, desc=desc)
    return np.array([r.prediction_index for r in results]), float(np.mean([r.n_evaluations for r in results]))


def evaluate(dataset: str, models: Path, *, n_images: int, device, batch: int = 8192, per_call: int = 1000,
             seed: int = 0, compile_model: bool = False, fractions=FRACTIONS, policy: SequentialTest = POLICY,
             set_names: tuple[str, ...] | None = None) -> dict:
    """Accuracy (with 95 % intervals) of every model and fraction on the test split's first ``n_images`` and on
    each shifted set's (``set_names``: only these); a fraction whose models are missing is reported as missing,
    not skipped silently."""
    ds = load_lab_dataset(dataset, test_only=True)
    sets = {"test": (ds.test_images[:n_images], ds.test_labels[:n_images])}
    sets.update(shifted_sets(dataset, n_images, seed=seed))
    sets = {k: v for k, v in sets.items() if set_names is None or k in set_names}
    out = {"dataset": dataset, "n_images": n_images, "policy": repr(policy), "fractions": {}}
    for fraction in fractions:
        res = out["fractions"][f"{fraction:g}"] = {"missing": []}
        folder = model_folder(models, dataset, "unet", fraction)
        if (folder / "model_card.json").is_file():
            card = json.loads((folder / "model_card.json").read_text())
            entry = {"steps": card["steps"], "data": card["data"], "sets": {}}
            clf = diffusion_classifier(folder, device=device, batch=batch, seed=seed, compile_model=compile_model,
                                       policy=policy)
            for name, (x, y) in sets.items():
                pred, evals = diffusion_predictions(clf, x, per_call=per_call, desc=f"{folder.name} {name}")
                entry["sets"][name] = {**accuracy_entry(pred, y), "evaluations_per_image": evals}
            res["Diffusion Classifier"] = entry
        else:
            res["missing"].append(str(folder))
        for arch in BASELINES:
            folder = model_folder(models, dataset, arch, fraction)
            if not (folder / "model_card.json").is_file():
                res["missing"].append(str(folder))
                continue
            model = classifier_from_folder(folder, device=device)
            card = json.loads((folder / "model_card.json").read_text())
            res[arch] = {"steps": card["steps"], "data": card["data"],
                         "sets": {name: accuracy_entry(baseline_predictions(model, x, device=device), y)
                                  for name, (x, y) in sets.items()}}
    return out


TRAIN_SPLIT_IMAGES = 60_000  # both official training splits
MODEL_NAMES = {"Diffusion Classifier": "Diffusion Classifier", **ARCH_NAMES}  # result keys -> display names


def result_rows(result: dict, dataset: str) -> list[dict]:
    """One row per (fraction, model, set) of a ``main`` result: fraction, labelled (about ``fraction`` x 60,000
    images, class-balanced), model, steps, set, n, accuracy and ci_lo / ci_hi (fractions of 1), evaluations per
    image (the Diffusion Classifier's; 1 for a baseline's single forward pass). Missing fractions give no rows."""
    rows = []
    for key, entry in sorted(result["datasets"].get(dataset, {}).get("fractions", {}).items(), key=lambda kv: float(kv[0])):
        for model, name in MODEL_NAMES.items():
            if model not in entry:
                continue
            for set_name, r in entry[model]["sets"].items():
                rows.append({"fraction": float(key), "labelled": round(float(key) * TRAIN_SPLIT_IMAGES),
                             "model": name, "steps": entry[model]["steps"], "set": set_name, "n": r["n"],
                             "accuracy": r["accuracy"], "ci_lo": r["ci95"][0], "ci_hi": r["ci95"][1],
                             "evaluations_per_image": r.get("evaluations_per_image", 1.0)})
    return rows


def shifted_mean(rows: list[dict]) -> list[dict]:
    """Per (fraction, model): the mean accuracy over the shifted sets (every set but ``test``), with how many."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["set"] != "test":
            groups.setdefault((r["fraction"], r["labelled"], r["model"]), []).append(r)
    return [{"fraction": f, "labelled": n, "model": m, "set": "shifted (mean)", "sets": len(g),
             "accuracy": float(np.mean([r["accuracy"] for r in g]))} for (f, n, m), g in groups.items()]


DC = "Diffusion Classifier"


def by_labelled(rows: list[dict], value: str = "accuracy", *, percent: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """One row per model (in the rows' order), one column per number of labelled images ("6,000 images"):
    ``value`` of each (model, labelled) row, in % (one decimal) where ``percent``. Chapter 12's tables."""
    import pandas as pd

    frame = pd.DataFrame(rows).drop_duplicates(["model", "labelled"])
    table = frame.pivot(index="model", columns="labelled", values=value)
    table = table.mul(100).round(1) if percent else table
    table = table.reindex(list(dict.fromkeys(frame.model)))
    table.columns = [f"{n:,} images" for n in table.columns]
    return table.rename_axis(index="model")


def verdicts(test_rows: list[dict]) -> list[str]:
    """Per number of labelled images (test split rows): the Diffusion Classifier against the best discriminative
    model, each with its 95 % interval, the gap in points, and whether the intervals overlap."""
    out = []
    for labelled in sorted({r["labelled"] for r in test_rows}):
        group = [r for r in test_rows if r["labelled"] == labelled]
        dc = next((r for r in group if r["model"] == DC), None)
        rest = [r for r in group if r["model"] != DC]
        if dc is None or not rest:
            continue
        best = max(rest, key=lambda r: r["accuracy"])
        lead = 100 * (dc["accuracy"] - best["accuracy"])
        side = {"overlap": "within the intervals of", "above": "ahead of", "below": "behind"}[
            interval_order((dc["ci_lo"], dc["ci_hi"]), (best["ci_lo"], best["ci_hi"]))]
        out.append(f"{labelled:,} labelled images: {DC} {_pct(dc)}\n"
                   f"    best discriminative, {best['model']}: {_pct(best)}\n    {lead:+.1f} points, {side} it")
    return out


def _pct(r: dict) -> str:
    return f"{100 * r['accuracy']:.1f} % [{100 * r['ci_lo']:.1f}, {100 * r['ci_hi']:.1f}]"


def shifted_ranking(shifted: list[dict]) -> list[str]:
    """Per number of labelled images: the models by their mean accuracy over the shifted sets (``shifted_mean``),
    highest first, one line each."""
    out = []
    for labelled in sorted({r["labelled"] for r in shifted}):
        ranked = sorted((r for r in shifted if r["labelled"] == labelled), key=lambda r: -r["accuracy"])
        out.append(f"{labelled:,} labelled images, mean over {ranked[0]['sets']} shifted sets, highest first:\n    "
                   + ", ".join(f"{r['model']} {100 * r['accuracy']:.1f} %" for r in ranked))
    return out


def per_set_table(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """Accuracy (%) on each shifted set (named as chapter 9 names them), one row per (set, model), one column per
    number of labelled images."""
    import pandas as pd

    from ..evaluation.analysis import shift_name

    frame = pd.DataFrame([dict(r, set=shift_name(r["set"])) for r in rows if r["set"] != "test"])
    table = frame.pivot_table(index=["set", "model"], columns="labelled", values="accuracy", sort=False)
    table = table.mul(100).round(1)
    table.columns = [f"{n:,} images" for n in table.columns]
    return table.rename_axis(index=["shifted set", "model"])


def first_share_within_reach(test_rows: list[dict]) -> dict[str, int | None]:
    """Per discriminative model: the fewest labelled images at which its interval reaches the Diffusion
    Classifier's (its upper bound at or above the Diffusion Classifier's lower one); None where it never does."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in test_rows if r["model"] != DC):
        out[model] = None
        for labelled in sorted({r["labelled"] for r in test_rows}):
            dc = [r for r in test_rows if r["labelled"] == labelled and r["model"] == DC]
            m = [r for r in test_rows if r["labelled"] == labelled and r["model"] == model]
            if dc and m and interval_order((m[0]["ci_lo"], m[0]["ci_hi"]), (dc[0]["ci_lo"], dc[0]["ci_hi"])) != "below":
                out[model] = labelled
                break
    return out


def gap_table(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """Points by which the Diffusion Classifier leads (or, negative, trails) the best discriminative model on each
    shifted set, one row per set, one column per number of labelled images."""
    import pandas as pd

    from ..evaluation.analysis import shift_name

    gap = {}
    for r in rows:
        if r["set"] == "test" or r["model"] != DC:
            continue
        rest = [o["accuracy"] for o in rows if o["set"] == r["set"] and o["labelled"] == r["labelled"]
                and o["model"] != DC]
        if rest:
            gap[(shift_name(r["set"]), r["labelled"])] = round(100 * (r["accuracy"] - max(rest)), 1)
    table = pd.Series(gap).unstack(1)
    table.columns = [f"{n:,} images" for n in table.columns]
    return table.rename_axis(index="shifted set")


def merge_into(previous: dict | None, settings: dict) -> dict:
    """The result a run writes into: ``previous`` (the same file from an earlier, possibly cut-short run) when it was
    made with the same ``settings``, else a fresh one; a file of other settings is refused, never mixed."""
    if previous is None:
        return {**settings, "datasets": {}}
    theirs = {k: previous.get(k) for k in settings}
    if theirs != settings:
        changed = ", ".join(f"{k} {theirs[k]!r} (now {v!r})" for k, v in settings.items() if theirs[k] != v)
        raise ValueError(f"the output file holds results of other settings: {changed}; use another --out.")
    return previous


def main(argv=None):
    p = argparse.ArgumentParser(description="Diffusion Classifier and baselines against the share of labelled data.")
    p.add_argument("--models", type=Path, required=True, help="folder of the 1 %% and 10 %% models (lab.train --out)")
    p.add_argument("--datasets", nargs="+", default=["fashion_mnist", "mnist"], choices=["fashion_mnist", "mnist"])
    p.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS),
                   help="shares of the training split to evaluate; a rerun into the same --out adds to it")
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--compile", action="store_true", help="torch.compile the UNets (a GPU run over many images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (and add to, on a rerun)")
    a = p.parse_args(argv)
    settings = {"n_images": a.n_images, "seed": a.seed, "policy": repr(POLICY),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    result = merge_into(json.loads(a.out.read_text()) if a.out.is_file() else None, settings)
    result.setdefault("commands", []).append(
        "python -m dcanalysis.lab.labelled_data " + " ".join(argv if argv is not None else sys.argv[1:]))
    for name in a.datasets:
        for fraction in a.fractions:
            start = time.time()
            part = evaluate(name, a.models, n_images=a.n_images, device=a.device, seed=a.seed,
                            compile_model=a.compile, fractions=(fraction,))
            entry = result["datasets"].setdefault(name, {k: v for k, v in part.items() if k != "fractions"})
            entry.setdefault("fractions", {}).update(part["fractions"])
            entry["fractions"][f"{fraction:g}"]["seconds"] = time.time() - start
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(result, indent=1))  # after each fraction: a cut-short run keeps what it did
    print(json.dumps(result, indent=1)[:4000])


if __name__ == "__main__":
    main()
