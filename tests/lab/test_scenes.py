import numpy as np
import pytest

from dcanalysis.lab import scenes as S


def _scene(a, b, rel="left of"):
    return S.Scene((S.Thing(*a), S.Thing(*b)), rel)


@pytest.mark.parametrize("kind", S.SWAPS)
def test_swap_keeps_the_words_and_changes_the_caption(kind):
    s = _scene(("red", "circle"), ("blue", "square"))
    t = S.swap(s, kind)
    assert sorted(t.caption.split()) == sorted(s.caption.split())
    assert t.caption != s.caption
    assert S.swap(t, kind) == s  # every swap is an involution


def test_swap_kinds_bind_what_they_say():
    s = _scene(("red", "circle"), ("blue", "square"), "above")
    assert S.swap(s, "object").caption == "a red square above a blue circle"
    assert S.swap(s, "attribute").caption == "a blue circle above a red square"
    assert S.swap(s, "both").caption == "a blue square above a red circle"
    with pytest.raises(ValueError, match="two-thing"):
        S.swap(S.Scene((S.Thing("red", "circle"),)), "both")


def test_bad_scenes_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        S.Thing("pink", "circle")
    with pytest.raises(ValueError, match="relation"):
        S.Scene((S.Thing("red", "circle"), S.Thing("blue", "cross")), "behind")


def test_held_out_pairs_leave_every_colour_and_shape_in_training():
    assert {t.colour for t in S.SEEN_THINGS} == set(S.COLOURS)
    assert {t.shape for t in S.SEEN_THINGS} == set(S.SHAPES)
    assert len(S.SEEN_THINGS) + len(S.UNSEEN_THINGS) == len(S.ALL_THINGS) == 20


def test_splits_respect_the_held_out_pairs():
    rng = np.random.default_rng(0)
    train = [S.sample_scene(rng, "train") for _ in range(300)]
    unseen = [S.sample_scene(rng, "test_unseen") for _ in range(100)]
    assert all(s.is_seen for s in train)
    assert not any(s.is_seen for s in unseen)
    items = S.swap_items(12, seed=3, split="test_unseen")
    assert all(not it.scenes[0].is_seen and not it.scenes[1].is_seen for it in items)
    assert all(it.seen for it in S.swap_items(12, seed=3, split="test_seen"))


def test_captions_are_finite_and_unique():
    caps = S.all_captions()
    assert len(caps) == len(set(caps)) == 20 + 20 * 19 * 2


def _dominant_colour(pixels):
    flat = pixels.reshape(-1, 3).astype(float)
    lit = flat[flat.sum(1) > 150]
    return min(S.COLOURS, key=lambda c: np.abs(lit - np.array(S.COLOURS[c])).sum(1).mean())


@pytest.mark.parametrize("rel", S.RELATIONS)
def test_render_puts_the_first_thing_in_the_first_slot(rel):
    s = _scene(("red", "square"), ("green", "circle"), rel)
    im = S.render(s, np.random.default_rng(1))
    assert im.shape == (32, 32, 3) and im.dtype == np.uint8
    first, second = (im[:, :16], im[:, 16:]) if rel == "left of" else (im[:16], im[16:])
    assert _dominant_colour(first) == "red" and _dominant_colour(second) == "green"


def test_swap_items_are_reproducible_and_cycle_the_kinds():
    a, b = S.swap_items(6, seed=5), S.swap_items(6, seed=5)
    assert [it.tag for it in a] == list(S.SWAPS) * 2
    assert all(np.array_equal(x.images[0], y.images[0]) and x.captions == y.captions for x, y in zip(a, b))
    assert S.swap_items(6, seed=6)[0].captions != a[0].captions or not np.array_equal(
        S.swap_items(6, seed=6)[0].images[0], a[0].images[0])


def test_distinct_captions_drops_repeats_in_order():
    items = S.swap_items(12, seed=0, kinds=("both",))
    picked = S.distinct_captions(items, 4)
    captions = [it.scenes[0].caption for it in picked]
    assert len(set(captions)) == 4 and picked[0] is items[0]
    with pytest.raises(ValueError, match="draw more items"):
        S.distinct_captions(items[:2], 3)
