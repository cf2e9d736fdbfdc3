"""A Gaussian toy of shortcut learning: when does a generative classifier ignore a spurious cue?

Li, Kumar and Pathak (ICLR 2025) analyse a Gaussian toy to explain why generative classifiers avoid shortcuts.
This module is our own toy in that spirit (not theirs), small enough to run on a CPU in seconds:

- label y in {-1, +1}, equally likely;
- a **core** signal spread over ``core_dims`` coordinates, each y * mu_core + N(0, 1), with mu_core chosen so the
  core's sufficient statistic (their sum over sqrt(core_dims)) has class means +-``core_snr`` and unit spread (an
  image's object: weak per pixel, strong in total);
- one **spurious** coordinate a * mu_spurious + N(0, sigma_spurious^2), where the cue a equals y with probability
  ``strength`` in training and is independent of y at test (groups: y x {cue agrees, cue disagrees}).

Three classifiers are fitted to the same training sample:
- ``fit_logistic``: logistic regression by full-batch gradient descent, unregularised (discriminative);
- ``fit_naive_gaussian``: one Gaussian per class with a shared diagonal covariance (generative, but wrong about the
  cue: given y the cue is two bumps, at +mu and -mu, and this model fits one bump with their mean and spread);
- ``fit_mixture``: the generative model that knows the cue's form: core Gaussian, cue a two-bump mixture with
  weights (strength, 1 - strength) estimated from the data. Its cue evidence is bounded by
  log(strength / (1 - strength)) nats, which a strong enough core outweighs.

Each fit returns a scoring function x (N, D) -> log-odds of y = +1 (N,).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ToyConfig:
    core_dims: int = 100
    core_snr: float = 2.0  # class mean of the core's sufficient statistic (unit spread); the core alone: Phi(core_snr)
    mu_spurious: float = 1.0
    sigma_spurious: float = 0.1  # the cue is sharp: far easier to read than the core
    strength: float = 0.99  # P(cue agrees with y) in training
    n_train: int = 2000

    @property
    def mu_core(self) -> float:
        """Per-coordinate mean: core_dims coordinates of mean mu give the statistic a class mean sqrt(core_dims) * mu."""
        return self.core_snr / np.sqrt(self.core_dims)


def sample(cfg: ToyConfig, n: int, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (n, core_dims + 1), y (n,) in {-1, +1}, cue_agrees (n,) bool); the last coordinate is the cue."""
    y = rng.choice(np.array([-1, 1]), n)
    agrees = rng.random(n) < strength
    cue = np.where(agrees, y, -y)
    core = y[:, None] * cfg.mu_core + rng.standard_normal((n, cfg.core_dims))
    spurious = cue * cfg.mu_spurious + cfg.sigma_spurious * rng.standard_normal(n)
    return np.column_stack([core, spurious]), y, agrees


def _gaussian_log_odds(x: np.ndarray, mean_pos: np.ndarray, mean_neg: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(x; mean_pos, var) - log N(x; mean_neg, var), summed over coordinates (diagonal, shared variance)."""
    return (((x - mean_neg) ** 2 - (x - mean_pos) ** 2) / (2 * var)).sum(-1)


def fit_naive_gaussian(x: np.ndarray, y: np.ndarray) -> Scorer:
    """Class means and a pooled per-coordinate variance (maximum likelihood); equal class priors."""
    pos, neg = x[y == 1], x[y == -1]
    var = np.concatenate([pos - pos.mean(0), neg - neg.mean(0)]).var(0)
    return lambda z: _gaussian_log_odds(z, pos.mean(0), neg.mean(0), var)


def fit_mixture(x: np.ndarray, y: np.ndarray) -> Scorer:
    """Core as in ``fit_naive_gaussian``; the cue as the two-bump mixture it is, fitted with the bumps told apart
    by the cue's sign (exact while sigma_spurious << mu_spurious): agreement rate, bump centre and spread."""
    core, cue = x[:, :-1], x[:, -1]
    core_score = fit_naive_gaussian(core, y)
    agree = np.clip(np.mean(np.sign(cue) == y), 1e-6, 1 - 1e-6)
    mu, sd = np.abs(cue).mean(), np.abs(cue).std()

    def cue_log_odds(c: np.ndarray) -> np.ndarray:
        near_pos = -((c - mu) ** 2) / (2 * sd ** 2)  # log-density of each bump, up to a shared constant
        near_neg = -((c + mu) ** 2) / (2 * sd ** 2)
        return (np.logaddexp(np.log(agree) + near_pos, np.log(1 - agree) + near_neg)
                - np.logaddexp(np.log(agree) + near_neg, np.log(1 - agree) + near_pos))

    return lambda z: core_score(z[:, :-1]) + cue_log_odds(z[:, -1])


def fit_logistic(x: np.ndarray, y: np.ndarray, *, steps: int = 2000, lr: float = 0.5) -> Scorer:
    """Unregularised logistic regression, full-batch gradient descent from zero (float64)."""
    X = torch.as_tensor(x, dtype=torch.float64)
    target = torch.as_tensor((y + 1) / 2, dtype=torch.float64)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, target).backward()
        opt.step()
    w, b = w.detach().numpy(), float(b.detach())
    return lambda z: z @ w + b


CLASSIFIERS = {"logistic regression": fit_logistic, "Gaussian, one bump per class": fit_naive_gaussian,
               "Gaussian, the cue's two bumps": fit_mixture}


def group_accuracies(score: np.ndarray, y: np.ndarray, agrees: np.ndarray) -> dict[str, float]:
    """average accuracy and the worst of the four groups y x {cue agrees, disagrees} of log-odds (N,)."""
    correct = np.sign(score) == y
    groups = [correct[(y == label) & (agrees == a)].mean() for label in (-1, 1) for a in (True, False)]
    return {"average": float(correct.mean()), "worst_group": float(min(groups))}


def run(cfg: ToyConfig, *, seeds: int = 5, n_test: int = 20_000, first_seed: int = 0) -> list[dict]:
    """Each classifier fitted on ``seeds`` training samples of ``cfg`` and tested with the cue independent of y.
    One row per (seed, classifier): the config's fields, seed, classifier, average and worst-group accuracy."""
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        rng = np.random.default_rng(seed)
        x, y, _ = sample(cfg, cfg.n_train, cfg.strength, rng)
        xt, yt, at = sample(cfg, n_test, 0.5, rng)
        for name, fit in CLASSIFIERS.items():
            rows.append({**cfg.__dict__, "seed": seed, "classifier": name,
                         **group_accuracies(fit(x, y)(xt), yt, at)})
    return rows


def sweep(base: ToyConfig, field: str, values, **kw) -> list[dict]:
    """``run`` at each value of one config field, the others as in ``base``."""
    return [row for v in values for row in run(replace(base, **{field: v}), **kw)]
