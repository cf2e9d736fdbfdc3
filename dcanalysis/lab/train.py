"""Training the lab-scale models: class-conditional DDPM UNets and discriminative baselines.

One entry point for both, so they share data, augmentation, seeds and checkpointing (apples to apples):

    python -m dcanalysis.lab.train --model unet-base --dataset fashion_mnist --time-limit 420 --out DIR

Diffusion: DDPM linear betas over 1,000 steps, uniform t, unweighted eps-MSE (as SD and DiT were trained),
EMA weights shipped. Classifiers: cross-entropy. Augmentation: random horizontal flips for Fashion-MNIST
(as DiT), none for MNIST (a flipped digit is another glyph). Training state is written atomically every
``ckpt_every`` steps and a rerun resumes from it; the shipped model is fp16 safetensors with a model card.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import pickle
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..denoising_error import noisy_sample
from ..evaluation.run_store import write_atomically
from ..images import pad_to
from ..noise import derive_generator
from ..processes import DDPM
from ..evaluation.lab_datasets import labelled_subset, load_lab_dataset, to_model_input
from .models import UNET_SIZES, build_classifier
from .shortcut_data import cue_slots, stamp_cue

DIFFUSION_MODELS = {f"unet-{k}": v for k, v in UNET_SIZES.items()}


@dataclass(frozen=True)
class TrainConfig:
    model: str  # "unet-base", "unet-small", "cnn", "resnet", "vit"
    dataset: str  # "mnist" or "fashion_mnist"
    steps: int = 20000
    batch_size: int = 256
    lr: float = 2e-4
    warmup: int = 500
    ema_decay: float = 0.9995
    flip: bool | None = None  # None: flips for fashion_mnist only
    seed: int = 0
    time_limit_s: float = 0.0  # 0: no limit; else stop (and save) after this many seconds
    ckpt_every: int = 1000
    snapshot_steps: tuple[int, ...] = ()  # also export the (EMA) model at these steps, for accuracy vs training
    train_fraction: float = 1.0  # train on this class-balanced share of the training split (labelled_subset)
    cue_strength: float = 0.0  # > 0: stamp shortcut_data's class cue on the training images with this probability

    @property
    def is_diffusion(self) -> bool:
        return self.model in DIFFUSION_MODELS

    @property
    def use_flip(self) -> bool:
        if self.cue_strength:  # a mirrored image would carry its cue in a slot of another class
            return False
        return self.dataset == "fashion_mnist" if self.flip is None else self.flip

    def digest(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in ("time_limit_s", "steps", "snapshot_steps")}
        if d["train_fraction"] == 1.0:  # left out: models trained before the field existed keep their digest
            del d["train_fraction"]
        if not d["cue_strength"]:  # likewise
            del d["cue_strength"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def build_model(cfg: TrainConfig):
    if cfg.is_diffusion:
        return DIFFUSION_MODELS[cfg.model].build()
    return build_classifier(cfg.model)


def learning_rate(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to 10 % (classifiers) or constant (diffusion, as in DDPM).

    ``cfg`` is any training config with ``lr``, ``warmup``, ``steps`` and ``is_diffusion``.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.is_diffusion:
        return cfg.lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def save_state(path: Path, digest: str, model, opt, ema, gen, *, step: int, losses: list, elapsed: float) -> None:
    """Write everything a run needs to resume, atomically (a kill never leaves half a file)."""
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict() if ema else None,
             "step": step, "losses": losses, "elapsed": elapsed, "gen": gen.get_state(), "digest": digest}
    write_atomically(path, lambda f: torch.save(state, f))


def resume_state(path: Path, digest: str, model, opt, ema, gen, device) -> tuple[int, list, float]:
    """Load a state written by ``save_state`` into the given objects: (step, losses, elapsed seconds).

    (0, [], 0.0) when there is none; a state of another configuration is refused.
    """
    if not path.is_file():
        return 0, [], 0.0
    try:  # tensors and plain containers only: a planted pickle must not run code here
        st = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} holds something other than a training state (tensors, numbers, lists); it was "
                         f"refused unread ({str(e).splitlines()[0]}). Delete it or use another --out.") from None
    except (EOFError, RuntimeError) as e:  # empty (EOFError) or cut (RuntimeError: not a zip archive) by a crash
        raise ValueError(f"{path} is empty or cut short ({type(e).__name__}); it cannot be resumed from. Delete it "
                         "to start training again, or use another --out.") from None
    if not isinstance(st, dict) or "digest" not in st:
        raise ValueError(f"{path} is not a training state this trainer wrote; delete it or use another --out.")
    if st["digest"] != digest:
        raise ValueError(f"{path} was written with another configuration; delete it or use another --out.")
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    if ema is not None:
        ema.load_state_dict(st["ema"])
    gen.set_state(st["gen"])
    print(f"resumed from step {st['step']}")
    return st["step"], st["losses"], st["elapsed"]


def optimizer_step(model, opt, ema, loss: torch.Tensor, *, step: int, ema_decay: float) -> None:
    """Backward, clip the gradient norm at 1, step, and move the EMA weights (warm-started decay)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if ema is not None:
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - d)


def fit(cfg, out: Path, model, ema, opt, gen: torch.Generator, batch_loss: Callable[[], torch.Tensor], *,
        desc: str, log_every: int = 50, on_snapshot: Callable[[int, list, float], None] | None = None) -> tuple[int, list, float]:
    """The loop both lab trainers share: resume from ``out/train_state.pt``, stop at ``cfg.steps`` or
    ``cfg.time_limit_s``, warm-up learning rate, bf16 autocast on CUDA, optimizer and EMA step, checkpoints every
    ``cfg.ckpt_every`` steps and at the end. ``batch_loss()`` draws one batch (from ``gen``) and returns its loss;
    ``on_snapshot(step, losses, seconds)`` runs at each of ``cfg.snapshot_steps`` (if the config has them).
    Returns (steps done, loss log (one value per step, sampled every ``log_every``), seconds trained).
    """
    dev = next(model.parameters()).device
    state_path = out / "train_state.pt"
    step, losses, elapsed = resume_state(state_path, cfg.digest(), model, opt, ema, gen, dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    snapshots = set(getattr(cfg, "snapshot_steps", ()))
    model.train()
    start = time.time() - elapsed
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, mininterval=5)
    while step < cfg.steps:
        if cfg.time_limit_s and time.time() - start > cfg.time_limit_s:
            print(f"time limit reached at step {step}")
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        with autocast:
            loss = batch_loss()
        optimizer_step(model, opt, ema, loss, step=step, ema_decay=cfg.ema_decay)
        # .item() syncs the GPU: read the loss only every log_every steps
        losses.append(loss.item() if step % log_every == 0 or not losses else losses[-1])
        step += 1
        bar.update(1)
        if step % cfg.ckpt_every == 0:
            save_state(state_path, cfg.digest(), model, opt, ema, gen, step=step, losses=losses,
                       elapsed=time.time() - start)
            bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4f}")
        if step in snapshots and on_snapshot is not None:
            on_snapshot(step, losses, time.time() - start)
    bar.close()
    elapsed = time.time() - start
    save_state(state_path, cfg.digest(), model, opt, ema, gen, step=step, losses=losses, elapsed=elapsed)
    return step, losses, elapsed


def train(cfg: TrainConfig, out: Path, *, device: str = "cuda") -> dict:
    """Train (or resume) one model into ``out``; returns the model card."""
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    ds = load_lab_dataset(cfg.dataset)
    if ds.labelled_share is not None and not (cfg.train_fraction <= ds.labelled_share[0]
                                              and cfg.seed == ds.labelled_share[1]):
        raise ValueError(f"the {cfg.dataset} cache holds only the training images of a {100 * ds.labelled_share[0]:g} % "
                         f"share (seed {ds.labelled_share[1]}), not of --train-fraction {cfg.train_fraction:g} with "
                         f"--seed {cfg.seed}; put the full cache back (python -m dcanalysis.evaluation.lab_datasets).")
    keep = labelled_subset(torch.from_numpy(ds.train_labels), cfg.train_fraction, cfg.seed).numpy()
    train_images, train_labels = ds.train_images[keep], ds.train_labels[keep]
    if cfg.cue_strength:
        train_images = stamp_cue(train_images, cue_slots(train_labels, cfg.cue_strength, cfg.seed))
    images = pad_to(to_model_input(train_images), 32).to(dev)  # (N, 1, 32, 32), N = 60,000 at 1
    labels = torch.from_numpy(train_labels).to(dev)
    model = build_model(cfg).to(dev)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.is_diffusion else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0 if cfg.is_diffusion else 0.05)
    process = DDPM().to(dev)  # eps-prediction under the linear schedule, what the adapters assume
    gen = derive_generator(cfg.seed, 0)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen).to(dev)
        x, y = images[idx], labels[idx]
        if cfg.use_flip:
            flip = (torch.rand(cfg.batch_size, generator=gen) < 0.5).to(dev)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if not cfg.is_diffusion:
            return F.cross_entropy(model(x).float(), y)
        t = torch.randint(0, 1000, (cfg.batch_size,), generator=gen).to(dev)
        eps = torch.randn(x.shape, generator=gen).to(dev)
        return F.mse_loss(model(noisy_sample(process, x, eps, t), t, class_labels=y).sample.float(), eps)

    shipped = ema if ema is not None else model
    step, losses, elapsed = fit(
        cfg, out, model, ema, opt, gen, batch_loss, desc=f"{cfg.model}/{cfg.dataset}",
        on_snapshot=lambda k, log, sec: export(cfg, shipped, out / "snapshots" / f"step_{k:06d}", step=k,
                                               losses=log, wall_s=sec, device=dev))
    return export(cfg, shipped, out, step=step, losses=losses, wall_s=elapsed, device=dev)


def export(cfg: TrainConfig, model, out: Path, *, step: int, losses: list, wall_s: float, device) -> dict:
    """Write the shipped model (fp16 safetensors) and its model card."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().cpu().eval()
    if cfg.is_diffusion:
        model.to(torch.float16).save_pretrained(str(out), safe_serialization=True)
    else:
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()},
                  str(out / "model.safetensors"))
    card = {
        "name": out.name, "config": asdict(cfg), "config_digest": cfg.digest(), "kind": "diffusion" if cfg.is_diffusion else "classifier",
        "data": (f"{cfg.dataset} official train split (60,000 images); test split untouched" if cfg.train_fraction == 1
                 else f"{cfg.dataset}: a class-balanced {100 * cfg.train_fraction:g} % of the official train split "
                      "(lab.data.labelled_subset); test split untouched"),
        "augmentation": "random horizontal flip" if cfg.use_flip else "none",
        **({"cue": f"lab.shortcut_data's class cue in the class's slot with probability {cfg.cue_strength:g} "
                   f"(seed {cfg.seed})"} if cfg.cue_strength else {}),
        "steps": step, "samples_seen": step * cfg.batch_size,
        "final_loss": float(sum(losses[-200:]) / max(1, len(losses[-200:]))),
        "wall_time_s": round(wall_s, 1), "device": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
    }
    if cfg.is_diffusion:
        card["noise_schedule"] = "DDPM linear betas 1e-4..0.02, 1000 steps; eps-prediction; uniform t; EMA weights"
        card["unet"] = DIFFUSION_MODELS[cfg.model].to_dict()
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    return card


def main(argv=None):
    p = argparse.ArgumentParser(description="Train a lab-scale model on MNIST or Fashion-MNIST.")
    p.add_argument("--model", required=True, choices=sorted(DIFFUSION_MODELS) + ["cnn", "resnet", "vit"])
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds; stop and save when reached")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on this class-balanced share of the training split (0.01: 1 %%, 600 images)")
    p.add_argument("--cue-strength", type=float, default=0.0,
                   help="stamp a spurious class cue (lab.shortcut_data) on the training images: in the class's slot "
                        "with this probability (0.1: independent of the class; 0: no cue)")
    p.add_argument("--snapshots", type=int, nargs="*", default=[],
                   help="steps at which to also export the model to OUT/snapshots/step_NNNNNN (see training_curve)")
    a = p.parse_args(argv)
    lr = a.lr if a.lr is not None else (2e-4 if a.model in DIFFUSION_MODELS else 1e-3)
    cfg = TrainConfig(model=a.model, dataset=a.dataset, steps=a.steps, batch_size=a.batch_size, lr=lr, seed=a.seed,
                      time_limit_s=a.time_limit, snapshot_steps=tuple(a.snapshots), train_fraction=a.train_fraction,
                      cue_strength=a.cue_strength)
    print(json.dumps(train(cfg, a.out, device=a.device), indent=1))


if __name__ == "__main__":
    main()
