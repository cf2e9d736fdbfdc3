"""Accuracy against training steps: is a lab diffusion model undertrained?

A training run with ``--snapshots`` (``python -m dcanalysis.lab.train ... --snapshots 250 500 1000``) leaves
EMA exports in ``TRAIN_DIR/snapshots/step_NNNNNN``. This scores each of them (and optionally other finished
models, e.g. the shipped one) as a Diffusion Classifier on the same first ``n_images`` test images with the same
noise plan, so the points differ only in the weights. If accuracy still climbs at the last snapshot, more
training would pay; if it has flattened, it would not.

    python -m dcanalysis.lab.training_curve --train-dir RUN --dataset fashion_mnist --out CURVE_DIR \\
        --n-images 500 --trials 50 [--also data/models/fashion_mnist_unet]

Each point is a resumable run directory (``runs.py``) under ``CURVE_DIR``; ``CURVE_DIR/curve.json`` is
rewritten after every point, so a command cut short keeps what it finished.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from ..adapters import PixelAdapter
from ..evaluation.lab_datasets import load_lab_dataset
from .evaluate import diffusion_run


def snapshot_dirs(train_dir: Path) -> list[Path]:
    """The snapshot folders of a training run, in step order."""
    found = sorted((Path(train_dir) / "snapshots").glob("step_*"))
    if not found:
        raise FileNotFoundError(f"no snapshots in {Path(train_dir) / 'snapshots'}; train with "
                                f"`python -m dcanalysis.lab.train ... --snapshots 250 500 1000` first.")
    return found


def load_curve(path: Path) -> dict:
    """A ``curve.json`` written by ``evaluate_models`` (rows in step order)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training curve at {path}; make one with data/jobs/training_curve.sh "
                                f"or `python -m dcanalysis.lab.training_curve`.")
    curve = json.loads(path.read_text())
    curve["rows"] = sorted(curve["rows"], key=lambda r: r["steps"])
    return curve


def curve_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """A curve's rows as the book shows them: one row per model (the run's snapshots by their step), human column
    names, accuracy in %."""
    import pandas as pd

    return pd.DataFrame([{"model": r["model"], "training steps": r["steps"], "images seen": r["samples_seen"],
                          "final training loss": round(r["final_loss"], 4),
                          "accuracy (%)": round(100 * r["accuracy"], 1), "test images": r["n"]}
                         for r in rows]).set_index("model")


def evaluate_models(folders: list[Path], dataset: str, out: Path, *, n_images: int = 500, trials: int = 50,
                    seed: int = 0, device: str = "cpu", dtype=torch.float32, images_per_batch: int = 8,
                    time_limit_s: float = 0.0) -> list[dict]:
    """One row per model folder: steps and final loss from its model card, accuracy with a 95 % interval."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_lab_dataset(dataset, test_only=True)
    images, labels = ds.test_images[:n_images], ds.test_labels[:n_images]
    rows, start = [], time.time()
    for folder in folders:
        card = json.loads((folder / "model_card.json").read_text())
        left = time_limit_s - (time.time() - start) if time_limit_s else 0.0
        if time_limit_s and left <= 0:
            break
        adapter = PixelAdapter.from_pretrained(folder, image_size=28, device=device, dtype=dtype)
        tag = f"{folder.parent.parent.name}_{folder.name}" if folder.parent.name == "snapshots" else folder.name
        summary = diffusion_run(adapter, images, labels, out / tag, model_name=f"{tag} ({card['config_digest']})",
                                set_name=f"{dataset}_test[:{n_images}]", trials=trials, seed=seed,
                                time_limit_s=left, images_per_batch=images_per_batch)
        rows.append({"model": tag, "steps": card["steps"], "samples_seen": card["samples_seen"],
                     "final_loss": card["final_loss"], "wall_time_s": card["wall_time_s"], **summary})
        tmp = out / "curve.json.tmp"
        tmp.write_text(json.dumps({"dataset": dataset, "n_images": n_images, "trials": trials, "seed": seed,
                                   "dtype": str(dtype), "rows": rows}, indent=1))
        os.replace(tmp, out / "curve.json")
        print(f"{tag}: {card['steps']} steps, accuracy {100 * summary['accuracy']:.1f} % on {summary['n']} images")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description="Diffusion Classifier accuracy of a training run's snapshots.")
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--also", type=Path, nargs="*", default=[], help="other finished model folders to score too")
    p.add_argument("--n-images", type=int, default=500)
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds for all points; 0: none")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    evaluate_models(snapshot_dirs(a.train_dir) + list(a.also), a.dataset, a.out, n_images=a.n_images,
                    trials=a.trials, seed=a.seed, device=a.device, dtype=dtype, time_limit_s=a.time_limit)


if __name__ == "__main__":
    main()
