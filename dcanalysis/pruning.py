"""Which candidates get more trials: the one pruning loop, live and replayed (paper Algorithms 1 and 2).

``prune`` walks a policy (a staged ``Schedule`` or a ``SequentialTest``) over an error table (B images, K
candidates, N trials). Before each step it asks ``fill(alive, lo, hi)`` for the errors of trials ``lo:hi`` of
the candidates still alive (a (B, K) mask), then drops candidates by looking only at those errors. The live classifier's
``fill`` runs the network; an offline replay on a stored exhaustive table passes ``None`` (the numbers are
already there) and, because every candidate of an image shares one noise plan, gets exactly the decisions the
live run would have made.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch

from .schedules import Schedule
from .sequential import SequentialTest, survivors

Policy = Union[Schedule, SequentialTest]
# fill(alive, lo, hi): make errors[b, k, lo:hi] available wherever alive[b, k] (a (B, K) bool tensor) is True
Fill = Callable[[torch.Tensor, int, int], None]
# keep(errors (b, K, hi), alive (b, K) bool) -> the survivors, a (b, K) bool tensor within ``alive``
Keep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
    """Run ``policy`` on ``errors`` (B, K, N); see the module docstring. Returns the decisions.

    Every step decides for all images at once (tensor operations over (B, K, trials)): a run of a thousand
    images in fifty rounds would otherwise spend more time in per-image Python than in the network.
    """
    B, K, N = errors.shape
    if policy.total_trials > N:
        raise ValueError(f"the policy needs {policy.total_trials} trials; the table holds {N}.")
    alive = torch.ones(B, K, dtype=torch.bool)
    reached = torch.zeros(B, K, dtype=torch.long)
    trials = torch.zeros(B, K, dtype=torch.long)
    stops = stops_early(policy)
    for step, (lo, hi, keep) in enumerate(policy_steps(policy), start=1):
        active = alive & (alive.sum(dim=1, keepdim=True) >= 2) if stops and step > 1 else alive
        images = active.any(dim=1)
        if not images.any():
            break
        if fill is not None:
            fill(active, lo, hi)
        trials[active] = hi
        survivors = keep(errors[images, :, :hi], active[images])
        alive[images] = survivors
        reached[images] = torch.where(survivors, step, reached[images])
    return Pruned(reached.tolist(), trials.tolist())


def _masked_means(sub: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """(b, K) mean error over the trials of ``sub`` (b, K, n); +inf for candidates not alive (their NaNs)."""
    return torch.where(alive, sub.double().mean(dim=2), torch.inf)


def stops_early(policy: Policy) -> bool:
    """Whether an image stops getting trials once one candidate is left: the sequential test does; a staged
    schedule runs its stages whatever they keep (``Schedule.evaluations`` counts them)."""
    return isinstance(policy, SequentialTest)


def policy_steps(policy: Policy) -> list[tuple[int, int, Keep]]:
    """(lo, hi, keep) per step: run trials lo:hi, then ``keep`` (see ``Keep``) picks the survivors. The one rule
    both ``prune`` (every image in lockstep) and ``engine.refill`` (each image at its own pace) apply."""
    return list(_step_rules(policy))


def keep_each(policy: Policy, steps: list[tuple[int, int, Keep]], errors: torch.Tensor, alive: torch.Tensor,
              rounds: torch.Tensor, round_hi: torch.Tensor | None = None) -> torch.Tensor:
    """The survivors (B, K) of images that each finished a round of their own: ``rounds`` (B,) 0-based indices into
    ``steps`` (``policy_steps(policy)``), errors (B, K, N) holding every image's trials up to its round's end, alive
    (B, K) the candidates that round ran. The decisions of ``steps[j]``'s keep, image by image. A sequential test
    decides all images in one set of tensor operations (its statistics are running sums: the same numbers whatever
    round an image is at); a staged schedule decides one round at a time. ``round_hi``: each step's ``hi`` as a
    tensor, where the caller holds it (else built from ``steps``)."""
    if isinstance(policy, SequentialTest):
        hi = torch.tensor([hi for _, hi, _ in steps]) if round_hi is None else round_hi
        return _sequential_keep(policy, errors, alive, hi[rounds])
    out = alive.clone()
    for j in torch.unique(rounds).tolist():
        g = rounds == j
        _, hi, keep = steps[j]
        out[g] = keep(errors[g, :, :hi], alive[g])
    return out


def _sequential_keep(test: SequentialTest, errors: torch.Tensor, alive: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The sequential test's step for images at n (B,) trials each: ``sequential.survivors``, except that before
    ``min_trials`` nobody is dropped."""
    return torch.where((n < test.min_trials).unsqueeze(1), alive, survivors(errors, alive, n, test.confidence))


def _step_rules(policy: Policy):
    if isinstance(policy, Schedule):
        done = 0
        for stage in policy.stages:
            def keep(sub, alive, n=stage.keep):
                # the n lowest means; ties go to the lower candidate index (a stable sort)
                order = torch.argsort(_masked_means(sub, alive), dim=1, stable=True)[:, :n]
                return torch.zeros_like(alive).scatter_(1, order, True) & alive
            yield done, stage.trials, keep
            done = stage.trials
        return
    test: SequentialTest = policy
    done = 0
    while done < test.max_trials:
        hi = min(done + test.step, test.max_trials)

        def keep(sub, alive, hi=hi):
            return _sequential_keep(test, sub, alive, torch.full((len(sub),), hi))
        yield done, hi, keep
        done = hi


def ranking(mean_errors: torch.Tensor, reached: list[int]) -> list[int]:
    """Candidate indices, best first: survivors by their mean error, then the others in the reverse order of
    being dropped. mean_errors (K,) over the trials each received."""
    means = mean_errors.tolist()  # one conversion, not one per comparison key
    return sorted(range(len(reached)), key=lambda k: (-reached[k], means[k]))


def received(errors: torch.Tensor, trials: list[int]) -> torch.Tensor:
    """errors (K, N) with NaN wherever candidate k received no trial (n >= trials[k]): what a live run holds.
    ``torch.nanmean(received(...), dim=1)`` is each candidate's mean over its own trials."""
    out = errors.double().clone()
    for k, n in enumerate(trials):
        out[k, n:] = float("nan")
    return out
