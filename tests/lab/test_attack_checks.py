from dcanalysis.lab.attack_eval import attack_checks, result_rows


def _entry(eps, steps, dc, cnn, transfer):
    acc = lambda a: {"n": 100, "accuracy": a, "ci95": [max(0, a - 0.05), min(1, a + 0.05)]}  # noqa: E731
    return {"eps": eps, "steps": steps, "accuracy": {"Diffusion Classifier": acc(dc), "CNN": acc(cnn)},
            "transfer": {"Diffusion Classifier on the ResNet's images": acc(transfer),
                         "CNN on the Diffusion Classifier's images": acc(cnn)}}


def _result(entries):
    return {"settings": {"steps": 20, "check_eps": 0.1}, "entries": {str(i): e for i, e in enumerate(entries)}}


def test_a_working_attack_passes_every_check():
    r = _result([_entry(0, 20, 1.0, 1.0, 1.0), _entry(0.1, 20, 0.6, 0.0, 0.9), _entry(1.0, 20, 0.0, 0.0, 0.1),
                 _entry(0.1, 40, 0.58, 0.0, 0.9)])
    dc, cnn = attack_checks(r)
    assert dc == ("Diffusion Classifier: falls with the budget: yes; at budget 1: 0 %; 40 steps at 0.1: 58 % against "
                  "60 % (no gain); white-box at least as strong as transfer: yes")
    assert cnn.startswith("CNN: falls with the budget: yes")
    kinds = {(x["model"], x["attack"]) for x in result_rows(r)}
    assert ("Diffusion Classifier", "transfer from ResNet") in kinds and ("CNN", "transfer from Diffusion Classifier") in kinds


def test_the_signs_of_a_masked_gradient_are_named():
    """Accuracy that rises with the budget, stays up at budget 1, gains from more steps and beats the transfer
    attack's: each check says no."""
    r = _result([_entry(0, 20, 1.0, 1.0, 1.0), _entry(0.1, 20, 0.5, 0.0, 0.3), _entry(0.3, 20, 0.7, 0.0, 0.6),
                 _entry(1.0, 20, 0.4, 0.0, 0.1), _entry(0.1, 40, 0.8, 0.0, 0.3)])
    dc = attack_checks(r)[0]
    assert "falls with the budget: no, rises 0.1 -> 0.3" in dc and "at budget 1: 40 %" in dc
    assert "80 % against 50 % (RISES beyond the interval)" in dc
    assert "white-box at least as strong as transfer: no at 0.1, 0.3, 1" in dc


def test_robustness_verdicts_compare_the_intervals_at_each_budget():
    from dcanalysis.lab.attack_eval import robustness_verdicts

    r = _result([_entry(0, 20, 1.0, 1.0, 1.0), _entry(0.1, 20, 0.6, 0.0, 0.9), _entry(0.3, 20, 0.02, 0.0, 0.1),
                 _entry(0.1, 40, 0.0, 0.0, 0.9)])
    assert robustness_verdicts(result_rows(r), steps=20) == [
        "budget 0.1: Diffusion Classifier 60 % is above CNN (0 %)",
        "budget 0.3: Diffusion Classifier 2 % is overlap CNN (0 %)"]
