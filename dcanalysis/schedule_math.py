"""Noise-schedule helpers shared by all adapters (the DDPM forward process, Ho et al. 2020)."""
from __future__ import annotations

import torch


def linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_t of DDPM's linear beta schedule, (T,) float32: what our lab models are trained with."""
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


def scaled_linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """abar_t of Stable Diffusion's 'scaled_linear' schedule (betas linear in sqrt space)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0).float()


def eps_from_prediction(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """Convert a network output to an eps prediction.

    SD 2.x at 768 px predicts v = sqrt(abar) eps - sqrt(1 - abar) x_0 (Salimans & Ho 2022), from which
    eps = sqrt(abar) v + sqrt(1 - abar) x_t. abar has shape (B,).
    """
    if prediction_type == "epsilon":
        return prediction
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    a = abar.view(shape).to(x_t.dtype)
    if prediction_type == "v_prediction":
        return a.sqrt() * prediction + (1 - a).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - a.sqrt() * prediction) / (1 - a).sqrt()
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected epsilon, v_prediction or sample.")
