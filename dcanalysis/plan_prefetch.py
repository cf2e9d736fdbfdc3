"""Noise plans drawn ahead, on a host thread, while the GPU runs the network calls of the images before them.

A plan is a pure function of its arguments (``noise.make_noise_plan``), so a plan drawn early is the plan that
would have been drawn on time: prefetching changes when the host does the work, never a result. It matters for a
small model: at 100 trials of a 28 x 28 image the host spends about a millisecond per image drawing noise
(``torch.randn`` on a CPU generator, which fixes the noise stream), time in which a GPU that has just finished
the previous call has nothing queued. A caller that knows its next images (a run over a dataset, in chunks)
asks for their plans before classifying the current chunk; the worker draws them while the main thread waits on
the GPU (a CUDA synchronisation releases the GIL, and so do PyTorch's CPU kernels).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Hashable

from .noise import NoisePlan


class PlanPrefetcher:
    """Plans keyed by whatever determines them (the caller's key: seed, image index, shape, trials, strategy...).

    ``request(key, draw)`` starts ``draw()`` on the worker unless that key is already pending; ``take(key, draw)``
    returns the pending plan (waiting for it if needed) or, if it was never requested, ``draw()`` on the calling
    thread. At most ``max_pending`` plans are held: the oldest unclaimed ones are dropped first (a caller that
    requests plans it never takes costs memory for a while, never a wrong plan).
    """

    def __init__(self, max_pending: int = 4096):
        self.max_pending = max_pending
        self._pending: dict[Hashable, Future] = {}
        self._pool: ThreadPoolExecutor | None = None  # started on the first request: most classifiers never prefetch

    def request(self, key: Hashable, draw: Callable[[], NoisePlan]) -> None:
        if key in self._pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcanalysis-plans")
        self._pending[key] = self._pool.submit(draw)
        while len(self._pending) > self.max_pending:
            self._pending.pop(next(iter(self._pending))).cancel()

    def take(self, key: Hashable, draw: Callable[[], NoisePlan]) -> NoisePlan:
        future = self._pending.pop(key, None)
        return draw() if future is None else future.result()

    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
