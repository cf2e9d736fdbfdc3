"""Training the scene lab's text-conditional diffusion model and its contrastive baseline.

    python -m dcanalysis.lab.train_scenes --model unet-base --time-limit 450 --out DIR   # one H100
    python -m dcanalysis.lab.train_scenes --model clip --steps 3000 --out DIR

Both see the same pre-rendered pool of training scenes (only the 15 seen (colour, shape) pairs; no flips, which
would turn "left of" into its opposite) and the same frozen caption token states (``CaptionBank``).
Diffusion: DDPM linear betas over 1,000 steps, uniform t, unweighted eps-MSE, 10 % of captions dropped to the
null caption (so the model also learns p(x), used to normalise image scores), EMA weights shipped.
Contrastive: symmetric InfoNCE over the batch, with identical captions in a batch counted as positives.
Training state is written atomically and a rerun resumes from it, as in ``dcanalysis.lab.train``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..denoising_error import noisy_sample
from ..noise import derive_generator
from ..processes import DDPM
from . import scenes
from .models import TEXT_UNET_SIZES, SceneCLIP
from .text import NULL_CAPTION, CaptionBank
from .train import fit

MODELS = tuple(f"unet-{k}" for k in TEXT_UNET_SIZES) + ("clip", "clip-pooled")


@dataclass(frozen=True)
class SceneTrainConfig:
    model: str  # "unet-pilot", "unet-base", "clip" or "clip-pooled" (the bag-of-tokens text ablation)
    steps: int = 20000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 300
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    pool_size: int = 60000  # pre-rendered training scenes
    p_single: float = 0.25
    seed: int = 0
    time_limit_s: float = 0.0
    ckpt_every: int = 500

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {MODELS}.")

    @property
    def is_diffusion(self) -> bool:
        return self.model.startswith("unet-")

    def digest(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in ("time_limit_s", "steps")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _render_chunk(args) -> tuple[np.ndarray, list[str]]:
    n, seed, chunk, p_single = args
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, chunk]))
    return scenes.sample_batch(n, rng, "train", p_single)


def render_pool(n: int, seed: int, p_single: float = 0.25, workers: int = 1,
                chunk: int = 2000) -> tuple[np.ndarray, list[str]]:
    """n training scenes: (n, 32, 32, 3) uint8 and captions; identical for any ``workers``."""
    jobs = [(min(chunk, n - i), seed, i // chunk, p_single) for i in range(0, n, chunk)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_render_chunk, jobs))
    else:
        parts = [_render_chunk(j) for j in jobs]
    return np.concatenate([p[0] for p in parts]), [c for p in parts for c in p[1]]


def to_input(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def build_model(cfg: SceneTrainConfig):
    if cfg.is_diffusion:
        return TEXT_UNET_SIZES[cfg.model.split("-", 1)[1]].build()
    return SceneCLIP(text_tower="pooled" if cfg.model == "clip-pooled" else "attention")


def contrastive_loss(logits: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE for (B, B) image-caption logits; captions that repeat in the batch are all positives."""
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())


def train(cfg: SceneTrainConfig, out: Path, bank: CaptionBank, *, device: str = "cuda", workers: int = 1) -> dict:
    """Train (or resume) one model into ``out``; returns the model card."""
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    t0 = time.time()
    pool, captions = render_pool(cfg.pool_size, cfg.seed, cfg.p_single, workers)
    render_s = time.time() - t0
    images = to_input(pool).to(dev)
    cap_ids = torch.tensor([bank.index[c] for c in captions], dtype=torch.long, device=dev)
    hidden, mask = bank.hidden.float().to(dev), bank.mask.to(dev)
    null_id = bank.index[NULL_CAPTION]
    model = build_model(cfg).to(dev)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.is_diffusion else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0 if cfg.is_diffusion else 0.05)
    process = DDPM().to(dev)  # eps-prediction under the linear schedule, what the adapters assume
    gen = derive_generator(cfg.seed, 1)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen).to(dev)
        x, c = images[idx], cap_ids[idx]
        if not cfg.is_diffusion:
            return contrastive_loss(model(x, hidden[c], mask[c]).float(), c)
        drop = (torch.rand(cfg.batch_size, generator=gen) < cfg.caption_dropout).to(dev)
        c = torch.where(drop, torch.full_like(c, null_id), c)
        t = torch.randint(0, 1000, (cfg.batch_size,), generator=gen).to(dev)
        eps = torch.randn(x.shape, generator=gen).to(dev)
        pred = model(noisy_sample(process, x, eps, t), t, encoder_hidden_states=hidden[c],
                     encoder_attention_mask=mask[c]).sample
        return F.mse_loss(pred.float(), eps)

    step, losses, elapsed = fit(cfg, out, model, ema, opt, gen, batch_loss, desc=cfg.model, log_every=25)
    return export(cfg, ema if ema is not None else model, out, step=step, losses=losses, wall_s=elapsed,
                  render_s=render_s, device=dev, text_source=bank.source)


def export(cfg: SceneTrainConfig, model, out: Path, *, step: int, losses: list, wall_s: float, render_s: float,
           device, text_source: str) -> dict:
    """Write the shipped model (fp16 safetensors) and its model card."""
    from safetensors.torch import save_file

    model = copy.deepcopy(model).float().cpu().eval()
    if cfg.is_diffusion:
        model.to(torch.float16).save_pretrained(str(out), safe_serialization=True)
    else:
        save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()},
                  str(out / "model.safetensors"))
    dev = torch.device(device)
    card = {
        "name": out.name, "config": asdict(cfg), "config_digest": cfg.digest(),
        "kind": "text-diffusion" if cfg.is_diffusion else "contrastive",
        "data": (f"{cfg.pool_size} procedural scenes (dcanalysis.lab.scenes, split 'train', seed {cfg.seed}): "
                 f"only the {len(scenes.SEEN_THINGS)} seen (colour, shape) pairs; held out: "
                 + ", ".join(sorted(t.phrase for t in scenes.HELD_OUT))),
        "text_encoder": f"frozen all-MiniLM-L6-v2 token states ({text_source}), via the shipped caption bank",
        "augmentation": "none (a flip would swap 'left of')",
        "steps": step, "samples_seen": step * cfg.batch_size,
        "final_loss": float(sum(losses[-200:]) / max(1, len(losses[-200:]))),
        "wall_time_s": round(wall_s, 1), "render_time_s": round(render_s, 1),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or 'cpu'}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
    }
    if cfg.is_diffusion:
        card["noise_schedule"] = "DDPM linear betas 1e-4..0.02, 1000 steps; eps-prediction; uniform t; EMA weights"
        card["unet"] = TEXT_UNET_SIZES[cfg.model.split("-", 1)[1]].to_dict()
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    return card


def main(argv=None):
    from ..paths import MODELS_DIR

    p = argparse.ArgumentParser(description="Train the scene lab's text-conditional UNet or contrastive baseline.")
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=SceneTrainConfig.steps)
    p.add_argument("--batch-size", type=int, default=SceneTrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=None, help="default 2e-4 (diffusion), 1e-3 (contrastive)")
    p.add_argument("--pool-size", type=int, default=SceneTrainConfig.pool_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds; stop and save when reached")
    p.add_argument("--workers", type=int, default=1, help="processes for rendering the scene pool")
    p.add_argument("--bank", type=Path, default=MODELS_DIR / "scenes_text" / "caption_bank.safetensors")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    lr = a.lr if a.lr is not None else (2e-4 if a.model.startswith("unet-") else 1e-3)
    cfg = SceneTrainConfig(model=a.model, steps=a.steps, batch_size=a.batch_size, lr=lr, pool_size=a.pool_size,
                           seed=a.seed, time_limit_s=a.time_limit)
    print(json.dumps(train(cfg, a.out, CaptionBank.load(a.bank), device=a.device, workers=a.workers), indent=1))


if __name__ == "__main__":
    main()
