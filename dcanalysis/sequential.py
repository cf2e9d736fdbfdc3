"""A sequential paired test: stop spending evaluations on a candidate once it is confidently worse.

The paper's adaptive schedule prunes at fixed trial counts, whatever the evidence. Here every round adds
``step`` shared trials for the surviving candidates, and a candidate is dropped as soon as the paired
difference to the current leader is significantly positive:

    mean(err_c - err_leader) - z * sd(err_c - err_leader) / sqrt(n) > 0,   z = Phi^-1(confidence).

Because the difference is paired (same t and eps for both), its standard deviation is small and easy
classes are dropped after a few rounds, while close calls get the full budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats


@dataclass(frozen=True)
class SequentialTest:
    """Rounds of ``step`` trials; prune from ``min_trials`` on; never exceed ``max_trials``."""

    step: int = 10
    min_trials: int = 20
    max_trials: int = 250
    confidence: float = 0.99

    def __post_init__(self):
        if self.step < 1 or self.min_trials < 2 or self.max_trials < self.min_trials:
            raise ValueError(
                f"need step >= 1, min_trials >= 2 and max_trials >= min_trials; got {self}."
            )
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}.")

    @property
    def total_trials(self) -> int:
        return self.max_trials


def confidently_worse(errors: torch.Tensor, leader: int, confidence: float) -> torch.Tensor:
    """Which rows are significantly worse than the leader on the shared trials.

    errors : Tensor (K, n), every row evaluated on the same n trials.
    Returns a bool tensor (K,); the leader's own entry is False.
    """
    n = errors.shape[1]
    d = errors.double() - errors[leader].double()
    mean = d.mean(dim=1)
    se = d.std(dim=1, unbiased=True) / math.sqrt(n)
    z = stats.norm.ppf(confidence)
    worse = (mean - z * se) > 0
    worse[leader] = False
    return worse
