import math

import pytest
import torch

from dcanalysis.timesteps import TIMESTEP_STRATEGIES, even, even_grid, fixed, get_strategy, middle, uniform, van_der_corput_order


@pytest.mark.parametrize("n", [1, 2, 5, 7, 25, 100, 250, 1000])
def test_van_der_corput_is_a_permutation(n):
    assert sorted(van_der_corput_order(n).tolist()) == list(range(n))


def test_even_grid_formula():
    assert even_grid(10, 0, 1000).tolist() == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]
    assert even_grid(1000, 0, 1000).tolist() == list(range(1000))


def test_even_returns_the_grid_in_spread_order():
    t = even(250)
    assert sorted(t.tolist()) == even_grid(250, 0, 1000).tolist()
    # A 25-trial prefix covers every tenth of the schedule: stage one of Algorithm 2 sees all t regions.
    assert len(set((t[:25] // 100).tolist())) == 10


def test_middle_stays_in_the_window():
    t = middle(40)
    assert t.min() >= 250 and t.max() < 750 and len(set(t.tolist())) == 40


def test_fixed_sets_cycle():
    assert fixed((0, 500, 999))(7).tolist() == [0, 500, 999, 0, 500, 999, 0]
    assert TIMESTEP_STRATEGIES["fixed_500"](3).tolist() == [500] * 3
    with pytest.raises(ValueError, match="outside"):
        fixed((1000,))(2)


def test_uniform_needs_a_generator_and_is_reproducible():
    with pytest.raises(ValueError, match="Generator"):
        uniform(5)
    a = uniform(50, generator=torch.Generator().manual_seed(3))
    b = uniform(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() < 1000


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="even"):
        get_strategy("evenly")


def test_logit_normal_follows_sd3s_training_density():
    from scipy import stats

    from dcanalysis.timesteps import logit_normal

    t = logit_normal(1000, num_timesteps=1000)
    assert t.min() >= 0 and t.max() <= 999
    inside = ((t >= 250) & (t < 750)).float().mean().item()
    expected = stats.norm.cdf(math.log(3)) - stats.norm.cdf(-math.log(3))  # P(0.25 < sigmoid(z) < 0.75)
    assert abs(inside - expected) < 0.01 and abs(t.float().mean().item() - 499.5) < 2
    prefix = logit_normal(200)[:25]  # any prefix spreads over the density too
    assert prefix.min() < 300 and prefix.max() > 700
