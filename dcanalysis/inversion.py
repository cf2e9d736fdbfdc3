"""DDIM inversion and reconstruction under a chosen condition (paper Fig. 5: what the model "sees").

Deterministic DDIM (eta = 0, Song et al., 2021) maps x_0 to x_t and back along the probability-flow ODE of a
condition. Inverting an image under its own condition and decoding it under another shows what the model would
change to make the image fit the other condition; the reconstruction error under each condition is a
one-trajectory cousin of the classifier's denoising error.

Written for any Gaussian forward process ``x_t = alpha_t x_0 + sigma_t eps`` (``dcanalysis.processes``): each
step reads the network's (x_0, eps) at the current time and re-noises that x_0 with that eps at the next time,
which for DDPM is Song et al.'s DDIM and for rectified flow an Euler step of the flow's ODE. Works with any adapter
of the protocol whose diffusion space is pixels (the lab models); for latent models decode the result with the
model's VAE.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .denoiser import DiffusionAdapter, conditioning_to, index_conditioning
from .processes import add_noise, predicted_clean_and_noise


def ddim_timesteps(t_end: int, steps: int) -> torch.Tensor:
    """``steps + 1`` increasing timesteps from 0 to ``t_end`` (0-based), the grid inversion climbs."""
    if not 0 < steps <= t_end:
        raise ValueError(f"need 0 < steps <= t_end, got steps={steps}, t_end={t_end}.")
    return torch.linspace(0, t_end, steps + 1).round().long()


def _ddim_step(adapter, process, x, t_from: int, t_to: int, cond) -> torch.Tensor:
    """One deterministic DDIM move from t_from to t_to (either direction) using the prediction at t_from."""
    B = x.shape[0]
    t = torch.full((B,), t_from, dtype=torch.long, device=x.device)
    x0, eps = predicted_clean_and_noise(process, adapter.predict(x, t, cond), x, t)
    return add_noise(x0, eps, *process.scales(torch.full_like(t, t_to)))


@torch.no_grad()
def ddim_invert(adapter: DiffusionAdapter, x0: torch.Tensor, condition, *, t_end: int = 500,
                steps: int = 50) -> torch.Tensor:
    """x_0 (B, *sample_shape) -> x_{t_end} under one condition (the same for all B)."""
    cond = _broadcast(adapter, condition, x0.shape[0])
    process = adapter.process.to(x0.device)
    ts = ddim_timesteps(t_end, steps).tolist()
    x = x0.float()
    for t_from, t_to in zip(ts[:-1], ts[1:]):
        x = _ddim_step(adapter, process, x, t_from, t_to, cond)
    return x


@torch.no_grad()
def ddim_decode(adapter: DiffusionAdapter, x_t: torch.Tensor, conditions: Sequence, *, t_end: int = 500,
                steps: int = 50) -> torch.Tensor:
    """Decode one x_{t_end} (*sample_shape) under each of K conditions: returns (K, *sample_shape)."""
    K = len(conditions)
    cond = conditioning_to(adapter.embed(list(conditions)), adapter.device)
    process = adapter.process.to(x_t.device)
    ts = ddim_timesteps(t_end, steps).tolist()[::-1]
    x = x_t.float().unsqueeze(0).expand(K, *x_t.shape).clone()
    for t_from, t_to in zip(ts[:-1], ts[1:]):
        x = _ddim_step(adapter, process, x, t_from, t_to, cond)
    return x


def _broadcast(adapter, condition, B: int):
    cond = index_conditioning(adapter.embed([condition]), torch.zeros(B, dtype=torch.long))
    return conditioning_to(cond, adapter.device)


def reconstruct_under(adapter: DiffusionAdapter, x0: torch.Tensor, invert_with, conditions: Sequence, *,
                      t_end: int = 500, steps: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert x_0 (*sample_shape) under ``invert_with`` to t_end, decode under each condition.

    Returns the reconstructions (K, *sample_shape) and their mean squared error to x_0 (K,).
    """
    x_t = ddim_invert(adapter, x0.unsqueeze(0).to(adapter.device), invert_with, t_end=t_end, steps=steps)[0]
    recon = ddim_decode(adapter, x_t, conditions, t_end=t_end, steps=steps)
    mse = (recon - x0.to(recon.device)).pow(2).flatten(1).mean(1)
    return recon.cpu(), mse.cpu()
