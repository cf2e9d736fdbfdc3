"""Pruning at the network's rate: a fixed number of images in flight, each finished one replaced by the next.

``classify_batch`` walks its images through the policy in lockstep: one round of rows for every image still
undecided, then the decisions, then the next round. Under a sequential test the rounds shrink as images finish, and
the GPU waits while the host decides, so on the lab models it ran at about a third of the compiled network's rate
(issue 41). ``classify_refilled`` instead keeps ``in_flight`` images in slots on the device and one queue of rows:

- every network call takes the next ``rows`` rows of the queue (one batch shape for a compiled network); with
  ``cuda_graphs`` a call's whole device work (gathering its rows' x_0, noise and t, x_t, the network, the error) is
  one CUDA graph per padded size, captured once and replayed: the loop then launches one graph, not the hundreds of
  kernels of a compiled UNet, whose launches were the loop's largest cost on the MNIST model (issue 41);
- the host reads a call's errors back while the GPU runs the next call, so no decision makes the GPU wait;
- each image's own work (reading and encoding it, drawing its noise plan) is done ahead on ``host_threads``
  worker threads (``torch.randn`` releases the GIL), a chunk of images (about one call's rows) at a time whose
  noise travels to the device in one copy, so the loop admits many new images with one copy each for x_0, noise
  and timesteps;
- the moment all rows of an image's round are back, that image is decided by the policy's own rule
  (``pruning.policy_steps``, the rule ``prune`` applies): its next round joins the end of the queue, or, decided,
  it leaves, and the next image takes its slot; the results of all images one call decides are built together;
- a call shorter than ``rows`` goes out only when no other is in flight: at the end of a run, when the last images
  finish their rounds with no new ones to take their slots, each of them moves on a round per call, not per two.

Each image's decisions depend on its own errors only, and each row's error on that row only, so the results are
those of ``classify_batch`` (``tests/engine/test_refill.py``); they come out in the order the images finish.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..classifier import (ClassificationResult, DiffusionClassifier, check_candidates, check_image_indices,
                          non_finite_error, to_device_async)
from ..denoiser import RowGroups, index_conditioning, row_groups
from ..denoising_error import denoising_error, noisy_sample
from ..images import ImageSource
from .batching import padded_size
from ..pruning import keep_each, policy_steps, stops_early


class _Call:
    """One network call in flight: its rows (n, 3) = (slot, trial, candidate) on the host, and its errors on their
    way back (a pinned host buffer, filled when ``done`` has passed)."""

    def __init__(self, rows: torch.Tensor, errors: torch.Tensor, done: torch.cuda.Event | None):
        self.rows, self.errors, self.done = rows, errors, done

    def result(self, stats: "RefillStats") -> torch.Tensor:
        """(n,) float64 errors, waiting for this call only (the calls queued after it keep the GPU busy)."""
        if self.done is not None:
            start = time.perf_counter()
            self.done.synchronize()
            stats.waited_s += time.perf_counter() - start
        return self.errors.double()


class _RowQueue:
    """Rows waiting for the network, in order: (n, 3) LongTensors of (slot, trial, candidate)."""

    def __init__(self):
        self.parts: deque[torch.Tensor] = deque()
        self.size = 0

    def put(self, rows: torch.Tensor) -> None:
        if len(rows):
            self.parts.append(rows)
            self.size += len(rows)

    def take(self, n: int) -> torch.Tensor:
        """The first min(n, size) rows."""
        out, need = [], n
        while need and self.parts:
            head = self.parts.popleft()
            if len(head) > need:
                self.parts.appendleft(head[need:])
                head = head[:need]
            out.append(head)
            need -= len(head)
        self.size -= n - need
        return torch.cat(out) if out else torch.empty(0, 3, dtype=torch.long)


@dataclass
class RefillStats:
    """What one ``classify_refilled`` run sent to the network and where its loop spent its time.

    ``calls`` network calls carried ``rows`` rows in all (``rows / (calls * rows_per_call)``: how full the calls
    were); ``decisions``: rounds decided (one per image and round; all those that one call completes are decided
    together). Seconds of the loop's thread: ``waited_s`` waiting for calls' errors to come back (near zero when
    the host, not the GPU, sets the pace), ``admit_s`` putting new images into slots (including
    ``waited_workers_s``, waiting for the worker threads that prepare them), ``launch_s`` queueing network calls
    (including ``capture_s``, capturing CUDA graphs, once per padded size and run), ``decide_s`` storing errors
    and deciding images (waiting excluded)."""

    calls: int = 0
    rows: int = 0
    decisions: int = 0
    waited_s: float = 0.0
    admit_s: float = 0.0
    launch_s: float = 0.0
    decide_s: float = 0.0
    capture_s: float = 0.0
    waited_workers_s: float = 0.0


def classify_refilled(
    clf: DiffusionClassifier,
    images: Sequence[ImageSource | torch.Tensor],
    candidates: Sequence,
    *,
    image_indices: Sequence[int] | None = None,
    in_flight: int = 1000,
    rows: int | None = None,
    log_prior: torch.Tensor | None = None,
    progress: bool = False,
    host_threads: int = 2,
    cuda_graphs: bool = False,
    stats: RefillStats | None = None,
) -> Iterator[ClassificationResult]:
    """Classify ``images`` with ``clf``'s policy, ``in_flight`` images at a time (see the module docstring); yields
    each image's ``ClassificationResult`` as it is decided (equal to ``clf.classify_batch``'s for that image).

    ``rows``: rows per network call (default ``clf.config.batch_size``); the queue keeps every call full while
    ``in_flight`` images have at least ``2 * rows`` rows outstanding (a sequential test of step s over K classes:
    ``in_flight * s * (candidates alive)``). ``image_indices`` name the noise streams (default 0, 1, ...). The device
    holds ``in_flight`` noise plans: ``in_flight * trials * sample size`` floats (the lab models at 1,000 images:
    0.3 GB). ``progress``: a tqdm bar of images decided. ``host_threads``: worker threads that read images and
    draw noise plans ahead of the loop (0: the loop does it). ``cuda_graphs``: replay each call's device work as
    one CUDA graph (``_CallGraphs``; a CUDA device, a network that never syncs with the host, no row groups);
    calls are then padded to the adapter's ``padded_sizes`` halvings of ``rows`` (``engine.batching.Batched``)
    as the network sees them anyway. ``stats``: filled with what was sent to the network. An image that cannot be
    read raises its error once every image before it has been yielded; no image after it is started.
    """
    candidates = check_candidates(candidates)
    indices = check_image_indices(range(len(images)) if image_indices is None else image_indices, len(images))
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}.")
    if host_threads < 0:
        raise ValueError(f"host_threads must be >= 0, got {host_threads}.")
    rows = rows or clf.config.batch_size
    if cuda_graphs and torch.device(clf.adapter.device).type != "cuda":
        raise ValueError(f"cuda_graphs=True needs a CUDA device; this model is on {clf.adapter.device}: leave it off.")
    if cuda_graphs and getattr(clf.adapter, "uses_row_groups", False):
        raise ValueError("cuda_graphs=True cannot capture an adapter that shares work between rows (row groups "
                         "change with every call): leave it off for this model.")
    bar = tqdm(total=len(indices), unit="image", desc="classify", mininterval=1, leave=False, disable=not progress)
    # a chunk of images brings about one call's rows; four chunks ahead are twice what the loop admits at its
    # start (two calls' rows), and no more: each image prepared ahead holds its noise on the device
    first_round = len(candidates) * policy_steps(clf.config.schedule)[0][1]
    chunk = max(1, min(in_flight, -(-rows // first_round)))
    waiting = _host_inputs(clf, list(zip(images, indices)), host_threads, chunk=chunk, ahead=4)
    try:
        refill = _Refill(clf, candidates, in_flight, rows, log_prior, stats or RefillStats(), cuda_graphs)
        yield from refill.run(waiting, bar)
    finally:
        waiting.close()
        bar.close()


@dataclass
class _Prepared:
    """Consecutive images made ready for their slots by ``_host_inputs``: x_0 (G, *sample_shape) and noise
    (G, N, *sample_shape) on the model's device, timesteps (G, N) on the host, their image indices; ``error``: what
    the image after the last one raised (unreadable, or of another size than the run's first image): the loop
    admits no image after these G and raises it once they are decided."""

    x0: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    indices: list[int]
    error: Exception | None = None


def _host_inputs(clf: DiffusionClassifier, items: list, threads: int, *, chunk: int, ahead: int
                 ) -> Iterator[_Prepared]:
    """The images of ``items`` ((image, index) pairs) ``chunk`` at a time, in order, each read, encoded and its
    noise plan drawn (its N = ``total_trials`` trials), as ``_Prepared``.

    Each image is encoded alone, as ``classify_batch`` encodes it (the same x_0 to the last bit); a chunk's noise
    plans travel to the device in one copy from pinned memory, so no copy waits for the GPU's queue and the loop
    admits many images with one copy each for x_0, noise and timesteps. Whole chunks keep the worker threads'
    Python (each line a turn at the GIL the loop's thread needs) per image small. With ``threads`` > 0 up to
    ``ahead`` chunks are prepared ahead on worker threads (their kernels go to the same stream as the loop's,
    before the loop's own reads of them). An image that cannot be read ends its chunk there; its error reaches the
    loop after the images before it; so does an image whose diffusion-space shape is not the run's. The first
    chunk is prepared on this thread: its first image fixes the run's sample shape (before any worker starts),
    which every later image must have."""
    trials, device = clf.config.schedule.total_trials, torch.device(clf.adapter.device)
    pin = device.type == "cuda"
    run_shape: list[torch.Size] = []  # the first image's x_0 shape, set on this thread before the workers start

    def prepare(part: list) -> _Prepared:
        x0, plans, indices, error = [], [], [], None
        try:
            with torch.no_grad():  # grad mode is per thread: a worker's starts on
                for image, i in part:
                    (px,), (plan,) = clf.host_inputs([image], [i])
                    x = clf.adapter.encode(to_device_async(px.unsqueeze(0), device))[0]
                    if not run_shape:
                        run_shape.append(x.shape)
                    if x.shape != run_shape[0]:
                        raise ValueError(f"image {i} has diffusion-space shape {tuple(x.shape)}; this run's images "
                                         f"have {tuple(run_shape[0])}: resize them to one size, or classify each "
                                         f"size apart.")
                    x0.append(x)
                    plans.append(plan)
                    indices.append(i)
        except Exception as e:  # the images before it still run; the loop raises it after them
            error = e
        if not indices:
            return _Prepared(torch.empty(0), torch.empty(0), torch.empty(0, dtype=torch.long), [], error)
        noise = torch.empty((len(plans), trials, *plans[0].sample_shape), pin_memory=pin)
        torch.stack([plan.noise[:trials] for plan in plans], out=noise)
        return _Prepared(torch.stack(x0), noise.to(device, non_blocking=True),
                         torch.stack([plan.timesteps[:trials] for plan in plans]), indices, error)

    parts = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    if not parts:
        return
    yield prepare(parts[0])
    if threads == 0:
        yield from map(prepare, parts[1:])
        return
    pool, pending, rest = ThreadPoolExecutor(threads, thread_name_prefix="refill-host"), deque(), iter(parts[1:])
    try:
        pending.extend(pool.submit(prepare, part) for part in islice(rest, ahead))
        while pending:
            done = pending.popleft().result()
            pending.extend(pool.submit(prepare, part) for part in islice(rest, 1))
            yield done
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)


class _CallGraphs:
    """``_Refill._errors`` captured as one CUDA graph per padded call size and replayed.

    A graph reads its rows from a static (size, 3) buffer on the device and the run's slots (x_0, noise, t, all
    allocated once, so their addresses hold) and writes its errors to a static buffer; a call copies its rows in,
    padded as ``Batched`` pads them (the first row repeated, so the network sees what it sees without graphs), and
    replays. Each size is captured on first use, after two calls on a side stream (PyTorch's recipe: the compiled
    network's and cuDNN's choices are made outside the capture). One memory pool serves all sizes: they never run
    at once, and each keeps its own output alive."""

    def __init__(self, refill: "_Refill", padded_sizes: int):
        self.refill, self.sizes = refill, padded_sizes
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def _capture(self, size: int):
        rows = torch.zeros(size, 3, dtype=torch.long, device=self.refill.device)  # slot 0, trial 0, candidate 0
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.refill._errors(rows)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread-local: the worker threads pinning memory meanwhile may do what a global capture forbids
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            errors = self.refill._errors(rows)
        return graph, rows, errors

    def replay(self, rows: torch.Tensor) -> torch.Tensor:
        """(n,) errors, on the device, of ``rows`` (n, 3), a host tensor: queued on the current stream, valid until
        the next replay of the same size (the caller copies them out first, in stream order)."""
        n = len(rows)
        size = padded_size(n, self.refill.rows, self.sizes)
        if size not in self.graphs:
            start = time.perf_counter()
            self.graphs[size] = self._capture(size)
            self.refill.stats.capture_s += time.perf_counter() - start
        graph, static_rows, errors = self.graphs[size]
        if size > n:
            rows = torch.cat([rows, rows[:1].expand(size - n, 3)])
        static_rows.copy_(rows.pin_memory(), non_blocking=True)
        graph.replay()
        return errors[:n]


class _Refill:
    """The state of one ``classify_refilled`` run: slots on the device, decisions on the host."""

    def __init__(self, clf: DiffusionClassifier, candidates: list, in_flight: int, rows: int, log_prior,
                 stats: RefillStats, cuda_graphs: bool = False):
        self.clf, self.candidates, self.slots, self.rows, self.log_prior = clf, candidates, in_flight, rows, log_prior
        self.stats = stats
        self.adapter = clf.adapter
        self.device = torch.device(self.adapter.device)
        self.process = self.adapter.process.to(self.device)
        self.cond = clf.embed(candidates)
        self.policy = clf.config.schedule
        self.steps = policy_steps(self.policy)
        self.round_lo = torch.tensor([lo for lo, _, _ in self.steps])
        self.round_hi = torch.tensor([hi for _, hi, _ in self.steps])
        self.stops = stops_early(self.policy)
        self.trials = self.policy.total_trials
        self.queue = _RowQueue()
        self.free = list(range(in_flight - 1, -1, -1))  # popped from the end: slot 0 first
        self.shape: tuple[int, ...] | None = None
        self.tell_rows = getattr(self.adapter, "uses_row_groups", False)
        self.graphs = _CallGraphs(self, getattr(self.adapter, "padded_sizes", 1)) if cuda_graphs else None

    def _allocate(self, shape: tuple[int, ...]) -> None:
        """Device slots for x_0, noise and timesteps; host tables for errors and decisions."""
        S, K, N, dev = self.slots, len(self.candidates), self.trials, self.device
        self.shape = shape
        self.x0 = torch.empty(S, *shape, device=dev)
        self.noise = torch.empty(S, N, *shape, device=dev)
        self.t = torch.empty(S, N, dtype=torch.long, device=dev)
        self.t_host = torch.empty(S, N, dtype=torch.long)
        self.errors = torch.full((S, K, N), float("nan"), dtype=torch.float64)
        self.alive = torch.zeros(S, K, dtype=torch.bool)
        self.active = torch.zeros(S, K, dtype=torch.bool)  # the candidates of each slot's current round
        self.reached = torch.zeros(S, K, dtype=torch.long)
        self.step = torch.zeros(S, dtype=torch.long)
        self.pending = torch.zeros(S, dtype=torch.long)  # rows of the current round not yet back
        self.index = [-1] * S  # the image index in each slot

    # -- admitting images
    def _admit(self, part: _Prepared, lo: int, hi: int) -> None:
        """Put images ``lo:hi`` of ``part`` into free slots: x_0, noise and timesteps each in one copy on the
        device, their first round in the queue. Nothing here waits for the GPU's queue."""
        if self.shape is None:
            self._allocate(tuple(part.x0.shape[1:]))
        slots = [self.free.pop() for _ in range(hi - lo)]
        s = torch.tensor(slots)
        on_device = to_device_async(s, self.device)
        self.x0.index_copy_(0, on_device, part.x0[lo:hi])
        self.noise.index_copy_(0, on_device, part.noise[lo:hi])
        self.t.index_copy_(0, on_device, to_device_async(part.timesteps[lo:hi], self.device))
        for slot, i in zip(slots, part.indices[lo:hi]):
            self.index[slot] = i
        self.t_host[s] = part.timesteps[lo:hi]
        self.errors[s] = float("nan")
        self.alive[s] = True
        self.reached[s] = 0
        self.step[s] = 0
        self._enqueue(s)

    def _enqueue(self, s: torch.Tensor) -> None:
        """The rows of the current round of slots ``s`` (each at its own round, ``self.step``): trial-major within
        each image, as ``classify_batch`` orders them, so one x_t's candidates travel together."""
        if not len(s):
            return
        rounds = self.step[s]
        lo, hi = self.round_lo[rounds], self.round_hi[rounds]
        active = self.alive[s]
        if self.stops:  # as prune: after the first round, an image with one candidate left gets no more trials
            active = active & ((active.sum(dim=1, keepdim=True) >= 2) | (rounds == 0).unsqueeze(1))
        self.active[s] = active
        self.pending[s] = active.sum(dim=1) * (hi - lo)
        width = int((hi - lo).max())
        within = torch.arange(width).unsqueeze(0) < (hi - lo).unsqueeze(1)  # (b, width): the round's trials
        i, trial, cand = (within.unsqueeze(2) & active.unsqueeze(1)).nonzero().unbind(1)
        self.queue.put(torch.stack([s[i], lo[i] + trial, cand], dim=1))

    # -- the network
    def _errors(self, rows: torch.Tensor, host_rows: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) errors of ``rows`` (n, 3) = (slot, trial, candidate) on the device (``host_rows``: the same on the
        host, for adapters that use row groups): the device work of one call, queued without waiting (and what
        ``_CallGraphs`` captures)."""
        s, trial, cand = rows.unbind(1)
        t, eps, x = self.t[s, trial], self.noise[s, trial], self.x0[s]
        x_t = noisy_sample(self.process, x, eps, t)
        groups = None
        if self.tell_rows:  # rows of one (slot, trial) hold the same x_t
            g = row_groups(host_rows[:, 0] * self.trials + host_rows[:, 1])
            groups = RowGroups(to_device_async(g.starts, self.device), to_device_async(g.index, self.device))
        cfg = self.clf.config
        with torch.no_grad():
            out = self.adapter.predict(x_t, t, index_conditioning(self.cond, cand), groups)
            return denoising_error(self.process, out, x_t, x, eps, t, loss=cfg.error, target=cfg.target)

    def _launch(self, rows: torch.Tensor) -> _Call:
        """Queue one network call for ``rows`` (n, 3) and the copy of its errors back; returns at once on a GPU."""
        self.stats.calls += 1
        self.stats.rows += len(rows)
        if self.graphs is not None:
            err = self.graphs.replay(rows)
        else:
            err = self._errors(to_device_async(rows, self.device), rows)
        if self.device.type != "cuda":
            return _Call(rows, err, None)
        back = torch.empty(err.shape, dtype=err.dtype, pin_memory=True)
        back.copy_(err, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _Call(rows, back, done)

    # -- decisions
    def _take_back(self, call: _Call) -> list[ClassificationResult]:
        """Store a finished call's errors; decide every image whose round is now complete. Returns the results
        of the images decided."""
        errs = call.result(self.stats)
        s, trial, cand = call.rows.unbind(1)
        if not torch.isfinite(errs).all():
            bad = int((~torch.isfinite(errs)).nonzero()[0])
            raise non_finite_error(int(self.t_host[s[bad], trial[bad]]), int(cand[bad]))
        self.errors[s, cand, trial] = errs
        self.pending.index_add_(0, s, torch.full_like(s, -1))
        touched = torch.unique(s)
        complete = touched[self.pending[touched] == 0]
        if not len(complete):
            return []
        rounds = self.step[complete]
        # the trials these rounds have reached, no more: the test's running sums read each row at its own n, the
        # same numbers over any longer prefix (``sequential.prefix_sums``), and most images decide early
        reached_trials = int(self.round_hi[rounds].max())
        survivors = keep_each(self.policy, self.steps, self.errors[:, :, :reached_trials][complete],
                              self.active[complete], rounds, self.round_hi)
        self.alive[complete] = survivors
        self.reached[complete] = torch.where(survivors, (rounds + 1).unsqueeze(1), self.reached[complete])
        done = (rounds + 1 == len(self.steps)) | (self.stops & (survivors.sum(dim=1) < 2))
        self.stats.decisions += len(complete)
        more = complete[~done]
        self.step[more] = rounds[~done] + 1
        self._enqueue(more)
        return self._finish(complete[done])

    def _finish(self, slots: torch.Tensor) -> list[ClassificationResult]:
        """The results of the images in ``slots`` (F,), built together (``DiffusionClassifier._results_of``); their
        slots are free again."""
        free = slots.tolist()
        results = self.clf._results_of(self.candidates, self.errors[slots], self.t_host[slots],
                                       self.reached[slots].tolist(), self.shape, [self.index[s] for s in free],
                                       self.log_prior)
        self.free.extend(free)
        return results

    def run(self, waiting: Iterator[_Prepared], bar) -> Iterator[ClassificationResult]:
        """The loop: top the queue up with new images, launch the next call, then take back the one before it.

        New images are admitted a few at a time, as many as keep ``2 * rows`` rows queued (up to ``in_flight``):
        the host's work between two launches must stay shorter than a call's GPU time, and admitting hundreds of
        images at once would leave the GPU idle. When fewer than ``rows`` rows are queued (the run's last images
        finishing their rounds, no new ones to take their slots), the call in flight is taken back first: its
        images' next rounds then join the next call instead of the one after it, so each of these images moves
        on a round per call, not per two. An image that could not be read (or is of another size) stops the
        admissions: the images before it are decided and yielded, then its error is raised."""
        first_round = len(self.candidates) * (self.steps[0][1] - self.steps[0][0])
        part, used, in_call, stats, clock = None, 0, None, self.stats, time.perf_counter
        failed: Exception | None = None  # an image that could not be read: no more are admitted, raised at the end
        exhausted = False  # every image admitted (or one could not be read)
        while True:
            start = clock()
            while self.free and self.queue.size < 2 * self.rows and not exhausted:
                if part is None or used == len(part.indices):
                    if part is not None and part.error is not None:
                        failed, exhausted = part.error, True
                        break
                    asked = clock()
                    part, used = next(waiting, None), 0
                    stats.waited_workers_s += clock() - asked
                    exhausted = part is None
                    continue
                want = -(-(2 * self.rows - self.queue.size) // first_round)
                n = min(len(self.free), len(part.indices) - used, want)
                self._admit(part, used, used + n)
                used += n
            stats.admit_s += clock() - start
            launched = clock()
            call = None
            if self.queue.size >= self.rows or (in_call is None and self.queue.size):  # else: take in_call back first
                call = self._launch(self.queue.take(self.rows))
            deciding, waited = clock(), stats.waited_s
            finished = self._take_back(in_call) if in_call is not None else []
            stats.launch_s += deciding - launched
            stats.decide_s += clock() - deciding - (stats.waited_s - waited)
            for result in finished:
                bar.update(1)
                yield result
            in_call = call
            if in_call is None and not self.queue.size and exhausted:
                if len(self.free) != self.slots:  # every image in a slot has a round queued or in a call
                    raise RuntimeError("classify_refilled lost track of an image: this is a bug, please report it.")
                if failed is not None:  # every image before it has its result
                    raise failed
                return
