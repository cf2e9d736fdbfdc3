"""From mean errors to p(c | x): Bayes' rule with the ELBO standing in for log p(x | c) (paper Eq. 7)."""
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
    mean_errors : Tensor (K,)
        Per-element mean error of each candidate (see ``errors.py``).
    n_elements : int
        Elements per sample. Eq. 7 uses the squared *norm* ``||eps - eps_theta||^2``, a sum over elements, so
        the logit is ``-n_elements * mean_error``. ``n_elements=1`` gives a much flatter, mean-based posterior.
    temperature : float
        Divides the logits; > 1 softens the (typically over-confident) ELBO posterior.
    log_prior : Tensor (K,), optional
        Log prior over candidates; uniform when omitted, as in the paper.

    Returns
    -------
    Tensor (K,), float64, summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    e = mean_errors.double()
    if not torch.isfinite(e).all():
        raise ValueError("mean errors contain NaN or inf; the network produced non-finite predictions.")
    logits = -e * n_elements / temperature
    if log_prior is not None:
        if log_prior.shape != e.shape:
            raise ValueError(f"log_prior has shape {tuple(log_prior.shape)}, expected {tuple(e.shape)}.")
        logits = logits + log_prior.double()
    return torch.softmax(logits, dim=0)
