import itertools

import pytest
import torch

from dcanalysis.processes import (DDPM, RectifiedFlow, add_noise, convert_prediction, mix,
                                  predicted_clean_and_noise, scaled_linear_alphas_cumprod)


def draws(shape=(5, 3, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_rectified_flow_matches_diffusers_flow_match_scheduler(shift):
    """Our integer t is diffusers' index T-1-t: same sigma, same noisy sample, same model timestep."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    process = RectifiedFlow(1000, shift=shift)
    t = torch.tensor([0, 10, 499, 900, 999])
    x0, eps = draws()
    theirs = sched.scale_noise(x0, sched.timesteps[999 - t], eps)
    assert torch.allclose(add_noise(x0, eps, *process.scales(t)), theirs, atol=1e-6)
    assert torch.allclose(process.model_time(t), sched.timesteps[999 - t])
    assert process.sigma(torch.tensor([999])).item() == 1.0  # the last grid point is pure noise


def test_ddpm_matches_diffusers_add_noise_and_velocity():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    process = DDPM(sched.alphas_cumprod.float(), "v_prediction")
    assert torch.allclose(process.alphas_cumprod, scaled_linear_alphas_cumprod(), atol=1e-6)
    t = torch.tensor([0, 250, 999, 40, 600])
    x0, eps = draws()
    assert torch.allclose(add_noise(x0, eps, *process.scales(t)), sched.add_noise(x0, eps, t), atol=1e-5)
    assert torch.allclose(mix(x0, eps, *process.coefficients("v_prediction", t)), sched.get_velocity(x0, eps, t),
                          atol=1e-5)


@pytest.mark.parametrize("process", [DDPM(), RectifiedFlow(shift=3.0)], ids=["ddpm", "flow"])
def test_every_parameterisation_converts_into_every_other(process):
    kinds = {"DDPM": ("epsilon", "sample", "v_prediction"), "RectifiedFlow": ("velocity", "epsilon", "sample")}
    t = torch.tensor([3, 100, 500, 800, 990])
    x0, eps = draws(seed=1)
    x_t = add_noise(x0, eps, *process.scales(t))
    for a, b in itertools.permutations(kinds[type(process).__name__], 2):
        src = type(process)(**{**vars(process), "prediction_type": a})
        out = mix(x0, eps, *src.coefficients(a, t))
        assert torch.allclose(convert_prediction(src, out, x_t, t, b), mix(x0, eps, *src.coefficients(b, t)),
                              atol=2e-3), (a, b)
        got_x0, got_eps = predicted_clean_and_noise(src, out, x_t, t)
        assert torch.allclose(got_eps, eps, atol=2e-3) and torch.allclose(got_x0, x0, atol=2e-3)


def test_a_process_refuses_parameterisations_it_does_not_have():
    with pytest.raises(ValueError, match="DDPM models predict one of"):
        DDPM(prediction_type="velocity")
    with pytest.raises(ValueError, match="flow-matching models predict one of"):
        RectifiedFlow().coefficients("v_prediction", torch.tensor([1]))
