import pytest
from PIL import Image

from dcanalysis.cli import main, parse_schedule


def test_classify_eval_report(tmp_path, capsys):
    from dcanalysis.lab.data import load_lab_dataset

    digit = load_lab_dataset("mnist", test_only=True).test_images[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    main(["classify", str(tmp_path / "digit.png"), "--model", "mnist_unet", "--schedule", "exhaustive_100",
          "--batch-size", "500", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "prediction: 7" in out and "1000 network evaluations" in out
    main(["eval", "--model", "mnist_unet", "--dataset", "mnist", "--schedule", "5:3,10:1", "--n-images", "3",
          "--out", str(tmp_path / "run"), "--device", "cpu"])
    main(["report", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "on 3 images" in out and "class 7" in out


def test_schedule_syntax():
    assert parse_schedule("25:5,250:1").evaluations(37) == 2050
    with pytest.raises(SystemExit, match="stages like"):
        parse_schedule("25-5")


def test_missing_image_folder_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="--images is required"):
        main(["eval", "--model", "mnist_unet", "--dataset", "pets", "--out", str(tmp_path), "--device", "cpu"])


def test_compile_flag_compiles_the_network_once_and_pads_batches(tmp_path, monkeypatch, capsys):
    import torch

    from dcanalysis.lab.data import load_lab_dataset

    from dcanalysis import cli

    seen, built = [], []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)  # eager stand-in
    build = cli.build_classifier
    monkeypatch.setattr(cli, "build_classifier", lambda a: built.append(build(a)) or built[-1])
    Image.fromarray(load_lab_dataset("mnist", test_only=True).test_images[0]).save(tmp_path / "digit.png")
    main(["classify", str(tmp_path / "digit.png"), "--model", "mnist_unet", "--schedule", "3:2,4:1",
          "--batch-size", "7", "--device", "cpu", "--compile"])
    out = capsys.readouterr().out
    # 3 trials x 10 classes, then 1 more trial x 2 (cumulative 4): 30 + 2 evaluations in batches of 7, the last
    # batch of each stage padded, the padding's errors dropped
    assert len(seen) == 1 and seen[0]["dynamic"] is False and built[0].config.static_shapes
    assert "prediction: 7" in out and "32 network evaluations" in out


def test_share_prefix_is_refused_for_class_conditional_models(tmp_path):
    with pytest.raises(SystemExit, match="no part of it can be shared.*drop the flag"):
        main(["classify", str(tmp_path / "x.png"), "--model", "mnist_unet", "--device", "cpu", "--share-prefix"])


def test_share_prefix_reaches_the_stable_diffusion_adapter(tmp_path):
    import torch
    from tiny_models import save_sd_folder, tiny_sd_components

    from dcanalysis.cli import load_adapter

    folder = save_sd_folder(tiny_sd_components(tmp_path), tmp_path / "pipeline")
    assert load_adapter(str(folder), device="cpu", dtype=torch.float32).prefix is None
    assert load_adapter(str(folder), device="cpu", dtype=torch.float32, share_prefix=True).prefix is not None
