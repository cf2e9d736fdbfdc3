"""An analytic 2-D diffusion model: Gaussian-mixture classes whose exact eps-predictor and exact log p(x|c)
are known in closed form (book chapter 1).

Class c has density ``sum_m w_m N(mu_m, s_m^2 I)``. Under any Gaussian forward process ``x_t = a x_0 + b eps``
(DDPM: ``a = sqrt(abar_t)``, ``b = sqrt(1 - abar_t)``; rectified flow: ``a = 1 - sigma``, ``b = sigma``) the
noisy marginal is again a mixture with components ``N(a mu_m, (a^2 s_m^2 + b^2) I)``, so the optimal (MMSE)
predictions are

    eps*(x_t, t, c) = b * sum_m r_m(x_t) (x_t - a mu_m) / (a^2 s_m^2 + b^2),
    x0*(x_t, t, c)  =     sum_m r_m(x_t) (mu_m + a s_m^2 (x_t - a mu_m) / (a^2 s_m^2 + b^2)),

with r_m the components' posterior responsibilities; any other parameterisation (v, flow velocity) is a mix of
the two. The classifier built on it is the ELBO classifier with a *perfect* network: what is left of the gap to
exact Bayes is the ELBO's own bias.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..images import ImageSource
from ..processes import DDPM, ForwardProcess, mix


@dataclass(frozen=True)
class GaussianMixtureClass:
    """One class: component means (M, 2), standard deviations (M,), weights (M,) summing to 1."""

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor


def two_moons_like(n_classes: int = 2) -> list[GaussianMixtureClass]:
    """Overlapping interleaved mixtures in 2-D, a small problem with a curved Bayes boundary."""
    classes = []
    for c in range(n_classes):
        angle = torch.linspace(0, math.pi, 4) + c * math.pi
        centre = torch.tensor([0.6 * c, -0.3 * c])
        means = torch.stack([angle.cos(), angle.sin()], dim=1) + centre
        classes.append(GaussianMixtureClass(means.float(), torch.full((4,), 0.35), torch.full((4,), 0.25)))
    return classes


def _component_logpdf(x: torch.Tensor, means: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(x; mean_m, var_m I) for x (B, D), means (M, D), var (M,) or (B, M) -> (B, M)."""
    d = x.shape[-1]
    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    return -0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)


def exact_log_likelihood(x: torch.Tensor, cls: GaussianMixtureClass) -> torch.Tensor:
    """Exact log p(x | c) for x (B, 2) -> (B,)."""
    lp = _component_logpdf(x.double(), cls.means.double(), cls.stds.double() ** 2)
    return torch.logsumexp(lp + cls.weights.double().log(), dim=1)


class GaussianMixtureAdapter:
    """The DiffusionAdapter protocol for the analytic model. Conditions are class indices.

    ``process`` is any forward process of ``dcanalysis.processes`` (DDPM's linear schedule by default); the
    adapter answers in its ``prediction_type``, exactly."""

    def __init__(self, classes: Sequence[GaussianMixtureClass], process: ForwardProcess | None = None):
        self.classes = list(classes)
        self.process = process or DDPM()
        self.device = torch.device("cpu")

    def load(self, source: ImageSource) -> torch.Tensor:
        raise TypeError("the toy model classifies 2-D points; pass a tensor of shape (2,) instead of an image.")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.float()

    def embed(self, conditions: Sequence) -> torch.Tensor:
        for c in conditions:
            if not 0 <= int(c) < len(self.classes):
                raise ValueError(f"class {c} does not exist; the toy model has classes 0..{len(self.classes) - 1}.")
        return torch.tensor([int(c) for c in conditions], dtype=torch.long)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, rows=None) -> torch.Tensor:
        a, b = (v.double()[:, None] for v in self.process.scales(t))
        x = x_t.double()
        eps, x0 = torch.empty_like(x), torch.empty_like(x)
        for c in cond.unique().tolist():
            r = (cond == c).nonzero().squeeze(1)
            k = self.classes[c]
            s2 = k.stds.double()[None] ** 2
            var = a[r] ** 2 * s2 + b[r] ** 2  # (B, M)
            means = a[r, :, None] * k.means.double()[None]  # (B, M, D)
            sq = ((x[r, None, :] - means) ** 2).sum(-1)
            lp = -0.5 * sq / var - x.shape[-1] * 0.5 * torch.log(var) + k.weights.double().log()[None]
            w = torch.softmax(lp, dim=1)[:, :, None]
            eps[r] = b[r] * (w * (x[r, None, :] - means) / var[:, :, None]).sum(1)
            x0[r] = (w * (k.means.double()[None] + a[r, :, None] * s2[:, :, None] * (x[r, None, :] - means)
                          / var[:, :, None])).sum(1)
        c_x0, c_eps = self.process.coefficients(self.process.prediction_type, t)
        return mix(x0, eps, c_x0.double(), c_eps.double()).to(x_t.dtype)
