"""The ``--compile`` default: compile a network on a GPU exactly where the benchmark measured that it pays.

Compiling costs its first call once and then saves a little on every evaluation; it pays for a run of more than

    break_even = compilation_s / (1 / eager_evals_per_s - 1 / compiled_evals_per_s)

evaluations (``dcanalysis.bench.compile_choice.break_even_evaluations``). ``BREAK_EVEN`` holds that figure for
the networks the benchmark measured, each on one H200 in one run, with the committed result it comes from
(``tests/bench/test_compile_choice.py`` recomputes each from its file). A network nobody measured runs eager unless
``--compile`` is given: a guess would be a number nobody measured. Nothing here reads a file at run time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BreakEven:
    network: str
    evaluations: int  # compiling pays for runs of more evaluations than this
    source: str  # the committed benchmark result (under data/results/) it was computed from


# networks told apart by class, parameter count and sample size: a signature that reads no weights
BREAK_EVEN = {
    ("UNet2DConditionModel", 865_910_724, 64): BreakEven(
        "sd2-unet-512", 48_185, "speed/compile_and_peer_h200_compile_cold.json"),  # SD-2-base UNet at 512 px
    ("UNet2DModel", 6_803_969, 32): BreakEven(
        "fashion_mnist_unet", 597_654, "speed/versus_official_h200_a.json"),  # the lab's Fashion-MNIST UNet
}


def network_signature(network: torch.nn.Module) -> tuple[str, int, int | None]:
    """(class name, parameter count, the config's sample size) of a diffusers network."""
    size = getattr(getattr(network, "config", None), "sample_size", None)
    return type(network).__name__, sum(p.numel() for p in network.parameters()), size


def choose_compile(network: torch.nn.Module | None, n_evaluations: int, device: str) -> tuple[bool, str]:
    """(compile?, one line saying why) for a run of at most ``n_evaluations`` evaluations of ``network``."""
    if torch.device(device).type != "cuda":
        return False, "eager: compilation is measured to pay on a GPU only"
    known = BREAK_EVEN.get(network_signature(network)) if network is not None else None
    if known is None:
        return False, "eager: this network's compile cost was never measured (pass --compile to compile anyway)"
    verdict = n_evaluations > known.evaluations
    return verdict, (f"{'compiled' if verdict else 'eager'}: at most {n_evaluations:,} evaluations, "
                     f"{'above' if verdict else 'below'} the {known.evaluations:,} at which compiling "
                     f"{known.network} pays (one H200, data/results/{known.source})")
