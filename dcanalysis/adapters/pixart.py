"""PixArt-alpha / Sigma (Chen et al. 2023, 2024): a DiT-like transformer with T5 text cross-attention, trained
with DDPM and a learned variance."""
from __future__ import annotations

from typing import Sequence

import torch

from .pipeline import PipelineAdapter
from ..processes import DDPM


class PixArtAdapter(PipelineAdapter):
    """Conditions are prompts (T5, up to ``max_sequence_length`` tokens: 120 for alpha, 300 for Sigma). Like
    DiT, PixArt predicts eps and a variance interpolation in twice the latent channels; only the eps half enters
    the error. Models at 1024 px also read the image's resolution and aspect ratio: the native square."""

    PIPELINES = ("PixArtAlphaPipeline", "PixArtSigmaPipeline")
    NETWORK = "transformer"
    TEXT = ("text_encoder",)

    def __init__(self, pipe, *, device="cpu", dtype=torch.float32, resolution: int | None = None, max_sequence_length: int | None = None,
                 **placement):
        super().__init__(pipe, device=device, dtype=dtype, resolution=resolution, **placement)
        s = pipe.scheduler
        self.process = DDPM(s.alphas_cumprod.float().cpu(), s.config.prediction_type)
        self.latent_channels = self.network.config.in_channels
        sigma = type(pipe).__name__ == "PixArtSigmaPipeline"
        self.max_sequence_length = max_sequence_length or (300 if sigma else 120)

    def embed(self, conditions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = self._check_prompts(conditions)
        embeds, mask, _, _ = self.pipe.encode_prompt(prompt=prompts, do_classifier_free_guidance=False,
                                                    device=self.text_device, clean_caption=False,
                                                    max_sequence_length=self.max_sequence_length)
        return embeds.to(self.dtype), mask

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond, rows=None) -> torch.Tensor:
        embeds, mask = cond
        extra = {"resolution": None, "aspect_ratio": None}
        if getattr(self.network, "use_additional_conditions", False):
            b = x_t.shape[0]
            extra = {"resolution": torch.tensor([[self.resolution] * 2], dtype=self.dtype, device=x_t.device).repeat(b, 1),
                     "aspect_ratio": torch.ones(b, 1, dtype=self.dtype, device=x_t.device)}
        out = self.network(x_t.to(self.dtype), encoder_hidden_states=embeds, encoder_attention_mask=mask,
                           timestep=t, added_cond_kwargs=extra).sample
        return out[:, : self.latent_channels].float()
