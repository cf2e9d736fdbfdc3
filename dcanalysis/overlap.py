"""Host work beside GPU work: run a sequence of calls on one worker thread while the caller prepares the next.

A ``classify_batch`` call keeps the GPU busy from its first network batch to the read-back of its errors, and then
the GPU waits while the host reads the next images, draws their noise plans and writes the last results. On a small
model that host work was thought to be the few per cent by which the classifier trails the bare network (issue 21);
on that benchmark hiding it gained nothing measurable (README, Speed), but a run over image files (``run_dataset``)
has more host work per call. ``overlapped`` hides it: the calls run one after
another on a worker thread, in order, while the caller's thread makes the next call's inputs (by pulling the next
item from its iterable) and handles the finished call's outputs (between the yields). Nothing about a call changes,
so its results are those of running the calls in a plain loop.

PyTorch releases the interpreter lock inside its operators, so a worker thread waiting for the GPU does not stop the
caller's thread. Grad mode is per thread: the work must set what it needs itself (``classify_batch`` does). The
objects PyTorch keeps per thread for the threads it spawns itself (inductor's CUDA-graph trees) are handed to the
worker (``torch_thread_state``): without them a network compiled with CUDA graphs fails there (torch 2.11).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

# what PyTorch stashes per thread and copies into the threads it spawns (autograd's), but not into a plain thread:
# the CUDA-graph tree managers of torch.compile's cudagraphs, which the worker must share with the caller's thread
TORCH_THREAD_OBJECTS = ("tree_manager_containers", "tree_manager_locks")


def torch_thread_state() -> dict[str, Any]:
    """The calling thread's ``TORCH_THREAD_OBJECTS`` that are set, by name."""
    return {k: torch._C._get_obj_in_tls(k) for k in TORCH_THREAD_OBJECTS if torch._C._is_key_in_tls(k)}


def adopt_torch_thread_state(state: dict[str, Any]) -> None:
    """Make ``state`` (from ``torch_thread_state`` in another thread) this thread's own."""
    for name, obj in state.items():
        torch._C._stash_obj_in_tls(name, obj)


def overlapped(work: Callable[[T], R], items: Iterable[T], *, ahead: int = 1) -> Iterator[R]:
    """``work(item)`` for each item, in order, run on one worker thread; yields the outputs in order.

    Up to ``ahead`` items beyond the one running are made (pulled from ``items``) and queued, so the worker starts
    the next call the moment one ends. ``ahead=0`` runs everything in the caller's thread (a plain loop, for
    comparison and for debugging). An exception in ``work`` is raised at its item's yield; items queued after it
    are not run.
    """
    if ahead < 0:
        raise ValueError(f"ahead={ahead}: need 0 (a plain loop) or more items prepared ahead of the running one.")
    if ahead == 0:
        for item in items:
            yield work(item)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcanalysis-gpu",
                              initializer=adopt_torch_thread_state, initargs=(torch_thread_state(),))
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:  # the consumer stopped early or a call failed: what has not started never will
            f.cancel()
        pool.shutdown(wait=True)
