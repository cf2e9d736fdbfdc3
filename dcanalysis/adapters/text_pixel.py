"""Adapter for pixel-space text-conditional UNets: our scene lab model (a diffusers ``UNet2DConditionModel``, the
architecture family of Stable Diffusion's UNet, cross-attending to a frozen text encoder's token states)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import torch

from .base import place_module
from ..images import ImageSource, load_image
from ..processes import DDPM

# captions -> (token states (K, L, D), attention mask (K, L) bool): a ``TokenEncoder`` or a ``CaptionBank``
CaptionEncoder = Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]]


class TextPixelAdapter:
    """x_0 is the RGB image in [-1, 1] at the UNet's ``sample_size``; conditions are captions (str)."""

    takes_prompts = True

    def __init__(self, unet, encode: CaptionEncoder, *, process: DDPM | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.unet = place_module(unet, device, dtype)
        # dcanalysis.engine.prefix_sharing.share_prefix sets these: the condition-independent first layers then run
        # once per noisy sample
        self.prefix = None
        self.uses_row_groups = False
        self.encode_captions = encode
        self.channels = unet.config.in_channels
        self.sample_size = unet.config.sample_size
        self.process = process or DDPM()  # eps under DDPM's linear schedule, as lab.train_scenes trains it
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_pretrained(cls, folder: str | Path, encode: CaptionEncoder, *, device="cpu",
                        dtype=torch.float32) -> "TextPixelAdapter":
        from diffusers import UNet2DConditionModel

        return cls(UNet2DConditionModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype), encode,
                   device=device, dtype=dtype)

    def load(self, source: ImageSource) -> torch.Tensor:
        return load_image(source, size=self.sample_size, mode="RGB")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1:] != (self.channels, self.sample_size, self.sample_size):
            raise ValueError(f"expected images of shape (B, {self.channels}, {self.sample_size}, {self.sample_size}), "
                             f"got {tuple(images.shape)}; load files through adapter.load to resize them.")
        return images.float()

    def embed(self, conditions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if not all(isinstance(c, str) for c in conditions):
            raise TypeError("this model's conditions are captions (str).")
        hidden, mask = self.encode_captions(list(conditions))
        return hidden.to(self.device, self.dtype), mask.to(self.device)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor], rows=None) -> torch.Tensor:
        hidden, mask = cond
        with nullcontext() if self.prefix is None else self.prefix.share(x_t, t, rows):
            return self.unet(x_t.to(self.dtype), self.process.model_time(t), encoder_hidden_states=hidden,
                             encoder_attention_mask=mask).sample.float()
