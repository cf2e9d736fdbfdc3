"""Adapter for pixel-space class-conditional UNets: our lab-scale models (a diffusers ``UNet2DModel`` with a
class embedding, trained by ``dcanalysis.lab.train``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from .base import place_module
from ..images import ImageSource, load_image, pad_to
from ..processes import DDPM


class PixelAdapter:
    """x_0 is the image itself, zero-padded (with -1, black) from ``image_size`` to the UNet's ``sample_size``.

    Conditions are class indices 0..num_classes-1. The network predicts eps under DDPM's linear schedule (how
    ``dcanalysis.lab.train`` trains it) unless another ``process`` is given.
    """

    def __init__(self, unet, *, image_size: int, process: DDPM | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.unet = place_module(unet, device, dtype)
        self.image_size = image_size
        self.channels = unet.config.in_channels
        self.sample_size = unet.config.sample_size
        self.num_classes = unet.config.num_class_embeds
        if self.num_classes is None:
            raise ValueError("this UNet has no class embedding (num_class_embeds is None); it cannot be class-conditional.")
        self.process = process or DDPM()
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, image_size: int, device="cpu", dtype=torch.float32) -> "PixelAdapter":
        from diffusers import UNet2DModel

        # loaded in its dtype (a cast afterwards makes diffusers warn, and holds a float32 copy first)
        return cls(UNet2DModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype), image_size=image_size,
                   device=device, dtype=dtype)

    @classmethod
    def from_lab_folder(cls, folder: str | Path, *, device="cpu", dtype=torch.float32) -> "PixelAdapter":
        """A UNet as ``dcanalysis.lab.train`` writes it: weights, ``config.json`` and ``model_card.json``, whose
        ``image_size`` (absent in the shipped cards, and without a card: the lab's 28 px datasets) is the size images
        are read at."""
        card_file = Path(folder) / "model_card.json"
        card = json.loads(card_file.read_text()) if card_file.is_file() else {}
        return cls.from_pretrained(folder, image_size=card.get("image_size", 28), device=device, dtype=dtype)

    def load(self, source: ImageSource) -> torch.Tensor:
        return load_image(source, size=self.image_size, mode="L" if self.channels == 1 else "RGB")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels}-channel images, got shape {tuple(images.shape)}.")
        return pad_to(images.float(), self.sample_size)

    def embed(self, conditions: Sequence) -> torch.Tensor:
        idx = []
        for c in conditions:
            if not 0 <= int(c) < self.num_classes:
                raise ValueError(f"class index {c} is out of range; this model knows classes 0..{self.num_classes - 1}.")
            idx.append(int(c))
        return torch.tensor(idx, dtype=torch.long)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, rows=None) -> torch.Tensor:
        return self.unet(x_t.to(self.dtype), self.process.model_time(t), class_labels=cond).sample.float()
