"""How fast a network could run: a per-operator roofline from one traced forward pass.

A small model (the lab UNets: a few GFLOP per evaluation) is not limited by the matmul rate alone. Each operator
takes at least as long as moving its bytes through memory and at least as long as its FLOPs at the matmul rate:

    t_op >= max(bytes_op / copy_bandwidth, flops_op / matmul_rate)

``trace_ops`` records every ATen operator of one forward (its input and output bytes, and its FLOPs where
``torch.utils.flop_counter`` has a formula: convolutions, matrix products, attention). ``ceiling_rows`` sums the
bound above two ways:

- **as run eagerly**: every operator reads its inputs from memory and writes its output back;
- **perfectly fused**: only the FLOP-carrying operators move bytes (every normalisation, activation and addition
  folded into their prologues and epilogues), the most any compiler could remove.

Dividing the batch by either sum gives an evaluations/s ceiling to set beside the measured rate. The copy
bandwidth is measured in the same run (``copy_bandwidth``), as the matmul rate is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from .timing import time_calls

# views and metadata changes move no bytes
_FREE = {"view", "_unsafe_view", "reshape", "expand", "permute", "transpose", "t", "unsqueeze", "squeeze",
         "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "as_strided", "alias", "detach",
         "empty", "empty_like", "empty_strided", "lift_fresh", "_reshape_alias", "unflatten", "flatten"}


@dataclass(frozen=True)
class OpCost:
    """One ATen operator of a traced forward: ``bytes`` read and written (each distinct input storage once),
    ``flops`` (0 where flop_counter has no formula)."""
    name: str
    bytes: int
    flops: int


def _tensor_bytes(values) -> int:
    seen, total = set(), 0
    for v in tree_flatten(values)[0]:
        if isinstance(v, torch.Tensor) and v.device.type != "meta":
            key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
            if key not in seen:
                seen.add(key)
                total += v.numel() * v.element_size()
    return total


def attention_flops(q: torch.Tensor, k: torch.Tensor) -> int:
    """FLOPs of softmax(q k^T) v for q (..., L_q, d) and k (..., L_k, d): two products of 2 L_q L_k d each."""
    return 4 * q.shape[:-1].numel() * k.shape[-2] * q.shape[-1]


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[OpCost] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name not in _FREE:
            formula = flop_registry.get(func.overloadpacket)
            if formula is not None:
                flops = int(formula(*args, **kwargs, out_val=out))
            elif "scaled_dot_product" in name:  # a back end flop_counter has no formula for (the CPU's)
                flops = attention_flops(args[0], args[1])
            else:
                flops = 0
            self.ops.append(OpCost(name, _tensor_bytes((args, kwargs)) + _tensor_bytes(out), flops))
        return out


def trace_ops(fn) -> list[OpCost]:
    """Every byte-moving ATen operator ``fn()`` runs, in order (run it eagerly: a compiled graph hides its ops)."""
    rec = _Recorder()
    with torch.no_grad(), rec:
        fn()
    return rec.ops


def roofline_seconds(ops: list[OpCost], *, bandwidth: float, flop_rate: float, fused: bool) -> float:
    """Lower bound on the seconds ``ops`` take: bandwidth in bytes/s, flop_rate in FLOP/s. ``fused``: only the
    FLOP-carrying operators move bytes (the rest folded into them)."""
    return sum(max(o.bytes / bandwidth, o.flops / flop_rate) for o in ops if o.flops or not fused)


def copy_bandwidth(device, *, gib: float = 2.0, seconds: float = 2.0) -> float:
    """Bytes/s of a device-to-device copy of ``gib`` GiB (read plus write counted), timed for ``seconds``."""
    device, n = torch.device(device), int(gib * 2**30)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    s = time_calls(lambda: dst.copy_(src), device=device, min_seconds=seconds)
    return 2 * n / s


def ceiling_rows(ops: list[OpCost], *, batch: int, bandwidth: float, flop_rate: float) -> list[dict]:
    """Evaluations/s ceilings for one traced call of ``batch`` evaluations, eager and perfectly fused."""
    rows = []
    for fused in (False, True):
        kept = [o for o in ops if o.flops or not fused]
        s = roofline_seconds(ops, bandwidth=bandwidth, flop_rate=flop_rate, fused=fused)
        rows.append({"ceiling": "perfectly fused" if fused else "as run eagerly", "operators": len(kept),
                     "mb_per_eval": sum(o.bytes for o in kept) / batch / 1e6,
                     "gflop_per_eval": sum(o.flops for o in kept) / batch / 1e9,
                     "memory_bound_operators": sum(o.bytes / bandwidth > o.flops / flop_rate for o in kept),
                     "evals_per_s": batch / s})
    return rows
