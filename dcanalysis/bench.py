"""Speed benchmark of the evaluation loop, with a same-run reference (issue: fast evaluation engine).

    python -m dcanalysis.bench --out data/results/bench_h100.json

Measures in one run: a bf16 matmul's TFLOP/s (the reference); evaluations/s and TFLOP/s of the SD-2-base UNet
at 512 and 256 px and of DiT-XL/2 at 256 px, eager and torch.compile'd, each as a ratio to the matmul; seconds
per image end to end (PIL image in, result out) for the paper's Pets schedule (37 classes, 2,050 evaluations)
and for DiT over 1,000 classes; peak GPU memory. All models have random weights: they cost the same FLOPs as
trained ones, and no accuracy is measured here. ``--tiny`` runs the same code on tiny configs (CPU tests).

    python -m dcanalysis.bench --sweep --batches 64 128 --out data/results/bench_sweep_h100.json

times only the 512 px UNet, at each batch size, eager, compiled, and compiled with CUDA graphs: what the
optimised loop could still gain from batch and launch overhead, against the same-run matmul.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .classifier import ClassifierConfig, DiffusionClassifier
from .schedules import PAPER_PETS, Schedule


def sd2_base_unet(tiny: bool):
    from diffusers import UNet2DConditionModel

    if tiny:
        return UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8, norm_num_groups=8)
    # stabilityai/stable-diffusion-2-base unet/config.json, written out so no download is needed.
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, use_linear_projection=True,
    )


def dit_xl_2(tiny: bool):
    from diffusers import DiTTransformer2DModel

    if tiny:
        return DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                     sample_size=8, patch_size=2, num_embeds_ada_norm=1000)
    return DiTTransformer2DModel(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8,
                                 num_layers=28, sample_size=32, patch_size=2, num_embeds_ada_norm=1000)


def sd_vae(tiny: bool):
    from diffusers import AutoencoderKL

    if tiny:
        return AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8)
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512)


def clip_text_encoder(tiny: bool):
    from transformers import CLIPTextConfig, CLIPTextModel

    if tiny:
        return CLIPTextModel(CLIPTextConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                            num_attention_heads=4, max_position_embeddings=77))
    # OpenCLIP ViT-H/14 text tower as used by SD 2.x (23 layers used).
    return CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                        num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu"))


VARIANTS = ("eager", "compiled", "compiled+graphs")


def optimise(model, *, fuse_qkv: bool = True, cuda_graphs: bool = False):
    """torch.compile for one static shape, with the projections of each attention fused into one matmul.

    ``dynamic=False``: a second input shape (another resolution or batch) gets its own specialised graph instead
    of one generic graph for all shapes, which ran 256 px slower than eager-plus-20 % in an earlier run. 1x1
    convolutions become matmuls (inductor's ``conv_1x1_as_mm``), which can then fuse with their neighbours.
    ``cuda_graphs`` replays each compiled graph as one CUDA graph (what ``mode="reduce-overhead"`` does; as an
    option here because a mode and options cannot be given together): it removes kernel-launch gaps.
    """
    if fuse_qkv and hasattr(model, "fuse_qkv_projections"):
        model.fuse_qkv_projections()
    # per compile, not inductor's process-wide config: other compiles in the process stay as they were
    return torch.compile(model, dynamic=False, options={"conv_1x1_as_mm": True, "triton.cudagraphs": cuda_graphs})


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn, *, device, warmup: int = 2, iters: int = 5) -> float:
    """Seconds per call, after warm-up (which includes compilation for compiled modules)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def matmul_tflops(device, dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    s = time_calls(lambda: a @ b, device=device, warmup=3, iters=10)
    return 2 * n**3 / s / 1e12


def flops_per_call(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def bench_model(name, model, make_inputs, *, batch, device, dtype, ref_tflops, compile_model: bool,
                variants: tuple[str, ...] = VARIANTS[:2]) -> list[dict]:
    """One row per variant (names from ``VARIANTS``; compiled ones only when ``compile_model``) at one batch."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}.")
    model = model.to(device=device, dtype=dtype).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last) if "unet" in name else model
    with torch.no_grad():
        one = make_inputs(1)
        flops = flops_per_call(lambda: model(**one))
        rows = []
        built = {"eager": lambda: model, "compiled": lambda: optimise(model),
                 "compiled+graphs": lambda: optimise(model, cuda_graphs=True)}
        inputs = make_inputs(batch)
        for variant in variants:
            if variant != "eager" and not compile_model:
                continue
            m = built[variant]()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            m(**inputs)
            sync(device)
            first_call = time.perf_counter() - t0
            s = time_calls(lambda m=m: m(**inputs), device=device)
            evals = batch / s
            tflops = flops * evals / 1e12
            rows.append({"model": name, "variant": variant, "batch": batch, "gflop_per_eval": flops / 1e9,
                         "evals_per_s": evals, "tflops": tflops, "ratio_to_matmul": tflops / ref_tflops,
                         "first_call_s": first_call,
                         "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None})
            print(f"{name:14s} {variant:8s} batch {batch:4d}: {evals:8.1f} evals/s {tflops:7.1f} TFLOP/s "
                  f"({100 * tflops / ref_tflops:5.1f}% of matmul), first call {first_call:.1f} s")
    return rows


def end_to_end(*, tiny, device, dtype, compile_model, batch, save, share_prefix=False) -> list[dict]:
    """Seconds per image from a PIL image, for the Pets schedule (SD) and 1,000 ImageNet classes (DiT)."""
    from diffusers import DDPMScheduler

    from .adapters import DiTAdapter, StableDiffusionAdapter
    from .adapters.tokenizers import byte_level_clip_tokenizer

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tok = byte_level_clip_tokenizer(Path(tmp) / "tok")
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    prompts = [f"a photo of a pet number {i}, a type of pet." for i in range(37)]
    for share in (False, True) if share_prefix else (False,):
        sd = StableDiffusionAdapter(unet=sd2_base_unet(tiny), vae=sd_vae(tiny), text_encoder=clip_text_encoder(tiny),
                                    tokenizer=tok, scheduler=sched, device=device, dtype=dtype, share_prefix=share)
        if compile_model:
            sd.unet = optimise(sd.unet)
        image = Image.fromarray(rng.integers(0, 255, (sd.resolution, sd.resolution, 3), dtype=np.uint8))
        clf = DiffusionClassifier(sd, ClassifierConfig(schedule=PAPER_PETS, batch_size=batch,
                                                       static_shapes=compile_model))
        clf.classify(image, prompts, image_index=0)  # warm-up: compilation and prompt embedding (cached per run)
        sync(device)
        t0 = time.perf_counter()
        r = clf.classify(image, prompts, image_index=1)
        sync(device)
        s = time.perf_counter() - t0
        rows.append({"task": "Pets schedule, SD-2-base" + (", shared prefix" if share else ""),
                     "resolution": sd.resolution, "evaluations": r.n_evaluations, "seconds_per_image": s,
                     "compiled": compile_model, "shared_prefix": share})
        print(f"Pets schedule end to end{' (shared prefix)' if share else ''}: {s:.2f} s/image, "
              f"{r.n_evaluations} evaluations")
        save(rows)
    del sd, clf
    dit = DiTAdapter(transformer=dit_xl_2(tiny), vae=sd_vae(tiny), scheduler=DDPMScheduler(), device=device, dtype=dtype)
    if compile_model:
        dit.transformer = optimise(dit.transformer)
    schedule = Schedule.from_lists((25, 250), (10, 1))  # 1,000 classes x 25, keep 10, then 225 more
    image = Image.fromarray(rng.integers(0, 255, (dit.resolution, dit.resolution, 3), dtype=np.uint8))
    clf = DiffusionClassifier(dit, ClassifierConfig(schedule=schedule, batch_size=4 * batch,
                                                        static_shapes=compile_model))
    clf.classify(image, range(1000), image_index=0)
    sync(device)
    t0 = time.perf_counter()
    r = clf.classify(image, range(1000), image_index=1)
    sync(device)
    s = time.perf_counter() - t0
    rows.append({"task": "ImageNet 1,000 classes, DiT-XL/2, schedule 25->10->250", "resolution": dit.resolution,
                 "evaluations": r.n_evaluations, "seconds_per_image": s, "compiled": compile_model})
    print(f"DiT 1,000 classes end to end: {s:.2f} s/image, {r.n_evaluations} evaluations")
    return rows


def end_to_end_rows(results: dict, paper: dict) -> list[dict]:
    """One row per end-to-end task of a benchmark JSON, each beside the paper's figure for that task (reference
    data from ``data/paper/li2023.json``; none for our own variants such as the shared prefix)."""
    pets, dit = paper["pets_adaptive_schedule"], paper["imagenet_dit_seconds_per_image"]
    rows = []
    for r in results.get("end_to_end", []):
        if r["task"].startswith("Pets"):
            ref = f"{pets['seconds_per_image']} s on an {pets['gpu']}" if not r.get("shared_prefix") else ""
        else:
            ref = f"about {dit['value']:,} s ({dit['note']})"
        rows.append({"task": r["task"], "px": r["resolution"], "evaluations": r["evaluations"],
                     "ours (s/image)": round(r["seconds_per_image"], 2), "paper (reference)": ref})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark the Diffusion Classifier evaluation loop.")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (e.g. data/results/bench_h100.json)")
    p.add_argument("--tiny", action="store_true", help="tiny configs (a CPU smoke run, numbers meaningless)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--fp32", action="store_true", help="float32 instead of bfloat16")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--no-end-to-end", action="store_true")
    p.add_argument("--share-prefix", action="store_true",
                   help="also time the Pets schedule with the condition-independent prefix computed once per trial")
    p.add_argument("--sweep", action="store_true",
                   help="only the 512 px UNet, at each of --batches, eager / compiled / compiled with CUDA graphs")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 128], help="batch sizes of --sweep")
    a = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if a.fp32 or device.type == "cpu" else torch.bfloat16
    torch.backends.cuda.matmul.allow_tf32 = True
    compile_model = not a.no_compile and device.type == "cuda"
    ref = matmul_tflops(device, dtype, 256 if a.tiny else 8192)
    print(f"reference: {ref:.1f} TFLOP/s for a {dtype} matmul on {device}")
    ctx = lambda b, d: torch.randn(b, 77, d, device=device, dtype=dtype)  # noqa: E731
    tiny = a.tiny
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "dtype": str(dtype), "tiny": tiny, "matmul_tflops": ref,
               "command": "python -m dcanalysis.bench " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
               "note": "random weights: speed only, never accuracy", "models": [], "end_to_end": []}
    import diffusers
    results["diffusers"] = diffusers.__version__

    def save(**extra):
        """Write what is measured so far: a run cut short by a time limit still leaves its numbers."""
        results.update(extra)
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(results, indent=1))
    def unet_inputs(unet, latent):
        size, cd = (4 if tiny else latent), unet.config.cross_attention_dim
        return lambda b: {"sample": torch.randn(b, 4, size, size, device=device, dtype=dtype),
                          "timestep": torch.full((b,), 500, device=device), "encoder_hidden_states": ctx(b, cd)}

    if a.sweep:
        results["sweep"] = True
        for b in a.batches:  # a fresh model per batch: each compiled graph is specialised to its batch anyway
            unet = sd2_base_unet(tiny)
            results["models"] += bench_model("sd2-unet-512", unet, unet_inputs(unet, 64), batch=b, device=device,
                                             dtype=dtype, ref_tflops=ref, compile_model=compile_model,
                                             variants=VARIANTS)
            del unet
            if device.type == "cuda":
                torch.cuda.empty_cache()
            save()
        return results
    for px, lat in ((512, 64), (256, 32)):
        unet = sd2_base_unet(tiny)
        results["models"] += bench_model(f"sd2-unet-{px}", unet, unet_inputs(unet, lat), batch=a.batch, device=device,
                                         dtype=dtype, ref_tflops=ref, compile_model=compile_model)
        del unet
        save()
    dit = dit_xl_2(tiny)
    s = dit.config.sample_size
    mk = lambda b: {"hidden_states": torch.randn(b, 4, s, s, device=device, dtype=dtype),  # noqa: E731
                    "timestep": torch.full((b,), 500, device=device), "class_labels": torch.arange(b, device=device) % 1000}
    results["models"] += bench_model("dit-xl-2-256", dit, mk, batch=4 * a.batch, device=device, dtype=dtype,
                                     ref_tflops=ref, compile_model=compile_model)
    del dit
    save()
    if not a.no_end_to_end:
        results["end_to_end"] = end_to_end(tiny=tiny, device=device, dtype=dtype, compile_model=compile_model,
                                           batch=a.batch, save=lambda rows: save(end_to_end=rows),
                                           share_prefix=a.share_prefix)
    if device.type == "cuda":
        results["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    save()
    return results


if __name__ == "__main__":
    main()
