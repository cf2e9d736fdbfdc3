"""Losses: how far a network's prediction is from its training target, one number per sample.

Each loss maps ``(prediction, target)`` of shape (B, ...) to a (B,) tensor: the mean over every non-batch
element (pixels and channels). The mean, not the sum, keeps numbers comparable across resolutions; the
posterior multiplies back by the element count where Eq. 7 of the paper needs the squared norm.

The paper treats L1 or L2 as a per-dataset inference setting (Sec. 5.1 and Appendix A; see
``data/paper/li2023.json``); L2 is the one that matches the ELBO's Gaussian likelihood. Book chapter 13 compares
the three on the lab models.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).float().mean(dim=1)


def l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: the ELBO's term for each t, up to the weighting w_t."""
    return _per_sample((prediction.float() - target.float()) ** 2)


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample: less sensitive to a few badly predicted pixels."""
    return _per_sample((prediction.float() - target.float()).abs())


def huber(prediction: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber (smooth L1) per sample: quadratic below ``delta`` (in noise units), linear above."""
    return _per_sample(F.huber_loss(prediction.float(), target.float(), reduction="none", delta=delta))


LOSSES: dict[str, Loss] = {"l2": l2, "l1": l1, "huber": huber}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}.") from None
