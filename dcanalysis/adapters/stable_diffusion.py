"""Stable Diffusion 1.x / 2.x through diffusers components: the paper's zero-shot setting (Sec. 5.1)."""
from __future__ import annotations

from contextlib import nullcontext

from typing import Sequence

import torch

from .base import check_borrowed, place_module
from .latent import LatentImages, vae_downsampling
from .weights import HubOptions, resolve_pretrained
from ..processes import DDPM

SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class StableDiffusionAdapter(LatentImages):
    """Latent diffusion with a CLIP text encoder. Conditions are prompts (strings).

    Images are resized and centre-cropped to the UNet's native resolution (see ``LatentImages`` for x_0).
    """

    takes_prompts = True

    def __init__(self, *, unet, vae, text_encoder, tokenizer, scheduler, device="cpu", dtype=torch.float32):
        self.unet = place_module(unet, device, dtype)
        # dcanalysis.engine.prefix_sharing.share_prefix sets these: the condition-independent first layers then run
        # once per noisy sample
        self.prefix = None
        self.uses_row_groups = False
        self.vae = place_module(vae, device, dtype)
        self.text_encoder = place_module(text_encoder, device, dtype)
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        # eps (SD 1.x, 2-base) or v (SD 2.x 768-v), as the scheduler's config says
        self.process = DDPM(scheduler.alphas_cumprod.float().cpu(), scheduler.config.prediction_type)
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
                        hub: HubOptions | None = None) -> "StableDiffusionAdapter":
        """Load from a diffusers pipeline folder or a cached hub id, e.g. 'stabilityai/stable-diffusion-2-base', each
        network in ``dtype`` from the start (no float32 copy first); ``hub``: variant, revision, cache_dir."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        hub = hub or HubOptions()
        folder = str(resolve_pretrained(name_or_path, subfolders=SD_COMPONENTS, hub=hub))
        kw = hub.loading(dtype)
        return cls(
            unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw),
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw),
            text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw),
            tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True),
            scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True),
            device=device, dtype=dtype,
        )

    @classmethod
    def from_pipe(cls, pipe, *, device=None, dtype=None, take_ownership: bool = False) -> "StableDiffusionAdapter":
        """Wrap a loaded ``StableDiffusionPipeline`` (its safety checker and feature extractor are not needed). Its
        modules are used, not copied: a device or dtype that would move or cast them is refused unless
        ``take_ownership``."""
        check_borrowed({k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder")}, device, dtype,
                       take_ownership=take_ownership)
        return cls(**{k: getattr(pipe, k) for k in SD_COMPONENTS}, device=device or pipe.unet.device,
                   dtype=dtype or pipe.unet.dtype)

    def embed(self, conditions: Sequence[str]) -> torch.Tensor:
        if not all(isinstance(c, str) for c in conditions):
            raise TypeError("Stable Diffusion conditions are prompts (str); build them with datasets.prompts().")
        tokens = self.tokenizer(list(conditions), padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, rows=None) -> torch.Tensor:
        with nullcontext() if self.prefix is None else self.prefix.share(x_t, t, rows):
            return self.unet(x_t.to(self.dtype), t, encoder_hidden_states=cond).sample.float()
