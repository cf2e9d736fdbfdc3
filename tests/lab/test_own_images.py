"""dcanalysis.lab.own_images: samples drawn once, reused on a rerun, never mixed with samples drawn otherwise."""
import json
import os

import numpy as np
import pytest
import torch

from dcanalysis.lab import own_images

ARGS = ["--dataset", "mnist", "--per-class", "1", "--samplers", "ddim_3", "--trials", "1", "--device", "cpu"]


def test_a_tiny_run_classifies_its_samples_and_a_rerun_reuses_them(tmp_path):
    own_images.main(ARGS + ["--out", str(tmp_path)])
    s = json.loads((tmp_path / "mnist_own_images.json").read_text())
    entry = s["samplers"]["ddim_3"]
    assert entry["diffusion"]["n"] == 10 and set(entry["baselines"]) == {"mnist_cnn", "mnist_resnet", "mnist_vit"}
    assert entry["sampling_s"] > 0 and entry["steps"] == 3 and entry["eta"] == 0.0
    with np.load(tmp_path / "mnist_ddim_3_samples.npz") as f:
        images, classes = f["images"], f["classes"]
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8 and classes.tolist() == list(range(10))
    before = (tmp_path / "mnist_ddim_3_samples.npz").read_bytes()
    own_images.main(ARGS + ["--out", str(tmp_path)])
    again = json.loads((tmp_path / "mnist_own_images.json").read_text())["samplers"]["ddim_3"]
    assert again["sampling_s"] == 0.0 and again["diffusion"]["accuracy"] == entry["diffusion"]["accuracy"]
    assert (tmp_path / "mnist_ddim_3_samples.npz").read_bytes() == before


def test_samples_drawn_with_another_seed_are_refused_not_overwritten(tmp_path):
    own_images.main(ARGS + ["--out", str(tmp_path)])
    before = (tmp_path / "mnist_ddim_3_samples.npz").read_bytes()
    with pytest.raises(SystemExit, match="holds samples drawn otherwise.*seed"):
        own_images.main(ARGS + ["--out", str(tmp_path), "--seed", "1"])
    assert (tmp_path / "mnist_ddim_3_samples.npz").read_bytes() == before


def test_a_link_or_fifo_in_place_of_the_samples_is_refused(tmp_path):
    target = tmp_path / "elsewhere.npz"
    target.write_bytes(b"keep me")
    (tmp_path / "mnist_ddim_3_samples.npz").symlink_to(target)
    with pytest.raises(SystemExit, match="is not a samples file this job wrote.*symbolic link"):
        own_images.main(ARGS + ["--out", str(tmp_path)])
    assert target.read_bytes() == b"keep me"
    fifo_dir = tmp_path / "f"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "mnist_ddim_3_samples.npz")
    with pytest.raises(SystemExit, match="FIFO"):
        own_images.main(ARGS + ["--out", str(fifo_dir)])


def test_a_bad_sampler_name_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit, match="sampler name 'euler_3' is not ddim_<steps>"):
        own_images.main(["--dataset", "mnist", "--out", str(tmp_path), "--samplers", "euler_3"])


def test_samples_are_cropped_from_the_canvas_and_quantised():
    x = torch.full((2, 1, 32, 32), -1.0)
    x[:, :, 2:30, 2:30] = 1.0
    out = own_images.to_uint8_images(x)
    assert out.shape == (2, 28, 28) and (out == 255).all()
    assert own_images.balanced_classes(2).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2


def test_the_books_own_image_tables_name_samplers_and_star_gaps_whose_intervals_part():
    from dcanalysis.lab.own_images import accuracy_frame, accuracy_rows, gap_lines, per_class_accuracy, sampler_name

    assert sampler_name("ddpm_1000") == "DDPM, 1,000 steps" and sampler_name("odd") == "odd"
    entry = lambda a, lo, hi: {"accuracy": a, "ci95": [lo, hi], "n": 100}  # noqa: E731
    real = {"diffusion": {"test": entry(0.9, 0.85, 0.94)}, "baselines": {"mnist_cnn": {"test": entry(0.99, 0.97, 1.0)}}}
    own = {"samplers": {"ddim_10": {"diffusion": entry(0.88, 0.8, 0.93), "baselines": {"mnist_cnn": entry(0.3, 0.2, 0.4)}}}}
    rows = accuracy_rows(own, real, "mnist")
    assert [(r["model"], r["set"]) for r in rows] == [("Diffusion Classifier", "real test"), ("CNN", "real test"),
                                                      ("Diffusion Classifier", "ddim_10"), ("CNN", "ddim_10")]
    assert accuracy_frame(rows, ["ddim_10"]).loc["CNN", "DDIM, 10 steps"] == "30.0 [20.0, 40.0]"
    lines = gap_lines(rows, ["ddim_10"])
    assert lines[0].endswith("ddim_10 -2.0") and lines[1].endswith("ddim_10 -69.0*")
    records = [{"prediction": 0, "label": 0}, {"prediction": 1, "label": 0}, {"prediction": 1, "label": 1}]
    table = per_class_accuracy(["zero", "one"], records, {"ddim_10": [records[0], records[2]]})
    assert table.loc["zero", "real test"] == 50 and table.loc["one", "real test"] == 100
    assert table.loc["zero", "DDIM, 10 steps"] == 100
