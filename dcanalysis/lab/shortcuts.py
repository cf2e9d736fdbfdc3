"""Do generative classifiers avoid shortcuts? The claim of Li, Kumar and Pathak (ICLR 2025), tested on the lab.

A class-conditional UNet (used as a Diffusion Classifier) and the CNN, ResNet and ViT are trained from scratch on
the same training split carrying a spurious cue (``shortcut_data``: a white square in the class's slot with
probability ``strength``), with the recipe of ``labelled_data`` (``data/jobs/shortcuts_h200.sh``). Each is tested on
the first test images shown twice, with the class's slot and with another: accuracy on each half, the worst of the
20 groups (class x aligned / conflicting), and how often a conflicting image is put in its cue's class.

    python -m dcanalysis.lab.shortcuts --dataset mnist --models DIR --out RESULTS   # DIR/<dataset>_<model>_cue<s>/

Results go to ``RESULTS/{dataset}_shortcuts.json`` one model at a time; a rerun with the same settings skips the
finished ones and refuses a file of other settings.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..evaluation.lab_datasets import load_lab_dataset
from ..evaluation.run_store import read_entries_file, write_atomically
from ..estimators import accuracy_interval, interval_order
from .evaluate import accuracy_entry, baseline_predictions
from .labelled_data import POLICY, diffusion_classifier, diffusion_predictions
from .registry import classifier_from_folder
from .shortcut_data import conflict_test_set

STRENGTHS = (0.1, 0.95, 0.99)
MODELS = ("unet", "cnn", "resnet", "vit")


def model_folder(models: Path, dataset: str, model: str, strength: float) -> Path:
    """``models/<dataset>_<model>_cue<strength>``, where the job trains each model."""
    return Path(models) / f"{dataset}_{model}_cue{strength:g}"


def group_accuracy(pred: np.ndarray, labels: np.ndarray, aligned: np.ndarray, slots: np.ndarray) -> dict:
    """Shortcut metrics of predictions (N,) on a ``conflict_test_set`` (labels, aligned, slots: (N,)).

    aligned / conflicting / average: {n, accuracy, ci95} on each half and on both; worst_group: the lowest of the
    class x {aligned, conflicting} groups, with its class and half; cue_followed: {n, share, ci95} of conflicting
    images put in the class whose slot they carry (10 % of those would be a guess among ten; a model that reads
    only the cue gets 100 %); groups: every group's n and accuracy."""
    pred, labels, aligned, slots = map(np.asarray, (pred, labels, aligned, slots))
    groups = []
    for c in np.unique(labels):
        for half in (True, False):
            m = (labels == c) & (aligned == half)
            if m.any():
                groups.append({"class": int(c), "aligned": bool(half), **accuracy_entry(pred[m], labels[m])})
    conflicting = ~aligned
    followed = int((pred[conflicting] == slots[conflicting]).sum())
    n = int(conflicting.sum())
    return {"aligned": accuracy_entry(pred[aligned], labels[aligned]),
            "conflicting": accuracy_entry(pred[conflicting], labels[conflicting]),
            "average": accuracy_entry(pred, labels),
            "worst_group": min(groups, key=lambda g: (g["accuracy"], g["class"])),
            "cue_followed": {"n": n, "share": followed / max(n, 1), "ci95": list(accuracy_interval(followed, n))},
            "groups": [{k: g[k] for k in ("class", "aligned", "n", "accuracy")} for g in groups]}


def predictions(model: str, folder: Path, images: np.ndarray, *, device, seed: int, compile_model: bool,
                policy=POLICY) -> tuple[np.ndarray, float]:
    """(predictions (N,), network evaluations per image) of the model in ``folder`` on uint8 images (N, 28, 28)."""
    if model == "unet":
        clf = diffusion_classifier(folder, device=device, batch=8192, seed=seed, compile_model=compile_model,
                                   policy=policy)
        return diffusion_predictions(clf, images, per_call=1000, desc=folder.name)
    return baseline_predictions(classifier_from_folder(folder, device=device), images, device=device), 1.0


MODEL_NAMES = {"unet": "Diffusion Classifier", "cnn": "CNN", "resnet": "ResNet", "vit": "ViT"}


def result_rows(result: dict) -> list[dict]:
    """One row per (strength, model, measure) of a ``{dataset}_shortcuts.json``: strength, model (display name),
    steps, measure ("aligned", "conflicting", "average" (both halves), "worst group", "cue followed"), n, value,
    ci_lo, ci_hi (fractions)."""
    rows = []
    for e in result["entries"].values():
        for measure, key in (("aligned", "aligned"), ("conflicting", "conflicting"), ("average", "average"),
                             ("worst group", "worst_group"), ("cue followed", "cue_followed")):
            r = e[key]
            rows.append({"strength": e["strength"], "model": MODEL_NAMES[e["model"]], "steps": e["steps"],
                         "measure": measure, "n": r["n"], "value": r.get("accuracy", r.get("share")),
                         "ci_lo": r["ci95"][0], "ci_hi": r["ci95"][1]})
    return rows


def claim_verdicts(rows: list[dict], measure: str = "worst group") -> list[str]:
    """Per strength, the claim "the generative classifier has the higher worst-group accuracy" against each
    baseline: "holds" where the Diffusion Classifier's 95 % interval lies above the baseline's, "fails" where it
    lies below, "not decided" where they overlap."""
    lines = []
    for strength in sorted({r["strength"] for r in rows}):
        got = {r["model"]: r for r in rows if r["strength"] == strength and r["measure"] == measure}
        dc = got.get("Diffusion Classifier")
        if dc is None:
            continue
        parts = []
        for model, r in got.items():
            if model == dc["model"]:
                continue
            verdict = {"above": "holds", "below": "fails", "overlap": "not decided"}[
                interval_order((dc["ci_lo"], dc["ci_hi"]), (r["ci_lo"], r["ci_hi"]))]
            parts.append(f"vs {model} {100 * r['value']:.1f} %: {verdict}")
        lines.append(f"cue strength {strength:g}, {measure}: Diffusion Classifier {100 * dc['value']:.1f} % "
                     f"[{100 * dc['ci_lo']:.1f}, {100 * dc['ci_hi']:.1f}]; " + "; ".join(parts))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description="Diffusion Classifier and baselines trained on a split with a spurious cue.")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--models", type=Path, required=True, help="folder of the models (lab.train --cue-strength --out)")
    p.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS))
    p.add_argument("--n-images", type=int, default=500, help="the first test images (each shown twice)")
    p.add_argument("--seed", type=int, default=0, help="the conflicting slots' draw and the classifier's noise")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNets (a GPU run)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    settings = {"dataset": a.dataset, "n_images": a.n_images, "seed": a.seed, "policy": repr(POLICY)}
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{a.dataset}_shortcuts.json"
    results = read_entries_file(path, settings, what="shortcut evaluations")
    test = load_lab_dataset(a.dataset, test_only=True)
    data = conflict_test_set(test.test_images[:a.n_images], test.test_labels[:a.n_images], seed=a.seed)
    results["device"] = torch.cuda.get_device_name() if torch.device(a.device).type == "cuda" else "cpu"
    for strength in a.strengths:
        for model in MODELS:
            key, folder = f"cue={strength:g} {model}", model_folder(a.models, a.dataset, model, strength)
            if key in results["entries"]:
                continue
            if not (folder / "model_card.json").is_file():
                print(f"{key}: no model at {folder}; train it first (data/jobs/shortcuts_h200.sh)")
                continue
            card = json.loads((folder / "model_card.json").read_text())
            t0 = time.perf_counter()
            pred, evals = predictions(model, folder, data["images"], device=a.device, seed=a.seed,
                                      compile_model=a.compile)
            entry = {"strength": strength, "model": model, "steps": card["steps"], "train_wall_s": card["wall_time_s"],
                     "config_digest": card["config_digest"], "evaluations_per_image": evals,
                     "eval_wall_s": time.perf_counter() - t0,
                     **group_accuracy(pred, data["labels"], data["aligned"], data["slots"])}
            results["entries"][key] = entry
            write_atomically(path, lambda f: f.write(json.dumps(results, indent=1).encode()))
            print(f"{key}: aligned {100 * entry['aligned']['accuracy']:.1f} %, conflicting "
                  f"{100 * entry['conflicting']['accuracy']:.1f} %, worst group {100 * entry['worst_group']['accuracy']:.1f} %, "
                  f"cue followed {100 * entry['cue_followed']['share']:.1f} %", flush=True)


if __name__ == "__main__":
    main()
