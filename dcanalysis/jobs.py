"""The two jobs a user runs, each described by one frozen config: classify one image (``ClassifyJob``) and
classify a dataset into a resumable run directory (``EvalJob``).

The command line parses into these and hands over nothing else (``dcanalysis.cli``); scripts and notebooks build
them directly. A job holds the classifier's settings (``ClassifierConfig``, the method) and the engine's
(``EngineConfig``, how the network runs); ``eval_settings`` is what a run's manifest records of it.

    job = EvalJob(model="mnist_unet", dataset="mnist", out=Path("runs/mnist"), n_images=100,
                  classifier=ClassifierConfig(schedule=Schedule.exhaustive(100), batch_size=250))
    records = evaluate(job)
"""
from __future__ import annotations

import os
from datetime import timedelta
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .adapters.registry import load_adapter, model_identity
from .classifier import ClassificationResult, ClassifierConfig, DiffusionClassifier
from .engine.config import EngineConfig
from .engine.overlap import overlapped
from .evaluation.datasets import ImageFolder, dataset_candidates
from .evaluation.lab_datasets import CLASSES, load_lab_dataset, to_model_input
from .evaluation.runs import run_dataset


@dataclass(frozen=True)
class ClassifyJob:
    """Classify ``image`` among ``dataset``'s classes (a lab dataset, or one of ``data/datasets`` whose prompts a
    text-conditional model reads) with ``model`` (a lab model name or a diffusers pipeline folder / hub id)."""

    model: str
    image: str
    dataset: str = "mnist"
    device: str = "cpu"
    fp32: bool = False  # float32 on a GPU (default bfloat16; the CPU always runs float32)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass(frozen=True)
class EvalJob:
    """Classify the first ``n_images`` (0: all) of ``dataset`` into ``out``: a lab dataset's test split, or the
    ``images`` folder laid out as root/<class>/<image>. This process takes images ``rank, rank + world_size, ...``;
    ``images_per_batch`` images share each network call; rerunning the same job resumes it."""

    model: str
    dataset: str
    out: Path
    images: Path | None = None
    n_images: int = 0
    images_per_batch: int = 1
    rank: int = 0
    world_size: int = 1
    retry_failed: bool = False
    device: str = "cpu"
    fp32: bool = False
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    # how long a rank that finished waits for the others under torchrun: a resume on another number of processes
    # can leave one rank hours behind the rest, and torchrun stops every rank when one fails, so a long wait never
    # outlives a crash (PyTorch's default, 10 min for NCCL, ended uneven runs in an error after their records)
    barrier_timeout_s: float = 7 * 24 * 3600.0

    def __post_init__(self):
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"--rank {self.rank} --world-size {self.world_size}: need world size >= 1 and 0 <= rank "
                             "< world size (each rank takes the images rank, rank + world size, ...).")
        if self.images_per_batch < 1 or self.n_images < 0:
            raise ValueError("--images-per-batch must be >= 1 and --n-images >= 0 (0: all images).")


def compute_dtype(device: str, fp32: bool) -> torch.dtype:
    """float32 on the CPU or when asked, else bfloat16."""
    return torch.float32 if fp32 or torch.device(device).type == "cpu" else torch.bfloat16


def build_classifier(job: ClassifyJob | EvalJob, n_images: int = 1) -> tuple[DiffusionClassifier, EngineConfig]:
    """The job's model behind its engine, and the classifier; the engine with ``compile`` decided for a run over
    ``n_images`` images (``compile_rule``; on a GPU its reason is printed where the job left it open)."""
    dtype = compute_dtype(job.device, job.fp32)
    adapter = load_adapter(job.model, device=job.device, dtype=dtype, place_network=job.engine.place_network(),
                           text_device=job.engine.text_device)
    n_evaluations = n_images * job.classifier.schedule.evaluations(len(dataset_candidates(job.dataset, adapter)[0]))
    adapter, engine = job.engine.prepare(adapter, n_evaluations=n_evaluations, device=job.device,
                                         batch_size=job.classifier.batch_size)
    return DiffusionClassifier(adapter, job.classifier), engine


def classify(job: ClassifyJob) -> tuple[ClassificationResult, list[str]]:
    """The job's image classified; with the class names in the candidates' order."""
    clf, _ = build_classifier(job)
    cands, names = dataset_candidates(job.dataset, clf.adapter)
    return clf.classify(job.image, cands), names


def eval_settings(job: EvalJob, clf: DiffusionClassifier, engine: EngineConfig) -> dict:
    """What a run's manifest records of the job beside the classifier's config: a resume under other settings is
    refused."""
    # the folder's resolved path, so a relative or linked --images names the same run (not a setting: each image's
    # name and content are checked through its identity, so a moved dataset resumes)
    return {"model": job.model, "dataset": job.dataset, "images": str(job.images.resolve()) if job.images else None,
            "model_identity": {**model_identity(job.model, dtype=clf.adapter.dtype, device=job.device),
                               **engine.identity()}}


def distributed_rank(job: EvalJob) -> tuple[EvalJob, bool]:
    """Under torchrun (``WORLD_SIZE`` > 1), join the process group and take this process's rank, world size and
    GPU (gloo on the CPU, NCCL with one GPU per rank); else the job as it is. Returns (job, joined)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return job, False
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and job.device.startswith("cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=job.barrier_timeout_s))
    device = job.device
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return replace(job, rank=dist.get_rank(), world_size=dist.get_world_size(), device=device), True


def dataset_items(job: EvalJob, names: list[str]):
    """(number of images, get(i) -> (image, label), name(i)) of the job's dataset, its first ``n_images``."""
    return dataset_source(job.dataset, job.images, names, job.n_images)


def dataset_source(dataset: str, images: Path | None, names: list[str], n_images: int = 0):
    """(number of images, get(i) -> (image, label), name(i)) of a lab dataset's test split or of an ``images``
    folder laid out as root/<class>/<image>, its first ``n_images`` (0: all)."""
    if dataset in CLASSES:
        ds = load_lab_dataset(dataset, test_only=True)
        x, y = to_model_input(ds.test_images), ds.test_labels
        return (min(n_images or len(x), len(x)), lambda i: (x[i], int(y[i])), lambda i: f"{dataset}/test/{i}")
    if images is None:
        raise ValueError(f"--images is required for {dataset!r}: a folder laid out as root/<class>/<image>.")
    folder = ImageFolder(images, classes=names)
    return min(n_images or len(folder), len(folder)), folder.__getitem__, folder.relative_name


def run_source(settings: dict, images: Path | None = None):
    """The dataset items of a ``dcanalysis eval`` run from its manifest settings (``images`` overrides the folder
    it recorded): (get_item, item_name), or None for a run this command did not write (the lab's)."""
    if "dataset" not in settings:
        return None
    folder = images or (Path(settings["images"]) if settings.get("images") else None)
    names = settings.get("class_names") or dataset_candidates(settings["dataset"], None)[1]
    _, get, name = dataset_source(settings["dataset"], folder, names)
    return get, name


def evaluate(job: EvalJob) -> tuple[EvalJob, list[dict]]:
    """Run (or resume) the job; returns the job as it ran (its rank under torchrun) and this rank's records."""
    job, distributed = distributed_rank(job)
    names = dataset_candidates(job.dataset, None)[1]  # the class names alone: no model needed yet
    n, get, name_of = dataset_items(job, names)
    clf, engine = build_classifier(job, n_images=-(-n // job.world_size))  # this process's share of the images
    cands, _ = dataset_candidates(job.dataset, clf.adapter)
    if hasattr(clf.adapter, "release_text_encoders"):  # the candidates are fixed for the run: embed, then free
        clf.embed(cands)
        clf.adapter.release_text_encoders()
    records = run_dataset(clf, get, n, cands, job.out, settings=eval_settings(job, clf, engine), rank=job.rank,
                          world_size=job.world_size, images_per_batch=job.images_per_batch, item_name=name_of,
                          retry_failed=job.retry_failed, run_ahead=overlapped if engine.overlap else None,
                          class_names=names)
    if distributed:
        import torch.distributed as dist

        dist.barrier()  # every rank's records are on disk before rank 0 reports the merged run
        dist.destroy_process_group()
    return job, records
