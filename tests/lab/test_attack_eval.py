import json

import pytest

from dcanalysis.lab import attack_eval

ARGS = ["--dataset", "mnist", "--n-images", "2", "--eps", "1.0", "--steps", "1", "--eot", "1", "--trials", "1",
        "--check-eps", "1.0", "--device", "cpu"]


def test_every_entry_is_written_and_a_rerun_skips_them_but_other_settings_are_refused(tmp_path):
    attack_eval.main(ARGS + ["--out", str(tmp_path)])
    r = json.loads((tmp_path / "mnist_attacks.json").read_text())
    assert set(r["entries"]) == {"eps=0 steps=1", "eps=1 steps=1", "eps=1 steps=2"}
    entry = r["entries"]["eps=1 steps=1"]
    assert set(entry["accuracy"]) == {"Diffusion Classifier", "CNN", "ResNet", "ViT"}
    assert "Diffusion Classifier on the ResNet's images" in entry["transfer"]
    # a budget of 1 allows any image: one step of PGD from a random start already fools the CNN on both images
    assert entry["accuracy"]["CNN"]["accuracy"] == 0.0
    before = (tmp_path / "mnist_attacks.json").read_bytes()
    attack_eval.main(ARGS + ["--out", str(tmp_path)])
    assert json.loads((tmp_path / "mnist_attacks.json").read_bytes())["entries"] == r["entries"]
    with pytest.raises(SystemExit, match="other settings.*steps"):
        attack_eval.main(ARGS[:6] + ["2"] + ARGS[7:] + ["--out", str(tmp_path)])
    assert (tmp_path / "mnist_attacks.json").read_bytes() == before
