"""Where a forward pass spends its time: kernels grouped into attention, dense matrix work and the rest.

The benchmark says how far a network is from the matmul ceiling; this says why. One profiled call is split into

- ``attention``: the fused scaled-dot-product kernels (flash, memory-efficient, cuDNN);
- ``matrix``: convolutions and linear layers (cuDNN implicit GEMMs, cuBLAS GEMMs; inductor turns 1x1
  convolutions into GEMMs, so the two are counted together);
- ``other``: everything that is not matrix arithmetic: GroupNorm/LayerNorm, SiLU/GELU, softmaxes outside
  attention, resampling, copies. These are memory-bound, so their time is the first thing the ceiling loses.

FLOPs come from ``torch.utils.flop_counter`` on the same call, so each group's achieved TFLOP/s can be set beside
the same-run matmul. On the CPU the profiler sees ATen operators instead of kernels; the grouping is the same.
"""
from __future__ import annotations

from typing import Callable

import torch

from .timing import time_calls

GROUPS = ("attention", "matrix", "other")


def kernel_group(name: str) -> str:
    """The group of a CUDA kernel or an ATen operator, from its name (kernel names are the library's own)."""
    n = name.lower().replace("aten.", "aten::")
    # inductor names its generated kernels after the operators fused into them: a pointwise (poi), persistent
    # (per) or plain reduction (red) kernel that took a convolution's bias add is still memory-bound work. Only
    # its templates (tem) do matrix arithmetic.
    if n.startswith(("triton_poi", "triton_per", "triton_red")):
        return "other"
    if n.startswith("triton_tem"):
        return "matrix"
    # cuDNN's attention kernels are named ...sdpa..._fprop_...: test attention before convolution
    if any(k in n for k in ("flash", "fmha", "sdpa", "scaled_dot_product", "attention")):
        return "attention"
    if any(k in n for k in ("conv", "fprop", "implicit_gemm", "gemm", "nvjet", "cutlass", "xmma")):
        return "matrix"
    if n.startswith("aten::") and n.split("::", 1)[1].split(".")[0] in ("mm", "addmm", "bmm", "baddbmm", "linear", "matmul"):
        return "matrix"
    return "other"


def flops_by_group(fn: Callable[[], object]) -> dict[str, float]:
    """FLOPs of one call of ``fn``, per group (``torch.utils.flop_counter`` counts matmuls, convolutions, SDPA)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    out = dict.fromkeys(GROUPS, 0.0)
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        out[kernel_group(str(op))] += float(flops)
    return out


def kernel_times(fn: Callable[[], object], *, device: torch.device, iters: int = 3) -> dict[str, float]:
    """Seconds per call of ``fn`` in each kernel (CUDA) or ATen operator's own code (CPU), by name.

    ``fn`` should be warmed up (compiled) already; the profile covers ``iters`` calls.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(iters):
            fn()
        if cuda:
            torch.cuda.synchronize()
    seconds: dict[str, float] = {}
    for evt in prof.key_averages():
        if cuda:
            if evt.device_type != torch.autograd.DeviceType.CUDA:
                continue
            us = evt.self_device_time_total
        else:
            if not evt.key.startswith("aten::"):
                continue
            us = evt.self_cpu_time_total
        seconds[evt.key] = seconds.get(evt.key, 0.0) + us / 1e6 / iters
    return seconds


def sees_kernels(options: dict) -> bool:
    """Whether the profiler can split a variant's time by kernel: not under CUDA graphs (``options["cuda_graphs"]``),
    where it sees each graph's launch, not the kernels replayed inside it."""
    return not options.get("cuda_graphs")


def breakdown(fn: Callable[[], object], *, device: torch.device, ref_tflops: float, iters: int = 3,
              flops: dict[str, float] | None = None, top: int = 15) -> dict[str, list[dict]]:
    """Where one call's kernel time goes.

    Returns ``groups``: one row per group (seconds per call, share of the profiled time, GFLOP per call,
    TFLOP/s, ratio to the matmul); and ``top_kernels``: the ``top`` longest kernels (name, group, seconds per call).
    ``flops`` (from ``flops_by_group`` on an eager call) lets a compiled ``fn`` be profiled without counting
    through the compiler.
    """
    flops = flops_by_group(fn) if flops is None else flops
    per_kernel = kernel_times(fn, device=device, iters=iters)
    seconds = dict.fromkeys(GROUPS, 0.0)
    for name, s in per_kernel.items():
        seconds[kernel_group(name)] += s
    total = sum(seconds.values()) or float("nan")
    groups = []
    for g in GROUPS:
        s, f = seconds[g], flops.get(g, 0.0)
        tflops = f / s / 1e12 if s > 0 and f > 0 else None
        groups.append({"group": g, "seconds_per_call": s, "share_of_time": s / total, "gflop_per_call": f / 1e9,
                       "tflops": tflops, "ratio_to_matmul": tflops / ref_tflops if tflops else None})
    longest = sorted(per_kernel.items(), key=lambda kv: -kv[1])[:top]
    return {"groups": groups, "top_kernels": [{"kernel": k, "group": kernel_group(k), "seconds_per_call": s}
                                              for k, s in longest]}


def read_clock_log(path) -> "pandas.DataFrame":  # noqa: F821
    """An ``nvidia-smi --query-gpu=timestamp,clocks.sm,...,power.draw,... --format=csv`` log as a table.

    Columns: ``time`` (Unix seconds, comparable with ``time.time()`` on that machine), ``sm_mhz``,
    ``power_w`` and ``throttle`` (the active clock-event reasons bit mask: 0x4 is the software power cap).
    """
    import pandas as pd

    raw = pd.read_csv(path, skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    out = pd.DataFrame({
        # nvidia-smi writes the machine's local time; the GPU machines keep UTC, as Unix time does
        "time": (pd.to_datetime(raw["timestamp"], format="%Y/%m/%d %H:%M:%S.%f") - pd.Timestamp(0)).dt.total_seconds(),
        "sm_mhz": raw["clocks.current.sm [MHz]"].str.split().str[0].astype(float),
        "power_w": raw["power.draw [W]"].str.split().str[0].astype(float),
    })
    reasons = [c for c in raw.columns if c.startswith("clocks_event_reasons") or c.startswith("clocks_throttle")]
    if reasons:
        out["throttle"] = raw[reasons[0]].map(lambda s: int(str(s), 16))
    return out


def clocks_during(log, rows: list[dict]) -> list[dict]:
    """Median SM clock and power over each benchmark row's ``timed_from``..``timed_to`` window, the share of
    samples held back by the power cap, and the energy the work took at that power (``None`` where the log has no
    sample in the window): ``joules_per_eval`` (rows with ``evals_per_s``) and ``pj_per_flop`` (rows with
    ``tflops``; W per TFLOP/s is pJ per FLOP). Under a power cap, time is energy over the cap: the work that
    needs fewer joules runs faster.

    ``reference_rows`` turns a benchmark's matmul windows into rows of the same form."""
    out = []
    for r in rows:
        w = log[(log.time >= r["timed_from"]) & (log.time <= r["timed_to"])]
        capped = float(((w.throttle & 0x4) > 0).mean()) if len(w) and "throttle" in w else None
        power = float(w.power_w.median()) if len(w) else None
        out.append({"model": r.get("model", r.get("task")), "variant": r["variant"], "samples": len(w),
                    "sm_mhz": float(w.sm_mhz.median()) if len(w) else None, "power_w": power, "power_capped": capped,
                    "joules_per_eval": power / r["evals_per_s"] if power and r.get("evals_per_s") else None,
                    "pj_per_flop": power / r["tflops"] if power and r.get("tflops") else None})
    return out


def reference_rows(results: dict, min_seconds: float = 1.0) -> list[dict]:
    """The benchmark's reference matmul windows (``matmul_windows``: label -> [from, to]) as rows for
    ``clocks_during``, each with the TFLOP/s measured in it (none for a window without a recorded rate).

    Windows shorter than ``min_seconds`` are left out: ``nvidia-smi``'s power reading averages over about a
    second, so a burst of milliseconds shows the idle card's power, not its own."""
    rates = {"burst": results.get("matmul_tflops_burst"), "sustained": results.get("matmul_tflops"),
             "at_end": results.get("matmul_tflops_at_end")}
    return [{"model": "reference matmul", "variant": label, "timed_from": t0, "timed_to": t1,
             "tflops": rates.get(label)} for label, (t0, t1) in results.get("matmul_windows", {}).items()
            if t1 - t0 >= min_seconds]


def _ms_per_eval(group: dict, row: dict) -> float:
    """A profiled group's kernel milliseconds per evaluation (its row's call ran ``batch`` of them)."""
    return round(1e3 * group["seconds_per_call"] / row["batch"], 3)


def variant_rows(probe: dict) -> list[dict]:
    """One row per profiled variant of a ``bench --probe`` result: evaluations/s, kernel milliseconds per
    evaluation in each group, the first call's seconds (compilation) and the output's distance from eager."""
    return [{"variant": r["variant"], "evals/s": round(r["evals_per_s"], 1),
             **{f"{g['group']} ms/eval": _ms_per_eval(g, r) for g in r["groups"]},
             "first call s": round(r["first_call_s"], 1), "|out - eager| / |eager|": r.get("rel_err_vs_eager")}
            for r in probe["models"] if "groups" in r]


def group_rows(probe: dict) -> list[dict]:
    """One row per (profiled variant, kernel group) of a ``bench --probe`` result: milliseconds per evaluation,
    share of the kernel time, achieved TFLOP/s and its percentage of the probe's own reference matmul."""
    return [{"variant": r["variant"], "group": g["group"], "ms/eval": _ms_per_eval(g, r),
             "% of kernel time": round(100 * g["share_of_time"], 1),
             "TFLOP/s": round(g["tflops"], 1) if g["tflops"] else None,
             "% of matmul": round(100 * g["ratio_to_matmul"], 1) if g["ratio_to_matmul"] else None}
            for r in probe["models"] if "groups" in r for g in r["groups"]]


def headroom_rows(groups: list[dict], *, batch: int, gflop_per_eval: float, ref_tflops: float) -> list[dict]:
    """How fast one profiled call could get if its groups ran faster, each step keeping the others as measured.

    ``groups``: ``breakdown``'s rows for a call of ``batch`` evaluations (seconds and GFLOP per call; FLOPs of
    the ``matrix`` and ``attention`` groups are needed). Rows: as measured; matrix work at the reference matmul's
    rate ``ref_tflops``; attention at that rate too; the memory-bound rest gone as well (every operator fused into
    a matmul-rate kernel: the matmul floor). Each row gives milliseconds per evaluation, evaluations/s and the
    share of the reference rate that the call's ``gflop_per_eval`` would reach, so it says which kernels a target
    such as "75 % of the matmul" needs, whatever else is made faster.
    """
    by = {g["group"]: g for g in groups}
    missing = [k for k in ("matrix", "attention") if not by.get(k, {}).get("gflop_per_call")]
    if missing:
        raise ValueError(f"no FLOPs for the {' and '.join(missing)} group(s): profile with flops "
                         "(gpu_profile.breakdown without flops={}, or bench --probe).")
    at_ref = {k: by[k]["gflop_per_call"] / ref_tflops / 1e3 for k in ("matrix", "attention")}
    measured = {k: by.get(k, {}).get("seconds_per_call", 0.0) for k in GROUPS}
    steps = [("as measured", measured),
             ("matrix at the matmul rate", {**measured, "matrix": at_ref["matrix"]}),
             ("matrix and attention at the matmul rate", {**measured, **at_ref}),
             ("all at the matmul rate, the rest fused away", {**at_ref, "other": 0.0})]
    rows = []
    for name, seconds in steps:
        per_eval = sum(seconds.values()) / batch
        rows.append({"kernels": name, "ms/eval": round(1e3 * per_eval, 3), "evals/s": round(1 / per_eval, 1),
                     "% of matmul": round(100 * gflop_per_eval / 1e3 / per_eval / ref_tflops, 1)})
    return rows
