"""Evaluation schedules: how many trials each candidate gets before the weakest are dropped (Algorithm 2).

A schedule is a tuple of stages. Stage k runs the surviving candidates up to ``trials`` total trials (a
prefix of one shared noise plan, so later stages *extend* earlier ones and no evaluation is thrown away),
then keeps the ``keep`` candidates with the lowest mean error. Exhaustive evaluation (Algorithm 1) is the
one-stage schedule.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """Run survivors up to ``trials`` trials in total, then keep the best ``keep`` of them."""

    trials: int
    keep: int


@dataclass(frozen=True)
class Schedule:
    stages: tuple[Stage, ...]

    def __post_init__(self):
        if not self.stages:
            raise ValueError("a schedule needs at least one stage.")
        prev_t, prev_k = 0, None
        for s in self.stages:
            if s.trials <= prev_t:
                raise ValueError(f"stage trials must increase strictly; got {[s.trials for s in self.stages]}.")
            if s.keep < 1 or (prev_k is not None and s.keep > prev_k):
                raise ValueError(f"stage keep counts must be >= 1 and non-increasing; got {[s.keep for s in self.stages]}.")
            prev_t, prev_k = s.trials, s.keep

    @property
    def total_trials(self) -> int:
        return self.stages[-1].trials

    def evaluations(self, n_candidates: int) -> int:
        """Network evaluations for one image with ``n_candidates`` candidates.

        The paper's Pets schedule: 37 x 25 + 5 x 225 = 2,050.
        """
        total, alive, done = 0, n_candidates, 0
        for s in self.stages:
            total += alive * (s.trials - done)
            alive, done = min(alive, s.keep), s.trials
        return total

    @classmethod
    def exhaustive(cls, trials: int) -> "Schedule":
        return cls((Stage(trials, 1),))

    @classmethod
    def from_lists(cls, trials: list[int] | tuple[int, ...], keep: list[int] | tuple[int, ...]) -> "Schedule":
        """``Schedule.from_lists((25, 250), (5, 1))`` is the paper's Pets schedule."""
        if len(trials) != len(keep):
            raise ValueError(f"trials and keep need the same length; got {len(trials)} and {len(keep)}.")
        return cls(tuple(Stage(int(t), int(k)) for t, k in zip(trials, keep)))


# Paper, Sec. 3.4 and App. B: 25 trials for every class, keep the best 5, then 225 more for those.
PAPER_PETS = Schedule.from_lists((25, 250), (5, 1))

SCHEDULES: dict[str, Schedule] = {
    "paper_pets": PAPER_PETS,
    "exhaustive_100": Schedule.exhaustive(100),
    "exhaustive_250": Schedule.exhaustive(250),
}


def get_schedule(name: str) -> Schedule:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}.") from None
