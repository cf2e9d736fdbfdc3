"""The one protocol the classifier knows. Stable Diffusion, DiT, our lab models and the analytic toy model all
sit behind it, the way k-diffusion wraps foreign denoisers.

An adapter says how its model was trained (``process``: the forward process, what the network predicts, its
time grid; see ``dcanalysis.processes``), turns an image into the diffusion space (``encode``), conditions into a
batch of embeddings (``embed``), and runs the network on a noisy sample (``predict``). The classifier does the
rest: noise plans, the forward process, the denoising error (``dcanalysis.denoising_error``), pruning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, Union, runtime_checkable

import torch

from .images import ImageSource
from .processes import ForwardProcess

# Embeddings of K conditions: one tensor (K, ...) or a tuple of them (e.g. tokens and an attention mask).
Conditioning = Union[torch.Tensor, tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class RowGroups:
    """Which rows of a batch hold the same (x_t, t): consecutive rows with one id form a run.

    starts : LongTensor (G,), the first row of each run; index : LongTensor (B,), each row's run. The classifier
    knows this without comparing tensors (rows of one (image, trial) pair are copies under other conditions) and
    passes it to adapters that set ``uses_row_groups``; an adapter may compute its condition-independent layers
    once per run (``dcanalysis.engine.prefix_sharing``).
    """

    starts: torch.Tensor
    index: torch.Tensor

    def to(self, device) -> "RowGroups":
        return RowGroups(self.starts.to(device), self.index.to(device))


def row_groups(ids: torch.Tensor) -> RowGroups:
    """``RowGroups`` of a batch whose rows are named by ``ids`` (B,): a new run wherever the id changes."""
    new = torch.ones(ids.numel(), dtype=torch.bool, device=ids.device)
    new[1:] = ids[1:] != ids[:-1]
    return RowGroups(new.nonzero().squeeze(1), torch.cumsum(new.long(), 0) - 1)


@runtime_checkable
class DiffusionAdapter(Protocol):
    """What a model must offer to be used as a classifier.

    Attributes
    ----------
    process : DDPM or RectifiedFlow
        The forward process the model was trained with, on the CPU, and what its network predicts.
    device : torch.device
    uses_row_groups : bool, optional
        True if ``predict`` makes use of ``rows`` (absent means False).
    """

    process: ForwardProcess
    device: torch.device

    def load(self, source: ImageSource) -> torch.Tensor:
        """Read an image file or PIL image into model input (C, H, W) in [-1, 1]."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> x_0 in the diffusion space (B, *sample_shape), float32."""

    def embed(self, conditions: Sequence) -> Conditioning:
        """K conditions (class indices, prompts, ...) -> embeddings with leading dimension K."""

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                rows: RowGroups | None = None) -> torch.Tensor:
        """The network's output for x_t (B, *sample_shape) at integer times t (B,) under cond (leading dim B),
        in ``process.prediction_type``, float32. The adapter maps t to the time its network takes
        (``process.model_time``)."""


def index_conditioning(cond: Conditioning, index: torch.Tensor) -> Conditioning:
    """Select rows of an embedding batch (a tensor or a tuple of tensors) along the first dimension."""
    if isinstance(cond, tuple):
        return tuple(c[index] for c in cond)
    return cond[index]


def conditioning_to(cond: Conditioning, device: torch.device) -> Conditioning:
    if isinstance(cond, tuple):
        return tuple(c.to(device) for c in cond)
    return cond.to(device)
