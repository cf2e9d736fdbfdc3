import json

from dcanalysis.lab import evaluate


def test_lab_evaluation_covers_every_set_and_far_ood(tmp_path):
    evaluate.main(["--dataset", "mnist", "--out", str(tmp_path), "--n-images", "4", "--n-shifted", "3",
                   "--trials", "2", "--device", "cpu"])
    s = json.loads((tmp_path / "mnist_summary.json").read_text())
    assert s["diffusion"]["test"]["n"] == 4 and s["diffusion"]["far_ood"]["n"] == 3
    assert "sklearn_digits" in s["diffusion"] and len(s["baselines"]) == 3
    far = s["far_ood"]
    assert set(far) >= {"Diffusion Classifier", "mnist_cnn", "mnist_resnet", "mnist_vit"}
    assert all(0.0 <= far[m]["auroc"] <= 1.0 and far[m]["n_in"] == 4 and far[m]["n_out"] == 3
               for m in far if isinstance(far[m], dict))
