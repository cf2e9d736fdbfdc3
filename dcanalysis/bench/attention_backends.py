"""Self-attention alone under each SDPA backend (``dcanalysis.engine.attention``), at the shapes a network calls it
with, beside the same-run bf16 matmul: what made the lab UNets' narrow heads a measured question."""
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


def main(argv=None):
    """``python -m dcanalysis.bench.attention_backends --shapes 4096x16x256x8 --out F``: each backend at each shape, beside the
    same-run bf16 matmul."""
    import argparse
    import json
    from pathlib import Path

    from .timing import matmul_tflops

    p = argparse.ArgumentParser(description="Self-attention alone under each SDPA backend.")
    p.add_argument("--shapes", nargs="+", required=True, help="batch x heads x tokens x head width, e.g. 4096x16x256x8")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("this times the GPU's attention kernels; run it on a machine with CUDA.")
    device = torch.device("cuda")
    ref = matmul_tflops(device, torch.bfloat16, 8192, min_seconds=1.0)
    rows = time_shapes([tuple(int(v) for v in shape.split("x")) for shape in a.shapes], device=device,
                       dtype=torch.bfloat16, ref_tflops=ref)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                 "matmul_tflops": ref, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
