import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule, SequentialTest
from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.engine.batching import Batched
from dcanalysis.engine.refill import RefillStats, classify_refilled


def _same(a, b, *, exact: bool = True):
    assert a.image_index == b.image_index
    assert a.ranking == b.ranking and a.n_evaluations == b.n_evaluations
    assert torch.equal(torch.isnan(a.errors), torch.isnan(b.errors))
    assert torch.equal(a.timesteps, b.timesteps)
    if exact:
        assert torch.equal(torch.nan_to_num(a.errors), torch.nan_to_num(b.errors))
        assert torch.equal(a.posterior, b.posterior)
    else:
        torch.testing.assert_close(a.errors, b.errors, rtol=1e-5, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("policy", [
    SequentialTest(step=2, min_trials=4, max_trials=30, confidence=0.99),
    SequentialTest(step=3, min_trials=3, max_trials=31, confidence=0.9),  # a last round shorter than the rest
    Schedule.from_lists([6, 24], [2, 1]),  # a staged schedule runs every stage, whatever it keeps
], ids=["sequential", "sequential-short-last-round", "staged"])
@pytest.mark.parametrize("in_flight, rows", [(5, 7), (1, 3), (64, 1000)])
def test_refilled_results_are_classify_batchs_for_every_image(policy, in_flight, rows):
    adapter = GaussianMixtureAdapter(two_moons_like(4))
    points = torch.randn(23, 2, generator=torch.Generator().manual_seed(3)) * 1.5
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=policy, batch_size=50, seed=7))
    indices = list(range(100, 123))
    reference = {r.image_index: r for r in clf.classify_batch(list(points), [0, 1, 2, 3], image_indices=indices)}
    got = list(classify_refilled(clf, list(points), [0, 1, 2, 3], image_indices=indices, in_flight=in_flight,
                                 rows=rows))
    assert sorted(r.image_index for r in got) == indices  # each image once, in the order they were decided
    for r in got:
        _same(r, reference[r.image_index])
    # the sequential test spends unequal budgets, so images finish out of order once slots are refilled
    if isinstance(policy, SequentialTest) and in_flight == 5:
        assert [r.image_index for r in got] != indices


@pytest.mark.parametrize("host_threads", [0, 3])
def test_images_prepared_ahead_on_threads_give_the_same_results_and_the_stats_count_every_row(host_threads):
    adapter = GaussianMixtureAdapter(two_moons_like(3))
    points = torch.randn(17, 2, generator=torch.Generator().manual_seed(5))
    policy = SequentialTest(step=2, min_trials=4, max_trials=20, confidence=0.99)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=policy, batch_size=50, seed=1))
    reference = {r.image_index: r for r in clf.classify_batch(list(points), [0, 1, 2])}
    stats = RefillStats()
    got = list(classify_refilled(clf, list(points), [0, 1, 2], in_flight=4, rows=9, host_threads=host_threads,
                                 stats=stats))
    for r in got:
        _same(r, reference[r.image_index])
    assert stats.rows == sum(r.n_evaluations for r in got)
    assert stats.calls >= stats.rows / 9 and stats.waited_s == 0.0  # no GPU here: nothing to wait for


@pytest.mark.parametrize("host_threads", [0, 2])
def test_an_image_that_cannot_be_read_raises_its_own_error_after_every_image_before_it_is_decided(host_threads):
    adapter = GaussianMixtureAdapter(two_moons_like(2))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=SequentialTest(step=2, min_trials=4, max_trials=8)))
    points = [torch.zeros(2)] * 7 + ["a-file.png"] + [torch.zeros(2)] * 3  # the toy model reads no files
    got = []
    with pytest.raises(TypeError, match="pass a tensor of shape"):
        for r in classify_refilled(clf, points, [0, 1], host_threads=host_threads, in_flight=3, rows=5):
            got.append(r.image_index)
    assert sorted(got) == list(range(7))  # nothing before the bad image is lost, nothing after it is started


@pytest.mark.parametrize("host_threads", [0, 2])
def test_an_image_of_another_size_is_refused_in_one_line_after_every_image_before_it_is_decided(host_threads,
                                                                                                 monkeypatch):
    adapter = GaussianMixtureAdapter(two_moons_like(2))
    encode = adapter.encode
    # an image whose first pixel is 99 encodes to twice the size, as a larger picture would
    monkeypatch.setattr(adapter, "encode", lambda x: torch.cat([x, x], -1) if x[0, 0] == 99 else encode(x))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=SequentialTest(step=2, min_trials=4, max_trials=8)))
    points = [torch.zeros(2)] * 6 + [torch.tensor([99.0, 0.0])] + [torch.zeros(2)] * 3
    got = []
    with pytest.raises(ValueError, match=r"image 6 has diffusion-space shape \(4,\); this run's images have \(2,\)"):
        for r in classify_refilled(clf, points, [0, 1], host_threads=host_threads, in_flight=3, rows=5):
            got.append(r.image_index)
    assert sorted(got) == list(range(6))


def test_a_short_call_is_launched_only_when_no_other_call_is_in_flight(monkeypatch):
    """When fewer rows than a call holds are queued, the call in flight comes back first: its images' next rounds
    join the next call (the run's last images then move on a round per call)."""
    from dcanalysis.engine import refill

    events = []
    launch, take_back = refill._Refill._launch, refill._Refill._take_back
    monkeypatch.setattr(refill._Refill, "_launch", lambda self, rows: events.append(len(rows)) or launch(self, rows))
    monkeypatch.setattr(refill._Refill, "_take_back", lambda self, call: events.append("back") or take_back(self, call))
    adapter = GaussianMixtureAdapter(two_moons_like(3))
    points = torch.randn(12, 2, generator=torch.Generator().manual_seed(1))
    policy = SequentialTest(step=2, min_trials=4, max_trials=30, confidence=0.999)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=policy, batch_size=50, seed=2))
    got = list(classify_refilled(clf, list(points), [0, 1, 2], in_flight=4, rows=10))
    assert sorted(r.image_index for r in got) == list(range(12))
    in_flight = 0
    short = 0
    for e in events:
        if e == "back":
            in_flight -= 1
            continue
        if e < 10:
            short += 1
            assert in_flight == 0, events
        in_flight += 1
    assert short > 0  # the rule was exercised


def test_a_lab_unet_gives_classify_batchs_decisions_through_one_static_batch_shape(monkeypatch):
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
    from dcanalysis.lab.registry import load_lab_diffusion

    adapter = load_lab_diffusion("fashion_mnist_unet")
    seen = []
    predict = adapter.predict

    def spy(x_t, *a, **kw):
        seen.append(x_t.shape[0])
        return predict(x_t, *a, **kw)

    monkeypatch.setattr(adapter, "predict", spy)
    x = to_model_input(load_lab_dataset("fashion_mnist", test_only=True).test_images[:6])
    policy = SequentialTest(step=2, min_trials=4, max_trials=10, confidence=0.99)
    clf = DiffusionClassifier(Batched(adapter, static_rows=24), ClassifierConfig(schedule=policy, batch_size=24))
    reference = {r.image_index: r for r in clf.classify_batch(list(x), list(range(10)))}
    seen.clear()
    got = list(classify_refilled(clf, list(x), list(range(10)), in_flight=3, rows=24))
    assert set(seen) == {24}  # the last, partial calls are padded to the one shape a compiled network saw
    for r in got:
        _same(r, reference[r.image_index], exact=False)
        assert r.prediction_index == reference[r.image_index].prediction_index


def test_bad_input_is_refused_before_any_network_work():
    adapter = GaussianMixtureAdapter(two_moons_like(2))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=SequentialTest(step=2, min_trials=4, max_trials=8)))
    points = list(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="host_threads must be >= 0"):
        next(classify_refilled(clf, points, [0, 1], host_threads=-1))
    with pytest.raises(ValueError, match="in_flight must be >= 1"):
        next(classify_refilled(clf, points, [0, 1], in_flight=0))
    with pytest.raises(ValueError, match="image index 1 is given twice"):
        next(classify_refilled(clf, points, [0, 1], image_indices=[0, 1, 1]))
    with pytest.raises(ValueError, match="duplicate candidates"):
        next(classify_refilled(clf, points, [0, 0]))
    assert list(classify_refilled(clf, [], [0, 1])) == []
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        next(classify_refilled(clf, points, [0, 1], cuda_graphs=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_calls_replayed_as_cuda_graphs_give_the_decisions_of_calls_launched_one_kernel_at_a_time():
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
    from dcanalysis.lab.registry import load_lab_diffusion

    adapter = Batched(load_lab_diffusion("mnist_unet", device="cuda"), static_rows=64, padded_sizes=3)
    x = to_model_input(load_lab_dataset("mnist", test_only=True).test_images[:40])
    policy = SequentialTest(step=2, min_trials=4, max_trials=20, confidence=0.99)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=policy, batch_size=64))
    launched = {r.image_index: r for r in classify_refilled(clf, list(x), list(range(10)), in_flight=12, rows=64)}
    stats = RefillStats()
    replayed = list(classify_refilled(clf, list(x), list(range(10)), in_flight=12, rows=64, cuda_graphs=True,
                                      host_threads=2, stats=stats))
    assert sorted(r.image_index for r in replayed) == list(range(40))
    for r in replayed:  # the network sees the same padded batches; only the error's reduction may differ in size
        _same(r, launched[r.image_index], exact=False)
        assert r.prediction_index == launched[r.image_index].prediction_index
    assert stats.rows == sum(r.n_evaluations for r in replayed) and stats.waited_s > 0
