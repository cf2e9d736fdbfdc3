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

from .adapters.registry import LAB_MODELS, load_adapter, model_identity
from .adapters.weights import HubOptions
from .classifier import ClassificationResult, ClassifierConfig, DiffusionClassifier
from .engine.config import EngineConfig
from .engine.overlap import overlapped
from .evaluation.datasets import ClassList, ImageFolder, available_datasets
from .evaluation.lab_datasets import CLASSES, load_lab_dataset, to_model_input
from .evaluation.runs import run_dataset


@dataclass(frozen=True)
class ClassifyJob:
    """Classify ``image`` with ``model`` (a lab model name or a diffusers pipeline folder / hub id) among
    ``classes`` (your own list: ``ClassList.from_file``), else ``dataset``'s (a lab dataset, or one of
    ``data/datasets`` whose prompts a text-conditional model reads), else a lab model's own dataset's."""

    model: str
    image: str
    dataset: str | None = None
    classes: ClassList | None = None
    device: str = "cpu"
    dtype: str | None = None  # float32, bfloat16 or float16; None: float32 on the CPU, bfloat16 on a GPU
    hub: HubOptions = field(default_factory=HubOptions)  # variant, revision, cache_dir of a diffusers pipeline
    without_t5: bool = False  # SD 3: leave out the T5 text encoder (text_encoder_3, 4.7 B parameters)
    progress: bool = True  # a tqdm bar of network evaluations
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self):
        check_dtype(self.dtype)


@dataclass(frozen=True)
class EvalJob:
    """Classify the first ``n_images`` (0: all) of ``dataset`` into ``out``: a lab dataset's test split, or the
    ``images`` folder laid out as root/<class>/<image>. This process takes images ``rank, rank + world_size, ...``;
    ``images_per_batch`` images share each network call; rerunning the same job resumes it."""

    model: str
    dataset: str | None
    out: Path
    images: Path | None = None
    classes: ClassList | None = None  # your own class list (then ``images`` holds root/<class>/<image>)
    n_images: int = 0
    images_per_batch: int = 1
    rank: int = 0
    world_size: int = 1
    retry_failed: bool = False
    device: str = "cpu"
    dtype: str | None = None
    hub: HubOptions = field(default_factory=HubOptions)
    without_t5: bool = False
    progress: bool = True  # a tqdm bar of images
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
        if self.dataset is None and (self.classes is None or self.images is None):
            raise ValueError("give --dataset (mnist, fashion_mnist or a dataset of data/datasets), or --images with "
                             "--classes FILE or --prompts FILE for your own folder of root/<class>/<image>.")
        check_dtype(self.dtype)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: choose one of {sorted(DTYPES)}.")


def compute_dtype(device: str, dtype: str | None = None) -> torch.dtype:
    """The dtype asked for, else float32 on the CPU and bfloat16 on a GPU."""
    if dtype is not None:
        return DTYPES[dtype]
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def dropped_components(job: ClassifyJob | EvalJob) -> dict:
    """The pipeline components a job leaves out (set to None for diffusers)."""
    return {"text_encoder_3": None, "tokenizer_3": None} if job.without_t5 else {}


def job_classes(job: ClassifyJob | EvalJob) -> ClassList:
    """The classes a job chooses among: its own list, else its dataset's, else a lab model's dataset's."""
    if job.classes is not None:
        return job.classes
    if job.dataset is not None:
        return ClassList.of_dataset(job.dataset)
    if job.model in LAB_MODELS and job.model.removesuffix("_unet") in CLASSES:
        return ClassList.of_dataset(job.model.removesuffix("_unet"))
    raise ValueError(f"which classes? give --classes FILE (one class name per line), --prompts FILE (one prompt per "
                     f"line) or --dataset (one of {['mnist', 'fashion_mnist', *available_datasets()]}).")


def build_classifier(job: ClassifyJob | EvalJob, n_images: int = 1) -> tuple[DiffusionClassifier, EngineConfig]:
    """The job's model behind its engine, and the classifier; the engine with ``compile`` decided for a run over
    ``n_images`` images (``compile_rule``; on a GPU its reason is printed where the job left it open)."""
    dtype = compute_dtype(job.device, job.dtype)
    adapter = load_adapter(job.model, device=job.device, dtype=dtype, hub=job.hub, **dropped_components(job),
                           place_network=job.engine.place_network(), text_device=job.engine.text_device)
    n_evaluations = n_images * job.classifier.schedule.evaluations(len(job_classes(job).names))
    adapter, engine = job.engine.prepare(adapter, n_evaluations=n_evaluations, device=job.device,
                                         batch_size=job.classifier.batch_size)
    # a one-image job shows the network evaluations; a run shows its images (run_dataset's bar)
    return DiffusionClassifier(adapter, job.classifier, progress=job.progress and isinstance(job, ClassifyJob)), engine


def classify(job: ClassifyJob) -> tuple[ClassificationResult, list[str]]:
    """The job's image classified; with the class names in the candidates' order."""
    classes = job_classes(job)  # before loading: a bad list fails in a second
    clf, _ = build_classifier(job)
    return clf.classify(job.image, classes.candidates(clf.adapter)), list(classes.names)


def eval_settings(job: EvalJob, clf: DiffusionClassifier, engine: EngineConfig) -> dict:
    """What a run's manifest records of the job beside the classifier's config: a resume under other settings is
    refused."""
    # the folder's resolved path, so a relative or linked --images names the same run (not a setting: each image's
    # name and content are checked through its identity, so a moved dataset resumes)
    return {"model": job.model, "dataset": job.dataset, "images": str(job.images.resolve()) if job.images else None,
            "model_identity": {**model_identity(job.model, dtype=clf.adapter.dtype, device=job.device, hub=job.hub,
                                                dropped=tuple(dropped_components(job))),
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


def dataset_source(dataset: str | None, images: Path | None, names: list[str], n_images: int = 0):
    """(number of images, get(i) -> (image, label), name(i)) of a lab dataset's test split or of an ``images``
    folder laid out as root/<class>/<image>, its first ``n_images`` (0: all)."""
    if dataset in CLASSES and images is None:
        ds = load_lab_dataset(dataset, test_only=True)
        x, y = to_model_input(ds.test_images), ds.test_labels
        return (min(n_images or len(x), len(x)), lambda i: (x[i], int(y[i])), lambda i: f"{dataset}/test/{i}")
    if images is None:
        raise ValueError(f"--images is required for {dataset!r}: a folder laid out as root/<class>/<image>.")
    # a folder: its class sub-folders are matched to the names (case-insensitively, '_' read as ' ')
    folder = ImageFolder(images, classes=names)
    return min(n_images or len(folder), len(folder)), folder.__getitem__, folder.relative_name


def run_source(settings: dict, images: Path | None = None):
    """The dataset items of a ``dcanalysis eval`` run from its manifest settings (``images`` overrides the folder
    it recorded): (get_item, item_name), or None for a run this command did not write (the lab's)."""
    if "dataset" not in settings:
        return None
    folder = images or (Path(settings["images"]) if settings.get("images") else None)
    names = settings.get("class_names") or list(ClassList.of_dataset(settings["dataset"]).names)
    _, get, name = dataset_source(settings["dataset"], folder, names)
    return get, name


def evaluate(job: EvalJob) -> tuple[EvalJob, list[dict]]:
    """Run (or resume) the job; returns the job as it ran (its rank under torchrun) and this rank's records."""
    job, distributed = distributed_rank(job)
    classes = job_classes(job)  # the class names alone: no model needed yet
    names = list(classes.names)
    n, get, name_of = dataset_items(job, names)
    clf, engine = build_classifier(job, n_images=-(-n // job.world_size))  # this process's share of the images
    cands = classes.candidates(clf.adapter)
    if hasattr(clf.adapter, "release_text_encoders"):  # the candidates are fixed for the run: embed, then free
        clf.embed(cands)
        clf.adapter.release_text_encoders()
    records = run_dataset(clf, get, n, cands, job.out, settings=eval_settings(job, clf, engine), rank=job.rank,
                          world_size=job.world_size, images_per_batch=job.images_per_batch, item_name=name_of,
                          retry_failed=job.retry_failed, run_ahead=overlapped if engine.overlap else None,
                          class_names=names, progress=job.progress)
    if distributed:
        import torch.distributed as dist

        dist.barrier()  # every rank's records are on disk before rank 0 reports the merged run
        dist.destroy_process_group()
    return job, records
