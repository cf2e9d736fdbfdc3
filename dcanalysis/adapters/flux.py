"""Flux.1 (Black Forest Labs 2024): a rectified-flow transformer over 2x2 patches of a 16-channel latent,
conditioned on T5 token embeddings and a pooled CLIP embedding."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .pipeline import PipelineAdapter
from ..processes import RectifiedFlow


class FluxAdapter(PipelineAdapter):
    """Conditions are prompts. The diffusion space is the pipeline's *packed* latent, (h/2 * w/2, 4C) tokens per
    image: the noise of a packed latent is the packed noise, so the forward process and the velocity error are
    the same in either layout and the network sees exactly what the pipeline gives it.

    Time: Flux's scheduler shifts every time by ``exp(mu)`` with mu growing with the number of image tokens
    (``dynamic shifting``; schnell turns it off), which is SD 3's shift with ``shift = exp(mu)``; the network
    takes s itself (not s * 1000). dev is guidance-distilled: its output at guidance g imitates classifier-free
    guidance at scale g. ``guidance=1.0`` (the default) asks for the plain conditional velocity, the one whose
    error is the ELBO's; the pipeline's own default for images is 3.5.
    """

    PIPELINES = ("FluxPipeline",)
    NETWORK = "transformer"
    TEXT = ("text_encoder", "text_encoder_2")

    def __init__(self, pipe, *, device="cpu", dtype=torch.float32, resolution: int | None = None, guidance: float = 1.0,
                 max_sequence_length: int = 512,
                 **placement):
        super().__init__(pipe, device=device, dtype=dtype, resolution=resolution, **placement)
        side = self.resolution // pipe.vae_scale_factor // 2  # packed tokens per side
        cfg = pipe.scheduler.config
        shift = cfg.shift
        if cfg.get("use_dynamic_shifting", False):
            tokens, lo, hi = side * side, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
            base, top = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
            shift = math.exp(base + (top - base) * (tokens - lo) / (hi - lo))  # mu linear in the token count
        self.process = RectifiedFlow(cfg.num_train_timesteps, shift=shift)
        self.guidance = guidance if self.network.config.guidance_embeds else None
        self.max_sequence_length = max_sequence_length
        self.img_ids = pipe._prepare_latent_image_ids(1, side, side, self.device, dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        latents = super().encode(images)
        b, c, h, w = latents.shape
        return self.pipe._pack_latents(latents, b, c, h, w)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        spatial = self.pipe._unpack_latents(latents, self.resolution, self.resolution, self.pipe.vae_scale_factor)
        return super().decode(spatial)

    def embed(self, conditions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        prompts = self._check_prompts(conditions)
        embeds, pooled, text_ids = self.pipe.encode_prompt(prompt=prompts, prompt_2=None, device=self.text_device,
                                                          max_sequence_length=self.max_sequence_length)
        # text_ids are one (L, 3) table shared by every prompt: kept per candidate so rows can be indexed
        return embeds.to(self.dtype), pooled.to(self.dtype), text_ids.expand(len(prompts), -1, -1)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond, rows=None) -> torch.Tensor:
        embeds, pooled, text_ids = cond
        b = x_t.shape[0]
        guidance = None if self.guidance is None else torch.full((b,), self.guidance, device=x_t.device)
        return self.network(hidden_states=x_t.to(self.dtype), timestep=self.process.model_time(t) / self.process.num_timesteps,
                            guidance=guidance, pooled_projections=pooled, encoder_hidden_states=embeds,
                            txt_ids=text_ids[0], img_ids=self.img_ids).sample.float()
