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
