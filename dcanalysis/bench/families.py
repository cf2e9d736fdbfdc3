"""Full-size denoisers of today's model families with random weights, for speed rows only (issue: model
families): the SDXL base UNet at 1024 px, the SD 3.5-medium MMDiT at 1024 px and the Flux.1-schnell transformer at
1024 px, each with the inputs its pipeline gives it. The configurations are written out from the published
``config.json`` files so no download is needed; the benchmark prints each model's parameter count beside the
published size (2.6 B, 2.5 B, 12 B) as a check. Random weights cost the same FLOPs as trained ones and say
nothing about accuracy. ``tiny=True`` gives small models of the same classes for CPU tests.
"""
from __future__ import annotations

from typing import Callable

import torch

Inputs = Callable[[int], dict]


def sdxl_unet(tiny: bool, device, dtype) -> tuple[torch.nn.Module, Inputs]:
    from diffusers import UNet2DConditionModel

    if tiny:
        cfg = dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=(2, 4),
                   transformer_layers_per_block=(1, 2), cross_attention_dim=64, addition_time_embed_dim=8,
                   projection_class_embeddings_input_dim=80, norm_num_groups=8)
    else:  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
        cfg = dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                   attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
                   addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
    with torch.device(device):
        unet = UNet2DConditionModel(in_channels=4, out_channels=4, use_linear_projection=True,
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")[-len(cfg["block_out_channels"]):],
                                    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")[:len(cfg["block_out_channels"])],
                                    addition_embed_type="text_time", **cfg)
    pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    s = cfg["sample_size"]

    def inputs(b: int) -> dict:
        return {"sample": torch.randn(b, 4, s, s, device=device, dtype=dtype),
                "timestep": torch.randint(0, 1000, (b,), device=device),
                "encoder_hidden_states": torch.randn(b, 77, cfg["cross_attention_dim"], device=device, dtype=dtype),
                "added_cond_kwargs": {"text_embeds": torch.randn(b, pooled, device=device, dtype=dtype),
                                      "time_ids": torch.tensor([[8 * s, 8 * s, 0, 0, 8 * s, 8 * s]] * b,
                                                               device=device, dtype=dtype)}}
    return unet, inputs


def sd35_medium_transformer(tiny: bool, device, dtype) -> tuple[torch.nn.Module, Inputs]:
    from diffusers import SD3Transformer2DModel

    if tiny:
        cfg = dict(sample_size=8, num_layers=2, attention_head_dim=8, num_attention_heads=4, joint_attention_dim=32,
                   caption_projection_dim=32, pooled_projection_dim=64, pos_embed_max_size=16,
                   dual_attention_layers=(0,))
        tokens = 12
    else:  # stabilityai/stable-diffusion-3.5-medium transformer/config.json
        cfg = dict(sample_size=128, num_layers=24, attention_head_dim=64, num_attention_heads=24,
                   joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048,
                   pos_embed_max_size=384, dual_attention_layers=tuple(range(13)))
        tokens = 77 + 256  # CLIP's 77 and T5's 256 (the pipeline's max_sequence_length)
    with torch.device(device):
        model = SD3Transformer2DModel(patch_size=2, in_channels=16, out_channels=16, qk_norm="rms_norm", **cfg)
    s = cfg["sample_size"]

    def inputs(b: int) -> dict:
        return {"hidden_states": torch.randn(b, 16, s, s, device=device, dtype=dtype),
                "timestep": torch.rand(b, device=device) * 1000,
                "encoder_hidden_states": torch.randn(b, tokens, cfg["joint_attention_dim"], device=device, dtype=dtype),
                "pooled_projections": torch.randn(b, cfg["pooled_projection_dim"], device=device, dtype=dtype)}
    return model, inputs


def flux_schnell_transformer(tiny: bool, device, dtype) -> tuple[torch.nn.Module, Inputs]:
    from diffusers import FluxTransformer2DModel

    if tiny:
        cfg = dict(num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                   joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
        side, tokens = 4, 8
    else:  # black-forest-labs/FLUX.1-schnell transformer/config.json
        cfg = dict(num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                   joint_attention_dim=4096, pooled_projection_dim=768, axes_dims_rope=(16, 56, 56))
        side, tokens = 64, 256  # 1024 px: 128x128 latents packed 2x2; schnell's max_sequence_length 256
    with torch.device(device):
        model = FluxTransformer2DModel(patch_size=1, in_channels=64, guidance_embeds=False, **cfg)
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).to(device, dtype)

    def inputs(b: int) -> dict:
        return {"hidden_states": torch.randn(b, side * side, 64, device=device, dtype=dtype),
                "timestep": torch.rand(b, device=device),
                "encoder_hidden_states": torch.randn(b, tokens, cfg["joint_attention_dim"], device=device, dtype=dtype),
                "pooled_projections": torch.randn(b, cfg["pooled_projection_dim"], device=device, dtype=dtype),
                "txt_ids": torch.zeros(tokens, 3, device=device, dtype=dtype), "img_ids": img_ids}
    return model, inputs


# name -> (builder, published parameter count in billions, the size it runs at)
FAMILIES = {
    "sdxl-unet-1024": (sdxl_unet, 2.6, 1024),
    "sd3.5-medium-1024": (sd35_medium_transformer, 2.5, 1024),
    "flux-schnell-1024": (flux_schnell_transformer, 12.0, 1024),
}
