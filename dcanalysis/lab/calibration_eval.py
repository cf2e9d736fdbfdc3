"""Calibration of the lab models, side by side: the Diffusion Classifier's posteriors (the mean-error softmax, which
is the paper's Eq. 7 at a temperature of the pixel count; a fitted temperature; the ELBO's own scale; learned
timestep weights) and the three discriminative baselines (raw, and with their own fitted temperature), in
distribution and on every shifted set.

    python -m dcanalysis.lab.calibration_eval --dataset fashion_mnist --out data/results/lab/calibration

Everything is computed on a CPU from what the GPU runs stored (``data/results/lab``: per-trial error tables of
the first 1,000 test images, per-image mean errors of each shifted set) and from the baselines run here on the
same images. Fitting uses the test images with even ids, every number reported the odd ones
(``calibration.calibration_split``); the shifted sets are reported on their odd ids too, so no reported image was
seen by a fit, not even as its clean original.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..estimators import accuracy_interval
from ..evaluation import calibration as C
from ..evaluation.analysis import ARCH_NAMES, ErrorTables, shift_name
from ..evaluation.run_store import load_records
from ..images import pad_to
from ..paths import RESULTS_DIR
from ..processes import linear_alphas_cumprod
from ..evaluation.lab_datasets import load_lab_dataset, to_model_input
from .evaluate import shifted_sets
from .registry import load_lab_classifier

# the posterior of the mean errors: chapter 0's (the paper's Eq. 7) is confident, this one near uniform (chapter 11)
MEAN_ERROR_SOFTMAX = "mean-error softmax (exp of minus the mean error)"

BASELINES = ("cnn", "resnet", "vit")
N_ELEMENTS = 32 * 32  # the lab UNets' sample: 1 x 32 x 32 (28 x 28 digits padded)


# the measures of ``calibration.summary`` as the book names them, and whether each is a share shown in %
MEASURES = {"accuracy": ("accuracy (%)", True), "nll": ("NLL (nats)", False), "brier": ("Brier", False),
            "ece_width": ("ECE, equal-width bins (%)", True), "ece_mass": ("ECE, equal-mass bins (%)", True),
            "aurc": ("AURC", False), "mean_confidence": ("mean confidence (%)", True)}


def summary_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """Calibration rows (``_rows`` / ``calibration.summary`` with model and method) as chapter 11 shows them: one
    row per (model, method), the measures under their names, shares in %."""
    import pandas as pd

    return pd.DataFrame([{"model": ARCH_NAMES.get(r["model"], r["model"]), "method": r["method"],
                          **{name: round(100 * r[k], 1) if share else round(r[k], 4)
                             for k, (name, share) in MEASURES.items()}} for r in rows]).set_index(["model", "method"])


def shifted_ece_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """ECE (%, equal-width bins) of every model's fitted-temperature and raw-softmax posterior on every set of a
    committed calibration table: one row per set (named as the book names them), one column per (model, method)."""
    import pandas as pd

    kept = [{"test set": shift_name(r["set"]), "model": ARCH_NAMES.get(r["model"], r["model"]),
             "method": r["method"], "ECE (%)": 100 * r["ece_width"]}
            for r in rows if r["method"] in ("fitted temperature", "raw softmax")]
    table = pd.DataFrame(kept).pivot_table(index="test set", columns=["model", "method"], values="ECE (%)").round(1)
    return table[sorted(table.columns, key=lambda c: (c[0] != "Diffusion Classifier", c))]  # the DC first


@torch.no_grad()
def baseline_logits(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    return np.concatenate([model(pad_to(to_model_input(images[s:s + batch_size]), 32)).double().numpy()
                           for s in range(0, len(images), batch_size)])


def _rows(dataset: str, set_name: str, model: str, method: str, logits: np.ndarray, labels: np.ndarray,
          temperature: float = 1.0, boot: int = 200, seed: int = 0) -> dict:
    p = C.softmax(logits, temperature)
    row = {"dataset": dataset, "set": set_name, "model": model, "method": method, "temperature": temperature,
           **C.summary(p, labels)}
    k = int(round(row["accuracy"] * row["n"]))
    row["accuracy_ci95"] = list(accuracy_interval(k, row["n"]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(p), (boot, len(p)))
    for name, fn in (("ece_width", C.ece), ("nll", C.nll)):
        vals = [fn(p[i], labels[i]) for i in idx]
        row[f"{name}_ci95"] = [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]
    return row


def diffusion_rows(dataset: str, *, results: Path = RESULTS_DIR / "lab", n_bins: int = 10, seed: int = 0):
    """The Diffusion Classifier's in-distribution rows, from its stored per-trial tables alone; also returns the
    tables, the split, what was fitted (the temperature and the timestep weights) and each method's logits and
    temperature ({method: (logits (N, K), temperature)}, every test image). ``seed``: of the bootstrap intervals."""
    tables = ErrorTables.load(results / f"{dataset}_test")
    fit, ev = C.calibration_split(tables.ids)
    errors, labels = tables.errors.astype(np.float64), tables.labels
    abar = linear_alphas_cumprod().double().numpy()
    mean_error = -errors.mean(axis=2)  # the mean-error softmax: exp(-mean error), Eq. 7 over pixels averaged, not summed
    elbo = C.elbo_logits(errors, tables.timesteps, abar, N_ELEMENTS)
    t_mean_error = C.fit_temperature(mean_error[fit], labels[fit])
    features = C.timestep_features(errors, tables.timesteps, len(abar), n_bins)
    weights = C.fit_timestep_weights(features[fit], labels[fit])
    learned = -features @ weights
    posteriors = {MEAN_ERROR_SOFTMAX: (mean_error, 1.0), "fitted temperature": (mean_error, t_mean_error),
                  "ELBO scale (no fitting)": (elbo, 1.0), f"learned weights over {n_bins} timestep bins": (learned, 1.0)}
    rows = [_rows(dataset, "test", "Diffusion Classifier", method, z[ev], labels[ev], t, seed=seed)
            for method, (z, t) in posteriors.items()]
    return rows, tables, (fit, ev), t_mean_error, weights, posteriors


def evaluate(dataset: str, *, results: Path = RESULTS_DIR / "lab", n_bins: int = 10) -> dict:
    """All rows for one lab dataset (see the module docstring), with what was fitted."""
    rows, tables, (fit, ev), t_mean_error, weights, _ = diffusion_rows(dataset, results=results, n_bins=n_bins)
    labels = tables.labels
    test_images = load_lab_dataset(dataset, test_only=True).test_images[tables.ids]
    shifted = shifted_sets(dataset, len(tables.ids))
    committed = json.loads((results / f"{dataset}_summary.json").read_text())["baselines"]
    temps, agreement = {}, {}
    for arch in BASELINES:
        model = load_lab_classifier(f"{dataset}_{arch}")
        z = baseline_logits(model, test_images)
        temps[arch] = C.fit_temperature(z[fit], labels[fit])
        rows += [_rows(dataset, "test", arch, "raw softmax", z[ev], labels[ev]),
                 _rows(dataset, "test", arch, "fitted temperature", z[ev], labels[ev], temps[arch])]
        for name, (sx, sy) in shifted.items():
            zs = baseline_logits(model, sx)
            # the regenerated set is the one the committed evaluation scored: same accuracy on all its images
            agreement[f"{arch}/{name}"] = [float((zs.argmax(1) == sy).mean()),
                                           committed[f"{dataset}_{arch}"][name]["accuracy"]]
            odd = np.arange(len(sy)) % 2 == 1
            rows += [_rows(dataset, name, arch, "raw softmax", zs[odd], sy[odd]),
                     _rows(dataset, name, arch, "fitted temperature", zs[odd], sy[odd], temps[arch])]
    for name, (_, sy) in shifted.items():
        recs = {r["id"]: r for r in load_records(results / f"{dataset}_{name}") if "mean_errors" in r}
        ids = [i for i in sorted(recs) if i % 2 == 1]
        z = -np.array([recs[i]["mean_errors"] for i in ids])
        y = np.array([sy[i] for i in ids])
        assert all(recs[i]["label"] == int(sy[i]) for i in ids), f"{name}: the regenerated set is not the run's"
        rows += [_rows(dataset, name, "Diffusion Classifier", MEAN_ERROR_SOFTMAX, z, y),
                 _rows(dataset, name, "Diffusion Classifier", "fitted temperature", z, y, t_mean_error)]
    return {"dataset": dataset, "fit": "test images with even ids (of the first 1,000)",
            "evaluate": "odd ids; shifted sets: odd ids", "diffusion_temperature": t_mean_error,
            "baseline_temperatures": temps, "timestep_bins": n_bins, "timestep_weights": weights.tolist(),
            "n_elements": N_ELEMENTS, "baseline_accuracy_here_vs_committed": agreement, "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description="Calibration of the lab models (Diffusion Classifier and baselines).")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--bins", type=int, default=10, help="timestep bins of the learned weighting")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = evaluate(a.dataset, n_bins=a.bins)
    result["command"] = "python -m dcanalysis.lab.calibration_eval " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}.json").write_text(json.dumps(result, indent=1))
    for r in result["rows"]:
        if r["set"] == "test" or r["method"] != "raw softmax":
            print(f"{r['set']:18s} {r['model']:20s} {r['method'][:34]:34s} acc {100 * r['accuracy']:5.1f}% "
                  f"NLL {r['nll']:.3f} ECE {100 * r['ece_width']:5.1f}% AURC {r['aurc']:.4f}")


if __name__ == "__main__":
    main()
