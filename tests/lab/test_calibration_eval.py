import json

import pytest

from dcanalysis.lab.calibration_eval import MEAN_ERROR_SOFTMAX, diffusion_rows
from dcanalysis.paths import RESULTS_DIR


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_the_committed_calibration_rows_are_recomputed_from_the_stored_tables(dataset):
    committed = json.loads((RESULTS_DIR / "lab" / "calibration" / f"{dataset}.json").read_text())
    rows, _, (fit, ev), temperature, weights, posteriors = diffusion_rows(dataset)
    assert not (fit & ev).any() and fit.sum() == ev.sum() == 500
    assert temperature == pytest.approx(committed["diffusion_temperature"], rel=1e-6)
    assert weights.tolist() == pytest.approx(committed["timestep_weights"], rel=1e-4)
    ours = {r["method"]: r for r in rows}
    theirs = {r["method"]: r for r in committed["rows"] if r["set"] == "test" and r["model"] == "Diffusion Classifier"}
    assert ours.keys() == theirs.keys() == posteriors.keys()
    for m in ours:
        for k in ("accuracy", "nll", "ece_width", "ece_mass", "aurc", "brier"):
            assert ours[m][k] == pytest.approx(theirs[m][k], rel=1e-4, abs=1e-6), (m, k)
    paper, fitted = ours[MEAN_ERROR_SOFTMAX], ours["fitted temperature"]
    assert paper["nll"] > 2.2 and fitted["nll"] < paper["nll"] / 4  # near uniform, and fixed by one number


def test_the_books_calibration_tables_name_their_measures_models_and_sets():
    from dcanalysis.lab.calibration_eval import shifted_ece_frame, summary_frame

    row = {"model": "resnet", "method": "raw softmax", "accuracy": 0.9, "nll": 0.31234, "brier": 0.1,
           "ece_width": 0.05, "ece_mass": 0.04, "aurc": 0.01, "mean_confidence": 0.93}
    table = summary_frame([row])
    assert table.loc[("ResNet", "raw softmax"), "ECE, equal-width bins (%)"] == 5.0
    assert table.loc[("ResNet", "raw softmax"), "NLL (nats)"] == 0.3123
    shifted = shifted_ece_frame([dict(row, set="jpeg_s3"), dict(row, set="jpeg_s3", model="Diffusion Classifier",
                                                                method="fitted temperature")])
    assert list(shifted.index) == ["jpeg (severity 3)"]
    assert shifted.columns[0] == ("Diffusion Classifier", "fitted temperature")
