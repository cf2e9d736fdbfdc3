"""White-box attacks on a Diffusion Classifier and on any differentiable classifier: L-infinity PGD with the
margin loss, and the classifier's scores made differentiable with expectation over its random noise.

A Diffusion Classifier's decision rests on random (t, eps) draws, so its gradient is a random variable; an attack
that follows one draw can be fooled by the randomness and under-state what an attacker achieves ("gradient
masking", Athalye et al., 2018). Expectation over transformation (EOT) averages the gradient over fresh draws at
every step: ``diffusion_scores`` takes new timesteps and noise each call. The attack never sees the noise plan
the classifier is evaluated with.

Images are in the model input range [-1, 1]; budgets ``eps`` are in the same units (a budget of 8/255 of the
[0, 1] pixel range is 16/255 here: ``pixel_budget``).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..denoiser import DiffusionAdapter, Conditioning, index_conditioning
from ..denoising_error import denoising_error, noisy_sample


def pixel_budget(eps01: float) -> float:
    """A budget in [0, 1] pixel units as a budget in the [-1, 1] units the models read."""
    return 2.0 * eps01


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) best other class's logit minus the true class's (Carlini and Wagner, 2017): positive = misclassified.
    Its gradient's sign does not depend on the logits' scale, so it suits scores with no natural temperature."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def stratified_timesteps(batch: int, n: int, num_timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, n) timesteps, one in each of n equal slices of [0, T) at a random place: even coverage, fresh
    draws."""
    u = torch.rand((batch, n), generator=generator)
    return ((torch.arange(n) + u) / n * num_timesteps).long().clamp(max=num_timesteps - 1)


def diffusion_scores(adapter: DiffusionAdapter, x0: torch.Tensor, cond: Conditioning, timesteps: torch.Tensor,
                     noise: torch.Tensor) -> torch.Tensor:
    """Differentiable scores (B, K): minus each candidate's mean denoising error (paper Eq. 5, L2) over N trials.

    x0 : (B, *sample_shape) in the diffusion space, on the adapter's device (gradients flow to it); cond : the K
    candidates' embeddings on the device; timesteps : (B, N) long; noise : (B, N, *sample_shape). Every candidate
    sees the same N noisy samples of an image (the paired test).
    """
    b, n = timesteps.shape
    k = len(cond[0] if isinstance(cond, tuple) else cond)
    shape = x0.shape[1:]
    process = adapter.process.to(x0.device)
    t = timesteps.to(x0.device).repeat_interleave(k)  # (image, trial, candidate) order
    eps = noise.to(x0.device).reshape(b * n, *shape).repeat_interleave(k, dim=0)
    clean = x0.repeat_interleave(n * k, dim=0)
    x_t = noisy_sample(process, clean, eps, t)
    which = torch.arange(k, device=x0.device).repeat(b * n)
    out = adapter.predict(x_t, t, index_conditioning(cond, which))
    errors = denoising_error(process, out, x_t, clean, eps, t)
    return -errors.view(b, n, k).mean(1)


def pgd_linf(loss: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, *, steps: int,
             step_size: float, generator: torch.Generator, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """Projected gradient ascent of ``loss`` (images (B, ...) -> (B,)) inside the L-infinity ball of radius
    ``eps`` around x, within [lo, hi], from a uniformly random start (Madry et al., 2018). Returns the last
    iterate, detached. ``eps`` = 0 returns x."""
    if eps == 0:
        return x.detach().clone()
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    x_adv = (x + start).clamp(lo, hi).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x_adv).sum(), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(lo, hi)
    return x_adv.detach()
