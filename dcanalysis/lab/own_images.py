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

from ..evaluation.lab_datasets import CLASSES
from ..evaluation.run_store import UnsafeRunFileError, read_run_file, settings_differences, write_atomically
from ..engine.config import add_engine_arguments, engine_from_arguments
from ..sampling import SamplerConfig, sample
from .evaluate import accuracy_entry, baseline_predictions, diffusion_run
from .registry import CLASSIFIER_NAMES, load_lab_classifier, load_lab_diffusion, model_card

DEFAULT_SAMPLERS = ("ddim_10", "ddim_50", "ddpm_100", "ddpm_1000")


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
