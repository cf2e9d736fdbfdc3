import numpy as np
import pytest

from dcanalysis.evaluation import calibration as C


def test_nll_and_brier_match_sklearn_and_hand_computation():
    from sklearn.metrics import log_loss

    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]])
    y = np.array([0, 1, 1])
    assert C.nll(p, y) == pytest.approx(log_loss(y, p, labels=[0, 1, 2]))
    hand = ((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) + (0.1 ** 2 + 0.7 ** 2 + 0.6 ** 2) + (0.25 ** 2 + 0.5 ** 2 + 0.25 ** 2)) / 3
    assert C.brier(p, y) == pytest.approx(hand)


def test_ece_by_hand_with_both_binnings():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.6 (right) in 2 equal-width bins: [0, .5), [.5, 1]
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    # one bin holds all four: mean confidence 0.75, accuracy 0.75
    assert C.ece(p, y, n_bins=2, scheme="width") == pytest.approx(0.0)
    # four equal-width bins: [.5, .75) holds the 0.6s (acc 1), [.75, 1] the 0.9s (acc .5): (2 * .4 + 2 * .4) / 4
    assert C.ece(p, y, n_bins=4, scheme="width") == pytest.approx(0.4)
    # two equal-mass bins: the two 0.6s, then the two 0.9s
    assert C.ece(p, y, n_bins=2, scheme="mass") == pytest.approx(0.4)
    rows = C.reliability(p, y, n_bins=4)
    assert [(r["count"], r["accuracy"]) for r in rows] == [(2, 1.0), (2, 0.5)]


def test_risk_coverage_and_aurc_by_hand():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    y = np.array([0, 1, 0, 1])  # right, wrong, right, wrong, in order of confidence
    coverage, risk = C.risk_coverage(p, y)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0] and risk.tolist() == [0.0, 0.5, 1 / 3, 0.5]
    assert C.aurc(p, y) == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)


def test_a_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 5)) * 3
    y = np.array([rng.choice(5, p=q) for q in C.softmax(z, 2.5)])
    assert C.fit_temperature(z, y) == pytest.approx(2.5, rel=0.05)
    fit, ev = C.calibration_split(np.arange(10))
    assert fit.tolist() == [True, False] * 5 and (fit ^ ev).all()


def test_the_ddpm_elbo_weights_and_logits():
    beta = np.linspace(1e-4, 0.02, 1000)  # DDPM's linear schedule, what the lab models train with
    abar = np.cumprod(1 - beta)
    w = C.ddpm_elbo_weights(abar)
    assert np.allclose(w, beta / (2 * (1 - beta) * (1 - abar)), rtol=1e-4)
    errors = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # 1 image, 2 candidates, 2 trials at t = 10 and 500
    logits = C.elbo_logits(errors, np.array([10, 500]), abar, n_elements=4)
    assert np.allclose(logits[0], [-1000 * 4 * (w[10] * 1 + w[500] * 2) / 2, -1000 * 4 * (w[10] * 3 + w[500] * 4) / 2])


def test_learned_timestep_weights_find_the_informative_times():
    rng = np.random.default_rng(1)
    n, k, trials = 600, 3, 40
    y = rng.integers(0, k, n)
    t = np.arange(trials) * 25  # 0 .. 975
    errors = rng.normal(1.0, 0.3, (n, k, trials))
    informative = (t >= 250) & (t < 500)  # only these trials tell the class
    errors[np.arange(n), y] -= 0.3 * informative
    f = C.timestep_features(errors, t, 1000, n_bins=4)
    w = C.fit_timestep_weights(f, y)
    assert w[1] > 5 * max(w[0], w[2], w[3])
    uniform = C.nll(C.softmax(-f.mean(axis=2) * 10), y)
    assert C.nll(C.softmax(-f @ w), y) < uniform
    with pytest.raises(ValueError, match="hold no trial"):
        C.timestep_features(errors[:, :, :2], t[:2], 1000, n_bins=4)
