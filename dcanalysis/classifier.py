"""Diffusion Classifier (Li et al., ICCV 2023): pick the condition under which the model denoises x best.

For an image x and candidate conditions c_1..c_K the classifier estimates, for each c, the expected denoising
error ``E_{t, eps} [ denoising_error(x, t, eps, c) ]`` (paper Eq. 5, ``dcanalysis.denoising_error``) on one
shared noise plan (the same (t, eps) for every candidate), and returns the candidate with the lowest error.
``dcanalysis.pruning`` decides which candidates get more trials: a ``Schedule`` (paper Algorithms 1 and 2) or a
``SequentialTest``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .denoiser import Conditioning, DiffusionAdapter, RowGroups, conditioning_to, index_conditioning, row_groups
from .denoising_error import denoising_error, noisy_sample
from .exceptions import NonFiniteError
from .images import ImageSource, model_input
from .losses import get_loss
from .noise import NoisePlan, make_noise_plan
from .posterior import posterior
from .pruning import Policy, prune, ranking
from .schedules import Schedule
from .timesteps import get_strategy


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that decides a classification besides the model and the image.

    ``schedule`` is a ``Schedule`` (paper Algorithms 1/2) or a ``SequentialTest``; ``timesteps`` and
    ``error`` are names from ``TIMESTEP_STRATEGIES`` and ``losses.LOSSES``; ``target`` the parameterisation the
    error compares in (None: the model's process decides, eps for DDPM models as in the paper, velocity for flow
    matching); ``batch_size`` is the number of (trial, candidate) pairs per network call (it changes no number:
    each row's error depends on that row alone). How the rows then reach the network (one static shape for a
    compiled network, smaller batches after an out-of-memory error) is the engine's (``dcanalysis.engine``).
    """

    schedule: Policy = field(default_factory=lambda: Schedule.exhaustive(100))
    timesteps: str = "even"
    error: str = "l2"
    batch_size: int = 64
    seed: int = 0
    temperature: float = 1.0
    target: str | None = None

    def __post_init__(self):
        get_strategy(self.timesteps)
        get_loss(self.error)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schedule_type"] = type(self.schedule).__name__
        if d["target"] is None:  # left out, so runs made before the field existed still match
            del d["target"]
        return d


@dataclass
class ClassificationResult:
    """The outcome for one image: the full error table and what follows from it.

    Attributes
    ----------
    candidates : list
        The conditions, in the order given.
    errors : Tensor (K, N) float64
        Error of candidate k on trial n; NaN where candidate k was pruned before trial n.
    timesteps : LongTensor (N,)
        t of each trial (0-based).
    posterior : Tensor (K,) float64
        p(c | x) from each candidate's mean over the trials it received (see ``posterior.posterior``).
    ranking : list[int]
        Candidate indices, best first: survivors by final mean error, then candidates in the reverse order
        of being pruned.
    n_evaluations : int
        Network evaluations spent (each (trial, candidate) pair is one).
    """

    candidates: list
    errors: torch.Tensor
    timesteps: torch.Tensor
    posterior: torch.Tensor
    ranking: list[int]
    n_evaluations: int
    seed: int
    image_index: int

    @property
    def prediction_index(self) -> int:
        return self.ranking[0]

    @property
    def prediction(self) -> Any:
        return self.candidates[self.ranking[0]]

    @property
    def trials_per_candidate(self) -> torch.Tensor:
        """(K,) number of trials each candidate received."""
        return (~torch.isnan(self.errors)).sum(dim=1)

    @property
    def mean_errors(self) -> torch.Tensor:
        """(K,) mean error over the trials each candidate received."""
        return torch.nanmean(self.errors, dim=1)

    def to_dict(self) -> dict:
        return {
            "candidates": [str(c) for c in self.candidates],
            "prediction": str(self.prediction),
            "prediction_index": self.prediction_index,
            "ranking": self.ranking,
            "mean_errors": self.mean_errors.tolist(),
            "trials_per_candidate": self.trials_per_candidate.tolist(),
            "posterior": self.posterior.tolist(),
            "n_evaluations": self.n_evaluations,
            "seed": self.seed,
            "image_index": self.image_index,
        }


def check_candidates(candidates: Sequence) -> list:
    candidates = list(candidates)
    if not candidates:
        raise ValueError("the candidate list is empty: pass the conditions to choose between, e.g. class names.")
    candidates = [c.item() if isinstance(c, torch.Tensor) else c for c in candidates]
    bad = [c for c in candidates if isinstance(c, float)]
    if bad:
        raise ValueError(f"candidates {bad[:3]} are floats: class indices must be int (1, not 1.5 or 1.0).")
    kinds = {"int" if isinstance(c, numbers.Integral) else type(c).__name__ for c in candidates}
    if len(kinds) > 1:
        raise ValueError(f"candidates mix types {sorted(kinds)} (e.g. '1' and 1): pass all class indices (int) or "
                         "all prompts (str).")
    seen, dups = set(), []
    for c in candidates:
        if c in seen:
            dups.append(c)
        seen.add(c)
    if dups:
        raise ValueError(f"duplicate candidates {dups}: each condition must appear once, or its score is counted twice.")
    return candidates


@dataclass
class BatchErrors:
    """A ``classify_batch`` call's errors before they become results: what its GPU work hands to the host."""

    candidates: list
    errors: torch.Tensor  # (B, K, N) float64, NaN where a candidate did not get a trial
    timesteps: torch.Tensor  # (B, N) the trials' timesteps
    reached: list[list[int]]  # (B, K): the last step each candidate was alive after (``pruning.Pruned``)
    shape: tuple[int, ...]  # the diffusion-space sample shape
    image_indices: list[int]


def stack_plans(plans: Sequence[NoisePlan], shape: tuple[int, ...], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` trials of each image's plan, stacked: timesteps (B, n) and noise (B, n, *shape). Raises
    ValueError for a plan of another sample shape or with fewer than ``n`` trials."""
    for plan in plans:
        if plan.sample_shape != shape or len(plan) < n:
            raise ValueError(
                f"the noise plan has {len(plan)} trials of shape {plan.sample_shape}; this run needs "
                f"{n} of shape {shape}."
            )
    if not plans:
        return torch.empty(0, n, dtype=torch.long), torch.empty(0, n, *shape)
    return torch.stack([p.timesteps[:n] for p in plans]), torch.stack([p.noise[:n] for p in plans])


def to_device_async(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small host tensor to ``device`` without waiting for the GPU's queue (through pinned memory)."""
    if device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def evaluate_triples(
    adapter: DiffusionAdapter,
    x0: torch.Tensor,
    cond: Conditioning,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    img_idx: torch.Tensor,
    trial_idx: torch.Tensor,
    cand_idx: torch.Tensor,
    *,
    error: str = "l2",
    target: str | None = None,
    batch_size: int = 64,
    after_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """``denoising_error`` of (image, trial, candidate) triples, ``batch_size`` of them per network call
    (``after_batch(rows)`` after each call is queued; it must not wait for the GPU).

    x0 : (B, *sample_shape) on the adapter's device; cond : embeddings of all K candidates, on the device;
    timesteps : (B, N) and noise : (B, N, *sample_shape), the noise plans of the B images (CPU);
    img_idx, trial_idx, cand_idx : LongTensor (P,). Returns (P,) float64 on the CPU. Triples of several images
    share network calls, which keeps a small model busy. The numbers are ``expected_denoising_error``'s terms
    (``dcanalysis.denoising_error``), computed in shared batches.
    """
    device = adapter.device
    process = adapter.process.to(device)
    # Indices and the noise of every (image, trial) pair this call uses go to the device once, up front. A copy
    # from pageable host memory waits for the GPU's queue to drain, and so does reading a result back: one of
    # either per batch would leave the GPU idle while the host prepares the next batch.
    n_trials = timesteps.shape[1]
    pairs, row_pair = torch.unique(img_idx * n_trials + trial_idx, return_inverse=True)
    flat = noise.flatten(0, 1)
    # pairs are sorted and distinct, so when there are as many as plan rows they are all of them: no gather copy
    eps_all = (flat if pairs.numel() == flat.shape[0] else flat[pairs]).to(device)
    t_all = timesteps.flatten()[pairs].to(device)
    rows, images, cands = row_pair.to(device), img_idx.to(device), cand_idx.to(device)
    tell_rows = getattr(adapter, "uses_row_groups", False)
    errs = []
    for start in range(0, trial_idx.numel(), batch_size):
        r, bi, ci = (v[start:start + batch_size] for v in (rows, images, cands))
        t, eps, x = t_all[r], eps_all[r], x0[bi]
        x_t = noisy_sample(process, x, eps, t)
        # rows of one (image, trial) pair hold the same x_t: an adapter may compute what precedes the condition once
        groups = row_groups(row_pair[start:start + batch_size]) if tell_rows else None
        if groups is not None and device.type == "cuda":
            groups = RowGroups(to_device_async(groups.starts, device), to_device_async(groups.index, device))
        with torch.no_grad():
            out = adapter.predict(x_t, t, index_conditioning(cond, ci), groups)
        errs.append(denoising_error(process, out, x_t, x, eps, t, loss=error, target=target))
        if after_batch is not None:
            after_batch(len(r))
    out = torch.cat(errs).double().cpu() if errs else torch.empty(0, dtype=torch.float64)
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).nonzero()[0])
        raise non_finite_error(int(timesteps[img_idx[bad], trial_idx[bad]]), int(cand_idx[bad]))
    return out


def non_finite_error(timestep: int, candidate: int) -> NonFiniteError:
    """The error for a NaN/inf denoising error at ``timestep`` for candidate #``candidate``."""
    return NonFiniteError(
        f"the network returned NaN/inf at t={timestep} for candidate #{candidate}. Check the model weights and dtype "
        "(fp16 overflow is common; try dtype=torch.float32 or bfloat16)."
    )


def check_image_indices(indices, n_images: int, seen: set[int] | None = None, *,
                        shared_noise: bool = False) -> list[int]:
    """The image indices as ints, checked: one per image and none repeated (also across the calls that share
    ``seen``): an index names an image's noise stream, so two images with one index share their noise. A repeat
    is what a DataLoader's (images, labels) batches give in place of (images, image indices); ``shared_noise``
    allows it where it is meant (Winoground's images compared under the same noise)."""
    indices = [int(i) for i in indices]
    if len(indices) != n_images:
        raise ValueError(f"{n_images} images but {len(indices)} image indices; give one index per image.")
    if shared_noise:
        return indices
    seen = set() if seen is None else seen
    for i in indices:
        if i in seen:
            raise ValueError(f"image index {i} is given twice: each image needs its own index (its noise stream). A "
                             "DataLoader yields (images, labels), not (images, image indices): pass "
                             "(x, range(k * B, k * B + len(x))) for k, (x, _) in enumerate(loader), or use run_dataset.")
        seen.add(i)
    return indices


class DiffusionClassifier:
    """A conditional diffusion model used as a classifier.

    >>> clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=PAPER_PETS))
    >>> result = clf.classify("cat.jpg", class_names, image_index=0)
    >>> result.prediction, result.posterior
    """

    def __init__(self, adapter: DiffusionAdapter, config: ClassifierConfig | None = None, *,
                 progress: bool | Callable[[int, int | None], None] = False):
        """``progress``: True shows a tqdm bar of network evaluations for each ``classify*`` call (tqdm's
        ``TQDM_DISABLE`` switch is respected); a callable is called as ``progress(done, total)`` after every
        network batch (``total``: the schedule's most, None for a sequential test); False: silent."""
        self.adapter = adapter
        self.config = config or ClassifierConfig()
        self.progress = progress
        if self.config.target is not None:  # the process names the parameterisations it can compare in
            adapter.process.coefficients(self.config.target, torch.zeros(1, dtype=torch.long))
        self._embedding_cache: dict[tuple, Conditioning] = {}
        self._sample_shapes: dict[tuple, tuple[int, ...]] = {}  # model-input shape -> diffusion-space shape

    # -- conditions are embedded once per candidate list and reused for every image of a run
    def embed(self, candidates: Sequence) -> Conditioning:
        key = tuple(str(c) for c in candidates)
        if key not in self._embedding_cache:
            with torch.no_grad():
                self._embedding_cache[key] = conditioning_to(self.adapter.embed(list(candidates)), self.adapter.device)
        return self._embedding_cache[key]

    def pixels(self, image: ImageSource | torch.Tensor) -> torch.Tensor:
        """Image file, PIL image or NumPy uint8 array -> model-input tensor (C, H, W) in [-1, 1]; float tensors in
        [-1, 1] pass through, uint8 tensors are scaled (the convention: ``images.model_input``).

        Raises ``ImageLoadError`` for unreadable files and ``ValueError`` for tensors outside the convention,
        before any network work.
        """
        if isinstance(image, np.ndarray) or (isinstance(image, torch.Tensor) and (
                image.ndim in (3, 4) or image.dtype == torch.uint8)):  # an image (or a batch given as one), not toy data
            image = model_input(image)
        return image if isinstance(image, torch.Tensor) else self.adapter.load(image)

    def prepare(self, image: ImageSource | torch.Tensor) -> torch.Tensor:
        """Image file, PIL image or model-input tensor (C, H, W) -> x_0 in the diffusion space, on the device."""
        with torch.no_grad():
            return self.adapter.encode(self.pixels(image).unsqueeze(0).to(self.adapter.device))[0].float()

    def sample_shape(self, pixels: torch.Tensor) -> tuple[int, ...]:
        """The diffusion-space shape of x_0 for a model-input image (C, H, W): encoded once per input shape."""
        key = tuple(pixels.shape)
        if key not in self._sample_shapes:
            self._sample_shapes[key] = tuple(self.prepare(pixels).shape)
        return self._sample_shapes[key]

    def noise_plan(self, sample_shape: tuple[int, ...], image_index: int) -> NoisePlan:
        cfg = self.config
        return make_noise_plan(
            cfg.schedule.total_trials, sample_shape, seed=cfg.seed, image_index=image_index,
            strategy=cfg.timesteps, num_timesteps=self.adapter.process.num_timesteps,
        )

    def classify(
        self,
        image: ImageSource | torch.Tensor,
        candidates: Sequence,
        *,
        image_index: int = 0,
        plan: NoisePlan | None = None,
        log_prior: torch.Tensor | None = None,
    ) -> ClassificationResult:
        """Classify one image among ``candidates``.

        ``image_index`` selects the noise stream (with ``config.seed``); pass the dataset index so every image
        has its own reproducible plan. ``plan`` overrides the plan (e.g. one loaded from disk).
        """
        return self.classify_batch([image], candidates, image_indices=[image_index],
                                   plans=None if plan is None else [plan], log_prior=log_prior)[0]

    def classify_batch(
        self,
        images: Sequence[ImageSource | torch.Tensor],
        candidates: Sequence,
        *,
        image_indices: Sequence[int] | None = None,
        plans: Sequence[NoisePlan] | None = None,
        log_prior: torch.Tensor | None = None,
        shared_noise: bool = False,
    ) -> list[ClassificationResult]:
        """Classify several images at once; each result equals ``classify`` of that image alone.

        Network calls are shared between the images, step by step of the pruning policy, so a small model sees
        large batches; every image's decisions depend on its own errors only. ``image_indices`` name each image's
        noise stream (default: their positions 0, 1, ...; pass dataset indices so that a resumed or sharded run
        draws the same noise for the same image). A repeated index is refused unless ``shared_noise`` (images
        meant to be compared under one noise plan, as Winoground's are).
        """
        candidates = check_candidates(candidates)
        if image_indices is None:
            image_indices = range(len(images))
        image_indices = check_image_indices(image_indices, len(images), shared_noise=shared_noise)
        x0 = self._x0(images, image_indices)
        if not len(x0):
            return []
        shape = tuple(x0.shape[1:])
        if plans is None:
            plans = [self.noise_plan(shape, i) for i in image_indices]
        timesteps, noise = stack_plans(plans, shape, self.config.schedule.total_trials)
        return self._results(self._errors(x0, candidates, list(image_indices), timesteps, noise), log_prior)

    def _x0(self, images, image_indices) -> torch.Tensor:
        """(B, *sample_shape) x_0 of the images, on the device."""
        if len(images) != len(image_indices):
            raise ValueError(f"{len(images)} images but {len(image_indices)} image indices.")
        if not len(images):  # nothing to stack: an empty call has empty results
            return torch.empty(0)
        return torch.stack([self.prepare(im) for im in images])

    def _errors(self, x0: torch.Tensor, candidates: list, image_indices: list[int], timesteps: torch.Tensor,
                noise: torch.Tensor) -> BatchErrors:
        """The pruning policy's errors of B images (x0 on the device; timesteps (B, N), noise (B, N, ...) on the
        CPU): the GPU's share of ``classify_batch``."""
        cond = self.embed(candidates)
        errors = torch.full((len(x0), len(candidates), timesteps.shape[1]), float("nan"), dtype=torch.float64)
        report = self._progress_reporter(len(x0), len(candidates))

        def fill(alive: torch.Tensor, lo: int, hi: int) -> None:
            """errors[b, k, lo:hi] wherever alive[b, k] (B, K), in batches shared between the images."""
            # (image, trial, candidate) in row-major order: trial-major within each image, which keeps one x_t's
            # candidates in the same batch
            bi, ti, ci = alive.unsqueeze(1).expand(-1, hi - lo, -1).nonzero().unbind(1)
            ti = ti + lo
            cfg = self.config
            errors[bi, ci, ti] = evaluate_triples(self.adapter, x0, cond, timesteps, noise, bi, ti, ci,
                                                  error=cfg.error, target=cfg.target, batch_size=cfg.batch_size,
                                                  after_batch=report if self.progress else None)

        try:
            decided = prune(self.config.schedule, errors, fill)
        finally:
            report(None)
        return BatchErrors(candidates, errors, timesteps, decided.reached, tuple(x0.shape[1:]), image_indices)

    def _progress_reporter(self, n_images: int, n_candidates: int) -> Callable[[int | None], None]:
        """report(rows) after each network call, report(None) at the end (``progress``; a no-op when False)."""
        if not self.progress:
            return lambda rows: None
        most = getattr(self.config.schedule, "evaluations", None)
        total = n_images * most(n_candidates) if most else None
        done = [0]
        bar = None
        if self.progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="eval", desc="classify", mininterval=1, leave=False)

        def report(rows: int | None) -> None:
            if rows is None:
                if bar is not None:
                    bar.close()
                return
            done[0] += rows
            if bar is not None:
                bar.update(rows)
            else:
                self.progress(done[0], total)
        return report

    def _results(self, batch: BatchErrors, log_prior: torch.Tensor | None) -> list[ClassificationResult]:
        """The host's share of ``classify_batch`` after the GPU's: one result per image."""
        return self._results_of(batch.candidates, batch.errors, batch.timesteps, batch.reached, batch.shape,
                                batch.image_indices, log_prior)

    def _results_of(self, candidates: list, errors: torch.Tensor, timesteps: torch.Tensor, reached: list[list[int]],
                    shape: tuple[int, ...], image_indices: Sequence[int], log_prior: torch.Tensor | None
                    ) -> list[ClassificationResult]:
        """One result per image of errors (B, K, N) float64 (NaN: no trial), timesteps (B, N), reached (B lists of K:
        ``pruning.Pruned``) and image_indices (B,): every image's means and posterior in one set of tensor
        operations (a refilled run finishes a dozen images per network call, and per-image operations were its
        host's largest cost); each result's errors and timesteps are rows of the inputs, each row's numbers those
        it would get alone."""
        means = torch.nanmean(errors, dim=2)
        post = posterior(means, n_elements=math.prod(shape), temperature=self.config.temperature, log_prior=log_prior)
        n_evaluations = (~torch.isnan(errors)).sum(dim=(1, 2)).tolist()
        return [ClassificationResult(candidates, errors[b], timesteps[b], post[b], ranking(means[b], reached[b]),
                                     n_evaluations[b], self.config.seed, image_indices[b])
                for b in range(len(image_indices))]

    def host_inputs(self, images: Sequence[ImageSource | torch.Tensor], image_indices: Sequence[int], *,
                    plan_for: Callable[[int], NoisePlan] | None = None
                    ) -> tuple[list[torch.Tensor], list[NoisePlan]]:
        """The host's share of a ``classify_batch`` call, done ahead of it: the images read into model-input
        tensors (C, H, W) and their noise plans drawn (or ``plan_for(image_index)``, e.g. plans loaded from disk).
        Raises ``ImageLoadError`` for an unreadable file."""
        pixels = [self.pixels(im) for im in images]
        if plan_for is not None:
            return pixels, [plan_for(i) for i in image_indices]
        return pixels, [self.noise_plan(self.sample_shape(px), i) for px, i in zip(pixels, image_indices)]

    def classify_stream(
        self,
        batches: Iterable[tuple[Sequence[ImageSource | torch.Tensor], Sequence[int]]],
        candidates: Sequence,
        *,
        log_prior: torch.Tensor | None = None,
        plan_for: Callable[[int], NoisePlan] | None = None,
        run_ahead: Callable[[Callable, Iterable], Iterable] | None = None,
    ) -> Iterator[list[ClassificationResult]]:
        """``classify_batch`` of each (images, image_indices) in ``batches``, yielded in order: the results of
        calling ``classify_batch`` in a loop. Each call is split into its host work (reading images, drawing and
        stacking noise plans: ``host_inputs``; turning errors into results) and its GPU work (``_errors``).
        ``run_ahead(work, items)`` runs the GPU work of each item in order and yields its outputs; None: a plain
        loop. ``dcanalysis.engine.overlap.overlapped`` runs it on a worker thread while this thread does the host
        work of the next call (opt-in: on the benchmarks it gained nothing measurable, README Speed).
        ``plan_for(image_index)`` replaces the classifier's own noise plans (e.g. plans loaded from disk)."""
        candidates = check_candidates(candidates)

        def staged():
            seen: set[int] = set()
            for images, indices in batches:
                indices = check_image_indices(indices, len(images), seen)
                pixels, plans = self.host_inputs(images, indices, plan_for=plan_for)
                shape = self.sample_shape(pixels[0]) if pixels else ()
                yield pixels, indices, *stack_plans(plans, shape, self.config.schedule.total_trials)

        def run(item):
            pixels, indices, timesteps, noise = item
            if not indices:
                return None  # an empty call: no network call, no results
            return self._errors(self._x0(pixels, indices), candidates, indices, timesteps, noise)

        for batch in (map if run_ahead is None else run_ahead)(run, staged()):
            yield [] if batch is None else self._results(batch, log_prior)
