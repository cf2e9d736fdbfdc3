"""Diffusion Classifier (Li et al., ICCV 2023): pick the condition under which the model denoises x best.

For an image x and candidate conditions c_1..c_K the classifier estimates, for each c,

    E_{t, eps} [ || eps - eps_theta( sqrt(abar_t) x + sqrt(1 - abar_t) eps, t, c ) ||^2 ]     (paper Eq. 5)

on one shared noise plan (the same (t, eps) for every candidate), and returns the candidate with the lowest
error. ``Schedule`` stages implement the paper's Algorithms 1 and 2; ``SequentialTest`` stops early
per candidate.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence, Union

import torch

from .adapters.base import Conditioning, DiffusionAdapter, conditioning_to, index_conditioning
from .errors import get_error_kernel
from .images import ImageSource
from .noise import NoisePlan, make_noise_plan
from .posterior import posterior
from .schedules import Schedule
from .sequential import SequentialTest, confidently_worse
from .timesteps import get_strategy

Policy = Union[Schedule, SequentialTest]


class NonFiniteError(RuntimeError):
    """The network returned NaN or inf."""


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that decides a classification besides the model and the image.

    ``schedule`` is a ``Schedule`` (paper Algorithms 1/2) or a ``SequentialTest``; ``timesteps`` and
    ``error`` are names from ``TIMESTEP_STRATEGIES`` and ``ERROR_KERNELS``; ``batch_size`` is the number of
    (trial, candidate) pairs per network call.
    """

    schedule: Policy = field(default_factory=lambda: Schedule.exhaustive(100))
    timesteps: str = "even"
    error: str = "l2"
    batch_size: int = 64
    seed: int = 0
    temperature: float = 1.0
    static_shapes: bool = False  # pad the last batch to batch_size: one shape for torch.compile / CUDA graphs

    def __post_init__(self):
        get_strategy(self.timesteps)
        get_error_kernel(self.error)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schedule_type"] = type(self.schedule).__name__
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
    seen, dups = set(), []
    for c in candidates:
        key = c if not isinstance(c, torch.Tensor) else c.item()
        if key in seen:
            dups.append(c)
        seen.add(key)
    if dups:
        raise ValueError(f"duplicate candidates {dups}: each condition must appear once, or its score is counted twice.")
    return candidates


def noisy_sample(x0: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x_0): ``sqrt(abar) x0 + sqrt(1 - abar) eps``.

    x0 (*sample_shape) or (B, *sample_shape), eps (B, *sample_shape), abar (B,).
    """
    shape = (-1,) + (1,) * (eps.ndim - 1)
    abar = abar.view(shape).to(eps.dtype)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps


def evaluate_pairs(
    adapter: DiffusionAdapter,
    x0: torch.Tensor,
    cond: Conditioning,
    plan: NoisePlan,
    trial_idx: torch.Tensor,
    cand_idx: torch.Tensor,
    *,
    error: str = "l2",
    batch_size: int = 64,
    static_shapes: bool = False,
) -> torch.Tensor:
    """Errors of (trial, candidate) pairs, batched through the network.

    x0 : (*sample_shape) on the adapter's device; cond : embeddings of all K candidates, on the device;
    trial_idx, cand_idx : LongTensor (P,). Returns (P,) float64 on the CPU. With ``static_shapes`` the last
    batch is padded (by repeating its first pair) so that the network always sees ``batch_size`` rows.
    """
    kernel = get_error_kernel(error)
    device = adapter.device
    abar_all = adapter.alphas_cumprod.to(device)
    out = torch.empty(trial_idx.numel(), dtype=torch.float64)
    for start in range(0, trial_idx.numel(), batch_size):
        ti = trial_idx[start:start + batch_size]
        ci = cand_idx[start:start + batch_size]
        n = ti.numel()
        if static_shapes and n < batch_size:
            ti = torch.cat([ti, ti[:1].expand(batch_size - n)])
            ci = torch.cat([ci, ci[:1].expand(batch_size - n)])
        t = plan.timesteps[ti].to(device)
        eps = plan.noise[ti].to(device)
        x_t = noisy_sample(x0, eps, abar_all[t])
        with torch.no_grad():
            pred = adapter.predict_noise(x_t, t, index_conditioning(cond, ci.to(device)))
        err = kernel(pred, eps)[:n]
        if not torch.isfinite(err).all():
            bad = int((~torch.isfinite(err)).nonzero()[0])
            raise NonFiniteError(
                f"the network returned NaN/inf at t={int(t[bad])} for candidate #{int(ci[bad])}. Check the model "
                "weights and dtype (fp16 overflow is common; try dtype=torch.float32 or bfloat16)."
            )
        out[start:start + n] = err.double().cpu()
    return out


class DiffusionClassifier:
    """A conditional diffusion model used as a classifier.

    >>> clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=PAPER_PETS))
    >>> result = clf.classify("cat.jpg", class_names, image_index=0)
    >>> result.prediction, result.posterior
    """

    def __init__(self, adapter: DiffusionAdapter, config: ClassifierConfig | None = None):
        self.adapter = adapter
        self.config = config or ClassifierConfig()
        self._embedding_cache: dict[tuple, Conditioning] = {}

    # -- conditions are embedded once per candidate list and reused for every image of a run
    def embed(self, candidates: Sequence) -> Conditioning:
        key = tuple(str(c) for c in candidates)
        if key not in self._embedding_cache:
            with torch.no_grad():
                self._embedding_cache[key] = conditioning_to(self.adapter.embed(list(candidates)), self.adapter.device)
        return self._embedding_cache[key]

    def prepare(self, image: ImageSource | torch.Tensor) -> torch.Tensor:
        """Image file, PIL image or model-input tensor (C, H, W) -> x_0 on the device."""
        if isinstance(image, torch.Tensor):
            pixels = image
        else:
            pixels = self.adapter.load(image)
        with torch.no_grad():
            return self.adapter.encode(pixels.unsqueeze(0).to(self.adapter.device))[0].float()

    def noise_plan(self, sample_shape: tuple[int, ...], image_index: int) -> NoisePlan:
        cfg = self.config
        return make_noise_plan(
            cfg.schedule.total_trials, sample_shape, seed=cfg.seed, image_index=image_index,
            strategy=cfg.timesteps, num_timesteps=self.adapter.alphas_cumprod.numel(),
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
        candidates = check_candidates(candidates)
        x0 = self.prepare(image)
        cond = self.embed(candidates)
        if plan is None:
            plan = self.noise_plan(tuple(x0.shape), image_index)
        elif plan.sample_shape != tuple(x0.shape) or len(plan) < self.config.schedule.total_trials:
            raise ValueError(
                f"the noise plan has {len(plan)} trials of shape {plan.sample_shape}; this run needs "
                f"{self.config.schedule.total_trials} of shape {tuple(x0.shape)}."
            )
        errors = torch.full((len(candidates), len(plan)), float("nan"), dtype=torch.float64)
        if isinstance(self.config.schedule, SequentialTest):
            eliminated = self._run_sequential(x0, cond, plan, errors)
        else:
            eliminated = self._run_schedule(x0, cond, plan, errors)
        n_eval = int((~torch.isnan(errors)).sum())
        means = torch.nanmean(errors, dim=1)
        # Survivors first (ordered by mean), then candidates by how late they were pruned.
        ranking = sorted(range(len(candidates)), key=lambda k: (-eliminated[k], means[k].item()))
        post = posterior(
            means, n_elements=math.prod(x0.shape), temperature=self.config.temperature, log_prior=log_prior
        )
        return ClassificationResult(
            candidates, errors, plan.timesteps.clone(), post, ranking, n_eval, self.config.seed, image_index
        )

    def _evaluate(self, x0, cond, plan, errors, alive: list[int], lo: int, hi: int) -> None:
        trials = torch.arange(lo, hi)
        cands = torch.tensor(alive, dtype=torch.long)
        # Trial-major order keeps one x_t's candidates in the same batch.
        ti = trials.repeat_interleave(len(alive))
        ci = cands.repeat(hi - lo)
        e = evaluate_pairs(self.adapter, x0, cond, plan, ti, ci, error=self.config.error,
                           batch_size=self.config.batch_size, static_shapes=self.config.static_shapes)
        errors[ci, ti] = e

    def _run_schedule(self, x0, cond, plan, errors) -> list[int]:
        """Algorithm 2. Returns, per candidate, the stage it survived to (higher = kept longer)."""
        alive = list(range(errors.shape[0]))
        reached = [0] * len(alive)
        done = 0
        for s_idx, stage in enumerate(self.config.schedule.stages):
            self._evaluate(x0, cond, plan, errors, alive, done, stage.trials)
            done = stage.trials
            means = errors[alive, :done].mean(dim=1)
            order = torch.argsort(means, stable=True)
            alive = [alive[i] for i in order[: stage.keep].tolist()]
            for k in alive:
                reached[k] = s_idx + 1
        return reached

    def _run_sequential(self, x0, cond, plan, errors) -> list[int]:
        test: SequentialTest = self.config.schedule
        alive = list(range(errors.shape[0]))
        reached = [0] * len(alive)
        done, rnd = 0, 0
        while done < test.max_trials and len(alive) > 1:
            hi = min(done + test.step, test.max_trials)
            self._evaluate(x0, cond, plan, errors, alive, done, hi)
            done, rnd = hi, rnd + 1
            if done >= test.min_trials:
                sub = errors[alive, :done]
                leader = int(torch.argmin(sub.mean(dim=1)))
                worse = confidently_worse(sub, leader, test.confidence)
                alive = [k for k, w in zip(alive, worse.tolist()) if not w]
            for k in alive:
                reached[k] = rnd
        return reached
