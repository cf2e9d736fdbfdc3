import json

import pytest

from dcanalysis.lab.train import TrainConfig, train
from dcanalysis.lab.training_curve import evaluate_models, snapshot_dirs


def test_every_snapshot_is_scored_on_the_same_images_and_reruns_resume(tmp_path):
    train(TrainConfig(model="unet-small", dataset="mnist", steps=2, batch_size=4, snapshot_steps=(1, 2)),
          tmp_path / "run", device="cpu")
    folders = snapshot_dirs(tmp_path / "run")
    rows = evaluate_models(folders, "mnist", tmp_path / "curve", n_images=3, trials=2)
    assert [r["steps"] for r in rows] == [1, 2] and all(r["n"] == 3 for r in rows)
    saved = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert saved["rows"] == rows and saved["n_images"] == 3
    records = sorted((tmp_path / "curve").rglob("records-rank0.jsonl"))
    before = [p.read_text() for p in records]
    assert evaluate_models(folders, "mnist", tmp_path / "curve", n_images=3, trials=2) == rows
    assert [p.read_text() for p in records] == before  # finished points are read back, not recomputed


def test_a_run_without_snapshots_says_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="--snapshots"):
        snapshot_dirs(tmp_path)
