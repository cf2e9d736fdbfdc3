"""When the GPU runs no kernel, and what the host was doing meanwhile.

``gpu_profile`` sums kernel time; a call's wall time less that sum is time the GPU sat idle. This finds those
intervals in one profiled call (kernel and copy events on the device timeline) and names, for each, the innermost
host operation (an ATen operator or a CUDA runtime call such as ``cudaStreamSynchronize``) running at its middle:
a sync inside a loop shows as many short gaps under one name, host work between calls as a few long ones.

Times are in microseconds on the profiler's clock, which the host and device events share.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch

Interval = tuple[float, float]


def idle_intervals(busy: Sequence[Interval], *, min_us: float = 20.0) -> list[Interval]:
    """The gaps of at least ``min_us`` between the union of ``busy`` intervals (start, end), within their span."""
    gaps, end = [], None
    for s, e in sorted(busy):
        if end is not None and s - end >= min_us:
            gaps.append((end, s))
        end = e if end is None else max(end, e)
    return gaps


def innermost(host: Sequence[tuple[str, float, float]], at: float) -> str:
    """The name of the shortest host event (name, start, end) that contains time ``at``; 'no host event' if none."""
    return _innermost_names(host, [at])[0]


def _innermost_names(host, times) -> list[str]:
    # vectorised over the host events: a profiled call has ~10^5 of them and thousands of gaps
    if not host:
        return ["no host event"] * len(times)
    starts = np.array([h[1] for h in host])
    ends = np.array([h[2] for h in host])
    length = ends - starts
    names = []
    for at in times:
        inside = (starts <= at) & (at <= ends)
        names.append(host[int(np.argmin(np.where(inside, length, np.inf)))][0] if inside.any() else "no host event")
    return names


def attribute(gaps: Sequence[Interval], host: Sequence[tuple[str, float, float]]) -> list[dict]:
    """Idle time per host operation running at each gap's middle, largest first: name, gaps, total and longest (us)."""
    total, count, longest = defaultdict(float), defaultdict(int), defaultdict(float)
    for (s, e), name in zip(gaps, _innermost_names(host, [(s + e) / 2 for s, e in gaps])):
        total[name] += e - s
        count[name] += 1
        longest[name] = max(longest[name], e - s)
    return sorted(({"host": n, "gaps": count[n], "idle_us": total[n], "longest_us": longest[n]} for n in total),
                  key=lambda r: -r["idle_us"])


def profile_idle(fn: Callable[[], object], *, min_us: float = 20.0, top: int = 12) -> dict:
    """Profile one call of ``fn`` on a CUDA device: its wall span on the device timeline, kernel-busy time, idle
    gaps (total, count) and ``top`` host operations by the idle time they account for (``attribute``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    busy, host = [], []
    for evt in prof.events():
        span = (evt.time_range.start, evt.time_range.end)
        if evt.device_type == torch.autograd.DeviceType.CUDA:
            busy.append(span)
        else:
            host.append((evt.name, *span))
    gaps = idle_intervals(busy, min_us=min_us)
    span = max(e for _, e in busy) - min(s for s, _ in busy) if busy else 0.0
    idle = sum(e - s for s, e in gaps)
    return {"device_span_s": span / 1e6, "idle_s": idle / 1e6, "gaps": len(gaps), "min_gap_us": min_us,
            "by_host_op": attribute(gaps, host)[:top]}


def main(argv=None):
    """The idle gaps of two 256-image classify_batch calls (overlapped) on the compiled Fashion-MNIST lab UNet."""
    import argparse
    import json
    from pathlib import Path

    from ..evaluation.lab_datasets import load_lab_dataset, to_model_input
    from ..lab.registry import load_lab_diffusion
    from ..engine.compile import compile_adapter
    from .versus_official import classify_all, throughput_classifier

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--per-call", type=int, default=256)
    p.add_argument("--min-gap-us", type=float, default=20.0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    device = torch.device("cuda")
    x = to_model_input(load_lab_dataset("fashion_mnist", test_only=True).test_images[:2 * a.per_call])
    adapter = load_lab_diffusion("fashion_mnist_unet", device=device, dtype=torch.bfloat16)
    compile_adapter(adapter)
    clf = throughput_classifier(adapter, a.batch, compiled=True)
    classify_all(clf, x[:a.per_call], first_index=50_000, per_call=a.per_call, desc="warm-up")
    _, wall = classify_all(clf, x, first_index=0, per_call=a.per_call, desc="timed, not profiled")
    out = profile_idle(lambda: classify_all(clf, x, first_index=0, per_call=a.per_call, desc="profiled"),
                       min_us=a.min_gap_us)
    out.update(device=torch.cuda.get_device_name(), batch=a.batch, images_per_call=a.per_call, calls=2,
               wall_s_unprofiled=wall)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"two calls: {wall:.2f} s unprofiled; profiled, the device timeline spans {out['device_span_s']:.2f} s with "
          f"{out['idle_s']:.3f} s idle in {out['gaps']} gaps of {a.min_gap_us:g} us or more")
    for r in out["by_host_op"]:
        print(f"  {r['idle_us'] / 1e3:9.1f} ms in {r['gaps']:5d} gaps (longest {r['longest_us'] / 1e3:7.2f} ms) "
              f"during {r['host'][:100]}")


if __name__ == "__main__":
    main()
