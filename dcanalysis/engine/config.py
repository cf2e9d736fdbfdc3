"""How the network runs, as one frozen config: what an engine does to an adapter after it is loaded.

Nothing here changes the method: the classifier sees the same adapter protocol and, for the eager options, the same
numbers. Compilation (``compile``) reorders bf16 arithmetic and 8-bit linears (``fp8_linears``) change the
products, so a run records its engine (``identity``) and refuses to resume under another.

    engine = EngineConfig(compile=True, share_prefix=True)
    adapter = load_adapter(model, device="cuda", dtype=torch.bfloat16, place_network=engine.place_network())
    adapter = engine.apply(adapter, batch_size=64)   # prefix sharing, torch.compile, static batches, OOM halving
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .compile_rule import choose_compile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """``compile``: torch.compile the denoiser for one batch shape; None until ``resolved`` decides by
    ``compile_rule``. ``cuda_graphs`` / ``tune_kernels``: options of the compiled network (each implies it).
    ``share_prefix``: a text-conditional UNet's condition-independent first layers once per noisy sample.
    ``fp8_linears``: SDXL / SD 3 / Flux / PixArt denoisers placed with 8-bit linear weights (changes the numbers).
    ``text_device``: where those families' text encoders run. ``overlap``: each network call's host work on this
    thread while a worker runs the call (``overlap.overlapped``; the same results). ``padded_sizes``: a compiled
    network's batches are padded to the smallest of batch_size, batch_size / 2, ... (this many sizes, so this many
    compiled graphs) that holds them; many small rounds (a sequential test) then waste little."""

    compile: bool | None = None
    cuda_graphs: bool = False
    tune_kernels: bool = False
    share_prefix: bool = False
    fp8_linears: bool = False
    text_device: str | None = None
    overlap: bool = False
    padded_sizes: int = 1

    def __post_init__(self):
        if self.compile is False and (self.cuda_graphs or self.tune_kernels):
            raise ValueError("--cuda-graphs and --tune-kernels are options of the compiled network: drop --no-compile.")
        if self.cuda_graphs or self.tune_kernels:
            object.__setattr__(self, "compile", True)

    def resolved(self, network, n_evaluations: int, device: str) -> tuple["EngineConfig", str | None]:
        """This config with ``compile`` decided (``compile_rule.choose_compile`` for a run of at most
        ``n_evaluations`` evaluations of ``network`` where it was not given), and the rule's reason (None where it
        was given). Depends only on its arguments, so a resumed run decides the same way."""
        if self.compile is not None:
            return self, None
        verdict, why = choose_compile(network, n_evaluations, device)
        return replace(self, compile=verdict), why

    def prepare(self, adapter, *, n_evaluations: int, device: str, batch_size: int) -> tuple[object, "EngineConfig"]:
        """``resolved`` for the adapter's own network, its reason printed on a GPU (on the CPU the answer is always
        eager: nothing to say), then ``apply``: (the adapter as the classifier should see it, the config used)."""
        from .compile import network_attribute

        name = network_attribute(adapter)
        engine, why = self.resolved(getattr(adapter, name) if name else None, n_evaluations, device)
        if why and torch.device(device).type == "cuda":
            log.info(f"--compile not given: {why}")
        return engine.apply(adapter, batch_size=batch_size), engine

    def place_network(self) -> Callable | None:
        """What places a large family's denoiser on the device at load time (``adapters.pipeline``), or None."""
        if not self.fp8_linears:
            return None
        from .fp8 import place_with_fp8_linears

        return place_with_fp8_linears

    def apply(self, adapter, *, batch_size: int):
        """The adapter with prefix sharing and its network compiled (both in place; ``compile`` must be resolved),
        wrapped in ``batching.Batched``: calls of ``batch_size`` rows (the classifier's), padded to one shape when
        compiled, halved after an out-of-memory error."""
        from .batching import Batched

        if self.compile is None:
            raise ValueError("EngineConfig.compile is undecided: call resolved() first, or give compile=True/False.")
        if self.share_prefix:
            from .prefix_sharing import share_prefix

            share_prefix(adapter)
        if self.compile:
            from .compile import compile_adapter

            compile_adapter(adapter, cuda_graphs=self.cuda_graphs, tune_pointwise=self.tune_kernels)
        return Batched(adapter, static_rows=batch_size if self.compile else None, padded_sizes=self.padded_sizes)

    def identity(self) -> dict:
        """What of the engine decides a run's numbers, as its manifest records it (an option that is off and did
        not exist in earlier runs is left out, so their manifests still match)."""
        return {"share_prefix": self.share_prefix, **({"fp8_linears": True} if self.fp8_linears else {}),
                **self.compile_identity(), **({"padded_sizes": self.padded_sizes} if self.padded_sizes != 1 else {})}

    def compile_identity(self) -> dict:
        """``compile``, and CUDA graphs and inductor's tuned kernels each only when on."""
        return {"compile": bool(self.compile), **({"cuda_graphs": True} if self.cuda_graphs else {}),
                **({"tuned_kernels": True} if self.tune_kernels else {})}


def add_engine_arguments(p: argparse.ArgumentParser, *, placement: bool = True) -> None:
    """The command-line flags of ``EngineConfig`` (``engine_from_arguments`` reads them back)."""
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network for the batch size. Default: compile on a GPU where the benchmark "
                        "measured that it pays for the run's size (dcanalysis.engine.compile_rule; SD-2 at 512 px: "
                        "above 48,185 evaluations)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --compile (implied): replay each compiled graph as one CUDA graph (the lab UNet on an "
                        "H200: classify_batch 3 %% faster)")
    p.add_argument("--tune-kernels", action="store_true",
                   help="with --compile (implied): let inductor tune its generated kernels (the lab UNet on an H200: "
                        "10 %% faster with --cuda-graphs, for about 150 s more compilation)")
    p.add_argument("--overlap", action="store_true",
                   help="read the next images on this thread while a worker thread runs the network (same results)")
    if not placement:
        return
    p.add_argument("--share-prefix", action="store_true",
                   help="Stable Diffusion: run the layers before the first cross-attention once per noisy sample, not "
                        "once per prompt (same result, about 4 %% faster for the Pets schedule at 512 px)")
    p.add_argument("--fp8-linears", action="store_true",
                   help="SDXL / SD 3 / Flux / PixArt: the denoiser's linear weights in 8 bits (e4m3), placed layer by "
                        "layer (Flux.1: 12 GB instead of 24; needs an Ada or Hopper GPU; changes the numbers)")
    p.add_argument("--text-device", default=None,
                   help="SDXL / SD 3 / Flux / PixArt: run the text encoders here (e.g. cpu) to leave the GPU to the "
                        "denoiser; they run once per candidate list")


def engine_from_arguments(a: argparse.Namespace) -> EngineConfig:
    """The ``EngineConfig`` of parsed ``add_engine_arguments`` flags."""
    return EngineConfig(compile=a.compile, cuda_graphs=a.cuda_graphs, tune_kernels=a.tune_kernels,
                        share_prefix=getattr(a, "share_prefix", False), fp8_linears=getattr(a, "fp8_linears", False),
                        text_device=getattr(a, "text_device", None), overlap=a.overlap)
