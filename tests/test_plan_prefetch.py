import threading

import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.noise import make_noise_plan
from dcanalysis.plan_prefetch import PlanPrefetcher


def plan(i):
    return make_noise_plan(4, (2,), seed=0, image_index=i)


def test_a_requested_plan_is_drawn_on_the_worker_and_a_plan_never_requested_on_the_caller():
    threads = []

    def draw(i):
        threads.append(threading.current_thread().name)
        return plan(i)

    p = PlanPrefetcher()
    p.request(1, lambda: draw(1))
    got = p.take(1, lambda: draw(1))
    assert torch.equal(got.noise, plan(1).noise) and threads[0].startswith("dcanalysis-plans")
    p.take(2, lambda: draw(2))
    assert threads[1] == threading.current_thread().name and p.pending() == 0
    p.close()


def test_unclaimed_plans_are_dropped_oldest_first():
    p = PlanPrefetcher(max_pending=2)
    for i in range(5):
        p.request(i, lambda i=i: plan(i))
    assert p.pending() == 2
    drawn_late = []
    p.take(0, lambda: drawn_late.append(0) or plan(0))  # dropped, so drawn again, identically
    assert drawn_late == [0]
    p.close()


def test_prefetched_runs_give_the_same_errors_as_plans_drawn_on_time(toy_adapter):
    cfg = ClassifierConfig(schedule=Schedule.from_lists((6, 12), (2, 1)), seed=3)
    images = [torch.randn(2, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    ahead, on_time = DiffusionClassifier(toy_adapter, cfg), DiffusionClassifier(toy_adapter, cfg)
    ahead.prefetch_plans([0, 1])  # nothing known of the model yet: a no-op, not a wrong-shaped plan
    assert ahead._plans.pending() == 0
    got, want = [], []
    for lo in (0, 2, 4):
        ahead.prefetch_plans(range(lo + 2, min(lo + 4, 6)))
        got += ahead.classify_batch(images[lo:lo + 2], [0, 1], image_indices=range(lo, lo + 2))
        want += on_time.classify_batch(images[lo:lo + 2], [0, 1], image_indices=range(lo, lo + 2))
    assert all(torch.equal(a.errors, b.errors) for a, b in zip(got, want))
    assert ahead._plans.pending() == 0  # every plan drawn ahead was taken


def test_a_plan_drawn_ahead_under_other_settings_is_not_used(toy_adapter):
    clf = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(8), seed=0))
    clf.classify(torch.zeros(2), [0, 1], image_index=0)
    clf.prefetch_plans([1])
    clf.config = ClassifierConfig(schedule=Schedule.exhaustive(8), seed=1)
    r = clf.classify(torch.zeros(2), [0, 1], image_index=1)
    assert torch.equal(r.timesteps, make_noise_plan(8, (2,), seed=1, image_index=1).timesteps)
    fresh = DiffusionClassifier(toy_adapter, clf.config).classify(torch.zeros(2), [0, 1], image_index=1)
    assert torch.equal(r.errors, fresh.errors)
