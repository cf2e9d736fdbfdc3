"""The lab models classify images they drew themselves (the idea of Jeong et al., 2025, "Self-Bench").

On real test images a Diffusion Classifier's errors mix two causes: the model's skill at telling its classes
apart, and the gap between the images it was trained to model and the ones it is shown. On its own samples the
gap is gone by construction (each image was drawn under a known class), so what is left is the model's
consistency with itself. The same images go to the discriminative baselines, for which they are a shifted set.

    python -m dcanalysis.lab.own_images --dataset fashion_mnist --out RUNS --per-class 100 \\
        --samplers ddim_10 ddim_50 ddpm_100 ddpm_1000 --trials 100

Per sampler: the samples (``{dataset}_{sampler}_samples.npz``: uint8 (N, 28, 28), their classes, the seed and
the model's config digest; reused on a rerun, refused when drawn another way), one resumable classifier run
(``{dataset}_own_{sampler}/``, exhaustive, as chapter 9's test run) and ``{dataset}_own_images.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..estimators import interval_order
from ..evaluation.lab_datasets import CLASSES
from ..evaluation.run_store import UnsafeRunFileError, read_run_file, settings_differences, write_atomically
from ..engine.config import add_engine_arguments, engine_from_arguments
from ..sampling import SamplerConfig, sample
from .evaluate import accuracy_entry, baseline_predictions, diffusion_run
from .registry import CLASSIFIER_NAMES, load_lab_classifier, load_lab_diffusion, model_card

DEFAULT_SAMPLERS = ("ddim_10", "ddim_50", "ddpm_100", "ddpm_1000")


def sampler_name(sampler: str) -> str:
    """How the book names a sampler key: "ddim_10" -> "DDIM, 10 steps"."""
    kind, _, steps = sampler.partition("_")
    return f"{kind.upper()}, {int(steps):,} steps" if steps.isdigit() else sampler


def accuracy_rows(own: dict, real: dict, dataset: str) -> list[dict]:
    """Rows (model, set, accuracy, ci_lo, ci_hi, n), fractions: every model on the real test split (``real``: the
    lab summary of ``dataset``) and on each sampler's samples (``own``: its ``{dataset}_own_images.json``), the
    Diffusion Classifier first."""
    from ..evaluation.analysis import ARCH_NAMES

    rows = []

    def add(model, set_name, entry):
        rows.append({"model": model, "set": set_name, "accuracy": entry["accuracy"], "ci_lo": entry["ci95"][0],
                     "ci_hi": entry["ci95"][1], "n": entry["n"]})

    def baseline(name):
        return ARCH_NAMES[name.removeprefix(dataset + "_")]

    add("Diffusion Classifier", "real test", real["diffusion"]["test"])
    for name, res in real["baselines"].items():
        add(baseline(name), "real test", res["test"])
    for sampler, entry in own["samplers"].items():
        add("Diffusion Classifier", sampler, entry["diffusion"])
        for name, res in entry["baselines"].items():
            add(baseline(name), sampler, res)
    return rows


def accuracy_frame(rows: list[dict], samplers: list[str]) -> "pandas.DataFrame":  # noqa: F821
    """``accuracy_rows`` as the book shows them: accuracy [95 % interval] in %, one row per model, one column for
    the real test split and one per sampler (by ``sampler_name``)."""
    import pandas as pd

    cells = {(r["model"], r["set"]): f"{100 * r['accuracy']:.1f} [{100 * r['ci_lo']:.1f}, {100 * r['ci_hi']:.1f}]"
             for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    sets = ["real test"] + list(samplers)
    return pd.DataFrame([[cells[(m, s)] for s in sets] for m in models], index=pd.Index(models, name="model"),
                        columns=["real test"] + [sampler_name(s) for s in samplers])


def gap_lines(rows: list[dict], samplers: list[str]) -> list[str]:
    """One line per model: its accuracy on each sampler's samples minus on the real test split, in points, starred
    where the two 95 % intervals do not overlap."""
    by = {(r["model"], r["set"]): r for r in rows}
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        ref = by[(model, "real test")]
        parts = []
        for s in samplers:
            r = by[(model, s)]
            apart = interval_order((r["ci_lo"], r["ci_hi"]), (ref["ci_lo"], ref["ci_hi"])) != "overlap"
            parts.append(f"{s} {100 * (r['accuracy'] - ref['accuracy']):+.1f}" + ("*" if apart else ""))
        lines.append(f"{model:21s} own samples minus real test, points: " + ", ".join(parts))
    return lines + ["(* : the two intervals do not overlap)"]


def per_class_accuracy(class_names: list[str], test_records: list[dict],
                       sample_records: dict[str, list[dict]]) -> "pandas.DataFrame":  # noqa: F821
    """The Diffusion Classifier's accuracy (%, rounded) per class: one row per class, one column for the real test
    records and one per sampler's records (``{sampler: records}``, by ``sampler_name``)."""
    import pandas as pd

    def by_class(records):
        hits = pd.Series([r["prediction"] == r["label"] for r in records],
                         index=[class_names[r["label"]] for r in records])
        return hits.groupby(level=0).mean()

    table = {"real test": by_class(test_records)}
    table.update({sampler_name(s): by_class(recs) for s, recs in sample_records.items()})
    return (100 * pd.DataFrame(table).reindex(class_names)).round(0).astype(int).rename_axis(index="class")


def balanced_classes(per_class: int, num_classes: int = 10) -> np.ndarray:
    """Class of each sample (per_class * num_classes,): 0, 1, ..., 9, 0, 1, ... so any head of the set is balanced."""
    return np.tile(np.arange(num_classes), per_class)


def to_uint8_images(x: torch.Tensor, size: int = 28) -> np.ndarray:
    """Samples (N, 1, S, S) in [-1, 1] on the UNet's canvas -> uint8 (N, size, size), the centre crop the lab's
    images were padded from, rounded to the 256 grey levels a stored image has."""
    top = (x.shape[-1] - size) // 2
    crop = x[:, 0, top:top + size, top:top + size]
    return ((crop.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def dark_share(images: np.ndarray, level: int = 16) -> float:
    """Share of pixels darker than ``level`` (of 255) in uint8 images (N, H, W): how much of them is black
    background (a real MNIST digit is mostly background; a sample with a grey, noisy background is not)."""
    return float((np.asarray(images) < level).mean())


def load_samples(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images uint8 (N, 28, 28), classes (N,), identity) of a samples file this job wrote."""
    with np.load(io.BytesIO(read_run_file(Path(path))), allow_pickle=False) as f:
        return f["images"], f["classes"], json.loads(str(f["identity"]))


def samples_identity(dataset: str, sampler: SamplerConfig, per_class: int, seed: int) -> dict:
    """What decides a set of samples: the model (and its training config's digest), sampler, count and seed."""
    card = model_card(f"{dataset}_unet")
    return {"model": f"{dataset}_unet", "model_config_digest": card.get("config_digest"), "sampler": sampler.name,
            "steps": sampler.steps, "eta": sampler.eta, "clip": sampler.clip, "per_class": per_class, "seed": seed}


def load_or_draw(path: Path, adapter, identity: dict, *, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray, float]:
    """(images uint8 (N, 28, 28), classes (N,), seconds spent drawing: 0 when read back). A file drawn with other
    settings is refused, never overwritten."""
    if path.exists() or path.is_symlink():
        try:
            images, classes, stored = load_samples(path)
        except (UnsafeRunFileError, ValueError, KeyError, OSError) as e:
            raise SystemExit(f"{path} is not a samples file this job wrote ({e}); move it away and rerun.") from None
        if stored != identity:
            raise SystemExit(f"{path} holds samples drawn otherwise (stored, asked: "
                             f"{settings_differences(stored, identity)}); use another --out or move the file away.")
        return images, classes, 0.0
    classes = balanced_classes(identity["per_class"])
    sampler = SamplerConfig(identity["steps"], identity["eta"], identity["clip"])
    t0 = time.perf_counter()
    x = sample(adapter, classes.tolist(), sampler, seed=identity["seed"], batch_size=batch_size)
    seconds = time.perf_counter() - t0
    images = to_uint8_images(x)

    def write(f):
        np.savez_compressed(f, images=images, classes=classes, identity=np.array(json.dumps(identity)))
    write_atomically(path, write)
    return images, classes, seconds


def main(argv=None):
    p = argparse.ArgumentParser(description="Lab models classify the images they drew themselves.")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", required=True, type=Path, help="samples, run directories and the summary go here")
    p.add_argument("--per-class", type=int, default=100, help="samples drawn per class for each sampler")
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS),
                   help="ddim_<steps> (eta 0), ddpm_<steps> (eta 1) or eta<e>_<steps>")
    p.add_argument("--trials", type=int, default=100, help="exhaustive schedule: trials per class, even timesteps")
    p.add_argument("--images-per-batch", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--sample-batch", type=int, default=1000, help="images per network call while sampling")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples' noise and the classifier's noise plans")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_engine_arguments(p, placement=False)
    a = p.parse_args(argv)
    try:
        samplers = [SamplerConfig.from_name(s) for s in a.samplers]
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if a.per_class < 1:
        raise SystemExit(f"--per-class must be at least 1, got {a.per_class}.")
    a.out.mkdir(parents=True, exist_ok=True)
    name = f"{a.dataset}_unet"
    # the samples are drawn in float32 (a long chain), the classifier runs as chapter 9's test run did
    drawer = load_lab_diffusion(name, device=a.device, dtype=torch.float32)
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    adapter = load_lab_diffusion(name, device=a.device, dtype=dtype)
    n = 10 * a.per_class
    adapter, config = engine_from_arguments(a).prepare(
        adapter, n_evaluations=10 * a.trials * n * len(samplers), device=a.device,
        batch_size=a.batch_size or 10 * a.trials * a.images_per_batch)
    engine = config.compile_identity() if config.compile else None
    summary = {"dataset": a.dataset, "seed": a.seed, "per_class": a.per_class, "dtype_classifier": str(dtype),
               "dtype_sampler": "torch.float32", "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
               "command": "python -m dcanalysis.lab.own_images " + " ".join(argv if argv is not None else
                                                                             __import__("sys").argv[1:]),
               "class_names": CLASSES[a.dataset], "samplers": {}}
    baselines = {c: load_lab_classifier(c, device=a.device) for c in CLASSIFIER_NAMES if c.startswith(a.dataset + "_")}
    for sampler in samplers:
        identity = samples_identity(a.dataset, sampler, a.per_class, a.seed)
        images, classes, drawn_s = load_or_draw(a.out / f"{a.dataset}_{sampler.name}_samples.npz", drawer, identity,
                                                batch_size=a.sample_batch)
        t0 = time.perf_counter()
        dc = diffusion_run(adapter, images, classes, a.out / f"{a.dataset}_own_{sampler.name}", model_name=name,
                           set_name=f"own_{sampler.name}_seed{a.seed}", trials=a.trials, seed=a.seed,
                           images_per_batch=a.images_per_batch, batch_size=a.batch_size, engine=engine,
                           overlap=config.overlap)
        entry = {**identity, "sampling_s": round(drawn_s, 2), "classify_wall_s": round(time.perf_counter() - t0, 2),
                 "diffusion": dc, "baselines": {}}
        for cname, model in baselines.items():
            entry["baselines"][cname] = accuracy_entry(baseline_predictions(model, images, device=a.device), classes)
        summary["samplers"][sampler.name] = entry
        print(f"{sampler.name}: Diffusion Classifier {100 * dc['accuracy']:.1f} % of {dc['n']}; " + ", ".join(
            f"{c.removeprefix(a.dataset + '_')} {100 * r['accuracy']:.1f} %" for c, r in entry["baselines"].items()),
            flush=True)
        # after every sampler: a command cut short keeps the summary of what finished
        write_atomically(a.out / f"{a.dataset}_own_images.json",
                         lambda f: f.write(json.dumps(summary, indent=1).encode()))


if __name__ == "__main__":
    main()
