import numpy as np
import pytest

from dcanalysis.evaluation.analysis import (ErrorTables, accuracy_vs_trials, bootstrap_accuracy_band, replay,
                                            single_timestep_accuracy)
from dcanalysis import Schedule, SequentialTest


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


@pytest.mark.parametrize("policy", [Schedule.from_lists((3, 30), (2, 1)),
                                    SequentialTest(step=3, min_trials=6, max_trials=30, confidence=0.9)])
def test_replay_on_a_table_equals_the_live_run(policy):
    """The one pruning loop: replaying a policy on a live exhaustive run's table reaches the live adaptive run's
    decisions (which candidates got how many trials) and predictions, image by image."""
    import torch

    from dcanalysis import ClassifierConfig, DiffusionClassifier
    from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
    from dcanalysis.pruning import prune

    adapter = GaussianMixtureAdapter(two_moons_like(4))
    points = torch.randn(20, 2, generator=torch.Generator().manual_seed(1)) * 1.5
    full, live = [], []
    for i, x in enumerate(points):
        ex = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(30))).classify(x, range(4), image_index=i)
        full.append(ex.errors)
        live.append(DiffusionClassifier(adapter, ClassifierConfig(schedule=policy)).classify(x, range(4), image_index=i))
    decided = prune(policy, torch.stack(full))
    for i, r in enumerate(live):
        assert decided.trials[i] == r.trials_per_candidate.tolist()
    tables = ErrorTables(torch.stack(full).numpy(), np.array([r.prediction for r in live]), np.zeros(30, int),
                         np.arange(20))
    acc, evals = replay(tables, policy)
    assert acc == 1.0 and evals == np.mean([r.n_evaluations for r in live])
    if isinstance(policy, Schedule):
        assert evals == policy.evaluations(4)
    else:
        assert evals < 4 * 30  # some images stopped early
        assert len({r.n_evaluations for r in live}) > 1


def test_sequential_replay_saves_evaluations_on_easy_tables():
    tables = synthetic_tables(gap=0.2)
    acc, evals = replay(tables, SequentialTest(step=2, min_trials=4, max_trials=40, confidence=0.99))
    assert acc == 1.0 and evals < 5 * 40 / 4


def test_replay_refuses_schedules_longer_than_the_tables():
    with pytest.raises(ValueError, match="table holds 40"):
        replay(synthetic_tables(), Schedule.exhaustive(100))


def test_auroc_matches_the_roc_curve():
    from sklearn.metrics import roc_auc_score

    from dcanalysis.evaluation.analysis import auroc

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(0.7, 1, 150)
    b[:10] = a[:10]  # ties count half
    ref = roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[a, b])
    assert abs(auroc(a, b) - ref) < 1e-12
    assert auroc(a, a + 100) == 1.0 and auroc(a + 100, a) == 0.0


def test_effective_robustness_is_the_distance_from_the_baselines_logit_trend():
    import pandas as pd

    from dcanalysis.evaluation.analysis import effective_robustness

    logit = lambda p: np.log(p / (100 - p))  # noqa: E731
    ident = pd.Series({"a": 60.0, "b": 70.0, "c": 80.0, "ours": 70.0})
    # the baselines lie on logit(shift) = logit(id) - 1 exactly; ours sits 5 points above that line
    on_line = {m: 100 / (1 + np.exp(-(logit(v) - 1))) for m, v in ident.items()}
    shifted = pd.Series({**on_line, "ours": on_line["ours"] + 5.0})
    er = effective_robustness(ident, shifted, ["a", "b", "c"])
    assert np.allclose(er[["a", "b", "c"]], 0, atol=1e-9) and abs(er["ours"] - 5.0) < 1e-9


def test_shift_names_read_as_words_with_their_severity():
    from dcanalysis.evaluation.analysis import shift_name

    assert shift_name("gaussian_noise_s3") == "gaussian noise (severity 3)"
    assert shift_name("jpeg_s5", "\n") == "jpeg\n(severity 5)"
    assert shift_name("test") == "test" and shift_name("far_ood_mnist") == "far ood mnist"
    assert shift_name("fashion_mnist", "\n") == "Fashion-MNIST" and shift_name("sklearn_digits") == "scikit-learn digits"
