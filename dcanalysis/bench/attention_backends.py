"""Self-attention alone under each SDPA backend (``dcanalysis.engine.attention``), at the shapes a network calls it
with, beside the same-run bf16 matmul: the attention table of ``python -m dcanalysis.bench --probe``."""
from __future__ import annotations

import torch

from ..engine.attention import ATTENTION_BACKENDS, attention_context
from .timing import time_calls


def attention_shapes(fn) -> list[tuple[int, int, int]]:
    """The distinct (heads, tokens, head width) of every ``scaled_dot_product_attention`` call ``fn()`` makes, in the
    order first seen: the shapes to time the back ends at (``attention_backends``)."""
    from torch.overrides import TorchFunctionMode

    seen: list[tuple[int, int, int]] = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.scaled_dot_product_attention:
                q = args[0] if args else kwargs["query"]
                shape = tuple(int(v) for v in q.shape[-3:])  # (..., heads, tokens, width)
                if shape not in seen:
                    seen.append(shape)
            return func(*args, **(kwargs or {}))

    with Record():
        fn()
    return seen


def attention_backends(batch: int, heads: int, tokens: int, head_dim: int, *, device: torch.device, dtype,
                       ref_tflops: float, iters: int = 10) -> list[dict]:
    """TFLOP/s of self-attention at one shape under each SDPA backend (``None`` where it cannot run it).

    FLOPs: 4 B H N^2 d (the two matrix products; the softmax is not counted, as flop_counter does not).
    """
    q, k, v = (torch.randn(batch, heads, tokens, head_dim, device=device, dtype=dtype) for _ in range(3))
    flops = 4 * batch * heads * tokens**2 * head_dim
    rows = []
    for name in ATTENTION_BACKENDS:
        try:
            with attention_context(name):
                s = time_calls(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), device=device,
                               iters=iters)
            tflops = flops / s / 1e12
        except RuntimeError:  # this backend does not support the shape, dtype or device
            tflops = None
        rows.append({"backend": name, "shape": [batch, heads, tokens, head_dim], "tflops": tflops,
                     "ratio_to_matmul": tflops / ref_tflops if tflops else None})
    return rows


def time_shapes(shapes, *, device: torch.device, dtype, ref_tflops: float) -> list[dict]:
    """``attention_backends`` at each (batch, heads, tokens, head width) of ``shapes``, one printed line a row."""
    rows = []
    for b, h, n, d in shapes:
        for r in attention_backends(b, h, n, d, device=device, dtype=dtype, ref_tflops=ref_tflops):
            rows.append(r)
            rate = f"{r['tflops']:7.1f} TFLOP/s ({100 * r['ratio_to_matmul']:5.1f}% of matmul)" if r["tflops"] else "n/a"
            print(f"SDPA {r['backend']:9s} {b}x{h}x{n}x{d}: {rate}")
    return rows
