"""Which kernel runs the attention: PyTorch's scaled-dot-product backends, chosen per network.

``scaled_dot_product_attention`` picks a backend (flash, memory-efficient, cuDNN or the plain math of two matrix
products and a softmax) from global flags at the moment it runs, and ``torch.compile`` fixes that choice into the
graph when it traces. The choice matters most where the heads are narrow: the lab UNets' heads, 8 wide, only partly
fill fused kernels built for much wider ones (chapter 10 measures each back end on them). ``WithAttentionBackend``
pins one backend to one network, so it holds for every call and for the compile's trace, and not for other models
in the process; ``engine.optimise(attention=...)`` compiles such a network without inductor's graph cache, whose
key leaves the backend out.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from .timing import time_calls

ATTENTION_BACKENDS = ("flash", "efficient", "cudnn", "math")


def sdpa_backend(name: str):
    """``torch.nn.attention.SDPBackend`` for a short name in ``ATTENTION_BACKENDS``."""
    from torch.nn.attention import SDPBackend

    table = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
             "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    if name not in table:
        raise ValueError(f"unknown attention backend {name!r}; choose from {ATTENTION_BACKENDS}.")
    return table[name]


def attention_context(name: str | None):
    """A context that restricts ``scaled_dot_product_attention`` to one backend (``None``: PyTorch's choice)."""
    from torch.nn.attention import sdpa_kernel

    return nullcontext() if name is None else sdpa_kernel([sdpa_backend(name)])


class WithAttentionBackend(torch.nn.Module):
    """``network`` (eager or compiled) whose every call runs under one SDPA backend.

    Attributes the wrapper does not have (``config``, ``dtype``, the network's own methods) are the network's, so
    an adapter keeps using it as it used the network. Compile the network, then wrap it: the first call traces
    under the backend and the graph keeps it.
    """

    def __init__(self, network: torch.nn.Module, backend: str):
        super().__init__()
        sdpa_backend(backend)  # an unknown name fails here, not on the first call
        self.network, self.backend = network, backend

    def forward(self, *args, **kwargs):
        with attention_context(self.backend):
            return self.network(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers and submodules (``network`` itself)
        except AttributeError:
            return getattr(super().__getattr__("network"), name)


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
    """``python -m dcanalysis.speed.attention --shapes 4096x16x256x8 --out F``: each backend at each shape, beside the
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
