"""Forward processes: how a model was trained to see noise, and what it was trained to predict.

Every process here is a Gaussian path

    x_t = alpha_t x_0 + sigma_t eps,        eps ~ N(0, I),

over a grid of ``num_timesteps`` integer times t = 0 .. T-1 (the noise plans' indices), and every network output
it admits is a linear mix of the two unknowns, ``c_x0(t) x_0 + c_eps(t) eps``:

| prediction type | c_x0    | c_eps  | models |
| --------------- | ------- | ------ | ------ |
| ``epsilon``     | 0       | 1      | DDPM, SD 1.x / 2-base, DiT, PixArt, our lab models |
| ``sample``      | 1       | 0      | x_0-predicting models |
| ``v_prediction``| -sigma  | alpha  | SD 2.x 768-v (Salimans & Ho 2022), for alpha^2 + sigma^2 = 1 |
| ``velocity``    | -1      | 1      | rectified flow: SD 3 / 3.5, Flux (d x_t / d sigma with alpha = 1 - sigma) |

Knowing (alpha_t, sigma_t) and the two coefficients of any two parameterisations is enough to turn one into the
other (``convert_prediction``): two linear equations in (x_0, eps). ``DDPM`` and ``RectifiedFlow`` are the two
families; each adapter owns one (``adapter.process``), as each k-diffusion wrapper owns its noise scalings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "velocity")


# -- the DDPM noise schedules (Ho et al. 2020; Rombach et al. 2022) ----------------------------------------------

def linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_t of DDPM's linear beta schedule, (T,) float32: what our lab models are trained with."""
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


def scaled_linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """abar_t of Stable Diffusion's 'scaled_linear' schedule (betas linear in sqrt space)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0).float()


def shifted_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """SD 3's timestep shift (Esser et al. 2024, Eq. 23): ``shift * s / (1 + (shift - 1) s)``; 1 leaves s alone.

    A shift above 1 moves every time towards more noise, which high-resolution models need."""
    return shift * sigma / (1 + (shift - 1) * sigma)


# -- pure functions over (alpha, sigma) ------------------------------------------------------------------------

def _per_row(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) in ``like``'s dtype, to scale rows of a (B, *sample_shape) tensor."""
    return v.view((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def add_noise(x0: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The forward process ``x_t = alpha_t x0 + sigma_t eps``.

    x0 (*sample_shape) or (B, *sample_shape), eps (B, *sample_shape), alpha and sigma (B,). Returns (B, *sample_shape).
    """
    return _per_row(alpha, eps) * x0 + _per_row(sigma, eps) * eps


def mix(x0: torch.Tensor, eps: torch.Tensor, c_x0: torch.Tensor, c_eps: torch.Tensor) -> torch.Tensor:
    """``c_x0 x0 + c_eps eps`` row by row: the target of a parameterisation with these coefficients (B,)."""
    return _per_row(c_x0, eps) * x0 + _per_row(c_eps, eps) * eps


def clean_and_noise(output: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                    c_x0: torch.Tensor, c_eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x_0, eps) that a network output ``c_x0 x0 + c_eps eps`` implies, given ``x_t = alpha x0 + sigma eps``.

    Solves the 2x2 system row by row; its determinant ``alpha c_eps - sigma c_x0`` is non-zero for every
    parameterisation of the table above wherever the time is inside (0, T). Shapes as in ``add_noise``.
    """
    det = alpha * c_eps - sigma * c_x0
    x0 = (_per_row(c_eps / det, x_t) * x_t) - _per_row(sigma / det, x_t) * output
    eps = _per_row(alpha / det, x_t) * output - _per_row(c_x0 / det, x_t) * x_t
    return x0, eps


# -- the two families ------------------------------------------------------------------------------------------

def _check_type(prediction_type: str, allowed: tuple[str, ...], family: str) -> None:
    if prediction_type not in allowed:
        raise ValueError(f"{family} models predict one of {allowed}; got prediction_type={prediction_type!r}.")


@dataclass(frozen=True)
class DDPM:
    """The discrete variance-preserving process: ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``.

    alphas_cumprod : Tensor (T,) float32, abar_t indexed by 0-based t (diffusers' ``scheduler.alphas_cumprod``).
    prediction_type : what the network outputs (diffusers' ``scheduler.config.prediction_type``).
    The classifier's error compares in eps space by default, as the paper's Eq. 5 does.
    """

    alphas_cumprod: torch.Tensor = field(default_factory=linear_alphas_cumprod, repr=False)
    prediction_type: str = "epsilon"
    default_target: str = "epsilon"

    def __post_init__(self):
        _check_type(self.prediction_type, ("epsilon", "sample", "v_prediction"), "DDPM")
        _check_type(self.default_target, ("epsilon", "sample", "v_prediction"), "DDPM")

    @property
    def num_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def to(self, device) -> "DDPM":
        """A copy whose schedule lives on ``device``, so ``scales`` of device timesteps reads no host memory."""
        return DDPM(self.alphas_cumprod.to(device), self.prediction_type, self.default_target)

    def scales(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t), each (B,) float32, for t (B,) long."""
        abar = self.alphas_cumprod[t]
        return abar.sqrt(), (1 - abar).sqrt()

    def coefficients(self, kind: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_x0, c_eps), each (B,), of parameterisation ``kind`` at times t."""
        _check_type(kind, ("epsilon", "sample", "v_prediction"), "DDPM")
        alpha, sigma = self.scales(t)
        one, zero = torch.ones_like(alpha), torch.zeros_like(alpha)
        return {"epsilon": (zero, one), "sample": (one, zero), "v_prediction": (-sigma, alpha)}[kind]

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """The timestep the network takes: the integer t itself."""
        return t


@dataclass(frozen=True)
class RectifiedFlow:
    """Flow matching on the straight path ``x = (1 - s) x0 + s eps`` (Liu et al. 2022; Esser et al. 2024, SD 3).

    Integer time t in 0..T-1 maps to ``s = shifted_sigma((t + 1) / T, shift)``, so t = T-1 is pure noise and
    t = 0 the least noisy grid point, as in diffusers' ``FlowMatchEulerDiscreteScheduler``. The network predicts
    the velocity ``eps - x0`` and takes ``s * T`` as its timestep (SD 3's convention; an adapter whose network
    wants s itself, as Flux's does, divides by T). The error compares velocities by default: the training loss.
    """

    num_timesteps: int = 1000
    shift: float = 1.0
    prediction_type: str = "velocity"
    default_target: str = "velocity"

    def __post_init__(self):
        _check_type(self.prediction_type, ("velocity", "epsilon", "sample"), "flow-matching")
        _check_type(self.default_target, ("velocity", "epsilon", "sample"), "flow-matching")
        if self.num_timesteps < 1 or self.shift <= 0:
            raise ValueError(f"need num_timesteps >= 1 and shift > 0; got {self.num_timesteps}, {self.shift}.")

    def to(self, device) -> "RectifiedFlow":
        return self

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """s in (0, 1] of integer times t (B,), float32."""
        return shifted_sigma((t.float() + 1) / self.num_timesteps, self.shift)

    def scales(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sigma(t)
        return 1 - s, s

    def coefficients(self, kind: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_type(kind, ("velocity", "epsilon", "sample"), "flow-matching")
        s = self.sigma(t)
        one, zero = torch.ones_like(s), torch.zeros_like(s)
        return {"velocity": (-one, one), "epsilon": (zero, one), "sample": (one, zero)}[kind]

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * self.num_timesteps


ForwardProcess = DDPM | RectifiedFlow


def describe(process: ForwardProcess) -> dict:
    """The process as plain settings (recorded in a run's manifest: what its tables' time indices mean)."""
    d = {"type": type(process).__name__, "num_timesteps": process.num_timesteps,
         "prediction_type": process.prediction_type, "default_target": process.default_target}
    if isinstance(process, RectifiedFlow):
        d["shift"] = process.shift
    return d


def convert_prediction(process: ForwardProcess, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                       to: str) -> torch.Tensor:
    """A network output in ``process.prediction_type`` re-expressed as parameterisation ``to``.

    output, x_t (B, *sample_shape), t (B,) long. Returns ``output`` itself when nothing changes.
    """
    if to == process.prediction_type:
        return output
    x0, eps = predicted_clean_and_noise(process, output, x_t, t)
    return mix(x0, eps, *process.coefficients(to, t))


def predicted_clean_and_noise(process: ForwardProcess, output: torch.Tensor, x_t: torch.Tensor,
                              t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) implied by a network output (DDIM and the book's denoising panels use both)."""
    alpha, sigma = process.scales(t)
    return clean_and_noise(output, x_t, alpha, sigma, *process.coefficients(process.prediction_type, t))
