"""Estimators of the error difference between two conditions, and their variance (paper Sec. 3.3, Fig. 2).

The classifier only needs the *sign* of ``E[err_a] - E[err_b]``. With paired samples (same t and eps for
both conditions) the estimate is the mean of the per-trial differences, and its variance is
``Var(err_a - err_b) / n = (Var a + Var b - 2 Cov(a, b)) / n``. The covariance is large, because most of the
error comes from how hard (t, eps) is, not from the condition, so pairing removes most of the variance.
Unpaired samples get no such cancellation: ``(Var a + Var b) / n``.

All functions take 1-D tensors of per-trial errors (n,) and return plain floats or small dataclasses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats


@dataclass(frozen=True)
class DifferenceEstimate:
    """Estimate of ``mean(err_a) - mean(err_b)``. ``variance`` is that of the per-trial term, not of the mean."""

    mean: float
    variance: float
    n: int
    paired: bool

    @property
    def std_error(self) -> float:
        return math.sqrt(self.variance / self.n)

    def confidence_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Student-t interval for the mean difference (analytic; see ``bootstrap_interval`` for the other)."""
        q = stats.t.ppf(0.5 + level / 2, df=max(self.n - 1, 1))
        return self.mean - q * self.std_error, self.mean + q * self.std_error


def _check_pair(err_a: torch.Tensor, err_b: torch.Tensor, paired: bool) -> None:
    if err_a.ndim != 1 or err_b.ndim != 1:
        raise ValueError("errors must be 1-D tensors of per-trial errors.")
    if err_a.numel() < 2 or err_b.numel() < 2:
        raise ValueError("at least 2 trials per condition are needed to estimate a variance.")
    if paired and err_a.shape != err_b.shape:
        raise ValueError(f"paired errors need equal lengths, got {err_a.numel()} and {err_b.numel()}.")


def paired_difference(err_a: torch.Tensor, err_b: torch.Tensor) -> DifferenceEstimate:
    """Errors of two conditions on the *same* (t, eps) trials: the mean of per-trial differences."""
    _check_pair(err_a, err_b, paired=True)
    d = err_a.double() - err_b.double()
    return DifferenceEstimate(d.mean().item(), d.var(unbiased=True).item(), d.numel(), True)


def unpaired_difference(err_a: torch.Tensor, err_b: torch.Tensor) -> DifferenceEstimate:
    """Errors of two conditions on *independent* trials: difference of means.

    ``variance`` is expressed per trial (``Var a + Var b``), so ``std_error`` is comparable with the paired one
    at equal n.
    """
    _check_pair(err_a, err_b, paired=False)
    a, b = err_a.double(), err_b.double()
    n = min(a.numel(), b.numel())
    var = a.var(unbiased=True).item() * n / a.numel() + b.var(unbiased=True).item() * n / b.numel()
    return DifferenceEstimate(a.mean().item() - b.mean().item(), var, n, False)


def difference_estimate(err_a: torch.Tensor, err_b: torch.Tensor, *, paired: bool) -> DifferenceEstimate:
    return paired_difference(err_a, err_b) if paired else unpaired_difference(err_a, err_b)


def bootstrap_interval(
    err_a: torch.Tensor,
    err_b: torch.Tensor,
    *,
    paired: bool,
    generator: torch.Generator,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean difference; resamples trials (jointly when paired)."""
    _check_pair(err_a, err_b, paired)
    a, b = err_a.double(), err_b.double()
    ia = torch.randint(0, a.numel(), (n_resamples, a.numel()), generator=generator)
    ib = ia if paired else torch.randint(0, b.numel(), (n_resamples, b.numel()), generator=generator)
    diffs = a[ia].mean(1) - b[ib].mean(1)
    lo, hi = torch.quantile(diffs, torch.tensor([0.5 - level / 2, 0.5 + level / 2], dtype=torch.float64))
    return lo.item(), hi.item()


def trials_needed(estimate: DifferenceEstimate, *, confidence: float = 0.95) -> int:
    """Trials for a one-sided test to tell the sign of the difference at ``confidence``.

    Solves ``z * sqrt(variance / n) = |mean|`` for n, a normal approximation: the number of trials at which
    the difference is ``z`` standard errors from zero. Returns a very large number when the mean is ~0.
    """
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}.")
    z = stats.norm.ppf(confidence)
    if abs(estimate.mean) < 1e-300:
        return 2**62
    return max(1, math.ceil(z**2 * estimate.variance / estimate.mean**2))


def variance_reduction(err_a: torch.Tensor, err_b: torch.Tensor) -> float:
    """How many times fewer trials pairing needs: unpaired per-trial variance over paired, on the same data."""
    return unpaired_difference(err_a, err_b).variance / max(paired_difference(err_a, err_b).variance, 1e-300)


def accuracy_interval(correct: int, total: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy ``correct / total``; sensible at 0 % and 100 % too."""
    if total <= 0:
        raise ValueError("accuracy needs at least one image.")
    z = stats.norm.ppf(0.5 + level / 2)
    p = correct / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    # the interval holds p itself: at 0 % or 100 % rounding could otherwise leave p a hair outside it
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def interval_order(ours: tuple[float, float], theirs: tuple[float, float]) -> str:
    """"above" where the interval ``ours`` (lo, hi) lies wholly above ``theirs``, "below" where wholly below,
    "overlap" otherwise: the verdict a book can print on a claim that one accuracy is higher (two separate
    95 % intervals that do not overlap differ at well under the 5 % level; overlapping ones decide nothing)."""
    if ours[0] > theirs[1]:
        return "above"
    if ours[1] < theirs[0]:
        return "below"
    return "overlap"
