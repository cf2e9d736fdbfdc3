import math

import pytest
import torch

from dcanalysis.posterior import posterior


def test_posterior_sums_to_one_and_prefers_low_error():
    p = posterior(torch.tensor([0.30, 0.31, 0.40]), n_elements=100)
    assert math.isclose(p.sum().item(), 1.0, rel_tol=1e-12)
    assert p.argmax().item() == 0 and p[0] > p[1] > p[2]


def test_temperature_and_prior():
    e = torch.tensor([0.30, 0.31])
    assert posterior(e, n_elements=100, temperature=10)[0] < posterior(e, n_elements=100)[0]
    flipped = posterior(e, n_elements=100, log_prior=torch.tensor([0.0, 5.0]))
    assert flipped.argmax().item() == 1


def test_nan_errors_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        posterior(torch.tensor([0.1, float("nan")]))


def test_a_table_of_images_gives_each_row_its_own_posterior():
    means = torch.rand(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    prior = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2]))
    rows = posterior(means, n_elements=50, temperature=2.0, log_prior=prior)
    for b in range(6):
        assert torch.equal(rows[b], posterior(means[b], n_elements=50, temperature=2.0, log_prior=prior))
    with pytest.raises(ValueError, match="log_prior has shape"):
        posterior(means, log_prior=prior[:4])
