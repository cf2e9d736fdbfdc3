"""The one protocol the classifier knows. Stable Diffusion, DiT, our lab models and the analytic toy model all
sit behind it, the way k-diffusion wraps foreign denoisers.

An adapter turns an image into the diffusion space (``encode``), conditions into a batch of embeddings
(``embed``), and predicts the noise in a noisy sample (``predict_noise``). The classifier does the rest:
noise plans, the forward process ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, errors, pruning.
"""
from __future__ import annotations

from typing import Protocol, Sequence, Union, runtime_checkable

import torch

from ..images import ImageSource

# Embeddings of K conditions: one tensor (K, ...) or a tuple of them (e.g. tokens and an attention mask).
Conditioning = Union[torch.Tensor, tuple[torch.Tensor, ...]]


@runtime_checkable
class DiffusionAdapter(Protocol):
    """What a model must offer to be used as a classifier.

    Attributes
    ----------
    alphas_cumprod : Tensor (T,), float32, CPU
        abar_t of the model's training schedule, indexed by 0-based t.
    device : torch.device
    """

    alphas_cumprod: torch.Tensor
    device: torch.device

    def load(self, source: ImageSource) -> torch.Tensor:
        """Read an image file or PIL image into model input (C, H, W) in [-1, 1]."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> x_0 in the diffusion space (B, *sample_shape), float32."""

    def embed(self, conditions: Sequence) -> Conditioning:
        """K conditions (class indices, prompts, ...) -> embeddings with leading dimension K."""

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """eps_theta(x_t, t, c) for a batch: x_t (B, *sample_shape), t (B,) long, cond leading dim B."""


def index_conditioning(cond: Conditioning, index: torch.Tensor) -> Conditioning:
    """Select rows of an embedding batch (a tensor or a tuple of tensors) along the first dimension."""
    if isinstance(cond, tuple):
        return tuple(c[index] for c in cond)
    return cond[index]


def conditioning_to(cond: Conditioning, device: torch.device) -> Conditioning:
    if isinstance(cond, tuple):
        return tuple(c.to(device) for c in cond)
    return cond.to(device)


def place_module(module: torch.nn.Module, device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a module for inference; cast only when needed (diffusers logs a warning for every cast)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval()
