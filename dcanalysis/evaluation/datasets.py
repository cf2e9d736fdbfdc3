"""Class names, prompt templates and image folders of the paper's datasets.

Class lists live in ``data/datasets/<name>.json`` (with their source); ``ImageFolder`` reads a dataset laid out
as ``root/<class>/<image>``, so a user with the real images runs the paper's evaluation on them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..images import ImageSource
from ..paths import DATA_DIR

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    source: str

    def prompts(self, template: int = 0) -> list[str]:
        """One prompt per class, e.g. 'a photo of a Bengal, a type of pet.' (the paper uses one template)."""
        return [self.templates[template].format(c) for c in self.classes]


def available_datasets() -> list[str]:
    return sorted(p.stem for p in (DATA_DIR / "datasets").glob("*.json"))


def dataset_info(name: str) -> DatasetInfo:
    path = DATA_DIR / "datasets" / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}.")
    d = json.loads(path.read_text())
    return DatasetInfo(d["name"], tuple(d["classes"]), tuple(d["templates"]), d["source"])


class ImageFolder:
    """Images under ``root/<class name>/``. Items are ``(path, label_index)``.

    ``classes`` fixes the label order (e.g. ``dataset_info('pets').classes``); folders are matched to it
    case-insensitively, with '_' read as ' '. Without it, the sorted folder names are the classes.
    """

    def __init__(self, root: str | Path, classes: tuple[str, ...] | list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {str(self.root)!r} does not exist; expected root/<class>/<image>.")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise ValueError(f"{str(self.root)!r} has no class sub-folders; expected root/<class>/<image>.")
        norm = lambda s: s.lower().replace("_", " ").strip()  # noqa: E731
        if classes is None:
            self.classes = [f.name for f in folders]
            mapping = {f: i for i, f in enumerate(folders)}
        else:
            self.classes = list(classes)
            index = {norm(c): i for i, c in enumerate(self.classes)}
            unknown = [f.name for f in folders if norm(f.name) not in index]
            if unknown:
                raise ValueError(
                    f"folders {unknown[:5]} match no class name; rename them to the class names "
                    f"(e.g. {self.classes[:3]}) or pass classes=None."
                )
            mapping = {f: index[norm(f.name)] for f in folders}
        self.items: list[tuple[Path, int]] = [
            (p, label) for f, label in mapping.items() for p in sorted(f.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.items:
            raise ValueError(f"no images ({sorted(IMAGE_SUFFIXES)}) found under {str(self.root)!r}.")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[ImageSource, int]:
        return self.items[i]

    def relative_name(self, i: int) -> str:
        """Item i's path relative to the root, '/'-separated: its name in a run's records."""
        return self.items[i][0].relative_to(self.root).as_posix()


@dataclass(frozen=True)
class ClassList:
    """The classes a job chooses among: ``names`` (label k is ``names[k]``) and one prompt per class for a
    text-conditional model (``prompts``; a class-conditional model takes the indices). ``source`` says where the
    list came from, for messages."""

    names: tuple[str, ...]
    prompts: tuple[str, ...]
    source: str

    def __post_init__(self):
        if len(self.names) < 2 or len(self.prompts) != len(self.names):
            raise ValueError(f"{self.source}: need at least two classes, one prompt each; got {len(self.names)} "
                             f"names and {len(self.prompts)} prompts.")
        repeated = sorted({n for n in self.names if self.names.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.source}: class {repeated[0]!r} is listed twice; each class once, one per line.")

    @classmethod
    def of_dataset(cls, dataset: str, template: str | None = None) -> "ClassList":
        """A lab dataset's classes (mnist, fashion_mnist) or one of ``available_datasets()`` with its first prompt
        template (or ``template``, '{}' standing for the class name)."""
        from .lab_datasets import CLASSES

        if dataset in CLASSES:
            names = tuple(CLASSES[dataset])
            return cls(names, tuple((template or "{}").format(n) for n in names), f"dataset {dataset}")
        info = dataset_info(dataset)
        prompts = info.prompts() if template is None else [template.format(c) for c in info.classes]
        return cls(info.classes, tuple(prompts), f"dataset {dataset}")

    @classmethod
    def from_file(cls, path: str | Path, *, template: str = "a photo of a {}.", prompts: bool = False) -> "ClassList":
        """One class name per line (blank lines and '#' comments skipped), each made a prompt by ``template``;
        with ``prompts``, each line is the prompt itself (and the class's name)."""
        path = Path(path)
        what = "--prompts" if prompts else "--classes"
        if "{}" not in template:
            raise ValueError(f"--template {template!r} has no '{{}}' where the class name goes, e.g. 'a photo of a {{}}.'")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{what} {str(path)!r} does not exist; give a text file with one "
                             f"{'prompt' if prompts else 'class name'} per line.") from None
        except UnicodeDecodeError:
            raise ValueError(f"{what} {str(path)!r} is not UTF-8 text; save it as a plain text file.") from None
        lines = tuple(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))
        made = lines if prompts else tuple(template.format(n) for n in lines)
        return cls(lines, made, f"{what} {str(path)!r}")

    def candidates(self, adapter) -> list:
        """What the model is conditioned on: the prompts for a text-conditional model, else the class indices."""
        return list(self.prompts) if getattr(adapter, "takes_prompts", False) else list(range(len(self.names)))


def dataset_candidates(dataset: str, adapter) -> tuple[list, list[str]]:
    """Conditions and display names for a dataset: class indices for class-conditional models, the dataset's
    prompts for text-conditional ones (``adapter.takes_prompts``). ``dataset`` is a lab dataset (mnist,
    fashion_mnist) or one of ``available_datasets()``."""
    classes = ClassList.of_dataset(dataset)
    return classes.candidates(adapter), list(classes.names)
