import numpy as np
import pytest

from dcanalysis.analysis import (ErrorTables, accuracy_vs_trials, bootstrap_accuracy_band, replay_schedule,
                                 replay_sequential, single_timestep_accuracy)
from dcanalysis.schedules import Schedule


def synthetic_tables(n=60, k=5, t=40, gap=0.05, seed=0):
    """Errors with a shared per-trial difficulty; the true class is lower by ``gap``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    errors = rng.random((n, 1, t)) + 0.02 * rng.standard_normal((n, k, t))
    errors[np.arange(n), labels] -= gap
    return ErrorTables(errors.astype(np.float32), labels, np.arange(t) * 25, np.arange(n))


def test_accuracy_grows_with_trials_and_band_contains_it():
    tables = synthetic_tables(gap=0.01)
    acc = accuracy_vs_trials(tables, [1, 40])
    assert acc[1] > acc[0] and acc[1] > 0.9
    lo, hi = bootstrap_accuracy_band(tables, [1, 40])
    assert np.all(lo <= acc) and np.all(acc <= hi)


def test_single_timestep_accuracy_per_t():
    tables = synthetic_tables()
    ts, acc = single_timestep_accuracy(tables)
    assert len(ts) == 40 and acc.shape == (40,) and acc.mean() > 0.6  # chance is 0.2


def test_replayed_schedule_matches_the_live_classifier(toy_adapter):
    """A replay from an exhaustive table predicts exactly what a live adaptive run predicts."""
    import torch

    from dcanalysis import ClassifierConfig, DiffusionClassifier

    sched = Schedule.from_lists((3, 30), (2, 1))
    g = torch.Generator().manual_seed(1)
    points = torch.randn(25, 2, generator=g)
    full, live = [], []
    for i, x in enumerate(points):
        ex = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(30))).classify(x, [0, 1], image_index=i)
        ad = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=sched)).classify(x, [0, 1], image_index=i)
        full.append(ex.errors.numpy())
        live.append(ad.prediction)
    tables = ErrorTables(np.stack(full).astype(np.float32), np.array(live), np.zeros(30, int), np.arange(25))
    acc, evals = replay_schedule(tables, sched)
    assert acc == 1.0 and evals == 2 * 3 + 2 * 27


def test_sequential_replay_saves_evaluations_on_easy_tables():
    tables = synthetic_tables(gap=0.2)
    acc, evals = replay_sequential(tables, step=2, min_trials=4, max_trials=40, confidence=0.99)
    assert acc == 1.0 and evals < 5 * 40 / 4


def test_replay_refuses_schedules_longer_than_the_tables():
    with pytest.raises(ValueError, match="tables hold 40"):
        replay_schedule(synthetic_tables(), Schedule.exhaustive(100))


def test_auroc_matches_the_roc_curve():
    from sklearn.metrics import roc_auc_score

    from dcanalysis.analysis import auroc

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(0.7, 1, 150)
    b[:10] = a[:10]  # ties count half
    ref = roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[a, b])
    assert abs(auroc(a, b) - ref) < 1e-12
    assert auroc(a, a + 100) == 1.0 and auroc(a + 100, a) == 0.0
