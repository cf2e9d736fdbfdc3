"""Stable Diffusion 1.x / 2.x through diffusers components: the paper's zero-shot setting (Sec. 5.1)."""
from __future__ import annotations

from typing import Sequence

import torch

from .base import place_module
from .latent import LatentImages, vae_downsampling
from ..prefix_sharing import PrefixSharing, sharing_context
from ..schedule_math import eps_from_prediction
from ..weights import resolve_pretrained

SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class StableDiffusionAdapter(LatentImages):
    """Latent diffusion with a CLIP text encoder. Conditions are prompts (strings).

    Images are resized and centre-cropped to the UNet's native resolution (see ``LatentImages`` for x_0).
    """

    def __init__(self, *, unet, vae, text_encoder, tokenizer, scheduler, device="cpu", dtype=torch.float32,
                 share_prefix: bool = False):
        self.unet = place_module(unet, device, dtype)
        # compute the condition-independent first layers once per noisy sample (see prefix_sharing)
        self.prefix = PrefixSharing(self.unet) if share_prefix else None
        self.vae = place_module(vae, device, dtype)
        self.text_encoder = place_module(text_encoder, device, dtype)
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.alphas_cumprod = scheduler.alphas_cumprod.float().cpu()
        self._abar_on_device = self.alphas_cumprod.to(device)  # a host copy per call would stall the GPU queue
        self.prediction_type = scheduler.config.prediction_type
        self.device = torch.device(device)
        self.dtype = dtype
        self.resolution = unet.config.sample_size * vae_downsampling(vae)
        vocab = getattr(tokenizer, "vocab_size", 0)
        if vocab < 16:
            raise ValueError(
                f"the tokenizer has a vocabulary of {vocab} tokens, so it did not load (transformers can return a "
                "placeholder when a hub tokenizer is unreachable). Point at a folder that holds tokenizer/ files."
            )

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device="cpu", dtype=torch.float32,
                        share_prefix: bool = False) -> "StableDiffusionAdapter":
        """Load from a diffusers pipeline folder or a cached hub id, e.g. 'stabilityai/stable-diffusion-2-base'."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = str(resolve_pretrained(name_or_path, subfolders=SD_COMPONENTS))
        kw = dict(local_files_only=True)
        return cls(
            unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw),
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw),
            text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw),
            tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw),
            scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **kw),
            device=device, dtype=dtype, share_prefix=share_prefix,
        )

    def embed(self, conditions: Sequence[str]) -> torch.Tensor:
        if not all(isinstance(c, str) for c in conditions):
            raise TypeError("Stable Diffusion conditions are prompts (str); build them with datasets.prompts().")
        tokens = self.tokenizer(list(conditions), padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with sharing_context(self.prefix, x_t, t):
            out = self.unet(x_t.to(self.dtype), t, encoder_hidden_states=cond).sample.float()
        return eps_from_prediction(out, x_t.float(), self._abar_on_device.to(t.device)[t], self.prediction_type)
