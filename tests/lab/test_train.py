import json

import pytest

from dcanalysis.lab.train import TrainConfig, train
from dcanalysis.paths import MODELS_DIR


def test_snapshots_are_exported_without_changing_the_run(tmp_path):
    cfg = TrainConfig(model="unet-small", dataset="mnist", steps=4, batch_size=4, snapshot_steps=(2, 4))
    card = train(cfg, tmp_path / "run", device="cpu")
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert [s.name for s in snaps] == ["step_000002", "step_000004"]
    assert [json.loads((s / "model_card.json").read_text())["steps"] for s in snaps] == [2, 4]
    assert card["steps"] == 4
    # snapshots do not decide the weights, so a run with other snapshots may resume this one
    assert TrainConfig(model="unet-small", dataset="mnist", batch_size=4).digest() == cfg.digest()
    more = train(TrainConfig(model="unet-small", dataset="mnist", steps=6, batch_size=4, snapshot_steps=(6,)),
                 tmp_path / "run", device="cpu")
    assert more["steps"] == 6 and (tmp_path / "run" / "snapshots" / "step_000006").is_dir()


def test_a_changed_config_does_not_resume(tmp_path):
    train(TrainConfig(model="unet-small", dataset="mnist", steps=2, batch_size=4), tmp_path / "run", device="cpu")
    with pytest.raises(ValueError, match="digest|config"):
        train(TrainConfig(model="unet-small", dataset="mnist", steps=3, batch_size=4, lr=1e-3), tmp_path / "run",
              device="cpu")


class _Planted:
    """Unpickling this runs a shell command (what an attacker would plant as train_state.pt)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_the_training_state_is_refused_unrun(tmp_path):
    import torch

    out = tmp_path / "evil"
    out.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"digest": _Planted(marker)}, out / "train_state.pt")
    with pytest.raises(ValueError, match="refused unread"):
        train(TrainConfig(model="unet-small", dataset="mnist", steps=2, batch_size=4), out, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_an_empty_or_cut_training_state_gets_one_line(tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_state.pt").write_bytes(content)
    with pytest.raises(ValueError, match="empty or cut short.*Delete it"):
        train(TrainConfig(model="unet-small", dataset="mnist", steps=2, batch_size=4), out, device="cpu")


def test_a_labelled_subset_is_class_balanced_reproducible_and_its_own_configuration(tmp_path):
    import torch

    from dcanalysis.lab.train import labelled_subset
    from dcanalysis.paths import MODELS_DIR

    labels = torch.arange(10).repeat_interleave(100)
    idx = labelled_subset(labels, 0.05, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [5] * 10
    assert torch.equal(idx, labelled_subset(labels, 0.05, seed=0)) and not torch.equal(idx, labelled_subset(labels, 0.05, seed=1))
    assert labelled_subset(labels, 0.0001, seed=0).numel() == 10  # at least one image of every class
    assert torch.equal(labelled_subset(labels, 1.0, seed=0), torch.arange(1000))
    with pytest.raises(ValueError, match="train_fraction"):
        labelled_subset(labels, 0.0, seed=0)
    # a fraction is another configuration; the shipped models' digests (made before the field) are unchanged
    assert TrainConfig(model="cnn", dataset="mnist", train_fraction=0.1).digest() != TrainConfig(model="cnn", dataset="mnist").digest()
    card = json.loads((MODELS_DIR / "mnist_unet" / "model_card.json").read_text())
    assert TrainConfig(**{**card["config"], "snapshot_steps": tuple(card["config"].get("snapshot_steps", ()))}).digest() == card["config_digest"]
    small = train(TrainConfig(model="cnn", dataset="mnist", steps=2, batch_size=4, train_fraction=0.001),
                  tmp_path / "run", device="cpu")
    assert "0.1 % of the official train split" in small["data"]


def test_a_share_cache_trains_its_share_and_the_shares_nested_in_it_and_refuses_any_other(tmp_path, monkeypatch):
    """``lab.data.save_labelled_share``: the 1 % share is drawn inside the 10 % one (same stream, same order), so a
    10 % cache trains both exactly as the full cache would; a larger share or another seed is refused."""
    import numpy as np
    import torch

    from dcanalysis.evaluation import lab_datasets as data
    from dcanalysis.lab import train as train_module
    from dcanalysis.lab.train import labelled_subset

    labels = torch.arange(10).repeat_interleave(300)
    assert set(labelled_subset(labels, 0.01, 0).tolist()) <= set(labelled_subset(labels, 0.1, 0).tolist())
    full = data.load_lab_dataset("mnist")
    keep = labelled_subset(torch.from_numpy(full.train_labels), 0.1, 0).numpy()
    data.save_labelled_share(full, keep, tmp_path / "mnist.npz", fraction=0.1, seed=0)
    share = data.load_lab_dataset("mnist", cache_dir=tmp_path)
    assert share.labelled_share == (0.1, 0) and full.labelled_share is None
    small = labelled_subset(torch.from_numpy(share.train_labels), 0.01, 0).numpy()
    assert np.array_equal(share.train_images[small], full.train_images[small])
    assert not share.train_images[np.setdiff1d(np.arange(len(full.train_labels)), keep)].any()
    monkeypatch.setattr(train_module, "load_lab_dataset", lambda name: share)
    for fraction, seed in ((0.5, 0), (0.01, 1)):
        with pytest.raises(ValueError, match="holds only the training images of a 10 % share"):
            train(TrainConfig(model="cnn", dataset="mnist", steps=1, batch_size=2, train_fraction=fraction, seed=seed),
                  tmp_path / f"run_{fraction}_{seed}", device="cpu")
    train(TrainConfig(model="cnn", dataset="mnist", steps=1, batch_size=2, train_fraction=0.01), tmp_path / "ok",
          device="cpu")


def test_a_cue_strength_is_its_own_configuration_turns_flips_off_and_is_on_the_card(tmp_path):
    plain = TrainConfig(model="cnn", dataset="fashion_mnist")
    cued = TrainConfig(model="cnn", dataset="fashion_mnist", cue_strength=0.99)
    assert plain.use_flip and not cued.use_flip  # a mirrored cue would sit in another class's slot
    assert cued.digest() != plain.digest() != TrainConfig(model="cnn", dataset="fashion_mnist", cue_strength=0.95).digest()
    # models trained before the field existed keep their digest (the shipped cards record it)
    shipped = json.loads((MODELS_DIR / "mnist_cnn" / "model_card.json").read_text())
    assert TrainConfig(**{**shipped["config"], "cue_strength": 0.0}).digest() == shipped["config_digest"]
    card = train(TrainConfig(model="cnn", dataset="mnist", steps=2, batch_size=4, cue_strength=0.99), tmp_path / "c",
                 device="cpu")
    assert "probability 0.99" in card["cue"] and card["augmentation"] == "none"
