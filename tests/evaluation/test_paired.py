import numpy as np
import pytest

from dcanalysis.evaluation.paired import aligned_predictions, compare_predictions


def test_only_discordant_images_decide_and_the_test_is_exact():
    labels = np.zeros(100, int)
    a = np.zeros(100, int)
    b = np.zeros(100, int)
    a[:10], b[10:12] = 1, 1   # A wrong on 10 images, B wrong on 2 others
    r = compare_predictions(a, b, labels)
    assert (r.only_a, r.only_b, r.n) == (2, 10, 100)
    assert r.difference == pytest.approx(-0.08)
    # exact two-sided binomial: P(X <= 2 or X >= 10 | n=12, p=1/2) = 2 * 79 / 4096
    assert r.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    same = compare_predictions(a, a, labels)
    assert same.p_value == 1.0 and same.only_a == same.only_b == 0


def test_runs_are_matched_by_id_and_other_images_are_refused():
    rec = lambda i, p, y, h="x": {"id": i, "prediction": p, "label": y, "item": {"sha256": h}}  # noqa: E731
    a = [rec(0, 1, 1), rec(1, 0, 1), rec(2, 2, 2)]
    b = [rec(2, 0, 2), rec(0, 1, 1), {"id": 1, "error": "boom", "label": 1}]
    pa, pb, y = aligned_predictions(a, b)
    assert pa.tolist() == [1, 2] and pb.tolist() == [1, 0] and y.tolist() == [1, 2]
    with pytest.raises(ValueError, match="image 0 differs between the two runs"):
        aligned_predictions(a, [rec(0, 1, 1, "other")])
    with pytest.raises(ValueError, match="shape"):
        compare_predictions(np.zeros(3), np.zeros(2), np.zeros(3))
