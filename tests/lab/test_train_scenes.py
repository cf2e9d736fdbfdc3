import json

import numpy as np
import torch

from dcanalysis.lab import train_scenes as T
from dcanalysis.lab.registry import load_scene_clip, load_scene_diffusion
from tiny_models import tiny_caption_bank


def test_contrastive_loss_counts_repeated_captions_as_positives():
    ids = torch.tensor([0, 0, 1])
    same = (ids[:, None] == ids[None]).float()
    good = T.contrastive_loss(10 * same, ids)  # an image scores both copies of its caption high
    diag_only = T.contrastive_loss(10 * torch.eye(3), ids)
    assert good < diag_only
    assert torch.isclose(T.contrastive_loss(10 * torch.eye(3), torch.arange(3)), torch.tensor(0.0), atol=1e-3)


def test_render_pool_is_the_same_for_any_worker_count():
    a, ca = T.render_pool(30, seed=1, workers=1, chunk=10)
    b, cb = T.render_pool(30, seed=1, workers=2, chunk=10)
    assert np.array_equal(a, b) and ca == cb and a.shape == (30, 32, 32, 3)


def test_training_resumes_and_exports_loadable_models(tmp_path, capsys):
    bank = tiny_caption_bank()
    bank.save(tmp_path / "bank.safetensors")
    (tmp_path / "scenes_text").mkdir()
    bank.save(tmp_path / "scenes_text" / "caption_bank.safetensors")
    cfg = T.SceneTrainConfig(model="unet-pilot", steps=2, batch_size=4, pool_size=12, ckpt_every=1)
    card = T.train(cfg, tmp_path / "scenes_unet", bank, device="cpu")
    assert card["steps"] == 2 and card["kind"] == "text-diffusion" and np.isfinite(card["final_loss"])
    card = T.train(T.SceneTrainConfig(**{**cfg.__dict__, "steps": 3}), tmp_path / "scenes_unet", bank, device="cpu")
    assert "resumed from step 2" in capsys.readouterr().out and card["steps"] == 3
    T.train(T.SceneTrainConfig(model="clip", steps=2, batch_size=4, pool_size=12), tmp_path / "scenes_clip", bank,
            device="cpu")
    adapter = load_scene_diffusion(root=tmp_path)
    clip, _ = load_scene_clip(root=tmp_path)
    assert adapter.sample_size == 32 and not clip.training
    assert "held out" in json.loads((tmp_path / "scenes_unet" / "model_card.json").read_text())["data"]
