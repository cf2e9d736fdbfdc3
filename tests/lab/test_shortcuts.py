import json

import numpy as np
import pytest

from dcanalysis import SequentialTest
from dcanalysis.lab import shortcuts
from dcanalysis.lab.shortcut_data import conflict_test_set
from dcanalysis.lab.train import TrainConfig, train


def _set(n=200):
    rng = np.random.default_rng(0)
    return conflict_test_set(np.zeros((n, 28, 28), np.uint8), rng.integers(0, 10, n), seed=0)


def test_a_model_that_reads_only_the_cue_fails_every_conflicting_group_and_one_that_reads_the_object_none():
    d = _set()
    cue = shortcuts.group_accuracy(d["slots"], d["labels"], d["aligned"], d["slots"])
    assert cue["aligned"]["accuracy"] == 1 and cue["conflicting"]["accuracy"] == 0
    assert cue["average"]["accuracy"] == 0.5 and cue["worst_group"]["accuracy"] == 0
    assert not cue["worst_group"]["aligned"] and cue["cue_followed"]["share"] == 1
    assert len(cue["groups"]) == 20 and sum(g["n"] for g in cue["groups"]) == 400
    obj = shortcuts.group_accuracy(d["labels"], d["labels"], d["aligned"], d["slots"])
    assert obj["worst_group"]["accuracy"] == 1 and obj["cue_followed"]["share"] == 0
    lo, hi = obj["cue_followed"]["ci95"]
    assert lo == 0 and 0 < hi < 0.05


def test_the_job_trains_and_scores_a_cued_model_resumes_and_refuses_other_settings(tmp_path, capsys):
    train(TrainConfig(model="cnn", dataset="mnist", steps=2, batch_size=4, cue_strength=0.99),
          shortcuts.model_folder(tmp_path / "m", "mnist", "cnn", 0.99), device="cpu")
    args = ["--models", str(tmp_path / "m"), "--strengths", "0.99", "--n-images", "4", "--device", "cpu",
            "--out", str(tmp_path / "r")]
    shortcuts.main(args)
    out = capsys.readouterr().out
    assert "cue=0.99 unet: no model at" in out and "cue=0.99 cnn: aligned" in out
    path = tmp_path / "r" / "mnist_shortcuts.json"
    stored = json.loads(path.read_text())
    (entry,) = stored["entries"].values()
    assert entry["steps"] == 2 and entry["aligned"]["n"] == entry["conflicting"]["n"] == 4
    shortcuts.main(args)  # finished entries are skipped, not recomputed
    assert json.loads(path.read_text())["entries"] == stored["entries"]
    with pytest.raises(SystemExit, match="n_images"):
        shortcuts.main([*args[:5], "5", *args[6:]])


def test_the_diffusion_classifier_of_a_cued_unet_scores_the_conflict_set(tmp_path):
    folder = shortcuts.model_folder(tmp_path, "mnist", "unet", 0.95)
    train(TrainConfig(model="unet-small", dataset="mnist", steps=2, batch_size=4, cue_strength=0.95), folder,
          device="cpu")
    d = _set(2)
    pred, evals = shortcuts.predictions("unet", folder, d["images"], device="cpu", seed=0, compile_model=False,
                                        policy=SequentialTest(step=2, min_trials=2, max_trials=4))
    assert pred.shape == (4,) and set(pred) <= set(range(10)) and 20 <= evals <= 40
