"""The official implementation's evaluation loop, re-stated in our own code so that it can be timed beside ours.

Li et al.'s repository (``eval_prob_adaptive.py``, github.com/diffusion-classifier/diffusion-classifier) classifies
one image at a time. What decides its speed, and what this module does the same way:

- a grid of ``M = max(n_samples)`` timesteps, ``range(T // M // 2, T, T // M)[:M]``, one noise draw per grid
  point shared by every prompt (a paired design, drawn in the model's dtype);
- stage s evaluates the grid points ``grid[len(grid) // n_s // 2 :: len(grid) // n_s][:n_s]`` not evaluated
  before, for every remaining prompt, prompt after prompt;
- batches of ``batch_size`` (32) (timestep, prompt) pairs through the eager network in fp16, each batch's errors
  copied to the host before the next batch is built;
- after each stage the ``to_keep`` prompts of lowest mean error over everything evaluated so far survive.

Nothing here is the official code: it is written from that description, checked in ``tests/bench/test_peer.py``
against our classifier on a model with a known answer, and used only to time the peer's way of spending a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

# predict(x_t (b, *shape), t (b,) long, candidate (b,) long) -> eps prediction (b, *shape)
Predict = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def official_grid(num_timesteps: int, n: int) -> list[int]:
    """The n evenly spaced timesteps the official loop evaluates at most: T // n // 2, then every T // n."""
    return list(range(num_timesteps // n // 2, num_timesteps, num_timesteps // n))[:n]


def stage_timesteps(grid: Sequence[int], n: int) -> list[int]:
    """The n grid points a stage of n samples spreads over the grid (a centred sub-grid)."""
    return list(grid[len(grid) // n // 2::len(grid) // n])[:n]


def rows_per_stage(num_timesteps: int, n_candidates: int, n_samples: Sequence[int], to_keep: Sequence[int]) -> list[int]:
    """The (timestep, prompt) pairs each stage sends to the network: a ``batch_size`` of their maximum gives one
    network call per stage, the official loop at its fastest on a GPU with room for it."""
    grid = official_grid(num_timesteps, max(n_samples))
    done: set[int] = set()
    remaining, out = n_candidates, []
    for n, keep in zip(n_samples, to_keep):
        new = [t for t in stage_timesteps(grid, n) if t not in done]
        done |= set(new)
        out.append(remaining * len(new))
        remaining = keep
    return out


@dataclass(frozen=True)
class PeerResult:
    prediction: int  # candidate index
    n_evaluations: int
    mean_errors: dict[int, float]  # candidate -> mean error over the timesteps it was evaluated at


def peer_classify(predict: Predict, x0: torch.Tensor, n_candidates: int, alphas_cumprod: torch.Tensor, *,
                  n_samples: Sequence[int], to_keep: Sequence[int], noise: torch.Tensor,
                  batch_size: int = 32) -> PeerResult:
    """Classify one image the official way (see the module docstring).

    x0 : (*shape), the clean sample on the device in the network's dtype; alphas_cumprod : (T,) on the device;
    noise : (max(n_samples), *shape), one draw per grid point. Returns the surviving candidate and the count of
    network evaluations (``Schedule.from_lists(n_samples, to_keep).evaluations(n_candidates)``).
    """
    if len(n_samples) != len(to_keep) or to_keep[-1] != 1:
        raise ValueError(f"n_samples {list(n_samples)} and to_keep {list(to_keep)} need one entry per stage, "
                         "the last keeping 1.")
    grid = official_grid(alphas_cumprod.numel(), max(n_samples))
    if noise.shape[0] < len(grid):
        raise ValueError(f"noise holds {noise.shape[0]} draws; the grid has {len(grid)} points.")
    abar = alphas_cumprod.to(x0.dtype)
    remaining = list(range(n_candidates))
    done: list[int] = []  # grid indices evaluated, in order
    errors: dict[int, list[torch.Tensor]] = {k: [] for k in remaining}
    evaluations = 0
    for n, keep in zip(n_samples, to_keep):
        new = [t for t in stage_timesteps(grid, n) if t not in {grid[i] for i in done}]
        first = len(done)
        done += [grid.index(t) for t in new]
        # prompt-major, as the official loop orders its (t, prompt) pairs
        ts = torch.tensor([t for _ in remaining for t in new], dtype=torch.long)
        # the j-th timestep evaluated gets the j-th noise draw, whatever its place on the grid
        noise_idx = torch.tensor([first + j for _ in remaining for j in range(len(new))], dtype=torch.long)
        cand = torch.tensor([k for k in remaining for _ in new], dtype=torch.long)
        out = torch.empty(len(ts))
        for lo in range(0, len(ts), batch_size):
            t = ts[lo:lo + batch_size].to(x0.device)
            eps = noise[noise_idx[lo:lo + batch_size].to(x0.device)]
            a = abar[t].view(-1, *([1] * x0.ndim))
            x_t = x0 * a.sqrt() + eps * (1 - a).sqrt()
            pred = predict(x_t, t, cand[lo:lo + batch_size].to(x0.device))
            out[lo:lo + len(t)] = (pred.float() - eps.float()).pow(2).flatten(1).mean(1).cpu()  # a sync per batch
        evaluations += len(ts)
        for i, k in enumerate(remaining):
            errors[k].append(out[i * len(new):(i + 1) * len(new)])
        means = torch.stack([torch.cat(errors[k]).mean() for k in remaining])
        remaining = [remaining[i] for i in torch.argsort(means, stable=True)[:keep].tolist()]
    return PeerResult(remaining[0], evaluations, {k: float(torch.cat(v).mean()) for k, v in errors.items()})

