"""From mean errors to p(c | x): Bayes' rule with the ELBO standing in for log p(x | c) (paper Eq. 7).

One name, one thing: the **posterior** is Eq. 7, the softmax of minus each class's squared error summed over the
image's D elements (``posterior(mean_errors, n_elements=D)``, what ``ClassificationResult.posterior`` holds; it is
usually confident). The softmax of minus the per-element *mean* errors is another quantity, the **mean-error
softmax** (``mean_error_softmax``): Eq. 7 at temperature D, nearly uniform, the logits that calibration fits a
temperature to.
"""
from __future__ import annotations

import torch


def posterior(
    mean_errors: torch.Tensor,
    *,
    n_elements: int = 1,
    temperature: float = 1.0,
    log_prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax of negative errors over candidates.

    Parameters
    ----------
    mean_errors : Tensor (K,) or (B, K)
        Per-element mean error of each candidate (see ``errors.py``); a (B, K) table gives B images' posteriors,
        each row's equal to that row's alone.
    n_elements : int
        Elements per sample. Eq. 7 uses the squared *norm* ``||eps - eps_theta||^2``, a sum over elements, so
        the logit is ``-n_elements * mean_error``. ``n_elements=1`` gives a much flatter, mean-based posterior.
    temperature : float
        Divides the logits; > 1 softens the (typically over-confident) ELBO posterior.
    log_prior : Tensor (K,), optional
        Log prior over candidates; uniform when omitted, as in the paper.

    Returns
    -------
    Tensor of ``mean_errors``' shape, float64, each row summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    e = mean_errors.double()
    if not torch.isfinite(e).all():
        raise ValueError("mean errors contain NaN or inf; the network produced non-finite predictions.")
    logits = -e * n_elements / temperature
    if log_prior is not None:
        if log_prior.shape != e.shape[-1:]:
            raise ValueError(f"log_prior has shape {tuple(log_prior.shape)}, expected {tuple(e.shape[-1:])}.")
        logits = logits + log_prior.double()
    return torch.softmax(logits, dim=-1)


def mean_error_softmax(mean_errors: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Softmax of minus the per-element mean errors (K,) -> (K,) float64: NOT the paper's posterior (which sums over
    the D elements, ``posterior(..., n_elements=D)``) but that posterior at temperature D; nearly uniform, the
    logits ``evaluation.calibration`` fits a temperature to."""
    return posterior(mean_errors, n_elements=1, temperature=temperature)
