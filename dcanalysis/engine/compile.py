"""How the network runs fast: ``torch.compile`` for one static shape, and the adapter options that go with it.

The classifier sends batches of one size (``ClassifierConfig.static_shapes`` pads the last one), so a graph
specialised to that shape is compiled once per run and reused for every batch. Compilation costs about a minute
for the 512 px SD-2 UNet on an H100 (``first_call_s`` in ``data/results/bench_h100.json``), paid on the first
batch; chapter 10 and ``python -m dcanalysis.bench`` measure what it buys.
"""
from __future__ import annotations

import torch

from .attention import WithAttentionBackend

NETWORK_ATTRIBUTES = ("unet", "transformer")  # where adapters keep their denoising network


def set_fused_qkv(model, fused: bool) -> None:
    """Fuse (or unfuse) each attention's projections into one matmul, where the model supports it (diffusers)."""
    procs = getattr(model, "attn_processors", None) if hasattr(model, "fuse_qkv_projections") else None
    if not procs:
        return
    if getattr(getattr(model, "config", None), "dual_attention_layers", None):
        # SD 3.5's MMDiT-X: diffusers gives every attention its fused *joint* processor, which cannot run the
        # extra self-attention (attn2) of the dual layers; those models stay unfused
        return
    now = all("Fused" in type(p).__name__ for p in procs.values())
    if fused and not now:
        model.fuse_qkv_projections()
    elif not fused and now:
        model.unfuse_qkv_projections()


def repeated_blocks(model) -> list[torch.nn.Module]:
    """The model's repeated blocks (diffusers' ``_repeated_blocks`` class names: the UNet's transformer blocks,
    Flux's double and single blocks), in module order; empty when the model names none."""
    names = set(getattr(model, "_repeated_blocks", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def optimise(model, *, fuse_qkv: bool = True, cuda_graphs: bool = False, conv_1x1_as_mm: bool = True,
             freezing: bool = False, tune_pointwise: bool = False, fp8_linear: bool = False, regional: bool = False,
             attention: str | None = None):
    """torch.compile for one static shape, with the projections of each attention fused into one matmul.

    ``dynamic=False``: a second input shape (another resolution or batch) gets its own specialised graph instead
    of one generic graph for all shapes, which ran 256 px slower than eager-plus-20 % in an earlier run.
    ``conv_1x1_as_mm``: 1x1 convolutions become matmuls (inductor's option), which can then fuse with their
    neighbours. ``cuda_graphs`` replays each compiled graph as one CUDA graph (what ``mode="reduce-overhead"``
    does; as an option here because a mode and options cannot be given together): it removes kernel-launch gaps.
    ``freezing`` treats the weights as constants (inference only, under ``torch.no_grad``): inductor may fold and
    re-lay them out once instead of per call. ``tune_pointwise`` lets inductor search the launch configuration of
    its own generated kernels (coordinate descent; the norms and activations, not the cuDNN/cuBLAS calls, which
    only ``max-autotune`` would search, at a compile cost too long for the GPU machine's command limit).
    ``fp8_linear`` replaces the model's linear layers by 8-bit ones (``fp8.convert_linears``), in place and for
    good: no longer the bf16 arithmetic, and on the SD-2 UNet on an H100 slower overall (faster matrix products,
    costlier activation quantisation; chapter 10).
    ``regional`` compiles each of the model's ``repeated_blocks`` instead of the whole model (regional
    compilation), in place, and returns the model itself: blocks of one class and one input shape share one graph
    (dynamo lifts their weights to inputs): the SD-2 UNet's sixteen transformer blocks come in four shapes. Faster to
    compile (``bench`` counts the graphs and times the first call); the code between the blocks stays eager.
    ``attention``: one SDPA backend (``attention.ATTENTION_BACKENDS``) for this network's attention, traced into
    its graph (``attention.WithAttentionBackend`` wraps the result) and compiled without inductor's graph cache,
    which would hand back a graph traced under another backend; ``None`` leaves PyTorch's choice, cached.
    The defaults are the fastest measured on an H100 (chapter 10); the others are there to be measured.
    """
    set_fused_qkv(model, fuse_qkv)
    if fp8_linear:
        from .fp8 import convert_linears

        convert_linears(model)  # after fusing: the fused projections are the layers that run
    # per compile, not inductor's process-wide config: other compiles in the process stay as they were
    options = {"conv_1x1_as_mm": conv_1x1_as_mm, "triton.cudagraphs": cuda_graphs, "freezing": freezing,
               "coordinate_descent_tuning": tune_pointwise}
    if attention is not None:
        # inductor's graph caches do not key on the SDPA backend (pytorch/pytorch#185449, still so in torch 2.13):
        # a graph compiled earlier under another backend, in this process or any other, would be reused silently
        options["fx_graph_cache"] = False
    if not regional:
        return with_attention(torch.compile(model, dynamic=False, options=options), attention)
    blocks = repeated_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no repeated blocks (diffusers' _repeated_blocks) to compile "
                         "regionally; compile the whole model (regional=False).")
    for block in blocks:
        block.compile(dynamic=False, options=options)
    return with_attention(model, attention)


def with_attention(network, backend: str | None):
    """``network`` pinned to one SDPA backend (``attention.WithAttentionBackend``); ``None``: ``network`` itself."""
    return network if backend is None else WithAttentionBackend(network, backend)


def uncompile_regions(model) -> None:
    """Undo ``optimise(model, regional=True)``: every block runs eager again."""
    for block in repeated_blocks(model):
        block._compiled_call_impl = None  # what nn.Module.compile set


def network_attribute(adapter) -> str | None:
    """Which of ``NETWORK_ATTRIBUTES`` holds the adapter's denoising network, or None where none does."""
    return next((n for n in NETWORK_ATTRIBUTES if isinstance(getattr(adapter, n, None), torch.nn.Module)), None)


def compile_adapter(adapter, **options) -> None:
    """Replace the adapter's denoising network (``unet`` or ``transformer``) by its ``optimise``'d version, in place.

    Use with ``ClassifierConfig(static_shapes=True)``, or the last, smaller batch of each call compiles a graph of
    its own. Hooks already on the network's modules (``prefix_sharing``) are traced into the compiled graph.
    """
    name = network_attribute(adapter)
    if name is not None:
        setattr(adapter, name, optimise(getattr(adapter, name), **options))
        return
    raise TypeError(f"{type(adapter).__name__} keeps no network in .{' or .'.join(NETWORK_ATTRIBUTES)}, so there is "
                    "nothing to compile; compile the network yourself with dcanalysis.engine.optimise.")
