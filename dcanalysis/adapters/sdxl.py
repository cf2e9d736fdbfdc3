"""Stable Diffusion XL base (Podell et al. 2023): a larger UNet with two CLIP text encoders, conditioned also on
the pooled embedding of the second and on size and crop ("micro-conditioning")."""
from __future__ import annotations

from typing import Sequence

import torch

from .pipeline import PipelineAdapter
from ..processes import DDPM


class StableDiffusionXLAdapter(PipelineAdapter):
    """Conditions are prompts. Images are resized and centre-cropped to the UNet's native size (1024 px), and
    the micro-conditioning says so: original size = target size = that size, crop at (0, 0), what SDXL was
    trained to read as a clean, uncropped image. The process is the scheduler's DDPM (eps for the base model);
    the refiner is not used.
    """

    PIPELINES = ("StableDiffusionXLPipeline",)
    NETWORK = "unet"
    TEXT = ("text_encoder", "text_encoder_2")

    def __init__(self, pipe, *, device="cpu", dtype=torch.float32, resolution: int | None = None,
                 **placement):
        super().__init__(pipe, device=device, dtype=dtype, resolution=resolution, **placement)
        s = pipe.scheduler
        self.process = DDPM(s.alphas_cumprod.float().cpu(), s.config.prediction_type)
        size = self.resolution
        self.time_ids = torch.tensor([size, size, 0, 0, size, size], dtype=dtype, device=self.device)

    def embed(self, conditions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = self._check_prompts(conditions)
        embeds, _, pooled, _ = self.pipe.encode_prompt(prompt=prompts, prompt_2=None, device=self.text_device,
                                                      num_images_per_prompt=1, do_classifier_free_guidance=False)
        return embeds.to(self.dtype), pooled.to(self.dtype)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond, rows=None) -> torch.Tensor:
        embeds, pooled = cond
        extra = {"text_embeds": pooled, "time_ids": self.time_ids.expand(x_t.shape[0], -1)}
        return self.network(x_t.to(self.dtype), t, encoder_hidden_states=embeds,
                            added_cond_kwargs=extra).sample.float()
