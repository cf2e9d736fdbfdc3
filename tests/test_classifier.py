import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, NonFiniteError, Schedule, SequentialTest
from dcanalysis.noise import NoisePlan
from dcanalysis.adapters.toy import exact_log_likelihood
from dcanalysis.processes import DDPM


class ShiftedDenoiser:
    """eps_theta = x_t - offset[c]: class 0's error is lowest for x near 0, an easy known answer."""

    def __init__(self, offsets):
        self.offsets = torch.tensor(offsets, dtype=torch.float32)
        self.process = DDPM(torch.linspace(0.999, 0.01, 1000))
        self.device = torch.device("cpu")
        self.calls = []

    def load(self, source):
        raise TypeError

    def encode(self, images):
        return images.float()

    def embed(self, conditions):
        return torch.tensor([int(c) for c in conditions])

    def predict(self, x_t, t, cond, rows=None):
        self.calls.append(x_t.shape[0])
        return torch.zeros_like(x_t) + self.offsets[cond].view(-1, *([1] * (x_t.ndim - 1)))


def test_exhaustive_picks_the_clearly_best_class_and_counts_evaluations():
    model = ShiftedDenoiser([0.0, 0.5, 1.0, 1.5])
    clf = DiffusionClassifier(model, ClassifierConfig(schedule=Schedule.exhaustive(20), batch_size=16))
    r = clf.classify(torch.zeros(3, 4, 4), [3, 1, 0, 2])
    assert r.prediction == 0 and r.ranking == [2, 1, 3, 0]
    assert r.n_evaluations == 80 and r.errors.shape == (4, 20)
    assert torch.isclose(r.posterior.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert max(model.calls) == 16 and len(model.calls) == 5  # batched, never one call per pair


def test_adaptive_matches_exhaustive_with_fewer_evaluations():
    model = ShiftedDenoiser([0.8, 0.0, 0.6, 0.9, 0.7, 1.0])
    ex = DiffusionClassifier(model, ClassifierConfig(schedule=Schedule.exhaustive(50))).classify(torch.zeros(2, 3), range(6))
    ad = DiffusionClassifier(model, ClassifierConfig(schedule=Schedule.from_lists((10, 50), (2, 1)))).classify(torch.zeros(2, 3), range(6))
    assert ad.prediction == ex.prediction == 1
    assert ad.n_evaluations == 6 * 10 + 2 * 40 < ex.n_evaluations
    # Later stages extend the same plan: shared trials have identical errors.
    assert torch.equal(ad.errors[1], ex.errors[1])
    assert ad.trials_per_candidate.tolist().count(50) == 2


def test_sequential_test_stops_early_on_easy_cases():
    model = ShiftedDenoiser([0.0, 1.0, 2.0])
    r = DiffusionClassifier(model, ClassifierConfig(schedule=SequentialTest(step=5, min_trials=10, max_trials=200))).classify(torch.zeros(4), [0, 1, 2])
    assert r.prediction == 0 and r.n_evaluations <= 3 * 10


def test_same_seed_same_result_other_seed_other_noise(toy_adapter):
    cfg = ClassifierConfig(schedule=Schedule.exhaustive(30), timesteps="uniform", seed=5)
    x = torch.tensor([0.3, 0.4])
    a = DiffusionClassifier(toy_adapter, cfg).classify(x, [0, 1], image_index=2)
    b = DiffusionClassifier(toy_adapter, cfg).classify(x, [0, 1], image_index=2)
    c = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(30), timesteps="uniform", seed=6)).classify(x, [0, 1], image_index=2)
    assert torch.equal(a.errors, b.errors) and not torch.equal(a.errors, c.errors)


def test_toy_elbo_classifier_agrees_with_exact_bayes(toy_adapter):
    g = torch.Generator().manual_seed(0)
    points = torch.randn(40, 2, generator=g) * 1.2
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(200)))
    agree = 0
    for i, x in enumerate(points):
        exact = torch.stack([exact_log_likelihood(x[None], k)[0] for k in toy_adapter.classes]).argmax().item()
        agree += clf.classify(x, [0, 1], image_index=i).prediction == exact
    assert agree >= 34  # the ELBO is a bound, not the likelihood: near the boundary it may disagree


@pytest.mark.parametrize("cands,msg", [([], "empty"), ([1, 2, 1], "duplicate")])
def test_bad_candidate_lists(toy_adapter, cands, msg):
    with pytest.raises(ValueError, match=msg):
        DiffusionClassifier(toy_adapter).classify(torch.zeros(2), cands)


def test_nan_from_the_network_is_reported():
    model = ShiftedDenoiser([0.0, float("nan")])
    with pytest.raises(NonFiniteError, match=r"at t=\d+ for candidate #1\."):
        DiffusionClassifier(model, ClassifierConfig(schedule=Schedule.exhaustive(4))).classify(torch.zeros(2), [0, 1])


def test_loaded_plan_must_fit(toy_adapter):
    from dcanalysis.noise import make_noise_plan

    plan = make_noise_plan(5, (2,), seed=0)
    with pytest.raises(ValueError, match="needs 100"):
        DiffusionClassifier(toy_adapter).classify(torch.zeros(2), [0, 1], plan=plan)


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="timestep strategy"):
        ClassifierConfig(timesteps="random")


@pytest.mark.parametrize("policy", [Schedule.from_lists((4, 12), (2, 1)), SequentialTest(step=2, min_trials=4, max_trials=12)])
def test_batched_images_equal_one_by_one(toy_adapter, policy):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=policy, batch_size=7))
    points = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    batch = clf.classify_batch(list(points), [0, 1], image_indices=range(10, 15))
    for i, r in enumerate(batch):
        alone = clf.classify(points[i], [0, 1], image_index=10 + i)
        assert torch.allclose(r.errors.nan_to_num(-1), alone.errors.nan_to_num(-1), atol=1e-6)
        assert r.ranking == alone.ranking and r.n_evaluations == alone.n_evaluations


def test_bad_temperatures_and_candidate_lists_are_refused(toy_adapter):
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            ClassifierConfig(temperature=bad)
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(4)))
    with pytest.raises(ValueError, match="mix types"):
        clf.classify(torch.zeros(2), ["1", 1])
    with pytest.raises(ValueError, match="must be int"):
        clf.classify(torch.zeros(2), [0, 1.5])
    with pytest.raises(ValueError, match="duplicate"):
        clf.classify(torch.zeros(2), [torch.tensor(1), 1])


@pytest.mark.parametrize("overlap", [True, False])
def test_classify_stream_equals_classify_batch_call_by_call(toy_adapter, overlap):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.from_lists((4, 12), (2, 1)), batch_size=5))
    points = torch.randn(7, 2, generator=torch.Generator().manual_seed(5))
    calls = [(points[:3], range(20, 23)), (points[3:6], range(23, 26)), (points[6:], [26])]
    from dcanalysis.engine.overlap import overlapped

    streamed = [r for rs in clf.classify_stream(calls, [0, 1], run_ahead=overlapped if overlap else None) for r in rs]
    looped = [r for x, idx in calls for r in clf.classify_batch(list(x), [0, 1], image_indices=idx)]
    assert [r.image_index for r in streamed] == list(range(20, 27))
    for a, b in zip(streamed, looped):
        assert torch.equal(a.errors.nan_to_num(-1), b.errors.nan_to_num(-1)) and a.ranking == b.ranking


def test_classify_stream_uses_the_given_plans(toy_adapter):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(6)))
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(6))
    other = lambda i: clf.noise_plan((2,), i + 100)  # noqa: E731
    [streamed] = clf.classify_stream([(x, [0, 1])], [0, 1], plan_for=other)
    direct = clf.classify_batch(list(x), [0, 1], image_indices=[0, 1], plans=[other(0), other(1)])
    assert all(torch.equal(a.errors, b.errors) for a, b in zip(streamed, direct))
    assert not torch.equal(streamed[0].errors, clf.classify(x[0], [0, 1], image_index=0).errors)


@pytest.mark.parametrize("streamed", [True, False])
def test_a_plan_too_short_or_of_another_shape_is_refused_with_what_the_run_needs(toy_adapter, streamed):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(6)))
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(7))
    full = clf.noise_plan((2,), 0)
    for bad in (NoisePlan(full.timesteps[:5], full.noise[:5]), clf.noise_plan((3,), 0)):
        with pytest.raises(ValueError, match=r"this run needs 6 of shape \(2,\)"):
            if streamed:
                list(clf.classify_stream([(x, [0, 1])], [0, 1], plan_for=lambda i: bad))
            else:
                clf.classify_batch(list(x), [0, 1], image_indices=[0, 1], plans=[bad, bad])


def test_an_empty_call_has_empty_results_in_the_stream_and_alone(toy_adapter):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(6)))
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(8))
    assert clf.classify_batch([], [0, 1], image_indices=[]) == []
    empty, full = clf.classify_stream([(x[:0], []), (x, [0, 1])], [0, 1])
    assert empty == [] and [r.image_index for r in full] == [0, 1]
    with pytest.raises(ValueError, match="2 images but 1 image indices"):
        clf.classify_batch(list(x), [0, 1], image_indices=[0])


def test_classify_batch_numbers_the_images_by_position_by_default(toy_adapter):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(4)))
    points = list(torch.randn(3, 2, generator=torch.Generator().manual_seed(2)))
    default = clf.classify_batch(points, [0, 1])
    named = clf.classify_batch(points, [0, 1], image_indices=[0, 1, 2])
    assert [r.image_index for r in default] == [0, 1, 2]
    assert all(torch.equal(a.errors, b.errors) for a, b in zip(default, named))


def test_in_memory_images_follow_one_convention():
    import numpy as np
    import pytest

    from dcanalysis.images import model_input

    x = torch.rand(1, 8, 8) * 2 - 1
    assert model_input(x) is x
    u = torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(model_input(u), u.float() / 127.5 - 1)
    assert model_input(np.zeros((8, 8), np.uint8)).size == (8, 8)  # a NumPy image reads like a PIL image
    with pytest.raises(ValueError, match="NumPy array of dtype float64"):
        model_input(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"span \[0, 255\].*uint8"):
        model_input(torch.arange(256.0).reshape(1, 16, 16))
    with pytest.raises(ValueError, match="one image is \\(C, H, W\\)"):
        model_input(torch.zeros(2, 1, 8, 8))
    with pytest.warns(UserWarning, match=r"all lie in \[0, 1\].*x \* 2 - 1"):
        model_input(torch.rand(1, 8, 8))


def test_a_dataloaders_labels_as_image_indices_are_refused(toy_adapter):
    import pytest

    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(2)))
    pts = torch.randn(4, 2)
    with pytest.raises(ValueError, match="image index 1 is given twice.*DataLoader yields \\(images, labels\\)"):
        clf.classify_batch(list(pts), [0, 1], image_indices=[0, 1, 1, 0])
    batches = [(pts[:2], torch.tensor([0, 1])), (pts[2:], torch.tensor([1, 0]))]  # (images, labels) batches
    with pytest.raises(ValueError, match="image index 1 is given twice"):
        list(clf.classify_stream(batches, [0, 1]))
    assert len(list(clf.classify_stream([(pts[:2], [0, 1]), (pts[2:], [2, 3])], [0, 1]))) == 2


def test_progress_reaches_a_callback_after_every_network_batch(toy_adapter):
    calls = []
    schedule = Schedule.from_lists((4, 8), (1, 1))
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=schedule, batch_size=3),
                              progress=lambda done, total: calls.append((done, total)))
    r = clf.classify_batch(list(torch.randn(2, 2)), [0, 1])
    assert calls[-1] == (sum(x.n_evaluations for x in r), 2 * schedule.evaluations(2))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 2


def test_shared_noise_is_allowed_only_when_asked(toy_adapter):
    import pytest

    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(3)))
    a, b = torch.randn(2, 2)
    with pytest.raises(ValueError, match="given twice"):
        clf.classify_batch([a, b], [0, 1], image_indices=[5, 5])
    ra, rb = clf.classify_batch([a, b], [0, 1], image_indices=[5, 5], shared_noise=True)
    assert torch.equal(ra.timesteps, rb.timesteps)
