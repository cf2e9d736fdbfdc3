import pytest
import torch

from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.inversion import ddim_decode, ddim_invert, ddim_timesteps, reconstruct_under


@pytest.fixture
def toy():
    return GaussianMixtureAdapter(two_moons_like())


def test_timestep_grid():
    ts = ddim_timesteps(500, 50)
    assert ts[0] == 0 and ts[-1] == 500 and len(ts) == 51 and (ts.diff() > 0).all()
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(10, 20)


def test_inversion_round_trip_with_the_exact_score(toy):
    # With the exact eps of the analytic model, DDIM is a discretised ODE: invert + decode returns the point.
    x0 = torch.tensor([[0.8, 0.4], [-0.5, 0.9]])
    x_t = ddim_invert(toy, x0, 0, t_end=400, steps=400)
    assert (x_t - x0).abs().max() > 0.1  # it moved
    back = torch.stack([ddim_decode(toy, x_t[i], [0], t_end=400, steps=400)[0] for i in range(2)])
    assert torch.allclose(back, x0, atol=2e-2)


def test_wrong_condition_reconstructs_worse(toy):
    torch.manual_seed(0)
    for c in (0, 1):
        x0 = toy.classes[c].means[0] + 0.05 * torch.randn(2)
        recon, mse = reconstruct_under(toy, x0, c, [0, 1], t_end=600, steps=200)
        assert recon.shape == (2, 2) and mse[c] < mse[1 - c]
