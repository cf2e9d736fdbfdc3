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
objects inductor keeps per thread (its CUDA-graph trees) are handed to the worker (``torch_thread_state``): without
them a network compiled with CUDA graphs fails there (torch 2.11).
"""
from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ..classifier import DiffusionClassifier


T = TypeVar("T")
R = TypeVar("R")

# inductor's CUDA-graph tree managers (torch.compile's cudagraphs), one set per thread: a plain worker thread has
# none, and torch 2.11 then fails on its first graph call; the worker must use the caller's
TORCH_THREAD_OBJECTS = ("tree_manager_containers", "tree_manager_locks")


def _cudagraph_trees():
    """inductor's cudagraph_trees module where torch.compile is in use in this process, else None."""
    if "torch._dynamo" not in sys.modules:
        return None
    import torch._inductor.cudagraph_trees as trees

    return trees


def torch_thread_state() -> dict[str, Any]:
    """The calling thread's ``TORCH_THREAD_OBJECTS`` (empty where torch.compile is not in use)."""
    trees = _cudagraph_trees()
    if trees is None:
        return {}
    if not all(hasattr(trees.local, k) for k in TORCH_THREAD_OBJECTS):
        import torch

        if all(torch._C._is_key_in_tls(k) for k in TORCH_THREAD_OBJECTS):  # a thread PyTorch started
            return {k: torch._C._get_obj_in_tls(k) for k in TORCH_THREAD_OBJECTS}
        trees._initialize_tls(trees.local)  # inductor was first used on another thread: this one gets its own
    return {k: getattr(trees.local, k) for k in TORCH_THREAD_OBJECTS}


def adopt_torch_thread_state(state: dict[str, Any]) -> None:
    """Make ``state`` (from ``torch_thread_state`` in another thread) this thread's own. They are set as the
    module's thread-local Python attributes, which its lookup reads first; stashing them in PyTorch's C++
    thread-local store from a thread PyTorch did not start killed the process on an H200 (torch 2.11)."""
    trees = _cudagraph_trees() if state else None
    for name, obj in state.items():
        setattr(trees.local, name, obj)


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


def classify_all(clf: DiffusionClassifier, x, *, first_index: int, per_call: int, desc: str,
                 candidates: list | None = None, plan=None, overlap: bool = True):
    """classify_batch over x (classes 0..9 unless ``candidates``) in calls of ``per_call`` images, each call's host
    work done while the GPU runs the last one (``DiffusionClassifier.classify_stream``; ``overlap=False``: one call
    after another); (results, wall seconds). ``plan(image_index) -> NoisePlan`` replaces the classifier's own plans."""
    candidates = list(range(10)) if candidates is None else candidates
    calls = [(x[lo:lo + per_call], range(first_index + lo, first_index + min(lo + per_call, len(x))))
             for lo in range(0, len(x), per_call)]
    results = []
    _sync(clf.adapter.device)
    start = time.perf_counter()
    for res in tqdm(clf.classify_stream(calls, candidates, plan_for=plan,
                                          run_ahead=overlapped if overlap else None), total=len(calls),
                    desc=desc, mininterval=5):
        results += res
    _sync(clf.adapter.device)
    return results, time.perf_counter() - start


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queue, so that a wall clock read next covers the work queued before."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
