"""What every adapter built on a diffusers pipeline shares: loading (a folder, a cached hub id, or a pipeline
already in memory), placing the components, checking the tokenizers, and letting the text encoders go once the
candidates are embedded.

The adapters embed prompts with the pipeline's own ``encode_prompt``, so a prompt conditions the network exactly
as it does when the pipeline generates an image.
"""
from __future__ import annotations

import torch

from .base import check_borrowed, place_module
from .latent import LatentImages, vae_downsampling
from .weights import HubOptions, resolve_pretrained


class PipelineAdapter(LatentImages):
    """Base of the SDXL, SD 3, Flux and PixArt adapters. Subclasses set

    ``PIPELINES`` : diffusers pipeline class names they accept; ``NETWORK`` : the denoiser's component name
    ("unet" or "transformer"); ``TEXT`` : the names of the text-encoder components (released by
    ``release_text_encoders``).

    For GPUs smaller than the model in bf16 (Flux.1 on 24 GB): ``place_network(network, device, dtype)`` places
    the denoiser instead of a plain move, e.g. ``dcanalysis.engine.fp8.place_with_fp8_linears``, its linear weights in
    e4m3, layer by layer (12 GB instead of 24 for Flux; an opt-in trade of precision, about 3 % per product before
    sums average it, for memory); ``text_device``
    keeps the text encoders elsewhere (``"cpu"``): they run once per candidate list, and the embeddings move to
    ``device``.
    """

    PIPELINES: tuple[str, ...] = ()
    NETWORK = "transformer"
    takes_prompts = True
    TEXT: tuple[str, ...] = ()

    def __init__(self, pipe, *, device="cpu", dtype=torch.float32, resolution: int | None = None,
                 place_network=None, text_device=None):
        name = type(pipe).__name__
        if name not in self.PIPELINES:
            raise TypeError(f"{type(self).__name__} takes a {' or '.join(self.PIPELINES)}, got a {name}; "
                            "dcanalysis.adapters.registry.load_adapter picks the adapter for a pipeline.")
        self.pipe = pipe
        self.device = torch.device(device)
        self.dtype = dtype
        self.text_device = torch.device(text_device) if text_device is not None else self.device
        network = getattr(pipe, self.NETWORK)
        if place_network is not None:
            place_network(network.eval(), device, dtype)
        else:
            setattr(pipe, self.NETWORK, place_module(network, device, dtype))
        for component in self.TEXT:
            module = getattr(pipe, component, None)
            if module is not None:
                setattr(pipe, component, place_module(module, self.text_device, dtype))
        # a VAE that asks to run in float32 (SDXL's overflows in fp16) keeps float32
        vae_dtype = torch.float32 if getattr(pipe.vae.config, "force_upcast", False) else dtype
        pipe.vae = place_module(pipe.vae, device, vae_dtype)
        self.vae = pipe.vae
        self.network = getattr(pipe, self.NETWORK)
        # the native size: the pipeline's default latent size (Flux's transformer has no sample_size of its own)
        latent = getattr(pipe, "default_sample_size", None) or self.network.config.sample_size
        self.resolution = resolution or latent * vae_downsampling(self.vae)
        for tok in ("tokenizer", "tokenizer_2", "tokenizer_3"):
            t = getattr(pipe, tok, None)
            if t is not None and getattr(t, "vocab_size", 0) < 16:
                raise ValueError(f"{tok} has a vocabulary of {getattr(t, 'vocab_size', 0)} tokens, so it did not load "
                                 "(transformers can return a placeholder when a hub tokenizer is unreachable). Point "
                                 f"at a folder that holds {tok}/ files.")
        self._released = False
        self.owns_pipeline = True  # from_pipe says otherwise: then nothing of the caller's pipeline is released

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device="cpu", dtype=torch.float32, hub: HubOptions | None = None,
                        **options):
        """Load from a diffusers pipeline folder or a cached hub id (never downloads), in ``dtype`` from the start
        (diffusers' ``dtype=``: no float32 copy first); ``hub``: variant, revision, cache_dir. ``options`` go to the
        adapter, except components set to None (``text_encoder_3=None, tokenizer_3=None`` drops SD 3's T5), which
        go to diffusers."""
        import diffusers

        hub = hub or HubOptions()
        folder = resolve_pretrained(name_or_path, subfolders=(cls.NETWORK, "vae", "scheduler"), hub=hub)
        dropped = {k: None for k, v in list(options.items()) if v is None and k.startswith(("text_encoder", "tokenizer"))}
        for k in dropped:
            options.pop(k)
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), **hub.loading(dtype), **dropped)
        return cls(pipe, device=device, dtype=dtype, **options)

    @classmethod
    def from_pipe(cls, pipe, *, device=None, dtype=None, take_ownership: bool = False, **options):
        """Wrap a pipeline already in memory (its components are used, not copied); device and dtype default
        to the denoiser's. The pipeline stays yours: a device or dtype that would move or cast its modules is
        refused unless ``take_ownership``, and ``release_text_encoders`` leaves its encoders in place."""
        network = getattr(pipe, cls.NETWORK)
        modules = {name: getattr(pipe, name, None) for name in (cls.NETWORK, "vae", *cls.TEXT)}
        check_borrowed(modules, device, dtype, take_ownership=take_ownership)
        adapter = cls(pipe, device=device or network.device, dtype=dtype or network.dtype, **options)
        adapter.owns_pipeline = take_ownership
        return adapter

    def release_text_encoders(self) -> None:
        """Free the text encoders (SD 3's T5 alone is 4.7 B parameters) once every candidate is embedded; a
        later ``embed`` raises. A pipeline the caller passed to ``from_pipe`` keeps its encoders (they are the
        caller's; nothing is freed) unless it was handed over with ``take_ownership``."""
        if self.owns_pipeline:
            for name in self.TEXT:
                if getattr(self.pipe, name, None) is not None:
                    setattr(self.pipe, name, None)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self._released = True

    def _check_text_encoders(self) -> None:
        if self._released:
            raise RuntimeError("the text encoders were released after embedding the candidates; load the adapter "
                               "again to embed new prompts.")

    def _check_prompts(self, conditions) -> list[str]:
        if not all(isinstance(c, str) for c in conditions):
            raise TypeError(f"{type(self).__name__} conditions are prompts (str); build them with "
                            "evaluation.datasets.dataset_info(name).prompts().")
        self._check_text_encoders()
        return list(conditions)
