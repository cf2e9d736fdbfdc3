"""Which kernel runs the attention: PyTorch's scaled-dot-product backends, chosen per network.

``scaled_dot_product_attention`` picks a backend (flash, memory-efficient, cuDNN or the plain math of two matrix
products and a softmax) from global flags at the moment it runs, and ``torch.compile`` fixes that choice into the
graph when it traces. The choice matters most where the heads are narrow: the lab UNets' heads, 8 wide, only partly
fill fused kernels built for much wider ones (``python -m dcanalysis.bench --probe`` times each back end alone). ``WithAttentionBackend``
pins one backend to one network, so it holds for every call and for the compile's trace, and not for other models
in the process; ``engine.optimise(attention=...)`` compiles such a network without inductor's graph cache, whose
key leaves the backend out.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

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
