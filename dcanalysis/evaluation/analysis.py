"""Analyses over error tables: compute once on the GPU, analyse many times on a CPU (paper Figs. 3-5).

An error table is ``errors`` (N images, K candidates, T trials) with the timestep of each trial in
``timesteps`` (T,). Because every candidate of an image shares one noise plan, any schedule, any trial budget
and any single timestep can be *replayed* from a full exhaustive table exactly as if it had been run: the
replay reads the same numbers the live classifier would have computed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from ..pruning import Policy, prune, ranking, received


@dataclass(frozen=True)
class ErrorTables:
    """Errors (N, K, T) float32, labels (N,), timesteps (T,) (or (N, T) when each image drew its own, as the
    ``uniform`` strategy does), image ids (N,)."""

    errors: np.ndarray
    labels: np.ndarray
    timesteps: np.ndarray
    ids: np.ndarray

    @classmethod
    def load(cls, run_dir: str | Path) -> "ErrorTables":
        with np.load(Path(run_dir) / "tables.npz") as z:
            return cls(z["errors"].astype(np.float32), z["labels"], z["timesteps"], z["ids"])

    def head(self, n: int) -> "ErrorTables":
        ts = self.timesteps[:n] if self.timesteps.ndim == 2 else self.timesteps
        return ErrorTables(self.errors[:n], self.labels[:n], ts, self.ids[:n])

    def shared_timesteps(self) -> np.ndarray:
        """(T,) timesteps that every image's trials share; a clear error where the tables cannot give them."""
        if self.timesteps.size == 0:
            raise ValueError("these tables record no timesteps (packed from a run whose manifest lacked them); "
                             "repack them with `dcanalysis tables RUN_DIR` from a run of this version.")
        if self.timesteps.ndim == 2:
            raise ValueError("each image drew its own timesteps (a random strategy such as 'uniform'), so no "
                             "trial index means one timestep; analyse a run made with a deterministic strategy "
                             "('even', 'middle', 'logit_normal', fixed sets).")
        if self.timesteps.shape[0] != self.errors.shape[2]:
            raise ValueError(f"the tables hold {self.errors.shape[2]} trials but {self.timesteps.shape[0]} timesteps.")
        return self.timesteps


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean())


def correct_vs_trials(tables: ErrorTables, n_trials: list[int]) -> np.ndarray:
    """Whether each image is classified correctly from the first n trials of its plan: bool (N, len(n_trials))."""
    return np.stack([tables.errors[:, :, :n].mean(axis=2).argmin(axis=1) == tables.labels for n in n_trials], axis=1)


def accuracy_vs_trials(tables: ErrorTables, n_trials: list[int]) -> np.ndarray:
    """Accuracy of exhaustive classification with the first n trials of the plan, for each n. Returns (len,)."""
    return correct_vs_trials(tables, n_trials).mean(axis=0)


def bootstrap_accuracy_band(tables: ErrorTables, n_trials: list[int], *, n_boot: int = 200, seed: int = 0,
                            level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile band of ``accuracy_vs_trials`` over images resampled with replacement: (lo, hi), each (len,)."""
    rng = np.random.default_rng(seed)
    correct = correct_vs_trials(tables, n_trials)
    idx = rng.integers(0, len(correct), size=(n_boot, len(correct)))
    accs = correct[idx].mean(axis=1)  # (n_boot, len)
    q = (1 - level) / 2
    return np.quantile(accs, q, axis=0), np.quantile(accs, 1 - q, axis=0)


def single_timestep_accuracy(tables: ErrorTables) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy when classes are compared on one trial only, for each distinct t (paper Fig. 3).

    Returns (t values (U,), accuracy (U,)); trials that share a t are each scored alone and averaged.
    """
    steps = tables.shared_timesteps()
    ts = np.unique(steps)
    accs = []
    for t in ts:
        cols = np.nonzero(steps == t)[0]
        accs.append(np.mean([accuracy(tables.errors[:, :, c].argmin(1), tables.labels) for c in cols]))
    return ts, np.array(accs)


def replay(tables: ErrorTables, policy: Policy) -> tuple[float, float]:
    """Accuracy and mean evaluations per image of a pruning policy (a staged ``Schedule``, paper Algorithm 2, or
    a ``SequentialTest``) replayed from full tables: the live classifier's own loop (``pruning.prune``) on the
    stored numbers."""
    errors = torch.from_numpy(np.ascontiguousarray(tables.errors, dtype=np.float64))
    decided = prune(policy, errors)
    preds = np.array([ranking(torch.nanmean(received(errors[i], decided.trials[i]), dim=1), decided.reached[i])[0]
                      for i in range(len(errors))])
    evals = np.mean([decided.evaluations(i) for i in range(len(errors))])
    return accuracy(preds, tables.labels), float(evals)


def effective_robustness(id_accuracy, shifted_accuracy, baselines, *, clip: float = 0.5) -> "pandas.Series":  # noqa: F821
    """Effective robustness (Taori et al. 2020) in percentage points: each model's accuracy under a shift minus
    what the ``baselines``' trend predicts from its in-distribution accuracy.

    id_accuracy, shifted_accuracy : pandas Series of accuracies in %, indexed by model. The trend is a least-
    squares line of logit(shifted) on logit(in-distribution) over the baselines; accuracies are clipped to
    [clip, 100 - clip] % first, since a logit of 0 % is infinite (ImageNet-A has such baselines).
    """
    import pandas as pd

    def logit(p):
        q = np.clip(np.asarray(p, float), clip, 100 - clip) / 100
        return np.log(q / (1 - q))

    x, y = logit(id_accuracy), logit(shifted_accuracy)
    base = np.asarray([m in set(baselines) for m in id_accuracy.index])
    if base.sum() < 2:
        raise ValueError("the trend needs at least two baseline models.")
    slope, intercept = np.polyfit(x[base], y[base], 1)
    predicted = 100 / (1 + np.exp(-(slope * x + intercept)))
    return pd.Series(np.asarray(shifted_accuracy, float) - predicted, index=id_accuracy.index)


def load_summary(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


ARCH_NAMES = {"cnn": "CNN", "resnet": "ResNet", "vit": "ViT"}


# test sets the book names by hand: the lab datasets and the foreign digits
SET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "sklearn_digits": "scikit-learn digits"}


def shift_name(set_name: str, sep: str = " ") -> str:
    """How the book names a test set of a lab summary: "gaussian_noise_s3" -> "gaussian noise (severity 3)"
    (``sep`` between the words, e.g. a newline for a tick label), "fashion_mnist" -> "Fashion-MNIST"; other names
    with their underscores as spaces."""
    if set_name in SET_NAMES:
        return SET_NAMES[set_name]
    base, _, severity = set_name.rpartition("_s")
    if base and severity.isdigit():
        return base.replace("_", sep) + f"{sep}(severity {severity})"
    return set_name.replace("_", sep)


def robustness_table(summary: dict) -> list[dict]:
    """Rows (model, set, accuracy, ci) for every model of a lab evaluation summary, diffusion first."""
    rows = []
    for set_name, r in summary["diffusion"].items():
        if set_name.startswith("strategy_") or set_name == "far_ood":  # far OOD has no labels to be accurate on
            continue
        rows.append({"model": "Diffusion Classifier", "set": set_name, "n": r["n"], "accuracy": r["accuracy"],
                     "ci_lo": r["ci95"][0], "ci_hi": r["ci95"][1]})
    for model, sets in summary["baselines"].items():
        for set_name, r in sets.items():
            rows.append({"model": ARCH_NAMES.get(model.split("_")[-1], model),
                         "set": set_name, "n": r["n"], "accuracy": r["accuracy"], "ci_lo": r["ci95"][0],
                         "ci_hi": r["ci95"][1]})
    return rows



def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling out-of-distribution inputs apart, higher score = more OOD.

    The Mann-Whitney form: the probability that a random OOD input scores above a random in-distribution one
    (ties count half). 0.5 is chance.
    """
    a, b = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if a.size == 0 or b.size == 0:
        raise ValueError("AUROC needs at least one in-distribution and one out-of-distribution score.")
    ranks = stats.rankdata(np.concatenate([a, b]))
    return float((ranks[a.size:].sum() - b.size * (b.size + 1) / 2) / (a.size * b.size))


def diffusion_ood_score(records: list[dict]) -> np.ndarray:
    """Per image: the lowest mean denoising error over the classes (how well the best class explains the image).

    Higher = less like anything the model was trained on. (N,) from run records.
    """
    return np.array([min(r["mean_errors"]) for r in records if "mean_errors" in r])
