"""A sequential paired test: stop spending evaluations on a candidate once it is confidently worse.

The paper's adaptive schedule prunes at fixed trial counts, whatever the evidence. Here every round adds
``step`` shared trials for the surviving candidates, and a candidate is dropped as soon as the paired
difference to the current leader is significantly positive:

    mean(err_c - err_leader) - z * sd(err_c - err_leader) / sqrt(n) > 0,   z = Phi^-1(confidence).

Because the difference is paired (same t and eps for both), its standard deviation is small and easy
classes are dropped after a few rounds, while close calls get the full budget.
"""
from __future__ import annotations

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


def confidently_worse(errors: torch.Tensor, leader: int | torch.Tensor, confidence: float,
                      n: torch.Tensor | None = None) -> torch.Tensor:
    """Which rows are significantly worse than the leader on the shared trials (the test of the module docstring).

    errors : Tensor (K, N) or a batch (B, K, N), every row of one image evaluated on the same trials; leader : the
    leader's row, an int or LongTensor (B,); n : LongTensor (B,), how many of the N trials each image has (default
    all N). Returns a bool tensor (K,) or (B, K); the leader's own entry is False. Rows holding NaN (candidates
    already dropped) compare as not worse.
    """
    batched = errors.ndim == 3
    e = errors.double() if batched else errors.double().unsqueeze(0)
    lead = torch.as_tensor(leader, dtype=torch.long).reshape(-1).expand(e.shape[0])
    n = torch.full((e.shape[0],), e.shape[2]) if n is None else n
    rows = torch.arange(e.shape[0])
    d = e - e[rows, lead].unsqueeze(1)
    count = n.double().unsqueeze(1)
    mean = prefix_sums(d, n) / count
    sd = (prefix_sums((d - mean.unsqueeze(2)) ** 2, n) / (count - 1)).sqrt()  # the unbiased estimate
    se = sd / count.sqrt()
    worse = (mean - _z(confidence) * se) > 0
    worse[rows, lead] = False
    return worse if batched else worse[0]


def survivors(errors: torch.Tensor, alive: torch.Tensor, n: torch.Tensor, confidence: float) -> torch.Tensor:
    """One round's decision: the candidates alive (B, K) bool that are not confidently worse than the leader, the
    alive candidate of lowest mean error (the first of equal means) over each image's first n (B,) trials of
    errors (B, K, N)."""
    leader = torch.argmin(torch.where(alive, prefix_means(errors.double(), n), torch.inf), dim=1)
    return alive & ~confidently_worse(errors, leader, confidence, n)


def prefix_means(values: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """(B, K) means of the first n[b] entries (n: LongTensor (B,), >= 1) of each row of values (B, K, N)."""
    return prefix_sums(values, n) / n.double().unsqueeze(1)


def prefix_sums(values: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """(B, K) sums of the first n[b] entries of each row of values (B, K, N): a running sum read at n - 1.

    ``cumsum`` adds left to right, so a row's sum is the same number whatever N is and whichever rows share the
    call (a reduction such as ``sum`` may group its terms by the length it is given). Images decided in lockstep
    (all at one n) and images decided each at its own pace (``engine.refill``: one call for rows at many n) thus
    get the same decisions to the last bit."""
    at = (n - 1).view(-1, 1, 1).expand(values.shape[0], values.shape[1], 1)
    return values.cumsum(dim=2).gather(2, at).squeeze(2)


@lru_cache(maxsize=None)
def _z(confidence: float) -> float:
    """Phi^-1(confidence), once per confidence: the test asks for it every round (a run of many images: thousands)."""
    return float(stats.norm.ppf(confidence))
