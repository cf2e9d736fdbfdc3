"""When ``torch.compile`` pays for itself: the first call's compilation against the time it saves per evaluation.

Compiling costs ``first_call_s`` once and then runs ``compiled`` evaluations/s where the eager network runs
``eager``; it pays when the run's evaluations take longer eager than compiled-plus-compilation, that is above

    break_even_evaluations = first_call_s / (1 / eager - 1 / compiled)

(``break_even_evaluations``). The rates and first calls are the benchmark's, measured on one H200 in one run per
network and committed (``MEASURED``): the CLI's ``--compile`` default (``auto``) compiles a network exactly when
it is one of those and the run's largest possible number of evaluations is past its break-even. A network that was
never measured runs eager unless ``--compile`` is given: a guess would be a number nobody measured.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..paths import RESULTS_DIR


@dataclass(frozen=True)
class CompileCost:
    """One network's measured eager and compiled rates (evaluations/s) and compiled first call (s)."""

    network: str
    eager_evals_per_s: float
    compiled_evals_per_s: float
    first_call_s: float
    source: str  # the committed result file the figures come from

    def break_even_evaluations(self) -> float:
        """Evaluations above which compiling saves time (infinite where compiling is not faster)."""
        saved = 1 / self.eager_evals_per_s - 1 / self.compiled_evals_per_s
        return self.first_call_s / saved if saved > 0 else float("inf")


def break_even_evaluations(eager: float, compiled: float, first_call_s: float) -> float:
    return CompileCost("", eager, compiled, first_call_s, "").break_even_evaluations()


# The measured networks, told apart by class, parameter count and sample size (a signature that reads no
# weights): the SD-2-base UNet (counted from speed.bench.sd2_base_unet; 64 latent px, 512 image px) and the lab's
# Fashion-MNIST UNet (data/models/fashion_mnist_unet/model_card.json).
SIGNATURES = {("UNet2DConditionModel", 865_910_724, 64): "sd2-unet-512",
              ("UNet2DModel", 6_803_969, 32): "fashion_mnist_unet"}


def _sd2_cost(path: Path) -> CompileCost:
    rows = {r["variant"]: r for r in json.loads(path.read_text())["models"] if r["model"] == "sd2-unet-512"}
    return CompileCost("sd2-unet-512", rows["eager"]["evals_per_s"], rows["compiled"]["evals_per_s"],
                       rows["compiled"]["first_call_s"], path.name)


def _lab_cost(path: Path) -> CompileCost:
    rows = json.loads(path.read_text())["datasets"]["fashion_mnist"]["throughput"]
    eager, compiled = (next(r for r in rows if r["task"] == "bare forward" and r["variant"] == v)
                       for v in ("eager", "compiled"))
    return CompileCost("fashion_mnist_unet", eager["evals_per_s"], compiled["evals_per_s"], compiled["first_call_s"],
                       path.name)


MEASURED = {"sd2-unet-512": lambda: _sd2_cost(RESULTS_DIR / "speed" / "compile_and_peer_h200_compile_cold.json"),
            "fashion_mnist_unet": lambda: _lab_cost(RESULTS_DIR / "speed" / "versus_official_h200_a.json")}


def network_signature(network: torch.nn.Module) -> tuple[str, int, int | None]:
    """(class name, parameter count, the config's sample size) of a diffusers network."""
    size = getattr(getattr(network, "config", None), "sample_size", None)
    return type(network).__name__, sum(p.numel() for p in network.parameters()), size


def measured_cost(network: torch.nn.Module) -> CompileCost | None:
    """The committed measurement of this network, or None where it was never measured."""
    name = SIGNATURES.get(network_signature(network))
    return MEASURED[name]() if name else None


def choose_compile(n_evaluations: int, cost: CompileCost | None, device: str) -> tuple[bool, str]:
    """(compile?, one line saying why) for a run of at most ``n_evaluations`` network evaluations."""
    if torch.device(device).type != "cuda":
        return False, "eager: compilation is measured to pay on a GPU only"
    if cost is None:
        return False, "eager: this network's compile cost was never measured (pass --compile to compile anyway)"
    n_star = cost.break_even_evaluations()
    verdict = n_evaluations > n_star
    return verdict, (f"{'compiled' if verdict else 'eager'}: at most {n_evaluations:,} evaluations, "
                     f"{'above' if verdict else 'below'} the {n_star:,.0f} at which compiling {cost.network} pays "
                     f"(first call {cost.first_call_s:.1f} s; {cost.eager_evals_per_s:,.0f} -> "
                     f"{cost.compiled_evals_per_s:,.0f} evaluations/s on one H200, {cost.source})")
