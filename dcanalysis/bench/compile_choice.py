"""When ``torch.compile`` pays for itself: the first call's compilation against the time it saves per evaluation.

Compiling costs ``first_call_s`` once (the compiled first call less an eager one) and then runs ``compiled``
evaluations/s where the eager network runs ``eager``; it pays when the run's evaluations take longer eager than
compiled-plus-compilation, that is above

    break_even_evaluations = first_call_s / (1 / eager - 1 / compiled)

(``break_even_evaluations``). The rates and first calls are the benchmark's, measured on one H200 in one run per
network and committed (``MEASURED``); the break-even of each is what ``dcanalysis.engine.compile_rule.BREAK_EVEN``
holds as a constant for the CLI's ``--compile`` default (a test recomputes it here from the committed files).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..paths import RESULTS_DIR


@dataclass(frozen=True)
class CompileCost:
    """One network's measured eager and compiled rates (evaluations/s), and what the compiled first call takes
    beyond an eager first call (s): the compilation."""

    network: str
    eager_evals_per_s: float
    compiled_evals_per_s: float
    first_call_s: float
    source: str  # the committed result file the figures come from

    def break_even_evaluations(self) -> float:
        return break_even_evaluations(self.eager_evals_per_s, self.compiled_evals_per_s, self.first_call_s)


def break_even_evaluations(eager: float, compiled: float, first_call_s: float) -> float:
    """Evaluations above which compiling (``first_call_s`` once, then ``compiled`` instead of ``eager``
    evaluations/s) saves time; infinite where compiling is not faster."""
    saved = 1 / eager - 1 / compiled
    return first_call_s / saved if saved > 0 else float("inf")


def _sd2_cost(path: Path) -> CompileCost:
    rows = {r["variant"]: r for r in json.loads(path.read_text())["models"] if r["model"] == "sd2-unet-512"}
    return CompileCost("sd2-unet-512", rows["eager"]["evals_per_s"], rows["compiled"]["evals_per_s"],
                       rows["compiled"]["first_call_s"] - rows["eager"]["first_call_s"], path.name)


def _lab_cost(path: Path) -> CompileCost:
    rows = json.loads(path.read_text())["datasets"]["fashion_mnist"]["throughput"]
    eager, compiled = (next(r for r in rows if r["task"] == "bare forward" and r["variant"] == v)
                       for v in ("eager", "compiled"))
    return CompileCost("fashion_mnist_unet", eager["evals_per_s"], compiled["evals_per_s"],
                       compiled["first_call_s"] - eager["first_call_s"], path.name)


MEASURED = {"sd2-unet-512": lambda: _sd2_cost(RESULTS_DIR / "speed" / "compile_and_peer_h200_compile_cold.json"),
            "fashion_mnist_unet": lambda: _lab_cost(RESULTS_DIR / "speed" / "versus_official_h200_a.json")}


def first_call_rows(cold: dict, warm: dict) -> list[dict]:
    """One row per (variant, inductor cache) of two ``bench --sweep`` results, the first with an empty cache and
    the second reading the cache the first wrote: first call (s), evaluations/s, graphs compiled."""
    return [{"variant": r["variant"], "inductor cache": cache, "first call (s)": round(r["first_call_s"], 1),
             "evaluations/s": round(r["evals_per_s"]), "graphs compiled": r.get("graphs_compiled", 0)}
            for cache, result in (("empty", cold), ("from the first run", warm)) for r in result["models"]]


def band_rows(cold: dict, warm: dict) -> list[dict]:
    """For each cache state, the run size (evaluations) above which a variant that is slower to start but faster
    per evaluation takes less time in all than another (eager's rate does not depend on the cache)."""
    eager = [r for r in cold["models"] if r["variant"] == "eager"]
    out = []
    for cache, result in (("empty", cold), ("from the first run", warm)):
        rows = eager + [r for r in result["models"] if r["variant"] != "eager"]
        for a in rows:
            for b in rows:
                if b["evals_per_s"] > a["evals_per_s"] and b["first_call_s"] > a["first_call_s"]:
                    n = break_even_evaluations(a["evals_per_s"], b["evals_per_s"], b["first_call_s"] - a["first_call_s"])
                    out.append({"inductor cache": cache, "variant": b["variant"], "against": a["variant"],
                                "pays above (evaluations)": round(n), "Pets images (2,050 each)": round(n / 2050, 1)})
    return out
