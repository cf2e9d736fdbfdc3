"""Winoground-style image-text matching (Thrush et al., CVPR 2022) and how a diffusion model scores it.

An item is two images and two captions with the same words in another order; image i matches caption i.
With a score s(caption, image) (higher = better match):

* text score: for each image, its caption beats the other caption;
* image score: for each caption, its image beats the other image;
* group score: both.

Diffusion Classifier's score is the negative mean denoising error. Comparing captions on one image (text score)
is its home ground. Comparing *images* under one caption is not: some images are simply easier to denoise, so the
paper reports text scores only. We add a normalised score, ``e(x, null) - e(x, c)``, the error the caption saves
over the unconditional prediction: an estimate (up to a scale) of log p(x|c) - log p(x), which is comparable
across images, so image and group scores mean something for a model trained with caption dropout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..estimators import accuracy_interval
from ..schedules import Schedule

METRICS = ("text", "image", "group")


@dataclass(frozen=True)
class WinogroundExample:
    """Images (file paths, PIL images or model-input tensors) and captions; ``tag`` is the swap type."""

    id: int | str
    images: tuple
    captions: tuple[str, str]
    tag: str


def load_winoground(folder: str | Path) -> list[WinogroundExample]:
    """Read the official Winoground release from a local folder.

    Expects ``examples.jsonl`` (one JSON object per line with ``id``, ``image_0``, ``image_1``, ``caption_0``,
    ``caption_1`` and ``collapsed_tag``) and ``images/<image_0>.png``, either in ``folder`` or in
    ``folder/data`` (the layout of the Hugging Face dataset ``facebook/winoground``). Images are checked to exist
    before anything runs.
    """
    root = Path(folder)
    for base in (root, root / "data"):
        if (base / "examples.jsonl").is_file():
            break
    else:
        raise FileNotFoundError(
            f"no examples.jsonl in {root} or {root / 'data'}. Download the Winoground release (it needs accepting "
            "its licence on the Hugging Face hub) and point at the folder holding examples.jsonl and images/."
        )
    examples, missing = [], []
    for n, line in enumerate((base / "examples.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
            names = (ex["image_0"], ex["image_1"])
            caps = (ex["caption_0"], ex["caption_1"])
            tag = ex.get("collapsed_tag", ex.get("tag", ""))
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{base / 'examples.jsonl'} line {n} is not a Winoground example ({e}).") from None
        paths = tuple(_image_path(base / "images", name) for name in names)
        missing += [str(p) for p in paths if not p.is_file()]
        examples.append(WinogroundExample(ex.get("id", n - 1), paths, caps, tag))
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) named in examples.jsonl are missing, e.g. {missing[0]}.")
    return examples


def _image_path(folder: Path, name: str) -> Path:
    p = folder / name
    return p if p.suffix else p.with_suffix(".png")


# -- scoring -------------------------------------------------------------------------------------------------

def correct(scores: np.ndarray) -> dict[str, np.ndarray]:
    """scores (n, 2, 2) indexed [item, caption, image], higher = better -> per-item bools for each metric."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 3 or s.shape[1:] != (2, 2):
        raise ValueError(f"scores must have shape (n, 2, 2) [item, caption, image], got {s.shape}.")
    text = (s[:, 0, 0] > s[:, 1, 0]) & (s[:, 1, 1] > s[:, 0, 1])
    image = (s[:, 0, 0] > s[:, 0, 1]) & (s[:, 1, 1] > s[:, 1, 0])
    return {"text": text, "image": image, "group": text & image}


def score_table(scores: np.ndarray, tags: Sequence[str], model: str = "") -> list[dict]:
    """Text, image and group scores (%) per tag and overall, with 95 % Wilson intervals, as rows."""
    ok = correct(scores)
    tags = np.asarray(tags)
    rows = []
    for tag in ["all"] + sorted(set(tags.tolist())):
        sel = np.ones(len(tags), bool) if tag == "all" else tags == tag
        for metric in METRICS:
            k, n = int(ok[metric][sel].sum()), int(sel.sum())
            lo, hi = accuracy_interval(k, n)
            rows.append({"model": model, "tag": tag, "metric": metric, "score": 100 * k / n, "lo": 100 * lo,
                         "hi": 100 * hi, "n": n})
    return rows


# Chance levels when scores are random and continuous: text 1/4, image 1/4, group 1/6 (Thrush et al.).
CHANCE = {"text": 25.0, "image": 25.0, "group": 100 / 6}


def diffusion_scores(classifier, example: WinogroundExample, *, index: int, null_caption: str | None = None
                     ) -> dict[str, np.ndarray]:
    """Score one example with a ``DiffusionClassifier``: both images share one noise plan (``index``).

    Returns ``{"raw": (2, 2)}`` = -mean error [caption, image], and with ``null_caption`` also
    ``{"normalised": (2, 2)}`` = e(null) - e(caption) per image. The classifier must score every caption on every
    trial (an exhaustive ``Schedule``), or the two captions would be compared on different trials.
    """
    schedule = classifier.config.schedule
    if not isinstance(schedule, Schedule) or len(schedule.stages) != 1:
        raise ValueError("Winoground scoring needs an exhaustive schedule: ClassifierConfig(schedule="
                         "Schedule.exhaustive(n)); a pruning schedule leaves some captions unscored.")
    captions = list(example.captions) + ([null_caption] if null_caption is not None else [])
    results = classifier.classify_batch(list(example.images), captions, image_indices=[index, index],
                                        shared_noise=True)  # Eq. 9 compares the two images under one noise plan
    err = torch.stack([r.mean_errors for r in results], dim=1).numpy()  # (captions, images)
    out = {"raw": -err[:2]}
    if null_caption is not None:
        out["normalised"] = err[2:3] - err[:2]
    return out


def embedding_scores(encode_images: Callable, encode_texts: Callable, example: WinogroundExample) -> np.ndarray:
    """Score one example with a contrastive model: cosine similarity [caption, image] of unit embeddings."""
    img = encode_images(list(example.images))  # (2, D)
    txt = encode_texts(list(example.captions))  # (2, D)
    return (txt @ img.T).detach().cpu().numpy().astype(np.float64)


def same_image_wins(scores: np.ndarray) -> np.ndarray:
    """(n,) bools: the same image scores higher under *both* captions. Such an item can never count for the
    image score; when this holds for most items, the score measures images, not their match to captions."""
    s = np.asarray(scores, dtype=np.float64)
    return (s[:, 0, 0] > s[:, 0, 1]) == (s[:, 1, 0] > s[:, 1, 1])


def format_scores(rows: list[dict], index=("split", "model"), columns="metric"):
    """A table of 'score (lo-hi)' strings from ``score_table``-style rows (overall tag only), for reading."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[df["tag"] == "all"] if "tag" in df else df
    df = df.assign(cell=[f"{s:.1f} ({lo:.1f}-{hi:.1f})" for s, lo, hi in zip(df["score"], df["lo"], df["hi"])])
    return df.pivot(index=list(index), columns=columns, values="cell")
