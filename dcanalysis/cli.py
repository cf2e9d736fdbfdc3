"""Command line: ``dcanalysis classify``, ``eval``, ``report`` and ``verify``.

    dcanalysis classify digit.png --model mnist_unet --schedule 50:1
    dcanalysis eval --model fashion_mnist_unet --dataset fashion_mnist --schedule exhaustive_100 --out runs/fm
    dcanalysis report runs/fm
    dcanalysis verify runs/fm
    dcanalysis tables runs/fm           # tables.npz for the book's chapters 3-5
    dcanalysis eval --model /models/sd-2-base --dataset pets --images /data/pets --schedule paper_pets --out runs/pets \
        --batch-size 64 --compile --share-prefix

``--model`` is a lab model name or a folder / cached hub id of a diffusers pipeline: Stable Diffusion 1.x / 2.x,
SDXL, SD 3 / 3.5, Flux, PixArt or DiT (``adapters.registry``). ``--dataset`` is a lab dataset (mnist, fashion_mnist: its test split) or
a dataset of ``data/datasets`` whose images are in ``--images root/<class>/``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from .adapters.weights import HubOptions
from .classifier import ClassifierConfig
from .engine.config import add_engine_arguments, engine_from_arguments
from .evaluation.datasets import ClassList, available_datasets
from .jobs import DTYPES, ClassifyJob, EvalJob, classify, evaluate, run_source
from .losses import LOSSES
from .evaluation.run_store import read_manifest
from .evaluation.runs import (consolidate_tables, load_records, run_logits, summarize, trusted_records, upgrade_run,
                               verify_run)
from .schedules import SCHEDULES, Schedule, get_schedule
from .timesteps import TIMESTEP_STRATEGIES


def parse_schedule(text: str) -> Schedule:
    """A registered name, or 'TRIALS:KEEP,TRIALS:KEEP' such as '25:5,250:1'."""
    if text in SCHEDULES:
        return get_schedule(text)
    usage = f"use one of {sorted(SCHEDULES)} or stages like '25:5,250:1' (trials so far : classes kept)"
    pairs = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) != 2:
            raise SystemExit(f"--schedule {text!r}: stage {part!r} needs exactly one ':' between its trials and the "
                             f"classes it keeps; {usage}.")
        try:
            pairs.append((int(fields[0]), int(fields[1])))
        except ValueError:
            raise SystemExit(f"--schedule {text!r}: stage {part!r} is not two whole numbers; {usage}.") from None
    try:
        return Schedule.from_lists([p[0] for p in pairs], [p[1] for p in pairs])
    except ValueError as e:
        raise SystemExit(f"--schedule {text!r}: {e} ({usage}).") from None


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="lab model name (mnist_unet, fashion_mnist_unet) or the folder / cached hub id of a diffusers "
                        "pipeline (SD 1/2, SDXL, SD 3, Flux, PixArt, DiT)")
    p.add_argument("--schedule", default="exhaustive_100", help=f"{sorted(SCHEDULES)} or stages like '25:5,250:1'")
    p.add_argument("--timesteps", default="even", choices=sorted(TIMESTEP_STRATEGIES),
                   help="which timesteps the trials use (default: evenly spaced, as in the paper)")
    p.add_argument("--error", default="l2", choices=sorted(LOSSES), help="the denoising error (default: l2)")
    p.add_argument("--batch-size", type=int, default=250, help="(trial, class) pairs per network call")
    p.add_argument("--seed", type=int, default=0, help="seed of every image's noise plan")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the network runs: cuda, cuda:1, cpu (default: cuda when there is one)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="the network's dtype (default: float32 on the CPU, bfloat16 on a GPU)")
    p.add_argument("--fp32", action="store_true", help="the same as --dtype float32 (kept for older scripts)")
    p.add_argument("--variant", default=None, help="a diffusers pipeline's weight variant, e.g. fp16 (its "
                                                   "*.fp16.safetensors files)")
    p.add_argument("--revision", default=None, help="the branch, tag or commit of a cached hub id")
    p.add_argument("--cache-dir", default=None, help="a Hugging Face cache other than the default")
    p.add_argument("--no-t5", action="store_true", help="SD 3: leave out the T5 text encoder (4.7 B parameters; "
                                                        "prompts are then read by the two CLIP encoders only)")
    p.add_argument("--classes", type=Path, default=None,
                   help="your own classes: a text file, one class name per line (for a text-conditional model each "
                        "becomes a prompt through --template); the label order of --images root/<class>/ folders")
    p.add_argument("--prompts", type=Path, default=None,
                   help="your own prompts: a text file, one prompt per line (each prompt is its class's name)")
    p.add_argument("--template", default="a photo of a {}.",
                   help="how --classes names become prompts, '{}' standing for the name (default: 'a photo of a {}.')")
    add_engine_arguments(p)


def classifier_config(a: argparse.Namespace) -> ClassifierConfig:
    """The method's settings given on the command line."""
    return ClassifierConfig(schedule=parse_schedule(a.schedule), timesteps=a.timesteps, error=a.error,
                            batch_size=a.batch_size, seed=a.seed)


def class_list(a: argparse.Namespace) -> ClassList | None:
    """``--classes`` or ``--prompts`` read and checked (before any model is loaded), or None."""
    if a.classes and a.prompts:
        raise ValueError("give --classes FILE or --prompts FILE, not both.")
    if a.classes or a.prompts:
        return ClassList.from_file(a.classes or a.prompts, template=a.template, prompts=a.prompts is not None)
    return None


def hub_options(a: argparse.Namespace) -> HubOptions:
    return HubOptions(variant=a.variant, revision=a.revision, cache_dir=a.cache_dir)


def dtype_of(a: argparse.Namespace) -> str | None:
    if a.fp32 and a.dtype not in (None, "float32"):
        raise ValueError(f"--fp32 and --dtype {a.dtype} disagree; give one.")
    return "float32" if a.fp32 else a.dtype


def classify_job(a: argparse.Namespace) -> ClassifyJob:
    return ClassifyJob(model=a.model, image=a.image, dataset=a.dataset, classes=class_list(a), device=a.device,
                       dtype=dtype_of(a), hub=hub_options(a), without_t5=a.no_t5, progress=not a.quiet,
                       classifier=classifier_config(a), engine=engine_from_arguments(a))


def eval_job(a: argparse.Namespace) -> EvalJob:
    return EvalJob(model=a.model, dataset=a.dataset, classes=class_list(a), out=a.out, images=a.images,
                   n_images=a.n_images,
                   images_per_batch=a.images_per_batch, rank=a.rank, world_size=a.world_size,
                   retry_failed=a.retry_failed, device=a.device, dtype=dtype_of(a), hub=hub_options(a),
                   without_t5=a.no_t5, progress=not a.quiet, classifier=classifier_config(a),
                   engine=engine_from_arguments(a))


def cmd_classify(a) -> None:
    r, names = classify(a.job)
    top = sorted(range(len(names)), key=lambda k: -r.posterior[k].item())[: a.top]
    print(f"prediction: {names[r.prediction_index]}   ({r.n_evaluations} network evaluations, seed {r.seed})")
    for k in top:
        print(f"  {names[k]:30s} p={r.posterior[k].item():.3f}  mean error {r.mean_errors[k].item():.5f}")


def cmd_eval(a) -> None:
    job, _ = evaluate(a.job)
    if job.rank == 0:  # the run's own undamaged records only, whatever else the folder holds
        records, _ = trusted_records(job.out)
        print(summarize(records, read_manifest(job.out)["settings"].get("class_names")))


def cmd_report(a) -> None:
    manifest = read_manifest(a.run_dir)
    settings = manifest["settings"]
    records, check = trusted_records(a.run_dir)
    names = settings.get("class_names")
    s = summarize(records, names)
    left = check.n_items - check.done - check.failed
    report = {"run": str(a.run_dir), "model": settings.get("model"), "dataset": settings.get("dataset"),
              "device": manifest.get("environment", {}).get("device"), "n_items": check.n_items,
              "done": check.done, "failed": check.failed, "to_go": left, "problems": check.problems,
              "accuracy": s.accuracy, "ci95": list(s.interval), "evaluations_per_image": s.evaluations_per_image,
              "seconds_per_image": s.seconds_per_image, "per_class_accuracy": s.per_class,
              "class_names": names, "seed": settings.get("classifier", {}).get("seed")}
    calibration = calibration_report(records, a.calibrate_on, a.run_dir)
    report["calibration"] = calibration
    if a.json:
        print(json.dumps(report, indent=1))
        return
    print(f"run {a.run_dir}: model {settings.get('model')}, {report['device']}")
    print(f"{check.done} of {check.n_items} images done, {check.failed} failed"
          + (f"; UNFINISHED: {left} to go (rerun the eval command to finish)" if left else ""))
    if check.problems:
        print(f"{len(check.problems)} problem(s) found and left out of this report: {check.problems[0]}"
              + (" ... (dcanalysis verify lists them all)" if len(check.problems) > 1 else ""))
    print(s)
    for name, acc in s.per_class.items():
        print(f"  class {name:12s} {100 * acc:6.2f}%")
    plain = calibration["plain"]
    print(f"mean-error softmax (minus the per-pixel mean errors; Eq. 7's posterior sums over pixels instead): NLL "
          f"{plain['nll']:.3f}, ECE {100 * plain['ece']:.1f}% (log K = {calibration['log_k']:.3f}: a uniform guess)")
    if "fitted" not in calibration:
        print("  fit a temperature on other images of the same model with --calibrate-on OTHER_RUN")
        return
    f = calibration["fitted"]
    print(f"  temperature {f['temperature']:.3e} fitted on {f['n']} images of {a.calibrate_on}: NLL {f['nll']:.3f}, "
          f"ECE {100 * f['ece']:.1f}%")


def calibration_report(records, calibrate_on: Path | None, run_dir: Path) -> dict:
    """NLL and ECE of the mean-error softmax (``posterior.mean_error_softmax``), and with a temperature fitted on
    another run's images."""
    from .evaluation import calibration as C

    z, y = run_logits(records)
    plain = C.summary(C.softmax(z), y)
    out = {"of": "mean-error softmax", "log_k": float(np.log(z.shape[1])),
           "plain": {"nll": plain["nll"], "ece": plain["ece_width"]}}
    if calibrate_on is None:
        return out
    if Path(calibrate_on).resolve() == Path(run_dir).resolve():
        raise ValueError("--calibrate-on names this run itself: a temperature fitted on the images it is measured "
                         "on flatters it; give a run on other images of the same model.")
    zc, yc = run_logits(trusted_records(calibrate_on)[0])
    if zc.shape[1] != z.shape[1]:
        raise ValueError(f"--calibrate-on {calibrate_on} has {zc.shape[1]} candidates, this run {z.shape[1]}.")
    t = C.fit_temperature(zc, yc)
    fitted = C.summary(C.softmax(z, t), y)
    out["fitted"] = {"temperature": float(t), "n": len(yc), "nll": fitted["nll"], "ece": fitted["ece_width"]}
    return out


def cmd_tables(a) -> None:
    path = consolidate_tables(a.run_dir, max_images=a.max_images)
    with np.load(path) as z:
        print(f"{path}: errors {z['errors'].shape} (images, candidates, trials), timesteps {z['timesteps'].shape}")


def cmd_verify(a) -> None:
    items = run_source(read_manifest(a.run_dir)["settings"], a.images)
    check = verify_run(a.run_dir, items)
    print(f"run {a.run_dir}: {check}")
    if check.problems:
        raise SystemExit(f"{len(check.problems)} problem(s); `dcanalysis eval` with the run's command recomputes "
                         "damaged images, foreign records are left out of reports")
    print("no damage found")


def cmd_upgrade(a) -> None:
    settings = read_manifest(a.run_dir)["settings"]
    if "n_items" in settings and "dataset" not in settings:
        raise SystemExit(f"dcanalysis upgrade: {a.run_dir} was written by the lab (python -m dcanalysis.lab.evaluate); "
                         "upgrade it with: python -m dcanalysis.lab.evaluate --upgrade RUN_DIR")
    items = run_source(settings, a.images)
    print(upgrade_run(a.run_dir, items, class_names=settings.get("class_names") or (
        list(ClassList.of_dataset(settings["dataset"]).names) if settings.get("dataset") else None)))


def show_library_messages(*, quiet: bool) -> None:
    """The library logs through ``logging`` (``dcanalysis.*`` loggers) and never prints; the command line shows its
    notes (INFO: a time limit reached, the compile decision) and warnings on stderr, only warnings with --quiet."""
    logger = logging.getLogger("dcanalysis")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(getattr(h, "dcanalysis_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.dcanalysis_cli = True
        logger.addHandler(handler)


def resume_command(argv: list[str]) -> str:
    """The command that resumes this run, shell-quoted; under torchrun, the launcher's own command line."""
    if "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        try:
            with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
                parent = [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
            if parent and any("torch" in w and "run" in w for w in parent[:2]):
                return shlex.join(parent)
        except OSError:
            pass
        return "torchrun (with the same options) -m dcanalysis " + shlex.join(argv)
    return shlex.join(["dcanalysis", *argv])


def build_parser() -> argparse.ArgumentParser:
    """The command line: classify, eval, report, verify and tables."""
    from . import __version__

    p = argparse.ArgumentParser(prog="dcanalysis", description="Diffusion models as classifiers (Li et al., ICCV 2023).")
    p.add_argument("--version", action="version", version=f"dcanalysis {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="classify one image and print the posterior")
    c.add_argument("image", help="image file (any PIL-readable format)")
    c.add_argument("--dataset", default=None, help=f"the classes of mnist, fashion_mnist or one of "
                                                   f"{available_datasets()} (default: a lab model's own; or give "
                                                   "--classes / --prompts)")
    c.add_argument("--top", type=int, default=5, help="how many classes to print, most probable first")
    add_common(c)
    c.set_defaults(func=cmd_classify, make_job=classify_job)
    e = sub.add_parser("eval", help="classify a dataset into a resumable run directory")
    e.add_argument("--dataset", default=None, help=f"mnist, fashion_mnist or one of {available_datasets()}; or your "
                                                   "own --images folder with --classes / --prompts")
    e.add_argument("--images", type=Path, help="root/<class>/<image> folder (not needed for mnist, fashion_mnist)")
    e.add_argument("--out", required=True, type=Path, help="run directory; rerun the same command to resume")
    e.add_argument("--n-images", type=int, default=0, help="first N images only (0: all)")
    e.add_argument("--images-per-batch", type=int, default=1, help="images sharing each network call (small models)")
    e.add_argument("--rank", type=int, default=0, help="this process's share without torchrun (e.g. a Slurm array)")
    e.add_argument("--world-size", type=int, default=1, help="how many processes share the images")
    e.add_argument("--retry-failed", action="store_true", help="recompute images recorded as failed (a failed "
                                                                 "image whose file changed is retried anyway)")
    add_common(e)
    e.set_defaults(func=cmd_eval, make_job=eval_job)
    r = sub.add_parser("report", help="accuracy with a 95%% interval and per-class accuracy of a run")
    r.add_argument("run_dir", type=Path, help="a run directory that dcanalysis eval wrote")
    r.add_argument("--calibrate-on", type=Path, default=None,
                   help="a run on other images of the same model: fit a temperature there, report NLL/ECE here")
    r.add_argument("--json", action="store_true", help="print the report as one JSON object (class names included)")
    r.set_defaults(func=cmd_report)
    v = sub.add_parser("verify", help="check a run directory for damage: foreign lines, tables that disagree with "
                                      "their records, records of other settings")
    v.add_argument("run_dir", type=Path, help="a run directory that dcanalysis eval (or the lab) wrote")
    v.add_argument("--images", type=Path, default=None,
                   help="the run's image folder, if it moved (labels and images are checked against the dataset)")
    v.set_defaults(func=cmd_verify)
    u = sub.add_parser("upgrade", help="bring a run written by an older dcanalysis to this version's format, once, "
                                       "re-checking every record against its image, label and table")
    u.add_argument("run_dir", type=Path, help="a run directory written by dcanalysis before format 2")
    u.add_argument("--images", type=Path, default=None, help="the run's image folder, if it moved")
    u.set_defaults(func=cmd_upgrade)
    t = sub.add_parser("tables", help="pack a run's per-image error tables into RUN_DIR/tables.npz, with the "
                                      "timestep of every trial (what the book's chapters 3-5 read)")
    t.add_argument("run_dir", type=Path, help="a run directory with per-image error tables")
    t.add_argument("--max-images", type=int, default=None, help="the lowest ids only")
    t.set_defaults(func=cmd_tables)
    for sp in (c, e, r, v, u, t):
        sp.add_argument("--debug", action="store_true", help="show the full traceback of an error")
        sp.add_argument("--quiet", action="store_true", help="no progress bars and no notes, only results and "
                                                             "warnings")
    return p


def main(argv=None):
    own_process = argv is None  # the console command (not a caller's process): leave without waiting on threads
    argv = sys.argv[1:] if argv is None else list(argv)
    a = build_parser().parse_args(argv)
    show_library_messages(quiet=a.quiet)
    interrupted = []

    def on_interrupt(signum, frame):
        if interrupted:  # a second Ctrl-C while the first is being handled: leave now, cleanly
            os.write(2, b"\ninterrupted again: stopped. Every finished image was already on disk.\n")
            os._exit(130)
        interrupted.append(signum)
        raise KeyboardInterrupt

    if a.command == "eval" and own_process:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        if hasattr(a, "make_job"):  # flags are checked here, before any model is loaded
            a.job = a.make_job(a)
        a.func(a)
    except KeyboardInterrupt:
        if a.command != "eval":
            raise SystemExit("\ninterrupted.") from None
        # every finished image is on disk (each record is fsynced as it is written); the same command goes on from
        # there. os._exit: a worker thread still inside a network call is not waited for
        message = f"\ninterrupted; finished images are saved. Resume with: {resume_command(argv)}"
        if not own_process:
            raise SystemExit(message) from None
        if int(os.environ.get("RANK", "0")) == 0:
            print(message, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except Exception as e:  # one clear line for the user; the traceback behind --debug
        if a.debug:
            raise
        kind = "" if isinstance(e, (ValueError, OSError, RuntimeError, TypeError)) else f"{type(e).__name__}: "
        raise SystemExit(f"dcanalysis {a.command}: error: {kind}{e} (add --debug for the traceback)") from None
    finally:
        if a.command == "eval" and own_process:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
