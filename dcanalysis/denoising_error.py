"""The denoising error of one trial: the number the whole method is built on (paper Eq. 5).

For a clean sample x_0, a noise draw eps and a time t, the model sees ``x_t = alpha_t x_0 + sigma_t eps`` under
condition c and its output is compared with the target it was trained to predict. The paper (for eps-prediction
models) writes it as

    || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, c) ||^2                        (Eq. 5)

and averages it over (t, eps); the classifier picks the c with the lowest average. For a flow-matching model the
same estimate is the velocity error ``|| (eps - x_0) - v_theta(x_t, t, c) ||^2``, its training loss.
"""
from __future__ import annotations

import torch

from .losses import get_loss
from .processes import ForwardProcess, add_noise, convert_prediction, mix


def noisy_sample(process: ForwardProcess, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t of the process: x0 (*sample_shape) or (B, *sample_shape), eps (B, *sample_shape), t (B,) long."""
    return add_noise(x0, eps, *process.scales(t))


def denoising_error(process: ForwardProcess, output: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor,
                    eps: torch.Tensor, t: torch.Tensor, *, loss: str = "l2", target: str | None = None) -> torch.Tensor:
    """Paper Eq. 5 for a batch of trials: the loss between the training target and the network's output.

    output : (B, *sample_shape), the network's prediction for x_t = ``noisy_sample(process, x0, eps, t)``, in
    ``process.prediction_type``; x0, eps : (B, *sample_shape); t : (B,) long. ``target`` names the
    parameterisation the two are compared in (default ``process.default_target``: eps for DDPM models, as in the
    paper; velocity for flow matching); ``loss`` a name of ``losses.LOSSES``, a mean over the sample's elements.
    Returns (B,) float32.
    """
    kind = target or process.default_target
    prediction = convert_prediction(process, output.float(), x_t.float(), t, kind)
    if kind == "epsilon":
        truth = eps  # exactly eps, not 0 * x0 + 1 * eps
    else:
        truth = mix(x0, eps, *process.coefficients(kind, t))
    return get_loss(loss)(prediction, truth)
