import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.noise import NoisePlan
from dcanalysis.bench.peer import official_grid, peer_classify, rows_per_stage, stage_timesteps


def test_the_official_grid_and_its_stage_subsets():
    grid = official_grid(1000, 250)
    assert grid[:3] == [2, 6, 10] and len(grid) == 250 and grid[-1] == 998
    first = stage_timesteps(grid, 25)
    assert len(first) == 25 and first[:2] == [22, 62]
    assert stage_timesteps(grid, 250) == grid


def test_with_the_same_noise_the_peer_loop_and_the_classifier_agree_exactly():
    """The re-stated official loop and our classifier, given the same timesteps in the same order and the same
    noise, give each candidate the same mean error and the same prediction: the peer row times the same work."""
    classes = two_moons_like(4)
    adapter = GaussianMixtureAdapter(classes)
    n_samples, to_keep = (8, 40), (2, 1)
    grid = official_grid(adapter.process.num_timesteps, max(n_samples))
    first = stage_timesteps(grid, n_samples[0])
    order = first + [t for t in grid if t not in first]  # the order the peer loop evaluates them in
    g = torch.Generator().manual_seed(0)
    cond = adapter.embed(list(range(4)))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.from_lists(n_samples, to_keep), batch_size=7))
    agree = 0
    for i in range(12):
        x = torch.randn(2, generator=g) * 1.5
        noise = torch.randn(len(grid), 2, generator=g)
        peer = peer_classify(lambda x_t, t, c: adapter.predict(x_t, t, cond[c]), x, 4,
                             adapter.process.alphas_cumprod, n_samples=n_samples, to_keep=to_keep, noise=noise,
                             batch_size=5)
        ours = clf.classify(x, list(range(4)), plan=NoisePlan(torch.tensor(order), noise))
        assert peer.n_evaluations == ours.n_evaluations == Schedule.from_lists(n_samples, to_keep).evaluations(4)
        for k, m in peer.mean_errors.items():
            assert m == pytest.approx(float(ours.mean_errors[k]), rel=1e-5)
        agree += peer.prediction == ours.prediction_index
    assert agree == 12


def test_stages_must_end_with_one_survivor():
    with pytest.raises(ValueError, match="the last keeping 1"):
        peer_classify(lambda *a: a[0], torch.zeros(2), 3, torch.linspace(0.99, 0.01, 100), n_samples=(5, 10),
                      to_keep=(2, 2), noise=torch.zeros(10, 2))


def test_a_batch_of_the_largest_stage_gives_the_official_loop_one_network_call_per_stage():
    """The peer at its best on a big GPU: its batch raised to the largest stage's rows, one call per stage."""
    adapter = GaussianMixtureAdapter(two_moons_like(4))
    cond = adapter.embed(list(range(4)))
    n_samples, to_keep = (8, 40), (2, 1)
    rows = rows_per_stage(adapter.process.num_timesteps, 4, n_samples, to_keep)
    assert rows == [4 * 8, 2 * 32]  # the second stage adds the 32 grid points the first did not evaluate
    assert sum(rows) == Schedule.from_lists(n_samples, to_keep).evaluations(4)
    assert rows_per_stage(1000, 10, (50, 500), (5, 1)) == [500, 2250]  # the official command for 10 classes
    calls = []

    def predict(x_t, t, c):
        calls.append(len(t))
        return adapter.predict(x_t, t, cond[c])

    noise = torch.randn(40, 2, generator=torch.Generator().manual_seed(1))
    peer_classify(predict, torch.zeros(2), 4, adapter.process.alphas_cumprod, n_samples=n_samples, to_keep=to_keep,
                  noise=noise, batch_size=max(rows))
    assert calls == rows
