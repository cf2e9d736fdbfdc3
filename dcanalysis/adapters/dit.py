"""DiT (Peebles & Xie 2023) through diffusers: class-conditional latent diffusion on ImageNet (paper Sec. 5.3)."""
from __future__ import annotations

from typing import Sequence

import torch

from .base import check_borrowed, place_module
from .latent import LatentImages, vae_downsampling
from .weights import HubOptions, resolve_pretrained
from ..processes import DDPM

DIT_COMPONENTS = ("transformer", "vae", "scheduler")


class DiTAdapter(LatentImages):
    """Conditions are ImageNet class indices 0..999 (DiT's own label 1000 is the null class for guidance).

    DiT learns the variance too: its output has 2C channels, eps in the first C and the variance
    interpolation in the rest. Only the eps half enters the classifier's error.
    """

    def __init__(self, *, transformer, vae, scheduler, device="cpu", dtype=torch.float32):
        self.transformer = place_module(transformer, device, dtype)
        self.vae = place_module(vae, device, dtype)
        self.process = DDPM(scheduler.alphas_cumprod.float().cpu())  # eps (and a learned variance, dropped)
        self.device = torch.device(device)
        self.dtype = dtype
        self.latent_channels = transformer.config.in_channels
        self.num_classes = transformer.config.num_embeds_ada_norm
        self.resolution = transformer.config.sample_size * vae_downsampling(vae)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device="cpu", dtype=torch.float32,
                        hub: HubOptions | None = None) -> "DiTAdapter":
        """Load from a DiT pipeline folder or a cached hub id, e.g. 'facebook/DiT-XL-2-256', in ``dtype`` from the
        start; ``hub``: variant, revision, cache_dir."""
        from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel

        hub = hub or HubOptions()
        folder = str(resolve_pretrained(name_or_path, subfolders=DIT_COMPONENTS, hub=hub))
        kw = hub.loading(dtype)
        return cls(
            transformer=DiTTransformer2DModel.from_pretrained(folder, subfolder="transformer", **kw),
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw),
            scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True),
            device=device, dtype=dtype,
        )

    @classmethod
    def from_pipe(cls, pipe, *, device=None, dtype=None, take_ownership: bool = False) -> "DiTAdapter":
        """Wrap a loaded ``DiTPipeline`` (its modules are used, not copied: a device or dtype that would move or
        cast them is refused unless ``take_ownership``)."""
        check_borrowed({k: getattr(pipe, k) for k in ("transformer", "vae")}, device, dtype,
                       take_ownership=take_ownership)
        return cls(**{k: getattr(pipe, k) for k in DIT_COMPONENTS}, device=device or pipe.transformer.device,
                   dtype=dtype or pipe.transformer.dtype)

    def embed(self, conditions: Sequence) -> torch.Tensor:
        idx = [int(c) for c in conditions]
        bad = [c for c in idx if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(f"class indices {bad} are out of range; DiT classes are 0..{self.num_classes - 1}.")
        return torch.tensor(idx, dtype=torch.long)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, rows=None) -> torch.Tensor:
        out = self.transformer(x_t.to(self.dtype), timestep=t, class_labels=cond).sample
        return out[:, : self.latent_channels].float()
