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


def test_a_deterministic_strategy_gives_every_image_its_own_timesteps_and_a_random_one_draws_them_per_image(monkeypatch):
    from dcanalysis import timesteps as ts
    from dcanalysis.noise import plan_timesteps

    for name in ("even", "middle", "logit_normal", "fixed_475_500_525"):
        assert ts.is_deterministic(ts.get_strategy(name))
        want = ts.get_strategy(name)(40, num_timesteps=1000)
        for i in (0, 7):
            got = plan_timesteps(40, seed=3, image_index=i, strategy=name)
            assert torch.equal(got, want)
        got[0] = -1  # a caller's copy: the next plan is untouched
        assert torch.equal(plan_timesteps(40, seed=3, image_index=0, strategy=name), want)
    assert not ts.is_deterministic(ts.get_strategy("uniform"))
    assert not torch.equal(plan_timesteps(40, seed=3, image_index=0, strategy="uniform"),
                           plan_timesteps(40, seed=3, image_index=1, strategy="uniform"))
    # a strategy registered without the mark counts as random: it gets each image's own generator
    monkeypatch.setitem(ts.TIMESTEP_STRATEGIES, "mine", lambda n, *, num_timesteps=1000, generator=None:
                        torch.randint(0, num_timesteps, (n,), generator=generator))
    assert not torch.equal(plan_timesteps(40, seed=3, image_index=0, strategy="mine"),
                           plan_timesteps(40, seed=3, image_index=1, strategy="mine"))
