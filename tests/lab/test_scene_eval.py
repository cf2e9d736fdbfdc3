import json
import numpy as np
import pytest

from dcanalysis.lab import scene_eval
from tiny_models import tiny_scene_root


def test_scene_evaluation_writes_records_and_resumes(tmp_path):
    root = tiny_scene_root(tmp_path / "models")
    kw = dict(items=3, per_thing=1, trials=5, root=root, batch_size=64)
    records = scene_eval.evaluate_scenes(tmp_path / "run", **kw)
    assert len(records) == 2 * 3 + 20
    lines = (tmp_path / "run" / "records-rank0.jsonl").read_text().splitlines()
    again = scene_eval.evaluate_scenes(tmp_path / "run", **kw)
    assert (tmp_path / "run" / "records-rank0.jsonl").read_text().splitlines() == lines and again == records
    assert all(set(r["contrastive"]) == {"scenes_clip"} for r in records)
    swaps = scene_eval.swap_tables(records)
    assert {r["model"] for r in swaps} == {"Diffusion Classifier", "Diffusion Classifier, normalised",
                                          "contrastive baseline"}
    zs = scene_eval.zero_shot_table(records)
    assert {(r["split"], r["n"]) for r in zs} == {("test_seen", 15), ("test_unseen", 5)}
    evals = {r["diffusion_evaluations"] for r in records if r["task"] == "zero_shot"}
    assert evals == {scene_eval.zero_shot_schedule(5).evaluations(20)}


def test_a_bigger_run_extends_a_smaller_one(tmp_path):
    root = tiny_scene_root(tmp_path / "models")
    kw = dict(trials=4, root=root, batch_size=64, tasks=("swap",))
    small = scene_eval.evaluate_scenes(tmp_path / "run", items=2, **kw)
    big = scene_eval.evaluate_scenes(tmp_path / "run", items=3, **kw)
    assert len(small) == 4 and len(big) == 6 and all(r in big for r in small)
    assert all(r["task"] == "swap" for r in big)


def test_a_finished_run_reloads_with_contrastive_scores(tmp_path):
    root = tiny_scene_root(tmp_path / "models")
    made = scene_eval.evaluate_scenes(tmp_path / "run", items=2, per_thing=1, trials=3, root=root, batch_size=64)
    assert scene_eval.load_scene_run(tmp_path / "run", root=root) == made


def test_each_trained_model_gets_its_own_cache_folder(tmp_path):
    root = tiny_scene_root(tmp_path / "models")
    first = scene_eval.model_run_dir(tmp_path / "runs", trials=5, root=root)
    assert scene_eval.model_run_dir(tmp_path / "runs", trials=6, root=root) != first
    card = root / "scenes_unet" / "model_card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "steps": 10}))  # a retrained model
    second = scene_eval.model_run_dir(tmp_path / "runs", trials=5, root=root)
    assert first.parent == second.parent == tmp_path / "runs" and first != second


def test_across_seeds_gives_the_spread_of_retrainings():
    rows = {s: [{"split": "test_unseen", "model": "m", "metric": "text", "tag": "all", "score": v, "n": 10}]
            for s, v in [(0, 80.0), (1, 90.0), (2, 100.0)]}
    (r,) = scene_eval.across_seeds(rows, "score")
    assert r["mean"] == 90.0 and r["sd"] == 10.0 and r["n_seeds"] == 3
    assert r["lo"] < 80.0 and r["hi"] > 100.0  # t with 2 degrees of freedom: wide
    (clipped,) = scene_eval.across_seeds(rows, "score", bounds=(0.0, 100.0))
    assert clipped["hi"] == 100.0 and clipped["lo"] == r["lo"]
    (one,) = scene_eval.across_seeds({0: rows[0]}, "score")
    assert one["mean"] == 80.0 and one["sd"] != one["sd"]  # NaN: one run has no spread


def test_the_cli_keeps_a_summary_with_the_contrastive_scores(tmp_path):
    root = tiny_scene_root(tmp_path / "models")
    scene_eval.main(["--out", str(tmp_path / "run"), "--items", "1", "--per-thing", "1", "--trials", "2",
                     "--device", "cpu", "--models-root", str(root)])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["models"]) == {"scenes_unet", "scenes_clip"}
    assert {r["model"] for r in summary["zero_shot"]} == {"Diffusion Classifier", "contrastive baseline"}
    assert "--models-root" in summary["command"]


def _summary_run(path, seed_setting=0, score=90.0):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"settings": {"trials": 100, "seed": seed_setting,
                                                                 "model": {"steps": 3000}}}))
    row = {"split": "test_unseen", "model": "Diffusion Classifier", "tag": "all", "metric": "image", "score": score}
    zs = {"split": "test_unseen", "model": "Diffusion Classifier", "accuracy": score}
    (path / "summary.json").write_text(json.dumps({"swap": [row], "zero_shot": [zs]}))


def test_replicates_combine_by_training_seed(tmp_path):
    _summary_run(tmp_path / "shipped", score=90.0)
    _summary_run(tmp_path / "reps" / "seed1", score=80.0)
    _summary_run(tmp_path / "reps" / "seed2", score=70.0)
    summaries = scene_eval.load_replicates(tmp_path / "shipped", tmp_path / "reps")
    assert sorted(summaries) == [0, 1, 2]
    swaps, zero_shot = scene_eval.seed_tables(summaries)
    assert swaps[0]["mean"] == 80.0 and swaps[0]["per_seed"] == {0: 90.0, 1: 80.0, 2: 70.0}
    assert swaps[0]["lo"] < 80.0 < swaps[0]["hi"] and zero_shot[0]["sd"] == 10.0


def test_replicates_evaluated_otherwise_are_refused(tmp_path):
    _summary_run(tmp_path / "shipped")
    _summary_run(tmp_path / "reps" / "seed1", seed_setting=3)  # other items / noise
    with pytest.raises(ValueError, match="shipped run's settings"):
        scene_eval.load_replicates(tmp_path / "shipped", tmp_path / "reps")


def test_committed_replicates_share_the_shipped_evaluation():
    summaries = scene_eval.load_replicates()
    assert len(summaries) >= 3
    swaps, _ = scene_eval.seed_tables(summaries)
    assert all(r["n_seeds"] == len(summaries) for r in swaps)


def test_a_complete_run_is_read_without_being_opened_for_writing_and_other_settings_still_reach_the_store(monkeypatch):
    from dcanalysis.lab import scene_eval

    class Opened(Exception):
        pass

    def refuse(*a, **kw):
        raise Opened
    monkeypatch.setattr(scene_eval, "RunStore", refuse)
    run = scene_eval.COMMITTED_RUN
    got = scene_eval.evaluate_scenes(run, items=3, per_thing=1, trials=100, seed=0, contrastive=())
    assert len(got) == 2 * 3 + 20 and all("diffusion_raw" in r or "diffusion_prediction" in r for r in got)
    with pytest.raises(Opened):  # other settings: the store decides (it refuses them)
        scene_eval.evaluate_scenes(run, items=3, per_thing=1, trials=50, seed=0, contrastive=())


def test_one_swap_table_per_score_with_swap_types_and_splits_named_for_readers():
    from dcanalysis.evaluation.winoground import score_table

    scores = np.zeros((4, 2, 2))
    scores[:, 0, 0] = scores[:, 1, 1] = 1.0  # every item right: each caption scores higher on its own image
    scores[3] = [[0.0, 1.0], [1.0, 0.0]]  # the last item wrong both ways
    rows = [{"split": split, **r} for split in ("test_seen", "test_unseen")
            for r in score_table(scores, ["object", "attribute", "both", "both"], "m")]
    text = scene_eval.swap_frame(rows, "text")
    assert list(text.columns) == ["every swap", "shapes swapped", "colours swapped", "both swapped"]
    assert text.index.names == ["(colour, shape) pairs", "model"]
    assert list(text.index.get_level_values(0)) == ["seen in training", "held out"]
    assert text.loc[("held out", "m")].tolist() == [75.0, 100.0, 100.0, 50.0]
    assert scene_eval.swap_frame(rows, "group").shape == (2, 4)
    scores_table = scene_eval.scores_frame(rows)
    assert list(scores_table.columns) == ["text score", "image score", "group score"]
    assert scores_table.loc[("held out", "m"), "text score"].startswith("75.0 (")
    records = [{"task": "swap", "split": "test_unseen", "tag": tag, "diffusion_raw": item.tolist(),
                "diffusion_normalised": item.tolist()} for tag, item in zip(["object", "attribute", "both", "both"], scores)]
    same = scene_eval.same_image_frame(records)
    assert same.index.tolist() == ["Diffusion Classifier", "Diffusion Classifier, normalised"]
    assert same.iloc[0, 0] == 0.0  # every item's images each win under their own caption, or lose under both
    margins = scene_eval.text_margins(records)
    assert list(margins.columns) == ["shapes swapped", "colours swapped", "both swapped"]
    assert margins.loc["held out", "shapes swapped"] == 1000.0 and margins.loc["held out", "both swapped"] == 0.0
