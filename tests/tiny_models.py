"""Tiny randomly initialised diffusers components, built in memory (no download), for the tests."""
from __future__ import annotations

from pathlib import Path

import torch


def tiny_clip_tokenizer(folder: Path):
    from dcanalysis.adapters.tokenizers import byte_level_clip_tokenizer

    return byte_level_clip_tokenizer(folder, model_max_length=16)


def tiny_sd_components(tmp: Path, *, seed: int = 0, prediction_type: str = "epsilon") -> dict:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, sample_size=16,
    )
    tokenizer = tiny_clip_tokenizer(tmp / "tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type=prediction_type)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def save_sd_folder(components: dict, folder: Path) -> Path:
    for name, obj in components.items():
        obj.save_pretrained(str(folder / name))
    return folder


def tiny_dit_components(*, seed: int = 0, num_classes: int = 10) -> dict:
    from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel

    torch.manual_seed(seed)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
        sample_size=8, patch_size=2, num_embeds_ada_norm=num_classes, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, sample_size=16,
    )
    return dict(transformer=transformer, vae=vae, scheduler=DDPMScheduler())


def tiny_pixel_unet(*, seed: int = 0, num_classes: int = 10, channels: int = 1, sample_size: int = 16):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, num_class_embeds=num_classes,
    )


def tiny_caption_bank(seed: int = 0, dim: int = 384):
    """Every scene caption with random token states (the real bank needs the MiniLM encoder)."""
    from dcanalysis.lab import scenes
    from dcanalysis.lab.text import NULL_CAPTION, CaptionBank

    caps = [NULL_CAPTION] + scenes.all_captions()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([2 + len(c.split()) if c else 2 for c in caps])
    mask = torch.arange(12)[None, :] < lengths[:, None]
    hidden = torch.randn(len(caps), 12, dim, generator=g) * mask[..., None]
    return CaptionBank(caps, hidden, mask, source="random")


def tiny_text_unet(seed: int = 0, dim: int = 384):
    from dcanalysis.lab.models import TextUNetConfig

    torch.manual_seed(seed)
    return TextUNetConfig(block_out_channels=(32, 32), cross_attention=(False, True), text_dim=dim,
                          head_dim=8).build()


def tiny_scene_root(root: Path) -> Path:
    """A models folder with a random scenes_unet, scenes_clip and caption bank, laid out like data/models."""
    import json

    from safetensors.torch import save_file

    from dcanalysis.lab.models import SceneCLIP

    (root / "scenes_text").mkdir(parents=True, exist_ok=True)
    tiny_caption_bank().save(root / "scenes_text" / "caption_bank.safetensors")
    tiny_text_unet().save_pretrained(str(root / "scenes_unet"))
    torch.manual_seed(1)
    (root / "scenes_clip").mkdir(exist_ok=True)
    save_file(SceneCLIP().state_dict(), str(root / "scenes_clip" / "model.safetensors"))
    for name in ("scenes_unet", "scenes_clip"):
        (root / name / "model_card.json").write_text(json.dumps({"name": name, "note": "random test weights"}))
    return root
