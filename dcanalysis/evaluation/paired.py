"""Two classifiers on the same images: where is one right and the other wrong (McNemar's exact test).

Two accuracies measured on the same images are not independent, so their Wilson intervals overlapping says little
about which is better. Only the images on which the two disagree in correctness carry that information: if the
two were equally good, each such image would be one of A's or one of B's with probability 1/2 (McNemar, 1947; the
exact form is a binomial test on the discordant images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class PairedAccuracy:
    """n images; each classifier's accuracy (fractions); only_a / only_b: images that only A / only B gets right;
    p_value: two-sided exact McNemar test of equal accuracy (1.0 when there are no discordant images)."""

    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int
    only_b: int
    p_value: float

    @property
    def difference(self) -> float:
        """accuracy_a - accuracy_b (a fraction)."""
        return self.accuracy_a - self.accuracy_b


def compare_predictions(pred_a: np.ndarray, pred_b: np.ndarray, labels: np.ndarray) -> PairedAccuracy:
    """Predictions of A and B (N,) on the same images with their labels (N,)."""
    pred_a, pred_b, labels = (np.asarray(v) for v in (pred_a, pred_b, labels))
    if not pred_a.shape == pred_b.shape == labels.shape or pred_a.ndim != 1:
        raise ValueError(f"need predictions and labels of one shape (N,), got {pred_a.shape}, {pred_b.shape} and "
                         f"{labels.shape}.")
    right_a, right_b = pred_a == labels, pred_b == labels
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return PairedAccuracy(len(labels), float(right_a.mean()), float(right_b.mean()), only_a, only_b, float(p))


def aligned_predictions(records_a: Sequence[dict], records_b: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred_a, pred_b, labels) over the images both runs finished, matched by id; refused if an image's label or
    content fingerprint differs between the runs (they were not run on the same images)."""
    by_id = {r["id"]: r for r in records_b if "error" not in r}
    rows = []
    for r in records_a:
        other = by_id.get(r["id"])
        if "error" in r or other is None:
            continue
        if r["label"] != other["label"] or r.get("item", {}).get("sha256") != other.get("item", {}).get("sha256"):
            raise ValueError(f"image {r['id']} differs between the two runs (label or content); a paired comparison "
                             "needs the same images in both.")
        rows.append((r["prediction"], other["prediction"], r["label"]))
    if not rows:
        raise ValueError("the two runs have no finished image in common.")
    a, b, y = (np.array(v) for v in zip(*rows))
    return a, b, y
