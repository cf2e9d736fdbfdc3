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
