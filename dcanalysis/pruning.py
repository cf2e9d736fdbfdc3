"""Which candidates get more trials: the one pruning loop, live and replayed (paper Algorithms 1 and 2).

``prune`` walks a policy (a staged ``Schedule`` or a ``SequentialTest``) over an error table (B images, K
candidates, N trials). Before each step it asks ``fill(alive, lo, hi)`` for the errors of trials ``lo:hi`` of
the candidates still alive, then drops candidates by looking only at those errors. The live classifier's
``fill`` runs the network; an offline replay on a stored exhaustive table passes ``None`` (the numbers are
already there) and, because every candidate of an image shares one noise plan, gets exactly the decisions the
live run would have made.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch

from .schedules import Schedule
from .sequential import SequentialTest, confidently_worse

Policy = Union[Schedule, SequentialTest]
# fill(alive, lo, hi): make errors[b, k, lo:hi] available for every image b and each k in alive[b]
Fill = Callable[[list[list[int]], int, int], None]


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` decided, per image b and candidate k (each a list of B lists of K ints).

    reached : the last step (stage or round, 1-based) candidate k was still alive after; 0 if dropped at the first.
    trials : how many trials it received (its errors are ``errors[b, k, :trials]``).
    """

    reached: list[list[int]]
    trials: list[list[int]]

    def evaluations(self, b: int) -> int:
        return sum(self.trials[b])


def prune(policy: Policy, errors: torch.Tensor, fill: Fill | None = None) -> Pruned:
    """Run ``policy`` on ``errors`` (B, K, N); see the module docstring. Returns the decisions."""
    B, K, N = errors.shape
    if policy.total_trials > N:
        raise ValueError(f"the policy needs {policy.total_trials} trials; the table holds {N}.")
    alive = [list(range(K)) for _ in range(B)]
    reached = [[0] * K for _ in range(B)]
    trials = [[0] * K for _ in range(B)]
    # the sequential test stops spending on an image once one candidate is left; a staged schedule runs its
    # stages whatever they keep (``Schedule.evaluations`` counts them)
    stops = isinstance(policy, SequentialTest)
    for step, (lo, hi, keep) in enumerate(_steps(policy), start=1):
        active = [[] if stops and step > 1 and len(a) < 2 else a for a in alive]
        if not any(active):
            break
        if fill is not None:
            fill(active, lo, hi)
        for b, cands in enumerate(active):
            if not cands:
                continue
            for k in cands:
                trials[b][k] = hi
            alive[b] = keep(errors[b, cands, :hi], cands)
            for k in alive[b]:
                reached[b][k] = step
    return Pruned(reached, trials)


def _steps(policy: Policy):
    """(lo, hi, keep) per step: run trials lo:hi, then ``keep(errors (k, hi), candidates) -> survivors``."""
    if isinstance(policy, Schedule):
        done = 0
        for stage in policy.stages:
            def keep(sub, cands, n=stage.keep):
                order = torch.argsort(sub.mean(dim=1), stable=True)
                return [cands[i] for i in order[:n].tolist()]
            yield done, stage.trials, keep
            done = stage.trials
        return
    test: SequentialTest = policy
    done = 0
    while done < test.max_trials:
        hi = min(done + test.step, test.max_trials)

        def keep(sub, cands, hi=hi):
            if hi < test.min_trials:
                return cands
            leader = int(torch.argmin(sub.mean(dim=1)))
            worse = confidently_worse(sub, leader, test.confidence)
            return [k for k, w in zip(cands, worse.tolist()) if not w]
        yield done, hi, keep
        done = hi


def ranking(mean_errors: torch.Tensor, reached: list[int]) -> list[int]:
    """Candidate indices, best first: survivors by their mean error, then the others in the reverse order of
    being dropped. mean_errors (K,) over the trials each received."""
    return sorted(range(len(reached)), key=lambda k: (-reached[k], mean_errors[k].item()))


def received(errors: torch.Tensor, trials: list[int]) -> torch.Tensor:
    """errors (K, N) with NaN wherever candidate k received no trial (n >= trials[k]): what a live run holds.
    ``torch.nanmean(received(...), dim=1)`` is each candidate's mean over its own trials."""
    out = errors.double().clone()
    for k, n in enumerate(trials):
        out[k, n:] = float("nan")
    return out
