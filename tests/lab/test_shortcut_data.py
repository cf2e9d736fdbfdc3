import numpy as np
import pytest

from dcanalysis.lab.shortcut_data import PATCH, SLOTS, conflict_test_set, cue_slots, stamp_cue


def test_the_cue_sits_in_the_class_slot_at_the_given_rate_and_elsewhere_uniformly():
    labels = np.tile(np.arange(10), 5000)
    assert (cue_slots(labels, 1.0, seed=0) == labels).all()
    assert (cue_slots(labels, 0.0, seed=0) != labels).all()
    strong = cue_slots(labels, 0.95, seed=0)
    assert abs((strong == labels).mean() - 0.95) < 0.01
    off = strong[strong != labels]
    assert np.allclose(np.bincount((off - labels[strong != labels]) % 10, minlength=10)[1:] / len(off), 1 / 9, atol=0.02)
    independent = cue_slots(labels, 0.1, seed=1)  # 0.1 of ten slots: no information about the class
    for c in range(10):
        assert np.allclose(np.bincount(independent[labels == c], minlength=10) / 5000, 0.1, atol=0.02)
    assert (cue_slots(labels, 0.95, seed=0) == strong).all() and (cue_slots(labels, 0.95, seed=1) != strong).any()
    with pytest.raises(ValueError, match="not a probability"):
        cue_slots(labels, 1.5, seed=0)


def test_stamping_changes_only_the_slot_square_and_leaves_the_input_alone():
    images = np.random.default_rng(0).integers(0, 200, (10, 28, 28), dtype=np.uint8)
    before = images.copy()
    out = stamp_cue(images, np.arange(10))
    assert (images == before).all()
    for i, (r, c) in enumerate(SLOTS):
        mask = np.zeros((28, 28), bool)
        mask[r:r + PATCH, c:c + PATCH] = True
        assert (out[i][mask] == 255).all() and (out[i][~mask] == before[i][~mask]).all()
    squares = np.zeros((28, 28), int)
    for r, c in SLOTS:
        squares[r:r + PATCH, c:c + PATCH] += 1
    assert squares.max() == 1  # ten disjoint slots


def test_the_conflict_set_shows_each_image_with_its_slot_then_with_another():
    images = np.zeros((6, 28, 28), np.uint8)
    labels = np.array([0, 1, 2, 7, 8, 9])
    d = conflict_test_set(images, labels, seed=0)
    assert d["images"].shape == (12, 28, 28) and (d["labels"] == np.tile(labels, 2)).all()
    assert d["aligned"].tolist() == [True] * 6 + [False] * 6
    assert (d["slots"][:6] == labels).all() and (d["slots"][6:] != labels).all()
    assert (d["images"].reshape(12, -1) == 255).sum(1).tolist() == [PATCH * PATCH] * 12
