"""Drawing images from a class-conditional model: DDIM and DDPM's ancestral sampler, one update rule.

Song et al. (2021, "Denoising Diffusion Implicit Models", eq. 12) move a sample from time t to an earlier time s
through the network's estimate of the clean image x_0 and of the noise eps at t:

    x_s = alpha_s x_0 + sqrt(sigma_s^2 - s_eta^2) eps + s_eta z,      z ~ N(0, I)
    s_eta = eta * (sigma_s / sigma_t) * sqrt(1 - alpha_t^2 / alpha_s^2)

eta = 0 is DDIM (deterministic given x_T); eta = 1 on the full grid of the training chain is DDPM's ancestral
sampler (Ho et al., 2020). Both are written for a variance-preserving process (DDPM), where alpha^2 + sigma^2 = 1;
a rectified-flow model samples with eta = 0, where the rule is an Euler step of the flow's ODE.

The lab's "own images" chapter classifies what these samplers draw (``dcanalysis.lab.own_images``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .denoiser import DiffusionAdapter, conditioning_to, index_conditioning
from .processes import DDPM, predicted_clean_and_noise


@dataclass(frozen=True)
class SamplerConfig:
    """steps : network evaluations per image (the grid runs from the last training time to 0, evenly spaced);
    eta : 0 for DDIM, 1 for DDPM's ancestral noise; clip : clamp each x_0 estimate to the image range [-1, 1]
    (images live there; diffusers' DDIM and DDPM schedulers clip by default for the same reason)."""

    steps: int = 50
    eta: float = 0.0
    clip: bool = True

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}.")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (0: DDIM, 1: DDPM), got {self.eta}.")

    @property
    def name(self) -> str:
        """``ddim_50``, ``ddpm_1000``, ``eta0.5_100``: the file and run name of samples drawn this way."""
        kind = {0.0: "ddim", 1.0: "ddpm"}.get(float(self.eta), f"eta{self.eta:g}")
        return f"{kind}_{self.steps}" + ("" if self.clip else "_noclip")

    @classmethod
    def from_name(cls, name: str) -> "SamplerConfig":
        """The inverse of ``name``: ``ddim_10`` -> SamplerConfig(10, 0.0)."""
        parts = name.split("_")
        try:
            kind, steps = parts[0], int(parts[1])
            eta = {"ddim": 0.0, "ddpm": 1.0}[kind] if kind in ("ddim", "ddpm") else float(kind.removeprefix("eta"))
        except (IndexError, ValueError, KeyError):
            raise ValueError(f"sampler name {name!r} is not ddim_<steps>, ddpm_<steps> or eta<e>_<steps> "
                             f"(for example ddim_50).") from None
        return cls(steps=steps, eta=eta, clip=parts[2:] != ["noclip"])


def sampling_timesteps(num_timesteps: int, steps: int) -> torch.Tensor:
    """``steps`` distinct decreasing integer times from ``num_timesteps - 1`` to 0 (LongTensor (steps,))."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"need 1 <= steps <= {num_timesteps} (the model's time grid), got {steps}.")
    if steps == 1:
        return torch.tensor([num_timesteps - 1])
    return torch.linspace(num_timesteps - 1, 0, steps).round().long()


def ddim_update(x0: torch.Tensor, eps: torch.Tensor, alpha_t: torch.Tensor, sigma_t: torch.Tensor,
                alpha_s: torch.Tensor, sigma_s: torch.Tensor, eta: float, z: torch.Tensor | None) -> torch.Tensor:
    """Song et al. (2021) eq. 12: the sample at the earlier time s from the estimates (x0, eps) at t.

    x0, eps, z : (B, ...); alpha_*, sigma_* : scalars or tensors broadcastable to them. z is unused when eta = 0.
    """
    s_eta = eta * (sigma_s / sigma_t) * (1 - (alpha_t / alpha_s) ** 2).clamp(min=0).sqrt()
    out = alpha_s * x0 + (sigma_s ** 2 - s_eta ** 2).clamp(min=0).sqrt() * eps
    return out + s_eta * z if eta > 0 else out


@torch.no_grad()
def sample(adapter: DiffusionAdapter, conditions: Sequence, config: SamplerConfig = SamplerConfig(), *,
           seed: int = 0, batch_size: int = 1000, shape: tuple[int, ...] | None = None,
           progress: bool = True) -> torch.Tensor:
    """One sample per condition: returns (N, *sample_shape) float32 on the CPU, in the diffusion space ([-1, 1]
    pixels for the lab models, padded to the UNet's canvas).

    Noise comes from one CPU generator seeded by ``seed``, drawn for all N images at once per step, so a sample
    depends on the seed and its position, not on ``batch_size`` (the images per network call). ``shape`` is the
    diffusion space's sample shape; left out, it is read from the adapter's ``channels`` and ``image_size`` (the
    lab's pixel models).
    """
    process = adapter.process
    if config.eta > 0 and not isinstance(process, DDPM):
        raise ValueError(f"eta = {config.eta} is DDPM's ancestral noise, written for a variance-preserving process; "
                         f"this model's process is {type(process).__name__}: sample it with eta = 0.")
    n = len(conditions)
    cond = adapter.embed(list(conditions))
    if shape is None:
        if not hasattr(adapter, "image_size"):
            raise ValueError(f"{type(adapter).__name__} does not say its image size: pass shape=(C, H, W) of its "
                             f"diffusion space.")
        blank = torch.zeros(1, adapter.channels, adapter.image_size, adapter.image_size)
        shape = tuple(adapter.encode(blank).shape[1:])
    device_process = process.to(adapter.device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=gen)
    times = sampling_timesteps(process.num_timesteps, config.steps)
    for i in tqdm(range(len(times)), desc=f"sampling {config.name}", disable=not progress, leave=False):
        t = times[i]
        last = i == len(times) - 1
        z = torch.randn((n, *shape), generator=gen) if config.eta > 0 and not last else None
        if not last:  # alpha_t, sigma_t, alpha_s, sigma_s of this step, on the device
            scales = [v.to(adapter.device) for v in (*process.scales(t.view(1)), *process.scales(times[i + 1].view(1)))]
        for start in range(0, n, batch_size):
            rows = torch.arange(start, min(start + batch_size, n))
            xb = x[rows].to(adapter.device)
            tb = torch.full((len(rows),), int(t), dtype=torch.long, device=adapter.device)
            out = adapter.predict(xb, tb, conditioning_to(index_conditioning(cond, rows), adapter.device))
            x0, eps = predicted_clean_and_noise(device_process, out, xb, tb)
            if config.clip:
                x0 = x0.clamp(-1, 1)
            if last:  # the final estimate of x_0 is the sample
                x[rows] = x0.float().cpu()
                continue
            zb = z[rows].to(adapter.device) if z is not None else None
            x[rows] = ddim_update(x0, eps, *scales, config.eta, zb).float().cpu()
    return x
