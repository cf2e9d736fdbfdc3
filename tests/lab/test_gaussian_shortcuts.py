import numpy as np

from dcanalysis.lab.gaussian_shortcuts import (ToyConfig, fit_logistic, fit_mixture, fit_naive_gaussian,
                                               group_accuracies, run, sample)


def test_samples_carry_the_core_and_a_cue_that_agrees_at_the_training_rate():
    cfg = ToyConfig(core_dims=16, core_snr=2.0, n_train=100)
    x, y, agrees = sample(cfg, 20_000, 0.9, np.random.default_rng(0))
    assert x.shape == (20_000, 17) and set(np.unique(y)) == {-1, 1}
    assert abs(agrees.mean() - 0.9) < 0.01
    assert (np.sign(x[:, -1]) == np.where(agrees, y, -y)).mean() > 0.99  # a sharp cue: its sign is the cue
    stat = x[:, :-1].sum(1) / np.sqrt(16)  # the core's sufficient statistic: class means +-core_snr, unit spread
    assert abs(stat[y == 1].mean() - 2.0) < 0.03 and abs(stat[y == -1].mean() + 2.0) < 0.03 and abs(stat[y == 1].std() - 1) < 0.03


def test_the_mixture_bounds_the_cue_evidence_and_the_one_bump_model_does_not():
    cfg = ToyConfig(core_dims=4, strength=0.95, n_train=4000)
    x, y, _ = sample(cfg, cfg.n_train, cfg.strength, np.random.default_rng(1))
    probe = np.zeros((3, 5))
    probe[:, -1] = [-1.0, 1.0, 3.0]  # core silent: only the cue speaks
    mixture, one_bump = fit_mixture(x, y)(probe), fit_naive_gaussian(x, y)(probe)
    bound = np.log(0.95 / 0.05)
    assert np.all(np.abs(mixture) < bound + 0.2) and abs(mixture[1] - bound) < 0.2
    assert one_bump[1] > 3 * bound and one_bump[2] > one_bump[1]


def test_worst_group_accuracy_of_the_three_in_the_sharp_cue_regime():
    """At strength 0.99 with a sharp cue the one-bump generative model follows the cue on every conflicting
    example; the mixture and logistic regression keep most of them (the chapter's sweep shows by how much)."""
    rows = {r["classifier"]: r for r in run(ToyConfig(n_train=1000), seeds=1, n_test=4000)}
    assert rows["Gaussian, one bump per class"]["worst_group"] < 0.05
    assert rows["Gaussian, the cue's two bumps"]["worst_group"] > 0.6
    assert rows["logistic regression"]["worst_group"] > 0.6
    assert all(r["average"] >= r["worst_group"] for r in rows.values())


def test_without_correlation_the_three_agree_and_group_accuracies_are_what_they_say():
    rows = run(ToyConfig(strength=0.5, n_train=1000), seeds=1, n_test=4000)
    assert max(r["average"] for r in rows) - min(r["average"] for r in rows) < 0.03
    y = np.array([1, 1, -1, -1])
    agrees = np.array([True, False, True, False])
    assert group_accuracies(np.array([1.0, -1.0, -1.0, -1.0]), y, agrees) == {"average": 0.75, "worst_group": 0.0}
    assert fit_logistic(np.array([[1.0], [-1.0]]), np.array([1, -1]), steps=50)(np.array([[2.0]]))[0] > 0
