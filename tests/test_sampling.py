"""dcanalysis.sampling: the samplers draw the model's distribution (checked on the analytic toy, whose network is
exact), the update rule is Song et al.'s eq. 12, and the draws depend on the seed alone."""
import pytest
import torch

from dcanalysis.adapters.toy import GaussianMixtureAdapter, GaussianMixtureClass
from dcanalysis.processes import DDPM, RectifiedFlow
from dcanalysis.sampling import SamplerConfig, ddim_update, sample, sampling_timesteps

MEAN, STD = torch.tensor([0.3, -0.2]), 0.15


def one_gaussian_class(process=None) -> GaussianMixtureAdapter:
    cls = GaussianMixtureClass(MEAN[None].clone(), torch.tensor([STD]), torch.tensor([1.0]))
    return GaussianMixtureAdapter([cls, cls], process=process)


@pytest.mark.parametrize("config", [SamplerConfig(steps=1000, eta=1.0, clip=False),
                                    SamplerConfig(steps=1000, eta=0.0, clip=False)])
def test_samples_follow_the_models_distribution(config):
    x = sample(one_gaussian_class(), [0] * 4000, config, seed=1, batch_size=4000, shape=(2,), progress=False)
    assert torch.allclose(x.mean(0), MEAN, atol=0.015), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), STD), rtol=0.06), x.std(0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_fewer_steps_draw_narrower_samples(eta):
    # a coarse grid under-disperses (measured on this toy: std 0.06, 0.13, 0.14, 0.15 at 10, 50, 200, 1000 DDIM
    # steps); one step lands on the MMSE estimate, the mean. The chapter on the model's own images reads this.
    stds = [sample(one_gaussian_class(), [0] * 2000, SamplerConfig(steps=n, eta=eta, clip=False), seed=2,
                   shape=(2,), progress=False).std(0).mean().item() for n in (1, 10, 50, 1000)]
    assert stds == sorted(stds) and stds[0] < 0.1 * STD and stds[-1] > 0.9 * STD, stds


def test_flow_models_sample_with_ddim():
    adapter = one_gaussian_class(RectifiedFlow())
    x = sample(adapter, [0] * 3000, SamplerConfig(steps=200, clip=False), shape=(2,), progress=False)
    assert torch.allclose(x.mean(0), MEAN, atol=0.02)
    with pytest.raises(ValueError, match="eta = 1.0 is DDPM's ancestral noise"):
        sample(adapter, [0], SamplerConfig(steps=10, eta=1.0), shape=(2,), progress=False)


def test_draws_depend_on_the_seed_not_on_the_batch():
    adapter, config = one_gaussian_class(), SamplerConfig(steps=20, eta=1.0)
    a = sample(adapter, [0, 1] * 10, config, seed=3, batch_size=20, shape=(2,), progress=False)
    b = sample(adapter, [0, 1] * 10, config, seed=3, batch_size=7, shape=(2,), progress=False)
    c = sample(adapter, [0, 1] * 10, config, seed=4, batch_size=20, shape=(2,), progress=False)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)


def test_ddim_update_is_deterministic_and_ancestral_variance_matches_ddpm():
    process = DDPM()
    t, s = torch.tensor([600]), torch.tensor([599])
    (a_t, s_t), (a_s, s_s) = process.scales(t), process.scales(s)
    x0, eps, z = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    assert torch.allclose(ddim_update(x0, eps, a_t, s_t, a_s, s_s, 0.0, None), a_s * x0 + s_s * eps)
    # eta = 1 over one step of the training chain: the DDPM posterior variance beta_t (1 - abar_s) / (1 - abar_t)
    beta_t = 1 - (a_t / a_s) ** 2
    posterior_var = beta_t * s_s ** 2 / s_t ** 2
    noise_part = ddim_update(torch.zeros(1, 2), torch.zeros(1, 2), a_t, s_t, a_s, s_s, 1.0, torch.ones(1, 2))
    assert torch.allclose(noise_part ** 2, posterior_var.expand(1, 2), rtol=1e-5)


def test_timestep_grid_and_names():
    assert sampling_timesteps(1000, 4).tolist() == [999, 666, 333, 0]
    assert sampling_timesteps(1000, 1000).unique().numel() == 1000
    with pytest.raises(ValueError, match="steps <= 1000"):
        sampling_timesteps(1000, 1001)
    for name in ("ddim_10", "ddpm_1000", "eta0.5_20", "ddim_7_noclip"):
        assert SamplerConfig.from_name(name).name == name
    with pytest.raises(ValueError, match="is not ddim_<steps>"):
        SamplerConfig.from_name("euler_10")
    with pytest.raises(ValueError, match="eta must lie in"):
        SamplerConfig(eta=2.0)
