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


def test_the_error_ablation_runs_each_loss_under_the_same_noise_and_can_leave_out_the_baselines(tmp_path):
    import numpy as np

    from dcanalysis.evaluation.run_store import load_packed_tables, read_manifest
    from dcanalysis.evaluation.runs import consolidate_tables

    evaluate.main(["--dataset", "fashion_mnist", "--out", str(tmp_path), "--phases", "errors", "--errors", "l2", "l1",
                   "--n-strategy", "3", "--trials", "2", "--device", "cpu", "--no-baselines"])
    s = json.loads((tmp_path / "fashion_mnist_summary.json").read_text())
    assert s["baselines"] == {} and set(s["diffusion"]) == {"error_l2", "error_l1"}
    assert s["diffusion"]["error_l1"]["error"] == "l1" and s["diffusion"]["error_l1"]["n"] == 3
    l2, l1 = (read_manifest(tmp_path / f"fashion_mnist_error_{e}")["settings"] for e in ("l2", "l1"))
    assert l2["classifier"]["error"] == "l2" and l1["classifier"]["error"] == "l1"
    assert l2["timesteps"] == l1["timesteps"] and l2["classifier"]["seed"] == l1["classifier"]["seed"]
    runs = [tmp_path / f"fashion_mnist_error_{e}" for e in ("l2", "l1")]
    for run in runs:
        consolidate_tables(run)
    sq, ab = (np.stack([t.astype(np.float64) for _, t in sorted(load_packed_tables(run).items())]) for run in runs)
    # the same network outputs under the same noise, two distances: mean |d| <= sqrt(mean d^2) (Jensen) for every
    # (image, class, trial), with equality only for a constant |d|
    assert sq.shape == ab.shape == (3, 10, 2)
    assert (ab <= np.sqrt(sq) * (1 + 2e-3)).all() and not np.allclose(ab, np.sqrt(sq), rtol=1e-2)
