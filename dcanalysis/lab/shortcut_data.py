"""A spurious cue for the lab datasets: a white square whose position tells the class on most training images.

Each of the ten slots is a 3 x 3 white square on the image's top or bottom border (rows 0-2 or 25-27, columns
1, 7, 13, 19 or 25 onward), where MNIST digits rarely reach. On a training image the square sits in its class's
slot with probability ``strength`` and in one of the nine other slots, uniformly, otherwise: strength 0.1 makes the
cue independent of the class (every slot 10 %), 0.99 makes it a near-perfect predictor that is easier to read than
the digit. At test time every image is shown twice, once with its class's slot ("aligned") and once with another
("conflicting"): the groups are class x {aligned, conflicting}, and a model that reads the cue instead of the
object fails on the conflicting half (the idea of Colored MNIST and Waterbirds, on one grey channel).
"""
from __future__ import annotations

import numpy as np

PATCH = 3  # pixels on a side
# (row, column) of each slot's top-left corner: five along the top border, five along the bottom
SLOTS = tuple((row, col) for row in (0, 25) for col in (1, 7, 13, 19, 25))


def cue_slots(labels: np.ndarray, strength: float, seed: int, num_slots: int = len(SLOTS)) -> np.ndarray:
    """Slot of each image (N,) for labels (N,): the label's own slot with probability ``strength``, else one of
    the other ``num_slots - 1`` uniformly. Seeded, so a model's training images can be rebuilt from its card."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"cue strength {strength} is not a probability; give one in [0, 1] (0.1: no correlation).")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    aligned = rng.random(len(labels)) < strength
    other = (labels + rng.integers(1, num_slots, len(labels))) % num_slots  # never the label's own slot
    return np.where(aligned, labels % num_slots, other)


def stamp_cue(images: np.ndarray, slots: np.ndarray, value: int = 255) -> np.ndarray:
    """uint8 images (N, 28, 28) with a ``value`` square at each image's slot (N,); the input is not changed."""
    out = np.array(images, copy=True)
    rows = np.array([SLOTS[s][0] for s in slots])
    cols = np.array([SLOTS[s][1] for s in slots])
    for dr in range(PATCH):
        for dc in range(PATCH):
            out[np.arange(len(out)), rows + dr, cols + dc] = value
    return out


def conflict_test_set(images: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Each test image twice: first all with their class's slot, then all with another, random slot.

    Returns images uint8 (2N, 28, 28), labels (2N,), slots (2N,), aligned bool (2N,).
    """
    labels = np.asarray(labels)
    other = cue_slots(labels, 0.0, seed)  # strength 0: never the class's own slot
    slots = np.concatenate([labels % len(SLOTS), other])
    return {"images": stamp_cue(np.concatenate([images, images]), slots), "labels": np.concatenate([labels, labels]),
            "slots": slots, "aligned": np.arange(2 * len(labels)) < len(labels)}
