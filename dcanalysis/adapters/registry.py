"""One way in for every model: a lab model name, or a diffusers pipeline folder / cached hub id, dispatched on
the pipeline class its ``model_index.json`` names (``save_pretrained`` writes it).

    load_adapter("mnist_unet")                          # our own lab model
    load_adapter("/models/stable-diffusion-2-base")     # model_index.json: StableDiffusionPipeline
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .weights import resolve_pretrained, weights_fingerprint

# diffusers pipeline class name -> (adapter class name in dcanalysis.adapters, whether --share-prefix applies)
PIPELINES = {
    "StableDiffusionPipeline": ("StableDiffusionAdapter", True),
    "DiTPipeline": ("DiTAdapter", False),
}


def pipeline_class(folder: Path) -> str:
    """The pipeline class a diffusers folder was saved from; for a folder of components without
    ``model_index.json``, inferred from its layout (``transformer/``: DiT, else Stable Diffusion)."""
    index = folder / "model_index.json"
    if index.is_file():
        return json.loads(index.read_text()).get("_class_name", "")
    return "DiTPipeline" if (folder / "transformer").is_dir() else "StableDiffusionPipeline"


def load_adapter(model: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, share_prefix: bool = False):
    """A lab model by name, or a supported diffusers pipeline from a folder or cached hub id.

    ``share_prefix`` applies to text-conditional UNets (Stable Diffusion): class-conditional models see their
    class from the first layer on, so no part of them can be shared across classes.
    """
    from .. import adapters
    from ..lab.registry import DIFFUSION_NAMES, load_lab_diffusion

    def no_prefix(kind: str):
        if share_prefix:
            raise ValueError(f"--share-prefix: {model} is a {kind}, which sees its class from the first layer on, so "
                             "no part of it can be shared across classes. It applies to Stable Diffusion (a folder "
                             "with unet/ and text_encoder/); drop the flag for this model.")

    if model in DIFFUSION_NAMES:
        no_prefix("class-conditional lab model")
        return load_lab_diffusion(model, device=device, dtype=dtype)
    if "/" not in model and not Path(model).expanduser().exists():
        raise ValueError(f"unknown model {model!r}: give a lab model ({', '.join(DIFFUSION_NAMES)}) or the folder / "
                         "cached hub id of a diffusers pipeline.")
    folder = resolve_pretrained(model, subfolders=("vae", "scheduler"))
    name = pipeline_class(folder)
    if name not in PIPELINES:
        raise ValueError(f"{model!r} is a {name or 'pipeline without a class name'}; dcanalysis supports "
                         f"{sorted(PIPELINES)} (and the lab models {list(DIFFUSION_NAMES)}).")
    adapter_name, shares = PIPELINES[name]
    cls = getattr(adapters, adapter_name)
    if not shares:
        no_prefix(f"{name} (class-conditional)")
        return cls.from_pretrained(str(folder), device=device, dtype=dtype)
    return cls.from_pretrained(str(folder), device=device, dtype=dtype, share_prefix=share_prefix)


def model_folder(model: str) -> Path:
    """Where a model's files are: a lab model's folder, or the resolved pipeline folder."""
    from ..lab.registry import DIFFUSION_NAMES, model_dir

    return model_dir(model) if model in DIFFUSION_NAMES else resolve_pretrained(model, subfolders=("vae", "scheduler"))


def model_identity(model: str, *, dtype: torch.dtype, device: str, compiled: bool, share_prefix: bool) -> dict:
    """Everything about the model that decides a run's numbers besides the classifier's settings: its weights
    (``weights_fingerprint``), the dtype, the kind of device, and whether it is compiled (which reorders bf16
    arithmetic) or shares its prefix. Recorded in a run's manifest; a resume with any other is refused."""
    kind = torch.device(device).type
    if kind == "cuda":
        kind = f"cuda {torch.cuda.get_device_name(torch.device(device))}"
    return {"weights": weights_fingerprint(model_folder(model)), "dtype": str(dtype).removeprefix("torch."),
            "device": kind, "compile": compiled, "share_prefix": share_prefix}
