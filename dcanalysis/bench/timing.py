"""Timing GPU work honestly: wait for the device before reading the clock, warm up before timing, and time for
long enough that a power-capped GPU settles at its sustained clock. Used by ``bench``, ``gpu_profile`` and
``attention``; ``matmul_tflops`` is the same-run ceiling every rate is set against."""
from __future__ import annotations

import time

import torch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn, *, device, warmup: int = 2, iters: int = 5, min_seconds: float = 0.0) -> float:
    """Seconds per call, after warm-up (which includes compilation for compiled modules).

    Rounds of ``iters`` calls until ``min_seconds`` have passed (one round when 0): a GPU kept busy for seconds
    runs at the clock its power limit allows, which a burst of a few milliseconds does not show.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    start, n = time.perf_counter(), 0
    while True:
        for _ in range(iters):  # in rounds of ``iters`` calls, so the check below leaves no gap between calls
            fn()
        n += iters
        sync(device)  # the host runs ahead of the GPU: read the clock once the work is done
        if time.perf_counter() - start >= min_seconds:
            return (time.perf_counter() - start) / n


def warm_then_time(call, *, device) -> tuple[object, float]:
    """``call(0)`` as the warm-up (compilation, cached embeddings), then ``call(1)`` timed: (its result, seconds).

    The two calls get their own argument, so a classifier can take a new image index (its own noise) for each, as
    successive images of a dataset would."""
    call(0)
    sync(device)
    t0 = time.perf_counter()
    out = call(1)
    sync(device)
    return out, time.perf_counter() - t0


def matmul_tflops(device, dtype, n: int, min_seconds: float = 0.0) -> float:
    """TFLOP/s of an n x n x n matrix product, back to back for at least ``min_seconds`` (0: ten products)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    s = time_calls(lambda: a @ b, device=device, warmup=3, iters=10, min_seconds=min_seconds)
    return 2 * n**3 / s / 1e12
