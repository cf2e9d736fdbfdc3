import torch

from dcanalysis.estimators import (accuracy_interval, bootstrap_interval, paired_difference, trials_needed,
                                   unpaired_difference, variance_reduction)


def correlated_errors(n=400, seed=0):
    """Errors dominated by a shared per-trial difficulty, as in Fig. 2 of the paper."""
    g = torch.Generator().manual_seed(seed)
    difficulty = torch.rand(n, generator=g) * 2  # what (t, eps) contributes to both conditions
    a = difficulty + 0.10 + 0.02 * torch.randn(n, generator=g)
    b = difficulty + 0.12 + 0.02 * torch.randn(n, generator=g)
    return a, b


def test_paired_variance_is_far_below_unpaired():
    a, b = correlated_errors()
    p, u = paired_difference(a, b), unpaired_difference(a, b)
    assert abs(p.mean - u.mean) < 1e-9  # same point estimate on the same data
    assert u.variance > 50 * p.variance
    assert variance_reduction(a, b) > 50
    lo, hi = p.confidence_interval()
    assert hi < 0  # paired: a is confidently lower
    lo_u, hi_u = u.confidence_interval()
    assert lo_u < 0 < hi_u  # unpaired: cannot tell at this n


def test_trials_needed_matches_the_variance_ratio():
    a, b = correlated_errors()
    np_, nu = trials_needed(paired_difference(a, b)), trials_needed(unpaired_difference(a, b))
    assert np_ < 10 and nu > 50 * np_ / 2


def test_bootstrap_agrees_with_the_t_interval():
    a, b = correlated_errors()
    lo, hi = bootstrap_interval(a, b, paired=True, generator=torch.Generator().manual_seed(0))
    tlo, thi = paired_difference(a, b).confidence_interval()
    assert abs(lo - tlo) < 0.003 and abs(hi - thi) < 0.003


def test_accuracy_interval():
    lo, hi = accuracy_interval(90, 100)
    assert 0.82 < lo < 0.9 < hi < 0.95
    assert accuracy_interval(0, 10)[0] == 0.0
