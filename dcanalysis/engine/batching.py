"""How rows reach the network: one batch shape for a compiled network, and batches that halve themselves when the
GPU runs out of memory.

``Batched`` wraps an adapter the way k-diffusion wraps a denoiser: the classifier sees the same protocol and gets
the same numbers, because every row's output depends on that row alone. It splits a ``predict`` call into chunks
of at most ``max_rows`` rows (unlimited until a chunk runs out of memory; then half of it, for the rest of the
run), and with ``static_rows`` pads each chunk (by repeating its first row) to ``padded_size`` rows, so that
``torch.compile`` sees one shape, or a few (``padded_sizes``).
"""
from __future__ import annotations

import warnings

import torch

from ..denoiser import Conditioning, RowGroups, index_conditioning, row_groups


def padded_size(n: int, batch_size: int, sizes: int = 1) -> int:
    """The batch a compiled network sees for n rows: the smallest of batch_size, batch_size // 2, ... (``sizes``
    of them, none below 1) that holds n."""
    size = batch_size
    for _ in range(sizes - 1):
        if size // 2 < n:  # n >= 1, so this also stops before 0
            break
        size //= 2
    return size


class Batched:
    """``adapter`` with its ``predict`` calls chunked, padded to static shapes (``static_rows``: the classifier's
    ``batch_size``; None: no padding) and halved on out-of-memory. Every other attribute is the adapter's own."""

    def __init__(self, adapter, *, static_rows: int | None = None, padded_sizes: int = 1):
        if padded_sizes < 1:
            raise ValueError(f"padded_sizes must be >= 1, got {padded_sizes}.")
        self.adapter = adapter
        self.static_rows = static_rows
        self.padded_sizes = padded_sizes
        self.max_rows: int | None = None  # set by the first chunk that runs out of memory

    def __getattr__(self, name):
        return getattr(self.__dict__["adapter"], name)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                rows: RowGroups | None = None) -> torch.Tensor:
        n = x_t.shape[0]
        outputs, start = [], 0
        while start < n:
            size = n - start if self.max_rows is None else min(self.max_rows, n - start)
            try:
                outputs.append(self._chunk(x_t, t, cond, rows, start, start + size))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                self.max_rows = size // 2
                warnings.warn(f"out of memory: continuing with batches of {self.max_rows} rows (pass --batch-size "
                              f"{self.max_rows} to skip this).", stacklevel=2)
                if x_t.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _chunk(self, x_t, t, cond, rows, lo: int, hi: int) -> torch.Tensor:
        """The network's output for rows lo..hi-1, padded to the static shape where there is one."""
        n, whole = hi - lo, hi - lo == x_t.shape[0]
        size = n
        if self.static_rows is not None:
            size = padded_size(n, min(self.static_rows, self.max_rows or self.static_rows), self.padded_sizes)
        if whole and size == n:
            return self.adapter.predict(x_t, t, cond, rows)
        index = torch.arange(lo, hi, device=x_t.device)
        index = torch.cat([index, index[:1].expand(size - n)]) if size > n else index
        groups = None if rows is None else row_groups(rows.index[index])
        return self.adapter.predict(x_t[index], t[index], index_conditioning(cond, index), groups)[:n]
