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

    python -m dcanalysis.bench --probe --out data/results/probes/probe.json

profiles the 512 px UNet in each of ``VARIANTS`` (each takes one choice of the compiled engine back) and times
each SDPA back end alone: where the kernel time goes (``gpu_profile``).

The reference matmul and every model are timed for ``--seconds`` back to back, so both run at the clock the
GPU holds under its power limit; the matmul's ten-product burst rate is recorded beside it (``ratio_to_burst_matmul``).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..engine.batching import Batched
from ..engine.prefix_sharing import share_prefix as share_prefix_of
from ..engine.compile import compile_adapter, optimise, set_fused_qkv
from ..schedules import PAPER_PETS, Schedule
from .timing import matmul_tflops, sync, time_calls, warm_then_time


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


# name -> how the model runs: torch.compile or not, and the options of ``optimise``. "compiled" is the default
# engine; the others each take one of its choices back, so a probe can tell what each choice is worth.
VARIANTS = {
    "eager": dict(compile=False, fuse_qkv=False),
    "eager, fused qkv": dict(compile=False, fuse_qkv=True),
    "compiled": dict(compile=True),
    "compiled+graphs": dict(compile=True, cuda_graphs=True),
    "compiled, 1x1 as conv": dict(compile=True, conv_1x1_as_mm=False),
    "compiled, unfused qkv": dict(compile=True, fuse_qkv=False),
    "compiled, shared prefix": dict(compile=True, share_prefix=True),
    "compiled, repeated blocks": dict(compile=True, regional=True),  # regional compilation: shorter first call
    # options beyond the default engine, each tried alone
    "compiled, frozen": dict(compile=True, freezing=True),
    "compiled, tuned pointwise": dict(compile=True, tune_pointwise=True),
    # the two that each gained on the classifier's calls (issue 21), together
    "compiled+graphs, tuned pointwise": dict(compile=True, cuda_graphs=True, tune_pointwise=True),
    "compiled, fp8 linear": dict(compile=True, fp8_linear=True),  # not bf16 arithmetic any more: reported apart
}


def run_variant(model, variant: str, attention: str | None = None):
    """The callable that runs ``model`` as ``VARIANTS[variant]`` says; a compiled one with its SDPA backend pinned
    to ``attention`` (``engine.optimise``), which a context around the first call would not do reliably: inductor's
    graph cache would hand back a graph traced under another backend."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}.")
    opts = dict(VARIANTS[variant])
    share = opts.pop("share_prefix", False)
    if not opts.pop("compile"):
        set_fused_qkv(model, opts["fuse_qkv"])
        return model
    if opts.get("fp8_linear") or opts.get("regional"):
        model = copy.deepcopy(model)  # both change the model in place; later variants need the original
    fn = optimise(model, **opts, attention=attention)
    return with_shared_prefix(model, fn) if share else fn


def with_shared_prefix(model, fn):
    """``fn`` (``model``, compiled or not) with the condition-independent prefix computed once per run of identical
    (sample, timestep) rows (``prefix_sharing``). The runs are found on the first call and kept: a benchmark feeds
    the same batch every time. ``.sharing.remove()`` takes the hooks off again."""
    from ..engine.prefix_sharing import PrefixSharing, runs_of_identical_rows

    sharing, runs = PrefixSharing(model), []

    def call(**inputs):
        x, t = inputs["sample"], inputs["timestep"]
        if not runs:
            runs.append(runs_of_identical_rows(x, t))
        with sharing.share(x, t, runs[0]):
            return fn(**inputs)

    call.sharing = sharing
    return call


def output_tensor(out) -> torch.Tensor:
    """The tensor a diffusers model returns (``.sample``), or ``out`` itself."""
    return out.sample if hasattr(out, "sample") else out


def flops_per_call(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def bench_model(name, model, make_inputs, *, batch, device, dtype, ref_tflops, compile_model: bool,
                variants: tuple[str, ...] = ("eager", "compiled"), attention: str | None = None,
                profile: bool = False, seconds: float = 0.0) -> list[dict]:
    """One row per variant (names from ``VARIANTS``; compiled ones only when ``compile_model``) at one batch.

    ``attention``: restrict SDPA to one backend (``attention.ATTENTION_BACKENDS``) while compiling and timing.
    ``profile``: add each variant's time per kernel group (``gpu_profile.breakdown``) to its row.
    ``seconds``: time each variant for at least this long (see ``time_calls``).
    """
    from torch._dynamo.utils import counters

    from . import gpu_profile
    from ..engine.attention import attention_context

    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}.")
    model = model.to(device=device, dtype=dtype).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last) if "unet" in name else model
    with torch.no_grad(), attention_context(attention):
        one = make_inputs(1)
        flops = flops_per_call(lambda: model(**one))
        group_flops = gpu_profile.flops_by_group(lambda: model(**make_inputs(batch))) if profile else None
        rows = []
        inputs = make_inputs(batch)
        reference = output_tensor(model(**inputs)).float()  # eager, as the model came: what every variant must equal
        for variant in variants:
            compiled = VARIANTS[variant]["compile"]
            if compiled and not compile_model:
                continue
            if compiled:
                torch._dynamo.reset()  # no compiled graph is reused across variants, backends or flags
                counters.clear()
            m = run_variant(model, variant, attention)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            out = output_tensor(m(**inputs))
            sync(device)
            first_call = time.perf_counter() - t0
            rel_err = float((out.float() - reference).norm() / reference.norm())
            started = time.time()
            s = time_calls(lambda m=m: m(**inputs), device=device, min_seconds=seconds)
            evals = batch / s
            tflops = flops * evals / 1e12
            row = {"model": name, "variant": variant, "batch": batch, "gflop_per_eval": flops / 1e9,
                   "evals_per_s": evals, "tflops": tflops, "ratio_to_matmul": tflops / ref_tflops,
                   "first_call_s": first_call, "rel_err_vs_eager": rel_err, "timed_from": started, "timed_to": time.time(),
                   "attention": attention or "default",
                   "graphs_compiled": counters["stats"]["unique_graphs"] if compiled else 0,
                   "cudnn_benchmark": torch.backends.cudnn.benchmark,
                   "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}
            print(f"{name:14s} {variant:15s} batch {batch:4d} attention {attention or 'default':9s}"
                  f" cudnn.benchmark {int(torch.backends.cudnn.benchmark)}: {evals:8.1f} evals/s {tflops:7.1f} TFLOP/s "
                  f"({100 * tflops / ref_tflops:5.1f}% of matmul), first call {first_call:.1f} s "
                  f"({row['graphs_compiled']} graphs), "
                  f"|out - eager| / |eager| {rel_err:.1e}")
            if profile and gpu_profile.sees_kernels(VARIANTS[variant]):
                row.update(gpu_profile.breakdown(lambda m=m: m(**inputs), device=device, ref_tflops=ref_tflops,
                                                 flops=group_flops))
                for g in row["groups"]:
                    rate = f"{g['tflops']:7.1f} TFLOP/s ({100 * g['ratio_to_matmul']:5.1f}%)" if g["tflops"] else ""
                    print(f"    {g['group']:9s} {1e3 * g['seconds_per_call']:8.2f} ms/call "
                          f"{100 * g['share_of_time']:5.1f}% of kernel time {g['gflop_per_call']:9.1f} GFLOP {rate}")
                for k in row["top_kernels"][:8]:
                    print(f"      {1e3 * k['seconds_per_call']:7.2f} ms {k['group']:9s} {k['kernel'][:110]}")
                if all(g["gflop_per_call"] for g in row["groups"] if g["group"] != "other"):
                    for h in gpu_profile.headroom_rows(row["groups"], batch=batch, gflop_per_eval=flops / 1e9,
                                                       ref_tflops=ref_tflops):
                        print(f"    if {h['kernels']:45s}: {h['evals/s']:8.1f} evals/s, {h['% of matmul']:5.1f}% of matmul")
            rows.append(row)
            if hasattr(m, "sharing"):
                m.sharing.remove()
    return rows


PETS_PEER_STAGES = ((25, 250), (5, 1))  # the paper's Pets schedule as the official loop's stages


def peer_pets_row(sd, image, prompts, *, device, batch: int = 32) -> dict:
    """Seconds per image of the official repository's loop (``speed.peer``, re-stated) on the same UNet, image and
    prompts: the Pets stages (25 grid timesteps for 37 prompts, keep 5, 250 in all), fp16, eager, ``batch`` rows
    per call (its default 32; None: one call per stage, its fastest where memory allows, halved until it fits)."""
    import copy

    from .peer import peer_classify, rows_per_stage

    unet = copy.deepcopy(sd.unet).half().eval()
    with torch.no_grad():
        embeds = sd.embed(prompts).to(device).half()
        x0 = sd.encode(sd.load(image).unsqueeze(0).to(device))[0].half()
    abar = sd.process.alphas_cumprod.to(device)
    gen = torch.Generator(device).manual_seed(0)
    predict = lambda x_t, t, c: unet(x_t, t.half(), encoder_hidden_states=embeds[c]).sample  # noqa: E731
    (n_samples, to_keep) = PETS_PEER_STAGES
    one_call = max(rows_per_stage(len(abar), len(prompts), n_samples, to_keep))  # rows of the largest stage
    size = [batch or one_call]

    def one(_):
        noise = torch.randn((max(n_samples), *x0.shape), generator=gen, device=device, dtype=torch.float16)
        while True:
            try:
                with torch.inference_mode():
                    return peer_classify(predict, x0, len(prompts), abar, n_samples=n_samples, to_keep=to_keep,
                                         noise=noise, batch_size=size[0])
            except torch.cuda.OutOfMemoryError:
                if batch is not None or size[0] == 1:
                    raise
                size[0] //= 2
                torch.cuda.empty_cache()
    r, s = warm_then_time(one, device=device)
    del unet
    if batch is not None:
        name = f"batch {batch}" + (" (its default)" if batch == 32 else "")
    else:
        name = f"batch {size[0]} " + ("(one call per stage)" if size[0] == one_call else "(the largest that fit)")
    print(f"Pets schedule, the official loop re-stated (fp16 eager, {name}): {s:.2f} s/image, "
          f"{r.n_evaluations} evaluations")
    return {"task": f"Pets schedule, SD-2-base, the official loop re-stated (fp16, eager, {name})", "peer": True,
            "batch": size[0], "resolution": sd.resolution, "evaluations": r.n_evaluations, "seconds_per_image": s,
            "compiled": False}


def end_to_end(*, tiny, device, dtype, compile_model, batch, save, share_prefix=False, dit=True,
               profile=False, images_per_call=1, peer=False) -> list[dict]:
    """Seconds per image from a PIL image, for the Pets schedule (SD) and 1,000 ImageNet classes (DiT).

    ``images_per_call`` above 1: also the Pets schedule over that many images at once (``classify_batch``, what
    ``dcanalysis eval --images-per-batch`` does over a dataset), per image. One image alone leaves each stage's
    last batch part empty (2,112 rows computed for 2,050 evaluations at batch 64); images sharing batches fill it.

    ``peer``: first, the official repository's loop on the same model and image (``peer_pets_row``) at its
    default batch and at one call per stage, the rows every other Pets row is divided by (``end_to_end_rows``).

    ``profile``: also profile one more Pets image, for its kernel time per group (``gpu_profile.breakdown``: GPU
    time beside the wall-clock time says whether the GPU was kept busy) and dynamo's compile counters (graphs
    compiled, recompiles, graph breaks: whether the compiled UNet stayed compiled).
    """
    from diffusers import DDPMScheduler

    from ..adapters import DiTAdapter, StableDiffusionAdapter
    from ..adapters.tokenizers import byte_level_clip_tokenizer

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tok = byte_level_clip_tokenizer(Path(tmp) / "tok")
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    prompts = [f"a photo of a pet number {i}, a type of pet." for i in range(37)]
    for share in (False, True) if share_prefix else (False,):
        sd = StableDiffusionAdapter(unet=sd2_base_unet(tiny), vae=sd_vae(tiny), text_encoder=clip_text_encoder(tiny),
                                    tokenizer=tok, scheduler=sched, device=device, dtype=dtype)
        if share:
            share_prefix_of(sd)
        if compile_model:
            # each configuration compiles from nothing, as each variant of ``bench_model`` does: in one process
            # the two UNets share one forward code object, and the shared run timed after the plain one without a
            # reset was 3 % slower than with it (data/results/logs/gpu_session6_*)
            torch._dynamo.reset()
            compile_adapter(sd)
        image = Image.fromarray(rng.integers(0, 255, (sd.resolution, sd.resolution, 3), dtype=np.uint8))
        if peer and not share:
            for peer_batch in (32, None):  # its default, then its best: one network call per stage
                rows.append(peer_pets_row(sd, image, prompts, device=device, batch=peer_batch))
                save(rows)
        clf = DiffusionClassifier(Batched(sd, static_rows=batch if compile_model else None),
                                  ClassifierConfig(schedule=PAPER_PETS, batch_size=batch))
        r, s = warm_then_time(lambda i: clf.classify(image, prompts, image_index=i), device=device)
        rows.append({"task": "Pets schedule, SD-2-base" + (", shared prefix" if share else ""),
                     "resolution": sd.resolution, "evaluations": r.n_evaluations, "seconds_per_image": s,
                     "compiled": compile_model, "shared_prefix": share})
        print(f"Pets schedule end to end{' (shared prefix)' if share else ''}: {s:.2f} s/image, "
              f"{r.n_evaluations} evaluations")
        if profile:
            from torch._dynamo.utils import counters

            from .gpu_profile import breakdown

            prof = breakdown(lambda: clf.classify(image, prompts, image_index=2), device=device, ref_tflops=1.0,
                             iters=1, flops={})
            rows[-1].update(kernel_seconds=sum(g["seconds_per_call"] for g in prof["groups"]),
                            dynamo_counters={k: dict(v) for k, v in counters.items() if k in ("stats", "recompiles",
                                                                                             "graph_break")}, **prof)
            print(f"    kernel time {rows[-1]['kernel_seconds']:.2f} s of {s:.2f} s: " + ", ".join(
                f"{g['group']} {g['seconds_per_call']:.2f} s" for g in prof["groups"]))
            print(f"    dynamo: {rows[-1]['dynamo_counters']}")
            for k in prof["top_kernels"][:6]:
                print(f"      {k['seconds_per_call']:7.3f} s {k['group']:9s} {k['kernel'][:110]}")
            counters.clear()  # the next configuration's counters start from zero
        if images_per_call > 1:
            images = [Image.fromarray(rng.integers(0, 255, image.size + (3,), dtype=np.uint8))
                      for _ in range(images_per_call)]
            # the warm-up call has the timed call's batch structure (only the noise differs): no compile is timed
            first = (10, 100)  # image indices of the warm-up and the timed call
            rs, s_all = warm_then_time(lambda i: clf.classify_batch(
                images, prompts, image_indices=range(first[i], first[i] + images_per_call)), device=device)
            s_many = s_all / images_per_call
            rows.append({"task": f"Pets schedule, SD-2-base{', shared prefix' if share else ''}, "
                                 f"{images_per_call} images per call",
                         "resolution": sd.resolution, "evaluations": rs[0].n_evaluations, "seconds_per_image": s_many,
                         "compiled": compile_model, "shared_prefix": share, "images_per_call": images_per_call})
            print(f"    {images_per_call} images per call: {s_many:.2f} s/image")
        save(rows)
    del sd, clf
    if not dit:
        return rows
    dit = DiTAdapter(transformer=dit_xl_2(tiny), vae=sd_vae(tiny), scheduler=DDPMScheduler(), device=device, dtype=dtype)
    if compile_model:
        torch._dynamo.reset()
        compile_adapter(dit)
    schedule = Schedule.from_lists((25, 250), (10, 1))  # 1,000 classes x 25, keep 10, then 225 more
    image = Image.fromarray(rng.integers(0, 255, (dit.resolution, dit.resolution, 3), dtype=np.uint8))
    clf = DiffusionClassifier(Batched(dit, static_rows=4 * batch if compile_model else None),
                              ClassifierConfig(schedule=schedule, batch_size=4 * batch))
    r, s = warm_then_time(lambda i: clf.classify(image, range(1000), image_index=i), device=device)
    rows.append({"task": "ImageNet 1,000 classes, DiT-XL/2, schedule 25->10->250", "resolution": dit.resolution,
                 "evaluations": r.n_evaluations, "seconds_per_image": s, "compiled": compile_model})
    print(f"DiT 1,000 classes end to end: {s:.2f} s/image, {r.n_evaluations} evaluations")
    return rows


def capped_fp8_row(name, build, *, batch, device, dtype, cap_gib, seconds, ref_tflops, tiny=False) -> dict:
    """One family's denoiser with its linear weights in e4m3, run eager under ``cap_gib`` of GPU memory: what a
    GPU of that size can hold (text encoders not included: they run before, and are released or kept on the CPU).

    The model is built full size in bf16 first (this GPU has room) for a reference output, then converted layer by
    layer (``place_with_fp8_linears``, the path a small GPU takes from host memory); only then is the cap set and
    the peak counted. Reports evaluations/s, peak memory and the output's distance from bf16's.
    """
    from ..engine.fp8 import place_with_fp8_linears

    model, make_inputs = build(tiny, device, dtype)
    model = model.to(dtype).eval()
    inputs = make_inputs(batch)
    with torch.no_grad():
        flops = flops_per_call(lambda: model(**make_inputs(1)))
        reference = output_tensor(model(**inputs)).float()
    wide_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    converted = place_with_fp8_linears(model, device, dtype)
    weights_gib = (sum(p.numel() * p.element_size() for p in model.parameters())
                   + sum(b.numel() * b.element_size() for b in model.buffers())) / 2**30
    row = {"model": name, "variant": "eager, fp8 linear weights", "batch": batch, "memory_cap_gib": cap_gib,
           "layers_in_fp8": len(converted), "weights_bf16_gib": wide_gib, "weights_gib": weights_gib}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / torch.cuda.get_device_properties(device).total_memory))
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        out = output_tensor(model(**inputs)).float()
        s = time_calls(lambda: model(**inputs), device=device, min_seconds=seconds)
    row.update(evals_per_s=batch / s, tflops=flops * batch / s / 1e12, ratio_to_matmul=flops * batch / s / 1e12 / ref_tflops,
               rel_err_vs_bf16=float((out - reference).norm() / reference.norm()),
               peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
               peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30 if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0)
    print(f"{name}: fp8 linear weights ({len(converted)} layers), {weights_gib:.1f} GiB of weights (bf16: "
          f"{wide_gib:.1f}), batch {batch} under a {cap_gib:g} GiB cap: {row['evals_per_s']:.2f} evals/s, peak "
          f"{row['peak_mem_gib'] or 0:.1f} GiB allocated / {row['peak_reserved_gib'] or 0:.1f} reserved, "
          f"|out - bf16| / |bf16| {row['rel_err_vs_bf16']:.3f}")
    del model
    return row


def probe_attention(*, tiny, batch, device, dtype, ref) -> list[dict]:
    """Self-attention of the 512 px SD-2 UNet's three attention levels (64x64, 32x32, 16x16 latents; 64-wide
    heads) under each SDPA backend, alone."""
    from .attention_backends import time_shapes

    shapes = [(2, 2, 16, 8)] if tiny else [(batch, 5, 4096, 64), (batch, 10, 1024, 64), (batch, 20, 256, 64)]
    return time_shapes(shapes, device=device, dtype=dtype, ref_tflops=ref)


def end_to_end_rows(results: dict, paper: dict) -> list[dict]:
    """One row per end-to-end task of a benchmark JSON, beside the paper's figure for that task where it gives one
    (reference data from ``data/paper/li2023.json``: the Pets schedule's time; it states no time for DiT, only
    about 1,000 s per ImageNet image for Stable Diffusion, which is quoted as that)."""
    pets, sd_imagenet = paper["pets_adaptive_schedule"], paper["imagenet_sd_seconds_per_image"]
    peer = [r for r in results.get("end_to_end", []) if r.get("peer")]
    rows = []
    for r in results.get("end_to_end", []):
        if r.get("peer"):
            ref = "the official repository's loop, re-stated (dcanalysis.bench.peer)"
        elif r["task"].startswith("Pets"):
            ours_only = r.get("shared_prefix") or r.get("images_per_call", 1) > 1
            ref = "" if ours_only else f"{pets['seconds_per_image']} s on an {pets['gpu']}"
        else:
            ref = f"none for DiT (for Stable Diffusion: {sd_imagenet['note']})"
        row = {"task": r["task"], "px": r["resolution"], "evaluations": r["evaluations"],
               "s/image": round(r["seconds_per_image"], 2), "paper (reference)": ref}
        if peer and r["task"].startswith("Pets"):  # measured in the same run, on the same model and image
            best = min(peer, key=lambda p: p["seconds_per_image"])
            default = [p for p in peer if p.get("batch", 32) == 32]
            row["x faster than the official loop at its best"] = round(best["seconds_per_image"] /
                                                                       r["seconds_per_image"], 2)
            if default and default[0] is not best:
                row["x faster than at its default batch"] = round(default[0]["seconds_per_image"] /
                                                                  r["seconds_per_image"], 2)
        rows.append(row)
    return rows


def floor_rows(results: dict, model: str = "sd2-unet-512", evaluations: int = 2050) -> list[dict]:
    """Seconds per image that ``evaluations`` network calls of ``model`` cannot beat on the benchmarked GPU: at
    the burst and the sustained matmul rate, at 75 % of each, and at the rate the compiled model reached."""
    gflop = next(r["gflop_per_eval"] for r in results["models"] if r["model"] == model)
    compiled = max(r["tflops"] for r in results["models"] if r["model"] == model)
    rates = [("matmul, burst", results["matmul_tflops_burst"]), ("matmul, sustained", results["matmul_tflops"]),
             ("75 % of burst matmul", 0.75 * results["matmul_tflops_burst"]),
             ("75 % of sustained matmul", 0.75 * results["matmul_tflops"]), (f"{model}, fastest variant", compiled)]
    return [{"rate": name, "TFLOP/s": round(t, 1), "seconds per image": round(evaluations * gflop / 1e3 / t, 2)}
            for name, t in rates]


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark the Diffusion Classifier evaluation loop.")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (e.g. data/results/bench_h100.json)")
    p.add_argument("--tiny", action="store_true", help="tiny configs (a CPU smoke run, numbers meaningless)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--fp32", action="store_true", help="float32 instead of bfloat16")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=2.0,
                   help="time the reference matmul and every model for at least this long (0: a short burst)")
    p.add_argument("--no-end-to-end", action="store_true")
    p.add_argument("--pets-only", action="store_true", help="only the end-to-end Pets schedule (no model rows, no DiT)")
    p.add_argument("--share-prefix", action="store_true",
                   help="also time the Pets schedule with the condition-independent prefix computed once per trial")
    p.add_argument("--images-per-call", type=int, default=1,
                   help="also time the Pets schedule over this many images sharing batches, per image")
    p.add_argument("--peer", action="store_true",
                   help="also time the official repository's loop (re-stated: fp16, eager, batch 32) on the Pets "
                        "schedule, in the same run: every Pets row gets its ratio to it")
    p.add_argument("--profile-end-to-end", action="store_true",
                   help="profile one more Pets image: kernel time per group and dynamo's compile counters")
    p.add_argument("--sweep", action="store_true",
                   help="only the 512 px UNet, at each of --batches, eager / compiled / compiled with CUDA graphs")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 128], help="batch sizes of --sweep")
    p.add_argument("--probe", action="store_true",
                   help="only the 512 px UNet at --batch: SDPA backends alone, then each of --variants with each of "
                        "--attention, with its kernel time per group and its longest kernels")
    p.add_argument("--attention", nargs="+", default=["default"],
                   help="SDPA backends the probe compares (default: PyTorch's own choice)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="what the probe runs, each profiled (default: all but the shared prefix, which only pays "
                        "with --runs above 1), or the sweep at each batch (default: eager, compiled, compiled+graphs)")
    p.add_argument("--families", nargs="*", default=None,
                   help="only full-size random-weight denoisers of today's families (speed.families.FAMILIES; no "
                        "names: all) at --family-batch, eager and compiled, with parameter counts and peak memory")
    p.add_argument("--family-batch", type=int, default=8)
    p.add_argument("--memory-cap-gib", type=float, default=None,
                   help="with --families: place each denoiser with 8-bit linear weights (speed.fp8."
                        "place_with_fp8_linears) and run it eager under this cap of GPU memory (24: a 24 GB card)")
    p.add_argument("--runs", type=int, default=1,
                   help="probe batches hold runs of this many copies of each noisy sample (37: the Pets first stage)")
    a = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if a.fp32 or device.type == "cpu" else torch.bfloat16
    torch.backends.cuda.matmul.allow_tf32 = True
    compile_model = not a.no_compile and device.type == "cuda"
    n = 256 if a.tiny else 8192
    windows = {}  # Unix-time spans of the reference runs, to line up with a GPU clock log

    def timed_matmul(label, min_seconds):
        t0 = time.time()
        rate = matmul_tflops(device, dtype, n, min_seconds=min_seconds)
        windows[label] = [t0, time.time()]
        return rate

    burst = timed_matmul("burst", 0.0)
    ref = timed_matmul("sustained", a.seconds)
    print(f"reference: {ref:.1f} TFLOP/s for a {dtype} {n}^3 matmul on {device} over {a.seconds:g} s "
          f"({burst:.1f} TFLOP/s over ten products)")
    ctx = lambda b, d: torch.randn(b, 77, d, device=device, dtype=dtype)  # noqa: E731
    tiny = a.tiny
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "dtype": str(dtype), "tiny": tiny, "matmul_tflops": ref,
               "matmul_tflops_burst": burst, "seconds_per_measurement": a.seconds, "matmul_windows": windows,
               "command": "python -m dcanalysis.bench " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
               "note": "random weights: speed only, never accuracy", "models": [], "end_to_end": []}
    import diffusers
    results["diffusers"] = diffusers.__version__

    def save(**extra):
        """Write what is measured so far: a run cut short by a time limit still leaves its numbers."""
        results.update(extra)
        for r in results["models"]:
            r["ratio_to_burst_matmul"] = r["tflops"] / burst
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(results, indent=1))
    def unet_inputs(unet, latent, runs: int = 1):
        """Batches of ``runs`` consecutive copies of each (sample, timestep), as the classifier sends one noisy
        sample with each of its candidates (1: every row its own)."""
        size, cd = (4 if tiny else latent), unet.config.cross_attention_dim
        copies = lambda v, b: v.repeat_interleave(runs, 0)[:b]  # noqa: E731
        return lambda b: {"sample": copies(torch.randn(-(-b // runs), 4, size, size, device=device, dtype=dtype), b),
                          "timestep": copies(torch.randint(0, 1000, (-(-b // runs),), device=device), b),
                          "encoder_hidden_states": ctx(b, cd)}

    bench = functools.partial(bench_model, device=device, dtype=dtype, ref_tflops=ref, compile_model=compile_model,
                              seconds=a.seconds)
    if a.probe:
        results["probe"], results["runs"] = True, a.runs
        results["attention_kernels"] = probe_attention(tiny=tiny, batch=a.batch, device=device, dtype=dtype, ref=ref)
        save()
        torch.backends.cudnn.benchmark = True
        unet = sd2_base_unet(tiny)
        for attention in [None if b == "default" else b for b in a.attention]:
            results["models"] += bench("sd2-unet-512", unet, unet_inputs(unet, 64, a.runs), batch=a.batch,
                                       variants=a.variants or [v for v, o in VARIANTS.items()
                                                               if not o.get("share_prefix")],
                                       attention=attention, profile=True)
            save()
        return results
    if a.families is not None:
        from .families import FAMILIES

        for name in a.families or list(FAMILIES):
            build, published, px = FAMILIES[name]
            if a.memory_cap_gib is not None:
                results["models"].append(capped_fp8_row(name, build, batch=a.family_batch, device=device, dtype=dtype,
                                                        cap_gib=a.memory_cap_gib, seconds=a.seconds, ref_tflops=ref,
                                                        tiny=tiny))
                save()
                continue
            model, inputs = build(tiny, device, dtype)
            params = sum(p.numel() for p in model.parameters()) / 1e9
            print(f"{name}: {params:.2f} B parameters (published: {published} B), {px} px")
            rows = bench(name, model, inputs, batch=a.family_batch)
            for r in rows:
                r.update(parameters_b=params, published_parameters_b=published, resolution=px)
            results["models"] += rows
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            save()
        return results
    if a.sweep:
        results["sweep"] = True
        for b in a.batches:  # a fresh model per batch: each compiled graph is specialised to its batch anyway
            unet = sd2_base_unet(tiny)
            results["models"] += bench("sd2-unet-512", unet, unet_inputs(unet, 64), batch=b,
                                       variants=a.variants or ("eager", "compiled", "compiled+graphs"))
            del unet
            if device.type == "cuda":
                torch.cuda.empty_cache()
            save()
        return results
    for px, lat in ((512, 64), (256, 32)) if not a.pets_only else ():
        unet = sd2_base_unet(tiny)
        results["models"] += bench(f"sd2-unet-{px}", unet, unet_inputs(unet, lat), batch=a.batch)
        del unet
        save()
    if not a.pets_only:
        dit = dit_xl_2(tiny)
        s = dit.config.sample_size
        mk = lambda b: {"hidden_states": torch.randn(b, 4, s, s, device=device, dtype=dtype),  # noqa: E731
                        "timestep": torch.full((b,), 500, device=device),
                        "class_labels": torch.arange(b, device=device) % 1000}
        results["models"] += bench("dit-xl-2-256", dit, mk, batch=4 * a.batch)
        del dit
        save()
    if not a.no_end_to_end:
        results["end_to_end"] = end_to_end(tiny=tiny, device=device, dtype=dtype, compile_model=compile_model,
                                           batch=a.batch, save=lambda rows: save(end_to_end=rows),
                                           share_prefix=a.share_prefix, dit=not a.pets_only,
                                           profile=a.profile_end_to_end, images_per_call=a.images_per_call,
                                           peer=a.peer)
    if device.type == "cuda":
        results["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    # the reference again, after everything: how far the card's sustained rate moved during the run
    results["matmul_tflops_at_end"] = timed_matmul("at_end", a.seconds)
    save()
    return results


if __name__ == "__main__":
    main()
