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
import sys
from pathlib import Path

import numpy as np
import torch

from .adapters.registry import load_adapter, model_identity
from .classifier import ClassifierConfig, DiffusionClassifier
from .evaluation.datasets import ImageFolder, available_datasets, dataset_candidates
from .speed.engine import compile_adapter, network_attribute
from .losses import LOSSES
from .evaluation.run_store import read_manifest
from .evaluation.runs import consolidate_tables, load_records, run_dataset, run_logits, summarize, verify_run
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
    p.add_argument("--model", required=True, help="lab model name (mnist_unet, fashion_mnist_unet) or SD/DiT folder")
    p.add_argument("--schedule", default="exhaustive_100", help=f"{sorted(SCHEDULES)} or stages like '25:5,250:1'")
    p.add_argument("--timesteps", default="even", choices=sorted(TIMESTEP_STRATEGIES))
    p.add_argument("--error", default="l2", choices=sorted(LOSSES))
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--fp32", action="store_true", help="float32 on the GPU (default bfloat16)")
    add_engine_args(p)
    p.add_argument("--share-prefix", action="store_true",
                   help="Stable Diffusion: run the layers before the first cross-attention once per noisy sample, not "
                        "once per prompt (dcanalysis.prefix_sharing; same result, about 4 %% faster for the Pets "
                        "schedule at 512 px)")
    p.add_argument("--fp8-linears", action="store_true",
                   help="SDXL / SD 3 / Flux / PixArt: the denoiser's linear weights in 8 bits (e4m3), placed layer by "
                        "layer (Flux.1: 12 GB instead of 24; needs an Ada or Hopper GPU; changes the numbers)")
    p.add_argument("--text-device", default=None,
                   help="SDXL / SD 3 / Flux / PixArt: run the text encoders here (e.g. cpu) to leave the GPU to the "
                        "denoiser; they run once per candidate list")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """--compile / --no-compile, --cuda-graphs and --tune-kernels (read by ``resolve_compile``), shared by every
    command that runs a network over many images."""
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network for the batch size (dcanalysis.engine). Default: compile exactly "
                        "where the committed benchmark says it pays for the run's size (speed.compile_choice: on a "
                        "GPU, a measured network, past its break-even; SD-2 at 512 px: about 48,000 evaluations)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="with --compile (implied): replay each compiled graph as one CUDA graph (the lab UNet on an "
                        "H200: classify_batch 3 %% faster; README, Speed)")
    p.add_argument("--tune-kernels", action="store_true",
                   help="with --compile (implied): let inductor tune its generated kernels (the lab UNet on an H200: "
                        "10 %% faster, 50,800 evaluations/s with --cuda-graphs, for about 150 s more compilation)")


def resolve_compile(a, adapter, n_evaluations: int) -> bool:
    """``--compile`` / ``--no-compile`` as given; neither: ``compile_choice.choose_compile`` for a run of at most
    ``n_evaluations`` network evaluations, its reason printed. The answer is stored in ``a.compile`` (the run's
    model identity records it) and depends only on the arguments, so a resumed run decides the same way."""
    if a.compile is False and (a.cuda_graphs or a.tune_kernels):
        raise SystemExit("--cuda-graphs and --tune-kernels are options of the compiled network: drop --no-compile.")
    if a.cuda_graphs or a.tune_kernels:
        a.compile = True
    if a.compile is None:
        from .speed.compile_choice import choose_compile, measured_cost

        name = network_attribute(adapter)
        a.compile, why = choose_compile(n_evaluations, measured_cost(getattr(adapter, name)) if name else None,
                                        a.device)
        print(f"--compile not given: {why}")
    return a.compile


def build_classifier(a, n_images: int = 1) -> DiffusionClassifier:
    """The classifier the arguments describe, for a run over ``n_images`` images (which decides the compile
    default)."""
    dtype = torch.float32 if a.fp32 or a.device == "cpu" else torch.bfloat16
    adapter = load_adapter(a.model, device=a.device, dtype=dtype, share_prefix=a.share_prefix,
                           fp8_linears=a.fp8_linears, text_device=a.text_device)
    schedule = parse_schedule(a.schedule)
    n_candidates = len(dataset_candidates(a.dataset, adapter)[0])
    if resolve_compile(a, adapter, n_images * schedule.evaluations(n_candidates)):
        compile_adapter(adapter, cuda_graphs=a.cuda_graphs, tune_pointwise=a.tune_kernels)
    # a compiled network sees one batch shape: the last batch of each call is padded to it
    cfg = ClassifierConfig(schedule=schedule, timesteps=a.timesteps, error=a.error,
                           batch_size=a.batch_size, seed=a.seed, static_shapes=a.compile)
    return DiffusionClassifier(adapter, cfg)


def cmd_classify(a) -> None:
    clf = build_classifier(a)
    cands, names = dataset_candidates(a.dataset, clf.adapter)
    r = clf.classify(a.image, cands)
    top = sorted(range(len(cands)), key=lambda k: -r.posterior[k].item())[: a.top]
    print(f"prediction: {names[r.prediction_index]}   ({r.n_evaluations} network evaluations, seed {a.seed})")
    for k in top:
        print(f"  {names[k]:30s} p={r.posterior[k].item():.3f}  mean error {r.mean_errors[k].item():.5f}")


def distributed_setup(a) -> bool:
    """Under torchrun (RANK / WORLD_SIZE set), join the process group and take this process's shard.

    Each rank classifies images ``rank, rank + world_size, ...`` and writes its own records file; the report
    merges them. gloo on CPU, NCCL with one GPU per rank.
    """
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and a.device.startswith("cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    a.rank, a.world_size = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        a.device = f"cuda:{local}"
    return True


def cmd_eval(a) -> None:
    from .lab.data import CLASSES, load_lab_dataset, to_model_input

    distributed = distributed_setup(a)
    names = dataset_candidates(a.dataset, None)[1]  # the class names alone: no model needed yet
    if a.dataset in CLASSES:
        ds = load_lab_dataset(a.dataset, test_only=True)
        x, y = to_model_input(ds.test_images), ds.test_labels
        n = min(a.n_images or len(x), len(x))
        get = lambda i: (x[i], int(y[i]))  # noqa: E731
        name_of = lambda i: f"{a.dataset}/test/{i}"  # noqa: E731
    else:
        if a.images is None:
            raise SystemExit(f"--images is required for {a.dataset!r}: a folder laid out as root/<class>/<image>.")
        folder = ImageFolder(a.images, classes=names)
        n = min(a.n_images or len(folder), len(folder))
        get = folder.__getitem__
        name_of = folder.relative_name
    clf = build_classifier(a, n_images=-(-n // a.world_size))  # this process's share of the images
    cands, names = dataset_candidates(a.dataset, clf.adapter)
    if hasattr(clf.adapter, "release_text_encoders"):  # the candidates are fixed for the run: embed, then free
        clf.embed(cands)
        clf.adapter.release_text_encoders()
    settings = {"model": a.model, "dataset": a.dataset, "images": str(a.images) if a.images else None,
                "model_identity": model_identity(a.model, dtype=clf.adapter.dtype, device=a.device,
                                                 compiled=a.compile, share_prefix=a.share_prefix,
                                                 fp8_linears=a.fp8_linears, cuda_graphs=a.cuda_graphs,
                                                 tuned_kernels=a.tune_kernels)}
    run_dataset(clf, get, n, cands, a.out, settings=settings, rank=a.rank, world_size=a.world_size,
                images_per_batch=a.images_per_batch, item_name=name_of, retry_failed=a.retry_failed)
    if distributed:
        import torch.distributed as dist

        dist.barrier()  # every rank's records are on disk before rank 0 reports the merged run
        dist.destroy_process_group()
    if a.rank == 0:
        print(summarize(load_records(a.out), names))


def cmd_report(a) -> None:
    manifest = read_manifest(a.run_dir)
    check = verify_run(a.run_dir)
    records = [r for r in load_records(a.run_dir) if r["id"] not in check.foreign | check.damaged]
    s = summarize(records)
    print(f"run {a.run_dir}: model {manifest['settings'].get('model')}, {manifest['environment']['device']}")
    left = check.n_items - check.done - check.failed
    print(f"{check.done} of {check.n_items} images done, {check.failed} failed"
          + (f"; UNFINISHED: {left} to go (rerun the eval command to finish)" if left else ""))
    if check.problems:
        print(f"{len(check.problems)} problem(s) found and left out of this report: {check.problems[0]}"
              + (" ... (dcanalysis verify lists them all)" if len(check.problems) > 1 else ""))
    print(s)
    for name, acc in s.per_class.items():
        print(f"  class {name:12s} {100 * acc:6.2f}%")
    print_calibration(records, a.calibrate_on, a.run_dir)


def print_calibration(records, calibrate_on: Path | None, run_dir: Path) -> None:
    """NLL and ECE of the paper's posterior, and with a temperature fitted on another run's images."""
    from .evaluation import calibration as C

    z, y = run_logits(records)
    plain = C.summary(C.softmax(z), y)
    print(f"posterior (softmax of minus the mean errors): NLL {plain['nll']:.3f}, ECE {100 * plain['ece_width']:.1f}% "
          f"(log K = {np.log(z.shape[1]):.3f}: a uniform guess)")
    if calibrate_on is None:
        print("  fit a temperature on other images of the same model with --calibrate-on OTHER_RUN")
        return
    if Path(calibrate_on).resolve() == Path(run_dir).resolve():
        raise ValueError("--calibrate-on names this run itself: a temperature fitted on the images it is measured "
                         "on flatters it; give a run on other images of the same model.")
    zc, yc = run_logits([r for r in load_records(calibrate_on)])
    if zc.shape[1] != z.shape[1]:
        raise ValueError(f"--calibrate-on {calibrate_on} has {zc.shape[1]} candidates, this run {z.shape[1]}.")
    t = C.fit_temperature(zc, yc)
    fitted = C.summary(C.softmax(z, t), y)
    print(f"  temperature {t:.3e} fitted on {len(yc)} images of {calibrate_on}: NLL {fitted['nll']:.3f}, "
          f"ECE {100 * fitted['ece_width']:.1f}%")


def cmd_tables(a) -> None:
    path = consolidate_tables(a.run_dir, max_images=a.max_images)
    with np.load(path) as z:
        print(f"{path}: errors {z['errors'].shape} (images, candidates, trials), timesteps {z['timesteps'].shape}")


def cmd_verify(a) -> None:
    check = verify_run(a.run_dir)
    print(f"run {a.run_dir}: {check}")
    if check.problems:
        raise SystemExit(f"{len(check.problems)} problem(s); `dcanalysis eval` with the run's command recomputes "
                         "damaged images, foreign records are left out of reports")
    print("no damage found")


def build_parser() -> argparse.ArgumentParser:
    """The command line: classify, eval, report, verify and tables."""
    p = argparse.ArgumentParser(prog="dcanalysis", description="Diffusion models as classifiers (Li et al., ICCV 2023).")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="classify one image and print the posterior")
    c.add_argument("image", help="image file (any PIL-readable format)")
    c.add_argument("--dataset", default="mnist", help=f"label set: mnist, fashion_mnist or one of {available_datasets()}")
    c.add_argument("--top", type=int, default=5)
    add_common(c)
    c.set_defaults(func=cmd_classify)
    e = sub.add_parser("eval", help="classify a dataset into a resumable run directory")
    e.add_argument("--dataset", required=True)
    e.add_argument("--images", type=Path, help="root/<class>/<image> folder (not needed for mnist, fashion_mnist)")
    e.add_argument("--out", required=True, type=Path, help="run directory; rerun the same command to resume")
    e.add_argument("--n-images", type=int, default=0, help="first N images only (0: all)")
    e.add_argument("--images-per-batch", type=int, default=1, help="images sharing each network call (small models)")
    e.add_argument("--rank", type=int, default=0)
    e.add_argument("--world-size", type=int, default=1)
    e.add_argument("--retry-failed", action="store_true", help="recompute images recorded as failed (a failed "
                                                                 "image whose file changed is retried anyway)")
    add_common(e)
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("report", help="accuracy with a 95%% interval and per-class accuracy of a run")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--calibrate-on", type=Path, default=None,
                   help="a run on other images of the same model: fit a temperature there, report NLL/ECE here")
    r.set_defaults(func=cmd_report)
    v = sub.add_parser("verify", help="check a run directory for damage: foreign lines, tables that disagree with "
                                      "their records, records of other settings")
    v.add_argument("run_dir", type=Path)
    v.set_defaults(func=cmd_verify)
    t = sub.add_parser("tables", help="pack a run's per-image error tables into RUN_DIR/tables.npz, with the "
                                      "timestep of every trial (what the book's chapters 3-5 read)")
    t.add_argument("run_dir", type=Path)
    t.add_argument("--max-images", type=int, default=None, help="the lowest ids only")
    t.set_defaults(func=cmd_tables)
    for sp in (c, e, r, v, t):
        sp.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        a.func(a)
    except KeyboardInterrupt:
        if a.command == "eval":  # every finished image is on disk; the same command carries on from there
            raise SystemExit("\ninterrupted; finished images are saved. Resume with the same command: dcanalysis "
                             + " ".join(sys.argv[1:] if argv is None else argv)) from None
        raise SystemExit("\ninterrupted.") from None
    except Exception as e:  # one clear line for the user; the traceback behind --debug
        if a.debug:
            raise
        kind = "" if isinstance(e, (ValueError, OSError, RuntimeError, TypeError)) else f"{type(e).__name__}: "
        raise SystemExit(f"dcanalysis {a.command}: error: {kind}{e} (add --debug for the traceback)") from None


if __name__ == "__main__":
    sys.exit(main())
