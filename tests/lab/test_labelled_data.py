import json

from dcanalysis import SequentialTest
from dcanalysis.lab import labelled_data
from dcanalysis.lab.train import TrainConfig, train
from dcanalysis.paths import MODELS_DIR


def test_a_fraction_is_evaluated_beside_the_shipped_models_and_missing_ones_are_named(tmp_path):
    """A 0.1 % CNN trained here, the shipped 100 % models, three test images: every model gets an accuracy with
    its interval on every set; the fraction's missing UNet and other baselines are listed, not skipped silently."""
    train(TrainConfig(model="cnn", dataset="mnist", steps=2, batch_size=4, train_fraction=0.001),
          labelled_data.model_folder(tmp_path, "mnist", "cnn", 0.001), device="cpu")
    tiny = SequentialTest(step=2, min_trials=2, max_trials=4)  # a CPU's budget; the GPU run uses POLICY
    out = labelled_data.evaluate("mnist", tmp_path, n_images=3, device="cpu", batch=512, fractions=(0.001, 1.0),
                                 policy=tiny, set_names=("test", "gaussian_noise_s3", "sklearn_digits"))
    small, full = out["fractions"]["0.001"], out["fractions"]["1"]
    assert "cnn" in small and "Diffusion Classifier" not in small
    assert any(m.endswith("mnist_unet_0.1pct") for m in small["missing"]) and len(small["missing"]) == 3
    assert full["missing"] == [] and full["Diffusion Classifier"]["steps"] == json.loads(
        (MODELS_DIR / "mnist_unet" / "model_card.json").read_text())["steps"]
    for entry in (small["cnn"], full["Diffusion Classifier"], full["vit"]):
        assert set(entry["sets"]) == {"test", "gaussian_noise_s3", "sklearn_digits"}
        for r in entry["sets"].values():
            assert r["n"] == 3 and 0 <= r["accuracy"] <= 1 and r["ci95"][0] <= r["accuracy"] <= r["ci95"][1]
    assert 20 <= full["Diffusion Classifier"]["sets"]["test"]["evaluations_per_image"] <= 40


def test_a_rerun_adds_to_a_result_of_the_same_settings_and_refuses_one_of_other_settings():
    settings = {"n_images": 500, "seed": 0, "policy": "p", "device": "cpu"}
    fresh = labelled_data.merge_into(None, settings)
    assert fresh == {**settings, "datasets": {}}
    earlier = {**settings, "datasets": {"mnist": {"fractions": {"1": {}}}}}
    assert labelled_data.merge_into(earlier, settings) is earlier
    import pytest
    with pytest.raises(ValueError, match=r"n_images 1000 \(now 500\)"):
        labelled_data.merge_into({**earlier, "n_images": 1000}, settings)


def test_result_rows_are_tidy_and_the_shifted_mean_leaves_out_the_test_split():
    result = {"datasets": {"mnist": {"fractions": {
        "1": {"missing": [], "cnn": {"steps": 4, "sets": {s: {"n": 2, "accuracy": a, "ci95": [0, 1]}
                                                         for s, a in (("test", 1.0), ("a", 0.5), ("b", 0.0))}}},
        "0.01": {"missing": ["x"]}}}}}
    rows = labelled_data.result_rows(result, "mnist")
    assert [(r["labelled"], r["model"], r["set"]) for r in rows] == [(60000, "CNN", s) for s in ("test", "a", "b")]
    assert rows[0]["evaluations_per_image"] == 1.0
    (mean,) = labelled_data.shifted_mean(rows)
    assert mean["accuracy"] == 0.25 and mean["sets"] == 2
    assert labelled_data.result_rows(result, "fashion_mnist") == []


def _rows():
    """Two shares, the Diffusion Classifier and two baselines, on the test split and two shifted sets."""
    acc = {(6000, "Diffusion Classifier"): (0.90, 0.02), (6000, "CNN"): (0.80, 0.02), (6000, "ViT"): (0.89, 0.02),
           (60000, "Diffusion Classifier"): (0.95, 0.01), (60000, "CNN"): (0.99, 0.005), (60000, "ViT"): (0.97, 0.01)}
    rows = []
    for (labelled, model), (a, h) in acc.items():
        for s, shift in (("test", 0.0), ("gaussian_noise_s3", -0.2 if model == "CNN" else -0.1), ("sklearn_digits", -0.3)):
            rows.append({"fraction": labelled / 60000, "labelled": labelled, "model": model, "steps": labelled // 10,
                         "set": s, "n": 1000, "accuracy": a + shift, "ci_lo": a + shift - h, "ci_hi": a + shift + h,
                         "evaluations_per_image": 100.0 if model == "Diffusion Classifier" else 1.0})
    return rows


def test_chapter_12s_tables_and_verdicts_come_from_the_rows():
    rows = _rows()
    test = [r for r in rows if r["set"] == "test"]
    table = labelled_data.by_labelled(test)
    assert list(table.index) == ["Diffusion Classifier", "CNN", "ViT"]  # the rows' order, not alphabetical
    assert list(table.columns) == ["6,000 images", "60,000 images"] and table.loc["CNN", "60,000 images"] == 99.0
    assert labelled_data.by_labelled(rows, "steps", percent=False).loc["ViT", "6,000 images"] == 600
    few, many = labelled_data.verdicts(test)
    # 6,000: the ViT (89 % [87, 91]) is the best baseline and overlaps the Diffusion Classifier's [88, 92]
    assert few.startswith("6,000 labelled images: Diffusion Classifier 90.0 % [88.0, 92.0]")
    assert "best discriminative, ViT: 89.0 % [87.0, 91.0]" in few and few.endswith("+1.0 points, within the intervals of it")
    assert "CNN: 99.0 %" in many and many.endswith("-4.0 points, behind it")
    assert labelled_data.first_share_within_reach(test) == {"CNN": 60000, "ViT": 6000}
    ranking = labelled_data.shifted_ranking(labelled_data.shifted_mean(rows))
    assert ranking[0].startswith("6,000 labelled images, mean over 2 shifted sets, highest first:")
    assert ranking[0].endswith("ViT 69.0 %, CNN 55.0 %") and "Diffusion Classifier 70.0 %" in ranking[0]
    per_set = labelled_data.per_set_table(rows)
    assert per_set.index.names == ["shifted set", "model"] and per_set.loc[("scikit-learn digits", "CNN"), "6,000 images"] == 50.0
    gap = labelled_data.gap_table(rows)
    # Gaussian noise at 60,000: the Diffusion Classifier 85 % against the ViT's 87 %
    assert gap.loc["gaussian noise (severity 3)", "60,000 images"] == -2.0
    assert gap.loc["scikit-learn digits", "6,000 images"] == 1.0
