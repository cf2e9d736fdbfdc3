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
from functools import lru_cache

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


def confidently_worse(errors: torch.Tensor, leader: int | torch.Tensor, confidence: float) -> torch.Tensor:
    """Which rows are significantly worse than the leader on the shared trials.

    errors : Tensor (K, n) or a batch (B, K, n), every row of one image evaluated on the same n trials;
    leader : the leader's row, an int or LongTensor (B,). Returns a bool tensor (K,) or (B, K); the leader's own
    entry is False. Rows holding NaN (candidates already dropped) compare as not worse.
    """
    batched = errors.ndim == 3
    e = errors.double() if batched else errors.double().unsqueeze(0)
    lead = torch.as_tensor(leader, dtype=torch.long).reshape(-1).expand(e.shape[0])
    rows = torch.arange(e.shape[0])
    d = e - e[rows, lead].unsqueeze(1)
    n = e.shape[2]
    mean = d.mean(dim=2)
    se = d.std(dim=2, unbiased=True) / math.sqrt(n)
    z = _z(confidence)
    worse = (mean - z * se) > 0
    worse[rows, lead] = False
    return worse if batched else worse[0]


@lru_cache(maxsize=None)
def _z(confidence: float) -> float:
    """Phi^-1(confidence), once per confidence: the test asks for it every round (a run of many images: thousands)."""
    return float(stats.norm.ppf(confidence))
