"""The denoising error of one trial: the number the whole method is built on (paper Eq. 5).

For a clean sample x_0, a noise draw eps and a time t, the model sees ``x_t = alpha_t x_0 + sigma_t eps`` under
condition c and its output is compared with the target it was trained to predict. The paper (for eps-prediction
models) writes it as

    || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, c) ||^2                        (Eq. 5)

and averages it over (t, eps); the classifier picks the c with the lowest average. For a flow-matching model the
same estimate is the velocity error ``|| (eps - x_0) - v_theta(x_t, t, c) ||^2``, its training loss.

``expected_denoising_error`` is the whole estimate for one image, written as the paper states it: a noise plan,
the noisy samples, the network's predictions, Eq. 5, the mean over trials. ``DiffusionClassifier`` computes the
same numbers with network calls shared between trials, candidates and images, and with pruning.
"""
from __future__ import annotations

import torch

from .denoiser import Conditioning, DiffusionAdapter, index_conditioning
from .losses import get_loss
from .noise import NoisePlan
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
    return get_loss(loss)(*prediction_and_target(process, output, x_t, x0, eps, t, target=target))


def prediction_and_target(process: ForwardProcess, output: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor,
                          eps: torch.Tensor, t: torch.Tensor, *, target: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two things Eq. 5 compares, element by element: the network's prediction and the training target, both
    (B, *sample_shape) float32 in the parameterisation ``target`` (see ``denoising_error``). Their difference is
    what each loss of ``losses.LOSSES`` reduces to one number (book chapter 13 looks at it)."""
    kind = target or process.default_target
    prediction = convert_prediction(process, output.float(), x_t.float(), t, kind)
    if kind == "epsilon":
        return prediction, eps.float()  # exactly eps, not 0 * x0 + 1 * eps
    return prediction, mix(x0, eps, *process.coefficients(kind, t)).float()


def expected_denoising_error(adapter: DiffusionAdapter, x0: torch.Tensor, cond: Conditioning, plan: NoisePlan, *,
                             loss: str = "l2", target: str | None = None) -> torch.Tensor:
    """The Monte-Carlo estimate of ``E_{t, eps} [ Eq. 5 ]`` for every candidate: (K,) float64.

    x0 : (*sample_shape), the image in the diffusion space (``adapter.encode``), on the adapter's device; cond : the
    K candidates' embeddings (``adapter.embed``), on the device; plan : N trials (t_n, eps_n). Trial n noises x0
    once and asks the network under every candidate, so all K errors of a trial share one x_t (the paired test).
    One network call per trial: the reader's version, not the fast one.
    """
    process = adapter.process.to(adapter.device)
    k = len(cond[0] if isinstance(cond, tuple) else cond)
    everyone = torch.arange(k, device=adapter.device)
    errors = []
    for t_n, eps_n in zip(plan.timesteps, plan.noise):
        t = t_n.to(adapter.device).expand(k)
        eps = eps_n.to(adapter.device).expand(k, *eps_n.shape)
        x = x0.expand(k, *x0.shape)
        x_t = noisy_sample(process, x, eps, t)
        with torch.no_grad():
            output = adapter.predict(x_t, t, index_conditioning(cond, everyone))
        errors.append(denoising_error(process, output, x_t, x, eps, t, loss=loss, target=target))
    return torch.stack(errors, dim=1).double().mean(dim=1).cpu()
