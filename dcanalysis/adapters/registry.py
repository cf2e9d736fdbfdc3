"""One way in for every model: a lab model name, a diffusers pipeline folder or cached hub id (dispatched on the
pipeline class its ``model_index.json`` names; ``save_pretrained`` writes it), or a pipeline object in memory.

    load_adapter("mnist_unet")                                  # our own lab model
    load_adapter("/models/stable-diffusion-3.5-medium")         # model_index.json: StableDiffusion3Pipeline
    adapter_for_pipe(pipe)                                      # a pipeline you already loaded
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .pipeline import PipelineAdapter
from .weights import resolve_pretrained, weights_fingerprint

# diffusers pipeline class name -> (adapter class name in dcanalysis.adapters, whether --share-prefix applies)
PIPELINES = {
    "StableDiffusionPipeline": ("StableDiffusionAdapter", True),
    "StableDiffusionXLPipeline": ("StableDiffusionXLAdapter", False),
    "StableDiffusion3Pipeline": ("StableDiffusion3Adapter", False),
    "FluxPipeline": ("FluxAdapter", False),
    "PixArtAlphaPipeline": ("PixArtAdapter", False),
    "PixArtSigmaPipeline": ("PixArtAdapter", False),
    "DiTPipeline": ("DiTAdapter", False),
}


def adapter_class(pipeline_name: str, model: str = "this pipeline"):
    """The adapter class for a diffusers pipeline class name; an unsupported one gets the list of those that are."""
    from .. import adapters

    if pipeline_name not in PIPELINES:
        raise ValueError(f"{model!r} is a {pipeline_name or 'pipeline without a class name'}; dcanalysis supports "
                         f"{sorted(PIPELINES)} and its own lab models.")
    return getattr(adapters, PIPELINES[pipeline_name][0])


def adapter_for_pipe(pipe, **options):
    """The adapter for a diffusers pipeline already in memory (``options``: device, dtype, adapter options)."""
    return adapter_class(type(pipe).__name__).from_pipe(pipe, **options)


def pipeline_class(folder: Path) -> str:
    """The pipeline class a diffusers folder was saved from; for a folder of components without
    ``model_index.json``, inferred from its layout (``transformer/``: DiT, else Stable Diffusion)."""
    index = folder / "model_index.json"
    if index.is_file():
        return json.loads(index.read_text()).get("_class_name", "")
    return "DiTPipeline" if (folder / "transformer").is_dir() else "StableDiffusionPipeline"


def load_adapter(model: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, share_prefix: bool = False,
                 **placement):
    """A lab model by name, or a supported diffusers pipeline from a folder or cached hub id.

    ``placement`` (``fp8_linears``, ``text_device``) goes to the adapters of SDXL, SD 3, Flux and PixArt
    (``adapters.pipeline.PipelineAdapter``); other models refuse it.

    ``share_prefix`` applies to text-conditional UNets (Stable Diffusion): class-conditional models see their
    class from the first layer on, so no part of them can be shared across classes.
    """
    from ..lab.registry import DIFFUSION_NAMES, load_lab_diffusion

    def no_prefix(why: str):
        if share_prefix:
            raise ValueError(f"--share-prefix: {model} is a {why}. It applies to Stable Diffusion 1.x / 2.x (a folder "
                             "with unet/ and text_encoder/); drop the flag for this model.")

    class_conditional = "class-conditional model, which sees its class from the first layer on, so no part of it " \
                        "can be shared across classes"
    placement = {k: v for k, v in placement.items() if v not in (None, False)}

    def no_placement(what: str):
        if placement:
            flags = ", ".join("--" + k.replace("_", "-") for k in placement)
            raise ValueError(f"{flags}: {model} is {what}; these options serve SDXL, SD 3, Flux and PixArt "
                             "pipelines (models too large for a GPU in bf16). Drop them for this model.")

    if model in DIFFUSION_NAMES:
        no_prefix(f"lab {class_conditional}")
        no_placement("a lab model")
        return load_lab_diffusion(model, device=device, dtype=dtype)
    if "/" not in model and not Path(model).expanduser().exists():
        raise ValueError(f"unknown model {model!r}: give a lab model ({', '.join(DIFFUSION_NAMES)}) or the folder / "
                         "cached hub id of a diffusers pipeline.")
    folder = resolve_pretrained(model, subfolders=("vae", "scheduler"))
    name = pipeline_class(folder)
    cls = adapter_class(name, model)
    if not PIPELINES[name][1]:
        no_prefix(f"DiT, a {class_conditional}" if name == "DiTPipeline"
                  else f"{name}, whose condition-independent prefix dcanalysis does not share")
        if not issubclass(cls, PipelineAdapter):
            no_placement(f"a {name}")
        return cls.from_pretrained(str(folder), device=device, dtype=dtype, **placement)
    no_placement(f"a {name}")
    return cls.from_pretrained(str(folder), device=device, dtype=dtype, share_prefix=share_prefix)


def model_folder(model: str) -> Path:
    """Where a model's files are: a lab model's folder, or the resolved pipeline folder."""
    from ..lab.registry import DIFFUSION_NAMES, model_dir

    return model_dir(model) if model in DIFFUSION_NAMES else resolve_pretrained(model, subfolders=("vae", "scheduler"))


def model_identity(model: str, *, dtype: torch.dtype, device: str, compiled: bool, share_prefix: bool,
                   fp8_linears: bool = False, cuda_graphs: bool = False, tuned_kernels: bool = False) -> dict:
    """Everything about the model that decides a run's numbers besides the classifier's settings: its weights
    (``weights_fingerprint``), the dtype, the kind of device, and whether it is compiled (which reorders bf16
    arithmetic; CUDA graphs and inductor's tuned kernels are recorded too), shares its prefix or runs its linear
    layers in 8 bits. Recorded in a run's manifest; a resume with any other is refused."""
    kind = torch.device(device).type
    if kind == "cuda":
        kind = f"cuda {torch.cuda.get_device_name(torch.device(device))}"
    return {"weights": weights_fingerprint(model_folder(model)), "dtype": str(dtype).removeprefix("torch."),
            "device": kind, "share_prefix": share_prefix,
            # absent when off: earlier runs' manifests still match
            **({"fp8_linears": True} if fp8_linears else {}),
            **engine_identity(compiled, cuda_graphs=cuda_graphs, tuned_kernels=tuned_kernels)}


def engine_identity(compiled: bool, *, cuda_graphs: bool = False, tuned_kernels: bool = False) -> dict:
    """How the network runs, as a run's settings record it: ``compile``, and CUDA graphs and inductor's tuned
    kernels each only when on (so manifests written before they existed still match)."""
    return {"compile": compiled, **({"cuda_graphs": True} if cuda_graphs else {}),
            **({"tuned_kernels": True} if tuned_kernels else {})}
