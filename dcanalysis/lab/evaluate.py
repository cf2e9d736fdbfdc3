"""The lab evaluation job: Diffusion Classifier and the discriminative baselines on the same images, in and
out of distribution. Writes run directories (see ``runs.py``) and one summary JSON.

    python -m dcanalysis.lab.evaluate --dataset fashion_mnist --out RUNS --n-images 10000 --trials 100

Every phase is resumable and has a time budget, so a long evaluation can be spread over several GPU
commands; the summary states how many images each number rests on.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..estimators import accuracy_interval
from ..images import pad_to
from ..noise import make_noise_plan
from ..evaluation.analysis import auroc, diffusion_ood_score
from ..evaluation.run_store import read_manifest
from ..evaluation.runs import load_records, run_dataset, summarize, upgrade_run
from ..schedules import Schedule
from ..engine.config import add_engine_arguments, engine_from_arguments
from ..engine.overlap import overlapped
from ..evaluation.lab_datasets import CLASSES, load_lab_dataset, sklearn_digits_28, to_model_input
from .registry import CLASSIFIER_NAMES, load_lab_classifier, load_lab_diffusion
from .shifts import CORRUPTIONS, corrupt


def shifted_sets(dataset: str, n: int, severity: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (images uint8 (N, 28, 28), labels) sets: each corruption of the test split's first n images, and for
    MNIST scikit-learn's digits upsampled to 28x28."""
    ds = load_lab_dataset(dataset, test_only=True)
    x, y = ds.test_images[:n], ds.test_labels[:n]
    sets = {f"{name}_s{severity}": (corrupt(x, name, severity, seed=seed), y) for name in CORRUPTIONS}
    if dataset == "mnist":
        dx, dy = sklearn_digits_28()
        sets["sklearn_digits"] = (dx[:n], dy[:n])
    return sets


def phase_images(dataset: str, *, n_images: int, n_shifted: int, n_strategies: int, n_strategy: int,
                 n_errors: int = 0) -> dict[str, int]:
    """Images each phase of the job classifies: the test head, each timestep strategy's and error function's share
    of it, every shifted set (the corruptions, and for MNIST scikit-learn's digits) and the other dataset's far-OOD
    images."""
    n_sets = len(CORRUPTIONS) + (dataset == "mnist")
    return {"test": n_images, "strategies": n_strategies * n_strategy, "errors": n_errors * n_strategy,
            "shifted": n_sets * n_shifted, "far_ood": n_shifted}


def accuracy_entry(pred: np.ndarray, labels: np.ndarray) -> dict:
    """{n, accuracy, ci95 (Wilson)} of predictions (N,) against labels (N,)."""
    k, n = int((pred == labels).sum()), len(labels)
    return {"n": n, "accuracy": k / n, "ci95": list(accuracy_interval(k, n))}


@torch.no_grad()
def baseline_predictions(model: torch.nn.Module, images: np.ndarray, *, device, batch_size: int = 1000) -> np.ndarray:
    """Predicted labels (N,) of a discriminative model on uint8 images (N, 28, 28)."""
    out = []
    for s in range(0, len(images), batch_size):
        x = pad_to(to_model_input(images[s:s + batch_size]), 32).to(device)
        out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def baseline_ood_scores(model: torch.nn.Module, images: np.ndarray, *, device, batch_size: int = 1000) -> np.ndarray:
    """1 - max softmax probability (Hendrycks and Gimpel, 2017) per image: higher = more out of distribution."""
    out = []
    for s in range(0, len(images), batch_size):
        x = pad_to(to_model_input(images[s:s + batch_size]), 32).to(device)
        out.append(1 - model(x).softmax(1).amax(1).cpu().numpy())
    return np.concatenate(out)


def diffusion_run(adapter, images, labels, run_dir: Path, *, model_name: str, set_name: str, trials: int,
                  strategy: str = "even", error: str = "l2", seed: int = 0, time_limit_s: float = 0.0, images_per_batch: int = 1,
                  batch_size: int = 0, engine: dict | None = None, overlap: bool = False) -> dict:
    """One set through ``run_dataset`` (resumable) with the exhaustive schedule of ``trials`` trials per class
    (timesteps by ``strategy``, each trial's error by ``error``, a name of ``losses.LOSSES``).

    ``batch_size`` 0 means one network call per group of images (10 x trials x images_per_batch; a compiled
    ``adapter`` comes wrapped for that batch, ``EngineConfig.apply``); ``engine``
    (``{"compile": True, ...}`` when the network is compiled, None when eager) joins the run's settings, so a resume
    with another engine is refused (compiled bf16 sums in another order). ``overlap``: read the next images while a
    worker thread runs the network (``engine.overlap.overlapped``; the same numbers)."""
    clf = DiffusionClassifier(adapter, ClassifierConfig(
        schedule=Schedule.exhaustive(trials), timesteps=strategy, error=error,
        batch_size=batch_size or 10 * trials * images_per_batch, seed=seed))
    x = to_model_input(images)
    plan_t = make_noise_plan(trials, (1,), seed=seed, strategy=strategy).timesteps.tolist()
    settings = {"model": model_name, "set": set_name, "timesteps": plan_t, **({"engine": engine} if engine else {})}
    records = run_dataset(clf, lambda i: (x[i], int(labels[i])), len(x), list(range(10)), run_dir,
                          settings=settings, time_limit_s=time_limit_s, images_per_batch=images_per_batch,
                          run_ahead=overlapped if overlap else None,
                          class_names=CLASSES.get(model_name.removesuffix("_unet")))
    s = summarize(records)
    return {"n": s.n, "accuracy": s.accuracy, "ci95": list(s.interval), "evaluations_per_image": s.evaluations_per_image,
            "seconds_per_image": s.seconds_per_image, "trials": trials, "strategy": strategy, "error": error,
            "complete": s.n == len(x)}


def set_images(dataset: str, set_name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels) of one named set of this job: the test head, a shifted set or the far-OOD
    set (the other dataset's test head, labelled 0)."""
    if set_name == "test":
        ds = load_lab_dataset(dataset, test_only=True)
        return ds.test_images[:n], ds.test_labels[:n]
    if set_name.startswith("far_ood_"):
        images = load_lab_dataset(set_name.removeprefix("far_ood_"), test_only=True).test_images[:n]
        return images, np.zeros(len(images), int)
    sets = shifted_sets(dataset, n, seed=seed)
    if set_name not in sets:
        raise ValueError(f"unknown set {set_name!r}; this job makes test, {sorted(sets)} and far_ood_<dataset>.")
    return sets[set_name]


def upgrade(run_dirs: list[Path]) -> None:
    """Upgrade runs this job wrote with an older dcanalysis (``runs.upgrade_run``), rebuilding each run's images
    from its manifest (model, set, seed) so that every record's label and image are re-checked."""
    for run_dir in run_dirs:
        settings = read_manifest(run_dir)["settings"]
        dataset = settings["model"].removesuffix("_unet")
        images, labels = set_images(dataset, settings["set"], settings["n_items"], settings["classifier"]["seed"])
        x = to_model_input(images)
        print(upgrade_run(run_dir, (lambda i: (x[i], int(labels[i])), str), class_names=CLASSES[dataset]))


def main(argv=None):
    if argv is None:
        argv = __import__("sys").argv[1:]
    if argv[:1] == ["--upgrade"]:
        if len(argv) < 2:
            raise SystemExit("usage: python -m dcanalysis.lab.evaluate --upgrade RUN_DIR [RUN_DIR ...]")
        return upgrade([Path(d) for d in argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the library's notes (a time limit reached)
    p = argparse.ArgumentParser(description="Evaluate lab models (Diffusion Classifier and baselines).")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", required=True, type=Path, help="run directories are created inside")
    p.add_argument("--n-images", type=int, default=10000, help="clean test images (the head of the test split)")
    p.add_argument("--n-shifted", type=int, default=1000, help="images per shifted set")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--strategies", nargs="*", default=[], help="extra timestep strategies on --n-strategy images")
    p.add_argument("--n-strategy", type=int, default=300)
    p.add_argument("--errors", nargs="*", default=[],
                   help="error functions (losses.LOSSES: l2, l1, huber) on the first --n-strategy test images, each its "
                        "own run under the same noise plans (the paper's L1 / L2 ablation; chapter 13)")
    p.add_argument("--no-baselines", action="store_true",
                   help="leave out the discriminative baselines (a command that runs only the diffusion phases)")
    p.add_argument("--budget", type=float, default=0.0, help="seconds for all diffusion runs together (0: none)")
    p.add_argument("--phases", nargs="*", default=["test", "strategies", "errors", "shifted", "far_ood"],
                   help="which diffusion phases to run (finished images are never recomputed)")
    p.add_argument("--images-per-batch", type=int, default=1, help="images sharing each classify_batch call")
    p.add_argument("--batch-size", type=int, default=0,
                   help="network batch (default 0: the whole call, 10 x trials x images per batch, in one batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_engine_arguments(p, placement=False)
    a = p.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    adapter = load_lab_diffusion(f"{a.dataset}_unet", device=a.device, dtype=dtype)
    n_images = phase_images(a.dataset, n_images=a.n_images, n_shifted=a.n_shifted, n_strategies=len(a.strategies),
                            n_strategy=a.n_strategy, n_errors=len(a.errors))
    adapter, config = engine_from_arguments(a).prepare(
        adapter, n_evaluations=10 * a.trials * sum(n_images[ph] for ph in a.phases if ph in n_images),
        device=a.device, batch_size=a.batch_size or 10 * a.trials * a.images_per_batch)
    engine = config.compile_identity() if config.compile else None  # eager runs record none, as they always did
    run = dict(model_name=f"{a.dataset}_unet", trials=a.trials, seed=a.seed, images_per_batch=a.images_per_batch,
               batch_size=a.batch_size, engine=engine, overlap=config.overlap)
    start = time.time()
    left = lambda share: max(1.0, share * a.budget - (time.time() - start)) if a.budget else 0.0  # noqa: E731
    ds = load_lab_dataset(a.dataset, test_only=True)
    summary = {"dataset": a.dataset, "seed": a.seed, "dtype": str(dtype), "engine": config.compile_identity(),
               "command": "python -m dcanalysis.lab.evaluate "
               + " ".join(argv if argv is not None else __import__("sys").argv[1:]), "diffusion": {}, "baselines": {}}
    # 1. in distribution: the head of the official test split
    x, y = ds.test_images[:a.n_images], ds.test_labels[:a.n_images]
    budget = lambda phase, share: left(share) if phase in a.phases else 1e-9  # noqa: E731  (skip: summarise only)

    def diffuse(key, phase, share, images, labels, run_dir, **kw):  # a phase left out is only summarised, if it ran
        if phase in a.phases or load_records(run_dir):
            t0 = time.perf_counter()
            result = diffusion_run(adapter, images, labels, run_dir, time_limit_s=budget(phase, share), **run, **kw)
            # this command's time on the set, a first compilation included (next to none when it only summarised)
            summary["diffusion"][key] = {**result, "wall_s": round(time.perf_counter() - t0, 2)}

    diffuse("test", "test", 0.55, x, y, a.out / f"{a.dataset}_test", set_name="test")
    # 2. timestep strategies (chapter 4)
    for strat in a.strategies:
        diffuse(f"strategy_{strat}", "strategies", 0.7, x[:a.n_strategy], y[:a.n_strategy],
                a.out / f"{a.dataset}_strategy_{strat}", set_name="test", strategy=strat)
    # 2b. error functions (the paper's appendix ablation, chapter 13): every run draws the same noise plans (the seed and the image's index)
    for loss in a.errors:
        diffuse(f"error_{loss}", "errors", 0.8, x[:a.n_strategy], y[:a.n_strategy], a.out / f"{a.dataset}_error_{loss}",
                set_name="test", error=loss)
    # 3. shifted sets (chapter 9)
    sets = shifted_sets(a.dataset, a.n_shifted, seed=a.seed)
    for name, (sx, sy) in sets.items():
        diffuse(name, "shifted", 1.0, sx, sy, a.out / f"{a.dataset}_{name}", set_name=name)
    # 4. far OOD (the other dataset's test split): is an image like anything the model was trained on?
    other = "mnist" if a.dataset == "fashion_mnist" else "fashion_mnist"
    ox = load_lab_dataset(other, test_only=True).test_images[:a.n_shifted]
    far_dir = a.out / f"{a.dataset}_far_ood_{other}"
    diffuse("far_ood", "far_ood", 1.0, ox, np.zeros(len(ox), int), far_dir, set_name=f"far_ood_{other}")
    far = {"ood_set": f"{other} test split", "score": "diffusion: lowest mean error over classes; baselines: 1 - max softmax"}
    id_recs, ood_recs = load_records(a.out / f"{a.dataset}_test"), load_records(far_dir)
    if id_recs and ood_recs:
        far["Diffusion Classifier"] = {"auroc": auroc(diffusion_ood_score(id_recs), diffusion_ood_score(ood_recs)),
                                       "n_in": len(id_recs), "n_out": len(ood_recs)}
    # 5. baselines on exactly the same images (the head of each set, as many as the diffusion run finished)
    sets["test"] = (x, y)
    for cname in [c for c in CLASSIFIER_NAMES if c.startswith(a.dataset + "_") and not a.no_baselines]:
        model = load_lab_classifier(cname, device=a.device)
        res = {}
        for name, (sx, sy) in sets.items():
            n = summary["diffusion"].get(name, {}).get("n", len(sx))
            pred = baseline_predictions(model, sx[:n], device=a.device)
            res[name] = accuracy_entry(pred, sy[:n])
        summary["baselines"][cname] = res
        n_in, n_out = far.get("Diffusion Classifier", {}).get("n_in", len(x)), far.get("Diffusion Classifier", {}).get("n_out", len(ox))
        far[cname] = {"auroc": auroc(baseline_ood_scores(model, x[:n_in], device=a.device),
                                     baseline_ood_scores(model, ox[:n_out], device=a.device)), "n_in": n_in, "n_out": n_out}
    summary["far_ood"] = far
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.dataset}_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
