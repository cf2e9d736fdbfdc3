import torch

from dcanalysis.noise import NoisePlan, derive_generator, make_noise_plan


def test_plans_are_reproducible_and_distinct_per_image(tmp_path):
    a = make_noise_plan(20, (1, 4, 4), seed=7, image_index=3)
    b = make_noise_plan(20, (1, 4, 4), seed=7, image_index=3)
    c = make_noise_plan(20, (1, 4, 4), seed=7, image_index=4)
    assert torch.equal(a.noise, b.noise) and torch.equal(a.timesteps, b.timesteps)
    assert not torch.equal(a.noise, c.noise)
    a.save(tmp_path / "plan.pt")
    d = NoisePlan.load(tmp_path / "plan.pt")
    assert torch.equal(d.noise, a.noise) and d.seed == 7 and d.image_index == 3


def test_strategy_does_not_change_the_noise():
    a = make_noise_plan(10, (2,), seed=1, strategy="even")
    b = make_noise_plan(10, (2,), seed=1, strategy="uniform")
    assert torch.equal(a.noise, b.noise) and not torch.equal(a.timesteps, b.timesteps)


def test_derived_streams_differ():
    x = torch.randn(4, generator=derive_generator(0, 1))
    y = torch.randn(4, generator=derive_generator(1, 0))
    assert not torch.equal(x, y)
