"""Honest probabilities: how well a classifier's posterior matches how often it is right, and how to fix it.

Pure functions over posteriors ``probs`` (N, K) (rows sum to 1) or logits, and integer ``labels`` (N,):

- measures: negative log-likelihood, Brier score, expected calibration error with equal-width or equal-mass bins,
  the reliability diagram's bins, selective prediction (risk against coverage, its area AURC);
- fixes fitted on a calibration split and applied elsewhere: a temperature (Guo et al. 2017) and, for the
  Diffusion Classifier, weights over timesteps (in the spirit of Clark & Jaini's learned weighting);
- the posterior the ELBO itself implies for a DDPM model (``elbo_logits``), against the paper's softmax of mean
  errors: a sum over the sample's dimensions and over the T timesteps, with the ELBO's own weight per t.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, special


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, K) logits -> (N, K) probabilities at ``temperature``."""
    return special.softmax(np.asarray(logits, np.float64) / temperature, axis=1)


def nll(probs: np.ndarray, labels: np.ndarray, *, eps: float = 1e-300) -> float:
    """Mean negative log-probability of the true class (nats)."""
    p = np.asarray(probs, np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(p, eps)).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of sum_k (p_k - [k = label])^2 (0 is perfect, 2 the worst)."""
    p = np.asarray(probs, np.float64)
    onehot = np.eye(p.shape[1])[labels]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def _bins(confidence: np.ndarray, n_bins: int, scheme: str) -> np.ndarray:
    """Bin index (N,) of each confidence: equal-width bins of [0, 1], or equal-mass bins (quantiles)."""
    if scheme == "width":
        return np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    if scheme == "mass":
        order = np.argsort(confidence, kind="stable")
        index = np.empty(len(confidence), int)
        index[order] = np.arange(len(confidence)) * n_bins // len(confidence)
        return index
    raise ValueError(f"unknown binning {scheme!r}; choose 'width' or 'mass'.")


def reliability(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15, scheme: str = "width") -> list[dict]:
    """The reliability diagram: per non-empty bin of top-1 confidence, its mean confidence, accuracy and count."""
    p = np.asarray(probs, np.float64)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == labels
    b = _bins(conf, n_bins, scheme)
    return [{"bin": k, "confidence": float(conf[b == k].mean()), "accuracy": float(correct[b == k].mean()),
             "count": int((b == k).sum())} for k in range(n_bins) if (b == k).any()]


def ece(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15, scheme: str = "width") -> float:
    """Expected calibration error: sum over bins of (count / N) * |accuracy - confidence|."""
    rows = reliability(probs, labels, n_bins=n_bins, scheme=scheme)
    n = sum(r["count"] for r in rows)
    return float(sum(r["count"] / n * abs(r["accuracy"] - r["confidence"]) for r in rows))


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selective prediction: answer only the most confident images. Returns coverage (N,) = k / N and risk (N,) =
    the error rate among the k most confident, for k = 1..N (ties in confidence kept in input order)."""
    p = np.asarray(probs, np.float64)
    order = np.argsort(-p.max(axis=1), kind="stable")
    wrong = (p.argmax(axis=1) != labels)[order]
    k = np.arange(1, len(p) + 1)
    return k / len(p), np.cumsum(wrong) / k


def aurc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the risk-coverage curve (the mean of the risks over every coverage k / N); lower is better."""
    return float(risk_coverage(probs, labels)[1].mean())


def summary(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and every measure above, for one posterior on one set."""
    p = np.asarray(probs, np.float64)
    return {"n": int(len(p)), "accuracy": float((p.argmax(axis=1) == labels).mean()), "nll": nll(p, labels),
            "brier": brier(p, labels), "ece_width": ece(p, labels, scheme="width"),
            "ece_mass": ece(p, labels, scheme="mass"), "aurc": aurc(p, labels),
            "mean_confidence": float(p.max(axis=1).mean())}


def calibration_split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split of a test set: images with even ids fit, images with odd ids are evaluated on. Returns
    boolean masks (fit, evaluate). The lab models trained on the whole training split, so a temperature fitted
    on training images would be fitted to images the model has seen."""
    ids = np.asarray(ids)
    return ids % 2 == 0, ids % 2 == 1


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, bounds: tuple[float, float] = (1e-4, 1e4)) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` on these images (a 1-D search over log T)."""
    z = np.asarray(logits, np.float64)

    def loss(log_t):
        return nll(softmax(z, float(np.exp(log_t))), labels)

    res = optimize.minimize_scalar(loss, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def ddpm_elbo_weights(alphas_cumprod: np.ndarray) -> np.ndarray:
    """w_t (T,) of the DDPM ELBO's term for each t with the posterior variance sigma_t^2 = beta_t (Ho et al. 2020,
    the term before their 'simple' reweighting): L_t = beta_t / (2 alpha_t (1 - abar_t)) ||eps - eps_theta||^2."""
    abar = np.asarray(alphas_cumprod, np.float64)
    alpha = abar / np.concatenate([[1.0], abar[:-1]])
    beta = 1 - alpha
    return beta / (2 * alpha * (1 - abar))


def elbo_logits(errors: np.ndarray, timesteps: np.ndarray, alphas_cumprod: np.ndarray, n_elements: int) -> np.ndarray:
    """log p(x | c) up to a constant shared by the candidates, as the ELBO gives it: minus the sum over all T
    timesteps of L_t, estimated as T times the mean over the trials of w_t * n_elements * (per-element error).

    errors : (N, K, trials) per-element mean squared eps errors; timesteps : (trials,) 0-based. Returns (N, K).
    """
    w = ddpm_elbo_weights(alphas_cumprod)[np.asarray(timesteps)]
    total = len(alphas_cumprod)
    return -total * n_elements * (np.asarray(errors, np.float64) * w).mean(axis=2)


def timestep_features(errors: np.ndarray, timesteps: np.ndarray, num_timesteps: int, n_bins: int) -> np.ndarray:
    """(N, K, n_bins): each candidate's mean error over the trials whose t falls in each of n_bins equal bins."""
    b = np.minimum(np.asarray(timesteps) * n_bins // num_timesteps, n_bins - 1)
    if len(np.unique(b)) < n_bins:
        raise ValueError(f"some of the {n_bins} timestep bins hold no trial; use fewer bins.")
    return np.stack([np.asarray(errors, np.float64)[:, :, b == k].mean(axis=2) for k in range(n_bins)], axis=2)


def fit_timestep_weights(features: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3) -> np.ndarray:
    """Non-negative weights (n_bins,) of ``logits = -features @ w`` minimising the NLL on these images (a small
    ridge keeps them finite): a learned weighting over t in place of the paper's uniform one. Their overall scale
    is the temperature, fitted with them."""
    f = np.asarray(features, np.float64)
    scale = 1.0 / np.abs(f).mean()

    def loss(theta):
        w = np.exp(theta)
        z = -(f * scale) @ w
        lse = special.logsumexp(z, axis=1)
        value = (lse - z[np.arange(len(z)), labels]).mean() + l2 * (theta ** 2).sum()
        p = np.exp(z - lse[:, None])
        p[np.arange(len(z)), labels] -= 1  # d value / d z
        grad_w = -np.einsum("nk,nkb->b", p, f * scale) / len(z)
        return value, grad_w * w + 2 * l2 * theta

    res = optimize.minimize(loss, np.zeros(f.shape[2]), jac=True, method="L-BFGS-B")
    return np.exp(res.x) * scale
