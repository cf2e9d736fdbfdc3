"""Architectures of the lab-scale models: a class-conditional pixel UNet and three discriminative baselines.

All models see the same input: a 28x28 image zero-padded with -1 to 32x32, scaled to [-1, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class UNetConfig:
    """A diffusers UNet2DModel with a class embedding (``num_class_embeds``): eps_theta(x_t, t, c)."""

    block_out_channels: tuple[int, ...] = (64, 128, 128)
    attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 2
    sample_size: int = 32
    channels: int = 1
    num_classes: int = 10

    def build(self):
        from diffusers import UNet2DModel

        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in self.attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.attention))
        return UNet2DModel(
            sample_size=self.sample_size, in_channels=self.channels, out_channels=self.channels,
            block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
            down_block_types=down, up_block_types=up, num_class_embeds=self.num_classes,
            norm_num_groups=min(32, self.block_out_channels[0]),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TextUNetConfig:
    """A diffusers UNet2DConditionModel (Stable Diffusion's UNet family) in pixel space, cross-attending to a
    frozen text encoder's token states; ``cross_attention`` marks the levels with (self- and cross-) attention."""

    block_out_channels: tuple[int, ...] = (64, 128, 128)
    cross_attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1
    sample_size: int = 32
    channels: int = 3
    text_dim: int = 384
    head_dim: int = 32

    def build(self):
        from diffusers import UNet2DConditionModel

        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.cross_attention)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.cross_attention))
        return UNet2DConditionModel(
            sample_size=self.sample_size, in_channels=self.channels, out_channels=self.channels,
            block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
            down_block_types=down, up_block_types=up, cross_attention_dim=self.text_dim,
            attention_head_dim=self.head_dim, norm_num_groups=min(32, self.block_out_channels[0]),
        )

    def to_dict(self) -> dict:
        return asdict(self)


TEXT_UNET_SIZES = {
    # "pilot" trains on 2 CPU cores in tens of minutes; "base" (7.2 M parameters, 14 MB in fp16) is the GPU model
    "pilot": TextUNetConfig(block_out_channels=(32, 64, 64), cross_attention=(False, False, True)),
    "base": TextUNetConfig(),
}


UNET_SIZES = {
    "small": UNetConfig(block_out_channels=(32, 64, 64), attention=(False, False, True)),
    "base": UNetConfig(),
}


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head (about 0.06 M parameters): the classic MNIST baseline."""

    def __init__(self, num_classes: int = 10, channels: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class ResNet(nn.Module):
    """A ResNet-18-style network for 32x32 inputs (widths 32-256, about 2.8 M parameters)."""

    def __init__(self, num_classes: int = 10, channels: int = 1, widths=(32, 64, 128, 256)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class ViT(nn.Module):
    """A small Vision Transformer: 4x4 patches, 6 layers of width 192 (about 2.7 M parameters)."""

    def __init__(self, num_classes: int = 10, channels: int = 1, size: int = 32, patch: int = 4, dim: int = 192,
                 depth: int = 6, heads: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.pos
        return self.head(self.norm(self.encoder(h))[:, 0])


CLASSIFIER_ARCHS = {"cnn": SmallCNN, "resnet": ResNet, "vit": ViT}


def build_classifier(arch: str, **kwargs) -> nn.Module:
    try:
        return CLASSIFIER_ARCHS[arch](**kwargs)
    except KeyError:
        raise ValueError(f"unknown classifier architecture {arch!r}; choose one of {sorted(CLASSIFIER_ARCHS)}.") from None


class SceneCLIP(nn.Module):
    """The contrastive baseline: an image tower and a text head on the same frozen token states.

    Image: a ResNet trunk (``ResNet`` above, RGB) projected to ``dim``. Text (``text_tower``):
    ``"attention"``: one trainable transformer layer over the frozen token states, mean-pooled over real tokens,
    projected to ``dim``; ``"pooled"``: the frozen sentence embedding (mean of the token states, as
    sentence-transformers pools) through a trainable MLP, an ablation in which the trainable part never sees the
    tokens one by one. Score = scaled cosine.
    """

    def __init__(self, dim: int = 256, text_dim: int = 384, widths=(32, 64, 128, 256), text_tower: str = "attention"):
        super().__init__()
        if text_tower not in ("attention", "pooled"):
            raise ValueError(f"text_tower must be 'attention' or 'pooled', got {text_tower!r}.")
        self.text_tower = text_tower
        self.image_trunk = ResNet(num_classes=dim, channels=3, widths=widths)
        if text_tower == "attention":
            self.text_layer = nn.TransformerEncoderLayer(text_dim, 4, 2 * text_dim, dropout=0.0, batch_first=True,
                                                         norm_first=True)
            self.text_proj = nn.Linear(text_dim, dim)
        else:
            self.text_proj = nn.Sequential(nn.Linear(text_dim, 2 * text_dim), nn.GELU(), nn.Linear(2 * text_dim, dim))
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's initial temperature

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, dim) unit vectors."""
        return F.normalize(self.image_trunk(x), dim=-1)

    def encode_text(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token states (K, L, D) and mask (K, L) bool -> (K, dim) unit vectors."""
        h = self.text_layer(hidden, src_key_padding_mask=~mask) if self.text_tower == "attention" else hidden
        m = mask.to(h.dtype)[..., None]
        return F.normalize(self.text_proj((h * m).sum(1) / m.sum(1).clamp_min(1)), dim=-1)

    def forward(self, x, hidden, mask) -> torch.Tensor:
        """Logits (B, K) between B images and K captions."""
        return self.logit_scale.exp().clamp(max=100) * self.encode_image(x) @ self.encode_text(hidden, mask).T
