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

from ..paths import MODELS_DIR
from .pipeline import PipelineAdapter
from .pixel import PixelAdapter
from .weights import HubOptions, config_fingerprint, resolve_pretrained, weights_fingerprint

# our lab's class-conditional UNets, each a folder of data/models with its model card (dcanalysis.lab trains them)
LAB_MODELS = ("fashion_mnist_unet", "mnist_unet")

# diffusers pipeline class name -> adapter class name in dcanalysis.adapters
PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionAdapter",
    "StableDiffusionXLPipeline": "StableDiffusionXLAdapter",
    "StableDiffusion3Pipeline": "StableDiffusion3Adapter",
    "FluxPipeline": "FluxAdapter",
    "PixArtAlphaPipeline": "PixArtAdapter",
    "PixArtSigmaPipeline": "PixArtAdapter",
    "DiTPipeline": "DiTAdapter",
}


def adapter_class(pipeline_name: str, model: str = "this pipeline"):
    """The adapter class for a diffusers pipeline class name; an unsupported one gets the list of those that are."""
    from .. import adapters

    if pipeline_name not in PIPELINES:
        raise ValueError(f"{model!r} is a {pipeline_name or 'pipeline without a class name'}; dcanalysis supports "
                         f"{sorted(PIPELINES)} and its own lab models.")
    return getattr(adapters, PIPELINES[pipeline_name])


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


def lab_model_folder(name: str) -> Path:
    """The folder of one of ``LAB_MODELS``, with its weights and model card."""
    folder = MODELS_DIR / name
    if not (folder / "model_card.json").is_file():
        raise FileNotFoundError(f"lab model {name!r} is not in {folder}. The shipped models are in git under "
                                "data/models/; train one with `python -m dcanalysis.lab.train` (its model card names "
                                "the command).")
    return folder


def load_adapter(model: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 hub: HubOptions | None = None, **options):
    """A lab model by name, or a supported diffusers pipeline from a folder or cached hub id, loaded in ``dtype``.

    ``hub`` (``HubOptions``: variant, revision, cache_dir) says which files of a pipeline are read. ``options``:
    placement (``place_network``, e.g. ``dcanalysis.engine.fp8.place_with_fp8_linears``, and ``text_device``) for
    the adapters of SDXL, SD 3, Flux and PixArt (``adapters.pipeline.PipelineAdapter``), and pipeline components
    to leave out, set to None (``text_encoder_3=None, tokenizer_3=None``: SD 3 without its T5); other models refuse
    them. What runs the loaded network faster (compilation, prefix sharing) is ``dcanalysis.engine``'s.
    """
    components = {k: v for k, v in options.items() if k.startswith(("text_encoder", "tokenizer"))}
    placement = {k: v for k, v in options.items() if k not in components and v is not None}
    if any(v is not None for v in components.values()):
        raise ValueError(f"{sorted(components)}: pass None to leave a component out; to use your own, load the "
                         "pipeline yourself and call adapter_for_pipe(pipe).")

    def no_placement(what: str):
        given = {**placement, **components}
        if given:
            flags = ", ".join({"place_network": "--fp8-linears", "text_encoder_3": "--no-t5", "tokenizer_3": "--no-t5"}
                              .get(k, "--" + k.replace("_", "-")) for k in given)
            raise ValueError(f"{flags}: {model} is {what}; these options serve SDXL, SD 3, Flux and PixArt "
                             "pipelines. Drop them for this model.")

    if model in LAB_MODELS:
        no_placement("a lab model")
        if hub and hub != HubOptions():
            raise ValueError(f"--variant / --revision / --cache-dir: {model} is a lab model read from data/models; "
                             "drop them.")
        return PixelAdapter.from_lab_folder(lab_model_folder(model), device=device, dtype=dtype)
    if "/" not in model and not Path(model).expanduser().exists():
        raise ValueError(f"unknown model {model!r}: give a lab model ({', '.join(LAB_MODELS)}) or the folder / "
                         "cached hub id of a diffusers pipeline.")
    folder = resolve_pretrained(model, subfolders=("vae", "scheduler"), hub=hub)
    name = pipeline_class(folder)
    cls = adapter_class(name, model)
    if not issubclass(cls, PipelineAdapter):
        no_placement(f"a {name}")
        return cls.from_pretrained(str(folder), device=device, dtype=dtype, hub=hub)
    return cls.from_pretrained(str(folder), device=device, dtype=dtype, hub=hub, **placement, **components)


def model_folder(model: str, hub: HubOptions | None = None) -> Path:
    """Where a model's files are: a lab model's folder, or the resolved pipeline folder."""
    if model in LAB_MODELS:
        return lab_model_folder(model)
    return resolve_pretrained(model, subfolders=("vae", "scheduler"), hub=hub)


def model_identity(model: str, *, dtype: torch.dtype, device: str, hub: HubOptions | None = None,
                   dropped: tuple[str, ...] = ()) -> dict:
    """What of the model decides a run's numbers besides the classifier's settings and the engine's
    (``dcanalysis.engine.config.EngineConfig.identity``): its weights (``weights_fingerprint``), every other file of
    its folder (configs, scheduler, tokenizer: ``config_fingerprint``), the dtype and the kind of device. Recorded
    in a run's manifest; a resume with any other is refused."""
    kind = torch.device(device).type
    if kind == "cuda":
        kind = f"cuda {torch.cuda.get_device_name(torch.device(device))}"
    folder = model_folder(model, hub)
    # the fingerprints cover every file, so a variant's or revision's other files give another identity
    return {"weights": weights_fingerprint(folder), "configs": config_fingerprint(folder),
            "dtype": str(dtype).removeprefix("torch."), "device": kind,
            **({"variant": hub.variant} if hub and hub.variant else {}),
            **({"without": sorted(dropped)} if dropped else {})}
