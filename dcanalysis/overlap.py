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
caller's thread. Grad mode is per thread: the work must set what it needs itself (``classify_batch`` does).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcanalysis-gpu")
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
