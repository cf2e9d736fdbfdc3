"""Procedural scenes with captions: a Winoground-style benchmark that anyone can regenerate from a seed.

A scene holds one or two *things* (a colour and a shape) and, with two, a spatial relation: "a red circle left
of a blue square" puts the red circle in the left slot. For every two-thing scene we can build its Winoground
twin, whose caption has exactly the same words in another order, in three ways (our analogue of Winoground's
swap tags, Thrush et al., CVPR 2022):

=============  =========================================================  ======================================
swap           caption 1 -> caption 2                                     what must be bound
=============  =========================================================  ======================================
``object``     a red circle left of a blue square -> a red square ...      shape to its colour (nouns swapped)
               left of a blue circle
``attribute``  -> a blue circle left of a red square                       colour to its shape (adjectives swapped)
``both``       -> a blue square left of a red circle                       which phrase is where (phrases swapped)
=============  =========================================================  ======================================

Winoground's own tags are Object, Relation and Both; its "Relation" covers swapped adjectives and verbs, so our
``attribute`` swap is the closest match to it. Five (colour, shape) pairs are held out of training (``HELD_OUT``),
while each colour and each shape still appears with others, so the held-out test split is zero-shot for those
compositions.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40), "green": (40, 190, 60), "blue": (60, 100, 250), "yellow": (240, 220, 40),
    "purple": (170, 60, 220),
}
SHAPES = ("circle", "square", "triangle", "cross")
RELATIONS = ("left of", "above")
SWAPS = ("object", "attribute", "both")
SPLITS = ("train", "test_seen", "test_unseen")
IMAGE_SIZE = 32


@dataclass(frozen=True)
class Thing:
    colour: str
    shape: str

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; choose one of {list(COLOURS)}.")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose one of {list(SHAPES)}.")

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape}"


ALL_THINGS = tuple(Thing(c, s) for c in COLOURS for s in SHAPES)
# One pair per colour, shapes spread out: every colour keeps three seen shapes, every shape at least three colours.
HELD_OUT = frozenset({Thing("red", "triangle"), Thing("green", "cross"), Thing("blue", "circle"),
                      Thing("yellow", "square"), Thing("purple", "triangle")})
SEEN_THINGS = tuple(t for t in ALL_THINGS if t not in HELD_OUT)
UNSEEN_THINGS = tuple(t for t in ALL_THINGS if t in HELD_OUT)


@dataclass(frozen=True)
class Scene:
    """One or two things; ``things[0]`` is left of (or above) ``things[1]``."""

    things: tuple[Thing, ...]
    relation: str | None = None

    def __post_init__(self):
        if len(self.things) == 1 and self.relation is not None:
            raise ValueError("a one-thing scene has no relation.")
        if len(self.things) == 2 and self.relation not in RELATIONS:
            raise ValueError(f"a two-thing scene needs a relation from {RELATIONS}, got {self.relation!r}.")
        if len(self.things) not in (1, 2):
            raise ValueError(f"scenes hold one or two things, got {len(self.things)}.")

    @property
    def caption(self) -> str:
        if len(self.things) == 1:
            return self.things[0].phrase
        return f"{self.things[0].phrase} {self.relation} {self.things[1].phrase}"

    @property
    def is_seen(self) -> bool:
        return all(t not in HELD_OUT for t in self.things)


def swap(scene: Scene, kind: str) -> Scene:
    """The Winoground twin of a two-thing scene: same words, another order (see the module docstring)."""
    if len(scene.things) != 2:
        raise ValueError("only two-thing scenes have swaps.")
    a, b = scene.things
    if kind == "object":
        things = (Thing(a.colour, b.shape), Thing(b.colour, a.shape))
    elif kind == "attribute":
        things = (Thing(b.colour, a.shape), Thing(a.colour, b.shape))
    elif kind == "both":
        things = (b, a)
    else:
        raise ValueError(f"unknown swap {kind!r}; choose one of {SWAPS}.")
    return Scene(things, scene.relation)


def all_captions() -> list[str]:
    """Every caption the generator can produce: 20 single things and 760 ordered pairs with a relation."""
    singles = [t.phrase for t in ALL_THINGS]
    pairs = [Scene((a, b), r).caption for a, b in itertools.permutations(ALL_THINGS, 2) for r in RELATIONS]
    return singles + pairs


# -- rendering -----------------------------------------------------------------------------------------------

def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius r around the origin, on grids of offsets dx, dy (pixels, y down)."""
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "square":
        return (np.abs(dx) <= 0.82 * r) & (np.abs(dy) <= 0.82 * r)
    if shape == "triangle":  # apex up
        return (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) * 0.58)
    if shape == "cross":
        w = 0.33 * r
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, rng: np.random.Generator, size: int = IMAGE_SIZE, supersample: int = 4) -> np.ndarray:
    """Draw a scene on black: (size, size, 3) uint8. Positions and radii jitter with ``rng``.

    Two things sit in two slots (left/right for "left of", top/bottom for "above"); anti-aliased by drawing at
    ``supersample`` times the size and averaging.
    """
    big = size * supersample
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) + 0.5
    canvas = np.zeros((big, big, 3), np.float32)
    n = len(scene.things)
    for i, thing in enumerate(scene.things):
        r = rng.uniform(0.17, 0.21) * big
        along = (0.27 if i == 0 else 0.73) if n == 2 else 0.5
        along += rng.uniform(-0.04, 0.04)
        across = 0.5 + rng.uniform(-0.1, 0.1)
        cx, cy = (along, across) if scene.relation != "above" else (across, along)
        mask = _shape_mask(thing.shape, xx - cx * big, yy - cy * big, r)
        canvas[mask] = COLOURS[thing.colour]
    small = canvas.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


# -- sampling ------------------------------------------------------------------------------------------------

def _things_for(split: str) -> tuple[Thing, ...]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}.")
    return SEEN_THINGS if split in ("train", "test_seen") else ALL_THINGS


def sample_scene(rng: np.random.Generator, split: str = "train", p_single: float = 0.25,
                 distinct: bool = False) -> Scene:
    """A random scene of a split. ``test_unseen`` scenes hold at least one held-out thing.

    ``distinct`` asks for two things that differ in colour *and* shape (needed for all three swaps).
    """
    pool = _things_for(split)
    while True:
        if rng.random() < p_single:
            scene = Scene((pool[rng.integers(len(pool))],))
        else:
            i, j = rng.choice(len(pool), size=2, replace=False)
            a, b = pool[i], pool[j]
            if distinct and (a.colour == b.colour or a.shape == b.shape):
                continue
            scene = Scene((a, b), RELATIONS[rng.integers(len(RELATIONS))])
        if split == "test_unseen" and scene.is_seen:
            continue
        return scene


def sample_batch(n: int, rng: np.random.Generator, split: str = "train", p_single: float = 0.25,
                 size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """n random scenes: images (n, size, size, 3) uint8 and their captions."""
    scenes = [sample_scene(rng, split, p_single) for _ in range(n)]
    return np.stack([render(s, rng, size) for s in scenes]), [s.caption for s in scenes]


@dataclass(frozen=True)
class SwapItem:
    """One Winoground-style item: two images and two captions, image i matching caption i."""

    id: int
    scenes: tuple[Scene, Scene]
    images: tuple[np.ndarray, np.ndarray]
    tag: str
    seen: bool

    @property
    def captions(self) -> tuple[str, str]:
        return self.scenes[0].caption, self.scenes[1].caption


def swap_items(n: int, seed: int, split: str = "test_seen", kinds: Sequence[str] = SWAPS,
               size: int = IMAGE_SIZE) -> list[SwapItem]:
    """n items cycling through ``kinds``; reproducible from ``seed``.

    For ``test_unseen`` both scenes of an item contain a held-out thing (a swap can move a held-out pair into
    the other scene, so the first scene is redrawn until both qualify).
    """
    if split == "train":
        raise ValueError("swap items are for evaluation; use split='test_seen' or 'test_unseen'.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    items = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        while True:
            s0 = sample_scene(rng, split, p_single=0.0, distinct=True)
            s1 = swap(s0, kind)
            if split == "test_seen" and s1.is_seen or split == "test_unseen" and not s1.is_seen:
                break
        items.append(SwapItem(i, (s0, s1), (render(s0, rng, size), render(s1, rng, size)), kind,
                              s0.is_seen and s1.is_seen))
    return items


def distinct_captions(items: Sequence[SwapItem], n: int) -> list[SwapItem]:
    """The first ``n`` items whose first captions all differ (``swap_items`` draws with replacement, so a short
    list can show one caption twice)."""
    seen, out = set(), []
    for it in items:
        if it.scenes[0].caption not in seen:
            seen.add(it.scenes[0].caption)
            out.append(it)
        if len(out) == n:
            return out
    raise ValueError(f"only {len(out)} distinct captions among {len(items)} items; draw more items than {n}.")


def single_thing_set(n_per_thing: int, seed: int, things: Sequence[Thing] = ALL_THINGS,
                     size: int = IMAGE_SIZE) -> Iterator[tuple[np.ndarray, Thing]]:
    """Images of single things for zero-shot classification among all 20 phrases: (image, thing) pairs."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    for _ in range(n_per_thing):
        for t in things:
            yield render(Scene((t,)), rng, size), t
