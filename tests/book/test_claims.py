"""The book's prose against what its pages print.

Each test quotes a sentence of a chapter that states a result and checks it against the committed full-profile page
(``book/executed/full``, what the book shows) or against the committed run the page reads. A rerun that changes the
result then fails here instead of leaving the prose behind it wrong. Sentences whose numbers are printed by the page
itself need no test; these are the ones that say *what the numbers show*.
"""
from __future__ import annotations

import json
import re

import pytest

from dcanalysis.book import build
from dcanalysis.paths import RESULTS_DIR

FULL = build.BOOK / "executed" / "full"


def printed(chapter: str) -> str:
    """Everything the committed full page of ``chapter`` printed (stream outputs), in order."""
    nb = json.loads((FULL / f"{chapter}.ipynb").read_text())
    return "".join("".join(o["text"]) for c in nb["cells"] for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")


def floats(pattern: str, text: str) -> list[tuple[float, ...]]:
    """Every match of ``pattern`` in ``text``, its groups as floats; at least one match."""
    found = [tuple(float(g) for g in m) if isinstance(m, tuple) else (float(m),) for m in re.findall(pattern, text)]
    assert found, f"the page no longer prints {pattern!r}"
    return found


def test_chapter_1_disagreements_are_near_ties_and_partly_monte_carlo_noise():
    text = printed("01_generative_classification")
    # "Disagreements sit along the boundary, where the two classes' log-likelihoods are nearly equal"
    (where, grid), = floats(r"gap\|: ([\d.]+) nats where they disagree, ([\d.]+) over the grid", text)
    assert where < grid / 5
    # Solution 1: "Only part of the disagreeing points come back to exact Bayes with four times the trials"
    (wrong, again), = floats(r"(\d+) disagreeing points; with \d+ trials, (\d+) of them agree", text)
    assert 0 < again < wrong


def test_chapter_3_single_timesteps_peak_in_the_middle_and_fade_towards_chance_at_the_end():
    text = printed("03_which_timesteps")
    rows = floats(r"best single t = (\d+) of (\d+)\.\.(\d+) with ([\d.]+)% accuracy; at the largest t ([\d.]+)% "
                  r"\(chance (\d+)%\); all \d+ timesteps averaged: ([\d.]+)%", text)
    assert len(rows) == 2
    for t, lo, hi, best, last, chance, averaged in rows:
        assert lo + (hi - lo) / 5 < t < hi - (hi - lo) / 5  # "the informative timesteps lie in between"
        assert last - chance < best - last  # "falls most of the way to chance"
        assert averaged > best  # "no single t matches the average over many"
    for small, chance, best in floats(r"t = \d+: ([\d.]+)%, chance (\d+)%, best single t ([\d.]+)%", text):
        assert chance < small < best  # Solution 1: "above chance at the smallest t ... and below the best single t"
    for one, two, five, ten, every in floats(r"accuracy: 1: ([\d.]+)%, 2: ([\d.]+)%, 5: ([\d.]+)%, 10: ([\d.]+)%, "
                                             r"\d+: ([\d.]+)%", text):
        assert two < one and ten < every  # Solution 2: the pair at the two ends does worse; all of them do best
    best = [r[3] for r in rows]
    tens = [r[3] for r in floats(r"accuracy: 1: ([\d.]+)%, 2: ([\d.]+)%, 5: ([\d.]+)%, 10: ([\d.]+)%", text)]
    assert all(ten > b for ten, b in zip(tens, best))  # "a handful of evenly spaced timesteps beats the best one"


def test_chapter_4_fixed_sets_lead_at_one_trial_and_spread_strategies_end_above_them():
    text = printed("04_timestep_strategies")
    assert re.search(r"one trial: best fixed_(500|475_500_525) ", text)  # "with one trial a fixed set near t = 500 leads"
    (lowest, budgets), = floats(r"fixed_0_500_999 \(n=\d+\) is the lowest at (\d+) of the (\d+) budgets", text)
    assert lowest == budgets  # "fixed_0_500_999 trails"
    assert re.search(r"the lowest spread strategy \([\d.]+%\) is above the highest fixed set", text)


def test_chapter_6_the_families_part_ways_on_held_out_pairs_in_the_committed_run():
    from dcanalysis.lab import scene_eval

    records = scene_eval.load_scene_run(scene_eval.COMMITTED_RUN)
    rows = {(r["split"], r["model"]): r for r in scene_eval.zero_shot_table(records)}
    # "Both models name the seen (colour, shape) pairs"
    assert all(rows[("test_seen", m)]["accuracy"] > 95 for s, m in rows if s == "test_seen")
    # "the diffusion model names every held-out image, the contrastive baseline none and its pooled-text ablation
    # almost none"
    assert rows[("test_unseen", "Diffusion Classifier")]["accuracy"] == 100
    assert rows[("test_unseen", "contrastive baseline")]["accuracy"] == 0
    assert rows[("test_unseen", "contrastive, pooled text (ablation)")]["accuracy"] < 5
    # "they answer with a *seen* phrase (every answer of the baseline's, all but one of the ablation's)"
    unseen = [r for r in records if r["task"] == "zero_shot" and r["split"] == "test_unseen"]
    held_out = {r["label"] for r in unseen}
    said = {n: sum(r["contrastive"][n] in held_out for r in unseen) for n in unseen[0]["contrastive"]}
    assert said == {"scenes_clip": 0, "scenes_clip_pooled": 1}


def test_chapter_7_images_come_back_under_their_own_condition_and_close_classes_cost_little():
    from dcanalysis.evaluation.analysis import ErrorTables

    text = printed("07_inversion")
    rows = re.findall(r"\n(\S[\w -]*?)\s+([\d.]+) under its own class; closest: ([\w -]+) ([\d.]+), ([\w -]+) ([\d.]+); "
                      r"farthest: ([\w -]+) ([\d.]+)", text)
    assert len(rows) == 8
    # "Under the true class the image comes back almost exactly"
    assert all(float(own) <= 0.005 < float(close) for _, own, _, close, *_ in rows)
    # "a pullover's two closest are a shirt and a coat, and a shirt is also the class the classifier most often puts
    # a pullover in"
    pullover = next(r for r in rows if r[0] == "Pullover")
    assert {pullover[2], pullover[4]} == {"Shirt", "Coat"}
    tables = ErrorTables.load(RESULTS_DIR / "lab" / "fashion_mnist_test")
    predicted = tables.errors.mean(axis=2).argmin(axis=1)
    wrong = predicted[(tables.labels == 2) & (predicted != 2)]  # 2: Pullover, 6: Shirt
    assert (wrong == 6).sum() == max((wrong == k).sum() for k in range(10))
    # scenes: "Every scene comes back under its own caption"; "in this run that is the attribute swap of the first
    # and third scenes, while the second scene was repainted under every twin"
    scenes = floats(r"own caption ([\d.]+), object swap ([\d.]+), attribute swap ([\d.]+), both swap ([\d.]+)", text)
    assert len(scenes) == 3 and all(s[0] == 0 for s in scenes)
    assert [s[2] == 0 for s in scenes] == [True, False, True]
    assert all(e > 0 for e in scenes[1][1:])


def test_chapter_8b_what_holds_across_training_seeds_and_what_moves():
    from dcanalysis.lab import scene_eval

    swaps, zero_shot = scene_eval.seed_tables(scene_eval.load_replicates())
    seeds = {(r["split"], r["model"], r["metric"]): list(r["per_seed"].values())
             for r in [r for r in swaps if r["tag"] == "all"] + [dict(r, metric="zero-shot") for r in zero_shot]}
    sd = {(r["split"], r["model"], r["metric"]): r["sd"] for r in swaps if r["tag"] == "all"}
    dc, base, pooled = "Diffusion Classifier", "contrastive baseline", "contrastive, pooled text (ablation)"
    # "the diffusion model names the held-out (colour, shape) images with each of the three seeds, and the
    # contrastive models answer with a seen phrase almost every time"
    assert seeds[("test_unseen", dc, "zero-shot")] == [100.0] * 3
    assert all(v <= 5 for m in (base, pooled) for v in seeds[("test_unseen", m, "zero-shot")])
    # "The swap text scores stay at or near the ceiling for every model and seed"
    assert all(v >= 95 for (_, _, metric), vs in seeds.items() if metric == "text" for v in vs)
    # "The diffusion model's *raw* image score changes a lot from seed to seed ... Normalising by the null caption
    # removes that confound in every run"
    unseen_image = {m: s for (split, m, metric), s in sd.items() if split == "test_unseen" and metric == "image"}
    assert max(unseen_image, key=unseen_image.get) == dc
    assert all(v >= 95 for v in seeds[("test_unseen", f"{dc}, normalised", "image")])
    # "The pooled-text ablation's held-out image score also varies, the full contrastive baseline's much less"
    assert unseen_image[pooled] > 3 * unseen_image[base]


def test_chapter_12_fewer_labels_help_under_some_shifts_and_the_small_shares_trained_shorter():
    result = json.loads((RESULTS_DIR / "labelled_data" / "labelled_data_h200.json").read_text())
    assert "dataset = \"mnist\"" in "".join(json.loads((build.BOOK / "chapters" / "12_labelled_data.ipynb")
                                                       .read_text())["cells"][1]["source"])  # the page's dataset
    shares = result["datasets"]["mnist"]["fractions"]
    small, full = (shares[s]["Diffusion Classifier"] for s in ("0.01", "1"))
    # "under some shifts it does *better* with fewer labelled images" ... "the shifts that destroy fine detail
    # (noise, blur) then hurt it less"
    better = {s for s in small["sets"] if s != "test" and small["sets"][s]["accuracy"] > full["sets"][s]["accuracy"]}
    assert {"gaussian_noise_s3", "gaussian_blur_s3"} <= better
    # "The 1 % and 10 % UNets trained for fewer steps than the shipped 100 % ones"
    for dataset in result["datasets"].values():
        steps = {s: f["Diffusion Classifier"]["steps"] for s, f in dataset["fractions"].items()}
        assert steps["0.01"] < steps["1"] and steps["0.1"] < steps["1"]


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_chapter_11_a_temperature_makes_the_mean_error_softmax_honest_in_distribution_but_not_under_shift(dataset):
    from dcanalysis.lab.calibration_eval import MEAN_ERROR_SOFTMAX

    rows = json.loads((RESULTS_DIR / "lab" / "calibration" / f"{dataset}.json").read_text())["rows"]
    test = {(r["model"], r["method"]): r for r in rows if r["set"] == "test"}
    dc = "Diffusion Classifier"
    # "The mean-error softmax gives every image a confidence near 1/K, far left of its accuracy"
    assert abs(test[(dc, MEAN_ERROR_SOFTMAX)]["mean_confidence"] - 0.1) < 0.01 < test[(dc, MEAN_ERROR_SOFTMAX)]["accuracy"] - 0.5
    # "One temperature moves the bars onto the diagonal; the ELBO's scale, fitted to nothing, lands close to it"
    assert test[(dc, "fitted temperature")]["ece_width"] < 0.05
    assert test[(dc, "ELBO scale (no fitting)")]["ece_width"] < 0.1
    # "Under shift, a temperature fitted on clean images carries over for no model here: every classifier becomes
    # over-confident on the sets where its accuracy falls by more than ten points"
    for model in {r["model"] for r in rows}:
        clean = test[(model, "fitted temperature")]
        shifted = [r for r in rows if r["model"] == model and r["set"] != "test" and r["method"] == "fitted temperature"]
        assert max(r["ece_width"] for r in shifted) > 3 * clean["ece_width"]
        assert all(r["mean_confidence"] > r["accuracy"] for r in shifted if r["accuracy"] < clean["accuracy"] - 0.1)


def test_chapter_10_compiling_removes_the_memory_bound_work_and_no_option_moves_the_rest():
    from dcanalysis.book.speed_summary import load_result

    text = printed("10_speed")
    (eager,), (compiled,) = (floats(rf"{v}\s*: memory-bound work (\d+) % of the kernel time", text)
                             for v in ("eager", "compiled"))
    # "Compiling removes most of the memory-bound work ... its share of eager's kernel time and of the compiled"
    assert eager[0] > 50 and compiled[0] < eager[0] / 3
    # "the table's compiled variants differ by a few percent"
    rates = [m["evals_per_s"] for m in load_result("probe")["models"] if m["variant"].startswith("compiled")]
    assert len(rates) >= 2 and max(rates) < 1.05 * min(rates)
