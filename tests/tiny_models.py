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


# -- the model families of today (adapters/sdxl, sd3, flux, pixart): tiny pipelines built in memory ---------------

def _clip(tokenizer, *, hidden: int = 32, projection: int | None = None, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         projection_dim=projection or hidden)
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def _t5(tokenizer, *, d_model: int = 32, seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def _vae(latent_channels: int = 4, **scaling):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(16, 32),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=8, sample_size=16, **scaling)


def tiny_sd3_pipeline(tmp: Path, *, drop_t5: bool = False):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    from dcanalysis.adapters.tokenizers import char_level_t5_tokenizer

    tok = tiny_clip_tokenizer(tmp / "sd3_tokenizer")
    t5_tok = char_level_t5_tokenizer(model_max_length=32)
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                                        pooled_projection_dim=64, out_channels=4)
    return StableDiffusion3Pipeline(
        transformer=transformer, vae=_vae(shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=_clip(tok, projection=32), tokenizer=tok, text_encoder_2=_clip(tok, projection=32, seed=1),
        tokenizer_2=tok, text_encoder_3=None if drop_t5 else _t5(t5_tok), tokenizer_3=None if drop_t5 else t5_tok,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def tiny_flux_pipeline(tmp: Path, *, guidance_embeds: bool = True):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from dcanalysis.adapters.tokenizers import char_level_t5_tokenizer

    tok = tiny_clip_tokenizer(tmp / "flux_tokenizer")
    t5_tok = char_level_t5_tokenizer(model_max_length=32)
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=(4, 6, 6),
                                         guidance_embeds=guidance_embeds)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(transformer=transformer, vae=_vae(shift_factor=0.1159, scaling_factor=0.3611),
                        text_encoder=_clip(tok), tokenizer=tok, text_encoder_2=_t5(t5_tok), tokenizer_2=t5_tok,
                        scheduler=scheduler)


def tiny_sdxl_pipeline(tmp: Path):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok = tiny_clip_tokenizer(tmp / "sdxl_tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionXLPipeline(unet=unet, vae=_vae(scaling_factor=0.13025), text_encoder=_clip(tok),
                                     tokenizer=tok, text_encoder_2=_clip(tok, projection=32, seed=1), tokenizer_2=tok,
                                     scheduler=scheduler)


def tiny_pixart_pipeline(tmp: Path):
    from diffusers import DDPMScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    from dcanalysis.adapters.tokenizers import char_level_t5_tokenizer

    t5_tok = char_level_t5_tokenizer(model_max_length=32)
    torch.manual_seed(0)
    transformer = PixArtTransformer2DModel(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                                           num_attention_heads=3, caption_channels=32, in_channels=4,
                                           cross_attention_dim=24, out_channels=8, attention_bias=True,
                                           activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                                           norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    return PixArtAlphaPipeline(tokenizer=t5_tok, text_encoder=_t5(t5_tok), vae=_vae(), transformer=transformer,
                               scheduler=DDPMScheduler())


class SelfAttention(torch.nn.Module):
    """One head-split self-attention over a (B, N, C) sequence, through scaled_dot_product_attention."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.qkv, self.heads, self.note = torch.nn.Linear(channels, 3 * channels), heads, "the network's own"

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
