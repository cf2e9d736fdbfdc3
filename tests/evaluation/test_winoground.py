import json

import numpy as np
import pytest
from PIL import Image

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import StableDiffusionAdapter
from dcanalysis.evaluation.winoground import CHANCE, correct, diffusion_scores, load_winoground, same_image_wins, score_table
from tiny_models import tiny_sd_components


def test_metrics_follow_winoground_definitions():
    # [caption, image]: item 0 all right; item 1 text right, image wrong; item 2 nothing right
    s = np.array([[[2, 0], [1, 3]], [[2, 5], [1, 6]], [[0, 2], [1, 1]]], float)
    ok = correct(s)
    assert ok["text"].tolist() == [True, True, False]
    assert ok["image"].tolist() == [True, False, False]
    assert ok["group"].tolist() == [True, False, False]
    assert same_image_wins(s).tolist() == [False, True, True]
    assert not (same_image_wins(s) & correct(s)["image"]).any()  # an image-score hit needs each image to win once
    with pytest.raises(ValueError, match=r"\(n, 2, 2\)"):
        correct(np.zeros((3, 4)))


def test_random_scores_give_the_chance_levels():
    s = np.random.default_rng(0).normal(size=(60000, 2, 2))
    ok = correct(s)
    for metric in ("text", "image", "group"):
        assert abs(100 * ok[metric].mean() - CHANCE[metric]) < 1.0


def test_score_table_rows_per_tag_with_intervals():
    s = np.random.default_rng(1).normal(size=(30, 2, 2))
    rows = score_table(s, ["Object"] * 10 + ["Relation"] * 20, model="m")
    assert {r["tag"] for r in rows} == {"all", "Object", "Relation"}
    for r in rows:
        assert r["lo"] <= r["score"] <= r["hi"] and r["n"] in (10, 20, 30)


def _winoground_folder(root, n=2, nested=True):
    base = root / "data" if nested else root
    (base / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        for j in range(2):
            Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(base / "images" / f"ex_{i}_img_{j}.png")
        lines.append(json.dumps({"id": i, "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1",
                                 "caption_0": "a dog on a mug", "caption_1": "a mug on a dog", "tag": "Noun",
                                 "secondary_tag": "", "num_main_preds": 1,
                                 "collapsed_tag": ["Object", "Relation"][i % 2]}))
    (base / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return base


def test_loader_reads_the_official_layout(tmp_path):
    _winoground_folder(tmp_path, n=3)
    ex = load_winoground(tmp_path)
    assert [e.tag for e in ex] == ["Object", "Relation", "Object"]
    assert ex[1].captions == ("a dog on a mug", "a mug on a dog") and ex[1].images[0].name == "ex_1_img_0.png"


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="examples.jsonl"):
        load_winoground(tmp_path)
    base = _winoground_folder(tmp_path, nested=False)
    (base / "images" / "ex_1_img_1.png").unlink()
    with pytest.raises(FileNotFoundError, match="ex_1_img_1.png"):
        load_winoground(tmp_path)
    (base / "examples.jsonl").write_text('{"id": 0}\n')
    with pytest.raises(ValueError, match="line 1"):
        load_winoground(tmp_path)


def test_stable_diffusion_scores_winoground_from_a_folder(tmp_path):
    _winoground_folder(tmp_path)
    examples = load_winoground(tmp_path)
    adapter = StableDiffusionAdapter(**tiny_sd_components(tmp_path))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(3), batch_size=16))
    with pytest.warns(UserWarning, match="resized"):
        out = [diffusion_scores(clf, ex, index=i, null_caption="") for i, ex in enumerate(examples)]
    assert out[0]["raw"].shape == (2, 2) and out[0]["normalised"].shape == (2, 2)
    # each image alone, same noise index: the batch call scores both images on the same trials
    single = clf.classify(examples[0].images[1], list(examples[0].captions) + [""], image_index=0)
    assert np.allclose(-single.mean_errors[:2].numpy(), out[0]["raw"][:, 1], atol=1e-6)
    assert np.allclose(single.mean_errors[2].item() - single.mean_errors[:2].numpy(), out[0]["normalised"][:, 1], atol=1e-6)
    rows = score_table(np.stack([o["raw"] for o in out]), [e.tag for e in examples])
    assert len(rows) == 9


def test_pruning_schedules_are_refused(tmp_path):
    _winoground_folder(tmp_path)
    adapter = StableDiffusionAdapter(**tiny_sd_components(tmp_path))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.from_lists((2, 4), (1, 1))))
    with pytest.raises(ValueError, match="exhaustive"):
        diffusion_scores(clf, load_winoground(tmp_path)[0], index=0)


def test_format_scores_reads_score_and_interval():
    from dcanalysis.evaluation.winoground import format_scores

    rows = [{"split": "s", **r} for r in score_table(np.array([[[1, 0], [0, 1]]] * 4, float), ["x"] * 4, "m")]
    t = format_scores(rows)
    assert t.loc[("s", "m"), "text"].startswith("100.0 (") and list(t.columns) == ["group", "image", "text"]
