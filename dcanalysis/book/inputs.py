"""What a chapter computes from: a model and images (a lab model and its test split by default, or a reader's
own model and image folder), or a run directory of stored error tables. The chapters call these so that their
parameters (``model``, ``dataset``, ``images``, ``device``, ``run``) reach the work."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..adapters.registry import load_adapter
from ..evaluation.analysis import ErrorTables
from ..evaluation.datasets import ImageFolder, dataset_candidates


@dataclass
class ChapterData:
    """A model with a labelled image source. ``item(i)`` is (image, label index): an image path or a model-input
    tensor; ``x0(i)`` its clean sample in the model's diffusion space, on the CPU."""

    adapter: object
    candidates: list
    names: list[str]
    item: Callable[[int], tuple[object, int]]
    n_items: int
    pixel_space: bool  # the diffusion space is the image itself (the lab models), so it can be shown

    def x0(self, i: int) -> torch.Tensor:
        image, _ = self.item(i)
        pixels = image if isinstance(image, torch.Tensor) else self.adapter.load(image)
        with torch.no_grad():
            return self.adapter.encode(pixels.unsqueeze(0).to(self.adapter.device))[0].float().cpu()

    def label(self, i: int) -> int:
        return self.item(i)[1]


def chapter_data(model: str, *, dataset: str, images: str | None = None, device: str = "cpu") -> ChapterData:
    """A lab model with a lab dataset's test split, or any model of ``adapters.registry`` with ``images``, a
    ``root/<class>/<image>`` folder of ``dataset``'s classes."""
    from ..evaluation.lab_datasets import CLASSES, load_lab_dataset, to_model_input

    adapter = load_adapter(model, device=device, dtype=torch.float32)  # exact numbers over speed in the book
    candidates, names = dataset_candidates(dataset, adapter)
    if images:
        folder = ImageFolder(images, classes=names)
        return ChapterData(adapter, candidates, names, folder.__getitem__, len(folder), False)
    if dataset not in CLASSES:
        raise ValueError(f"dataset {dataset!r} needs images=<folder laid out as root/<class>/<image>>; only the lab "
                         f"datasets {sorted(CLASSES)} are shipped.")
    data = load_lab_dataset(dataset, test_only=True)
    x = to_model_input(data.test_images)
    return ChapterData(adapter, candidates, names, lambda i: (x[i], int(data.test_labels[i])), len(x),
                       getattr(adapter, "vae", None) is None)


def run_tables(run: str | Path, n_images: int | None = None) -> ErrorTables:
    """The error tables of a run directory (``dcanalysis eval --out RUN``), packed first if they are not yet."""
    from ..evaluation.runs import consolidate_tables

    run = Path(run)
    if not (run / "tables.npz").is_file():
        if not (run / "manifest.json").is_file():
            raise FileNotFoundError(f"{str(run)!r} is not a run directory (no manifest.json); make one with "
                                    "`dcanalysis eval ... --out RUN`.")
        consolidate_tables(run)
    tables = ErrorTables.load(run)
    return tables.head(n_images) if n_images else tables
