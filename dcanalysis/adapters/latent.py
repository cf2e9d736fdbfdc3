"""What every latent-diffusion adapter shares: RGB images in, scaled VAE latents out (and back, for figures)."""
from __future__ import annotations

import torch

from ..images import ImageSource, load_image


def vae_downsampling(vae) -> int:
    """Pixels per latent cell: 8 for the SD / DiT VAE (one halving per block after the first)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


class LatentImages:
    """Mixin for adapters with ``self.vae``, ``self.device``, ``self.dtype`` and ``self.resolution`` (px).

    x_0 is the VAE latent's *mean*, less ``vae.config.shift_factor`` where the VAE has one (SD 3, Flux), times
    ``vae.config.scaling_factor`` (0.18215 for SD), as the pipelines scale latents; the paper's code takes the
    mean too: sampling the latent would only add noise that is the same for every candidate.
    """

    def load(self, source: ImageSource) -> torch.Tensor:
        return load_image(source, size=self.resolution, mode="RGB")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        latent = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist.mean
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latent = latent - shift
        return (latent * self.vae.config.scaling_factor).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, h, w) -> images (B, 3, H, W) in [-1, 1] (for figures)."""
        latents = latents.float() / self.vae.config.scaling_factor
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents + shift
        return self.vae.decode(latents.to(self.vae.dtype)).sample.float().clamp(-1, 1)
