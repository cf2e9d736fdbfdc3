"""Noise plans: the shared (t, eps) samples every candidate is scored on.

Pairing is the heart of the method (paper Sec. 3.3): every candidate condition sees the *same* x_t, so the
noise that makes one trial hard makes it hard for all, and it cancels in the difference between candidates.
A plan is a pure function of ``(seed, image_index)``, so a run is reproducible, a crashed run resumes with
identical noise, and an "unpaired" experiment is just a different plan per candidate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from functools import lru_cache

from .timesteps import get_strategy, is_deterministic


def derive_generator(seed: int, *streams: int) -> torch.Generator:
    """A CPU generator for one named stream of a run: ``derive_generator(seed, image_index)``.

    numpy's SeedSequence mixes the integers so that neighbouring (seed, index) pairs give unrelated streams,
    which ``seed + index`` would not. Library code never touches the global RNG.
    """
    if seed < 0 or any(s < 0 for s in streams):
        raise ValueError(f"seeds and stream indices must be non-negative, got seed={seed}, streams={streams}.")
    state = np.random.SeedSequence([int(seed), *map(int, streams)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass(frozen=True)
class NoisePlan:
    """Timesteps and noise for N trials.

    Attributes
    ----------
    timesteps : LongTensor (N,)
        0-based indices into ``alphas_cumprod``.
    noise : Tensor (N, *sample_shape)
        Standard Gaussian eps, float32, on the CPU (moved to the device in batches).
    seed, image_index : int
        The stream this plan was drawn from (-1 when built by hand).
    strategy : str
        Name of the timestep strategy.
    """

    timesteps: torch.Tensor
    noise: torch.Tensor
    seed: int = -1
    image_index: int = -1
    strategy: str = "custom"

    def __post_init__(self):
        if self.timesteps.ndim != 1 or self.noise.shape[0] != self.timesteps.shape[0]:
            raise ValueError(
                f"a noise plan needs timesteps (N,) and noise (N, ...); got {tuple(self.timesteps.shape)} "
                f"and {tuple(self.noise.shape)}."
            )

    def __len__(self) -> int:
        return self.timesteps.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.noise.shape[1:])

    def save(self, path: str | Path) -> None:
        torch.save(
            {"timesteps": self.timesteps, "noise": self.noise, "seed": self.seed,
             "image_index": self.image_index, "strategy": self.strategy},
            Path(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> "NoisePlan":
        d = torch.load(Path(path), weights_only=True)
        return cls(d["timesteps"], d["noise"], d["seed"], d["image_index"], d["strategy"])


def make_noise_plan(
    n_trials: int,
    sample_shape: tuple[int, ...],
    *,
    seed: int,
    image_index: int = 0,
    strategy: str = "even",
    num_timesteps: int = 1000,
) -> NoisePlan:
    """Draw the (t, eps) plan for one image.

    Two derived streams keep t and eps independent of each other: changing the strategy leaves the noise of
    every trial unchanged, so strategies are compared on identical eps (a paired comparison of strategies).
    """
    timesteps = plan_timesteps(n_trials, seed=seed, image_index=image_index, strategy=strategy,
                               num_timesteps=num_timesteps)
    eps_gen = derive_generator(seed, image_index, 1)
    noise = torch.randn((n_trials, *sample_shape), generator=eps_gen, dtype=torch.float32)
    return NoisePlan(timesteps, noise, seed, image_index, strategy)


def plan_timesteps(n_trials: int, *, seed: int, image_index: int = 0, strategy: str = "even",
                   num_timesteps: int = 1000) -> torch.Tensor:
    """The timesteps of ``make_noise_plan`` alone (LongTensor (n_trials,)), without drawing the noise: what a
    stored error table's columns were computed at. A deterministic strategy's (``timesteps.is_deterministic``) are
    the same for every image: computed once per (strategy, n_trials, num_timesteps), where a run drawing a thousand
    plans a second would otherwise spend its host time (issue 41)."""
    if is_deterministic(get_strategy(strategy)):
        return torch.tensor(_deterministic_timesteps(strategy, n_trials, num_timesteps), dtype=torch.long)
    return get_strategy(strategy)(n_trials, num_timesteps=num_timesteps, generator=derive_generator(seed, image_index, 0))


@lru_cache(maxsize=64)
def _deterministic_timesteps(strategy: str, n_trials: int, num_timesteps: int) -> tuple[int, ...]:
    return tuple(get_strategy(strategy)(n_trials, num_timesteps=num_timesteps).tolist())
