from dcanalysis.estimators import interval_order
from dcanalysis.lab.shortcuts import claim_verdicts, result_rows


def test_interval_order_needs_the_intervals_apart():
    assert interval_order((0.6, 0.7), (0.4, 0.5)) == "above"
    assert interval_order((0.1, 0.2), (0.4, 0.5)) == "below"
    assert interval_order((0.45, 0.7), (0.4, 0.5)) == "overlap"


def _entry(model, strength, worst, ci):
    r = {"n": 50, "accuracy": worst, "ci95": ci}
    return {"strength": strength, "model": model, "steps": 10, "aligned": r, "conflicting": r, "average": r,
            "worst_group": {**r, "class": 3, "aligned": False}, "cue_followed": {"n": 50, "share": 0.1, "ci95": [0, 0.2]}}


def test_the_claim_holds_fails_or_is_not_decided_per_baseline_and_strength():
    result = {"entries": {"a": _entry("unet", 0.99, 0.8, [0.7, 0.9]), "b": _entry("cnn", 0.99, 0.5, [0.4, 0.6]),
                          "c": _entry("vit", 0.99, 0.85, [0.75, 0.95]), "d": _entry("unet", 0.95, 0.2, [0.1, 0.3]),
                          "e": _entry("resnet", 0.95, 0.9, [0.8, 0.95])}}
    rows = result_rows(result)
    assert {r["measure"] for r in rows} == {"aligned", "conflicting", "average", "worst group", "cue followed"}
    low, high = claim_verdicts(rows)
    assert low.startswith("cue strength 0.95, worst group: Diffusion Classifier 20.0 %") and "vs ResNet 90.0 %: fails" in low
    assert "vs CNN 50.0 %: holds" in high and "vs ViT 85.0 %: not decided" in high
