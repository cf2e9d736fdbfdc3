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


def test_a_compiled_evaluation_records_its_engine_and_is_not_mixed_with_an_eager_one(tmp_path, monkeypatch):
    import pytest

    from dcanalysis.evaluation.run_store import ManifestMismatchError, read_manifest

    compiled = []
    monkeypatch.setattr("dcanalysis.engine.compile.compile_adapter", lambda adapter, **kw: compiled.append(kw))
    args = ["--dataset", "mnist", "--out", str(tmp_path), "--n-images", "3", "--trials", "2", "--device", "cpu",
            "--phases", "test", "--images-per-batch", "2", "--batch-size", "8"]
    evaluate.main(args + ["--cuda-graphs"])
    s = json.loads((tmp_path / "mnist_summary.json").read_text())
    assert compiled == [{"cuda_graphs": True, "tune_pointwise": False}]
    assert s["engine"] == {"compile": True, "cuda_graphs": True} and s["diffusion"]["test"]["n"] == 3
    run = read_manifest(tmp_path / "mnist_test")
    assert run["settings"]["engine"] == s["engine"] and run["settings"]["classifier"]["batch_size"] == 8
    with pytest.raises(ManifestMismatchError):  # the same images, eager: another engine's numbers
        evaluate.main(args + ["--no-compile"])
