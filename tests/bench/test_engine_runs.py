import json
import tarfile

import pytest

from dcanalysis.bench.engine_runs import (EngineRun, compare_runs, engine_rows, records_from_archive, run_timing)


def _records(seconds, predictions, labels=None, errors=None):
    labels = labels or [0] * len(seconds)
    return [{"id": i, "label": labels[i], "prediction": p, "seconds": s, "evaluations": 1000,
             "mean_errors": (errors or [[1.0, 2.0]] * len(seconds))[i]}
            for i, (s, p) in enumerate(zip(seconds, predictions))]


def test_run_timing_splits_the_first_call_from_the_steady_rate_and_projects_a_run():
    # two images per call: the first call 30 s (compilation) shared by images 0 and 1, then 0.5 s per image
    recs = _records([15, 15, 0.5, 0.5, 0.5, 0.5], [0] * 6)
    recs.insert(0, {"id": 9, "error": "unreadable"})  # failed images carry no time
    t = run_timing(recs[::-1], images_per_call=2)  # any order: taken by id
    assert (t.n, t.first_call_s, t.steady_s_per_image, t.total_s) == (6, 30.0, 0.5, 32.0)
    assert t.projected_s(102) == 30.0 + 100 * 0.5
    with pytest.raises(ValueError, match="images_per_call >= 1"):
        run_timing(recs, images_per_call=0)


def test_compare_runs_counts_changed_predictions_on_common_images_and_refuses_other_images():
    a = _records([1] * 4, [0, 1, 1, 0], labels=[0, 1, 0, 0], errors=[[1.0, 2.0]] * 3 + [[1.1, 2.0]])
    b = _records([1] * 3, [0, 1, 0], labels=[0, 1, 0])
    c = compare_runs(a, b)  # image 3 is only in a: left out
    assert (c.n, c.same_predictions, c.accuracy_a, c.accuracy_b) == (3, 2, 2 / 3, 1.0)
    assert c.max_relative_error_difference == 0.0 and c.ci95_b[1] == 1.0
    with pytest.raises(ValueError, match="not runs of the same images"):
        compare_runs(a, _records([1] * 3, [0, 1, 0], labels=[0, 1, 1]))


def _archive(path, run_name, records):
    d = path.parent / run_name
    d.mkdir()
    (d / "records-rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (d / "manifest.json").write_text("{}")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(d, arcname=run_name)
    return path


def test_engine_rows_read_archives_and_give_each_run_its_share_of_the_baseline(tmp_path):
    (tmp_path / "e").mkdir(), (tmp_path / "f").mkdir()
    eager = _archive(tmp_path / "e" / "eager.tgz", "mnist_test", _records([1.0] * 4, [0, 0, 0, 1]))
    fast = _archive(tmp_path / "f" / "fast.tgz", "mnist_test", _records([5.0, 5.0, 0.25, 0.25], [0] * 4))
    assert len(records_from_archive(fast, "mnist_test")) == 4
    with pytest.raises(FileNotFoundError, match="no records of run 'fashion_mnist_test'"):
        records_from_archive(fast, "fashion_mnist_test")
    rows = engine_rows([EngineRun("mnist", "eager", eager, 1), EngineRun("mnist", "fast", fast, 2)],
                       {"mnist": _records([1.0] * 4, [0] * 4)}, {"mnist": 42})
    assert [r["projected s, lab job"] for r in rows] == [42, 20]  # 1 + 41 x 1 s; 10 + 40 x 0.25 s
    assert [r["share of eager"] for r in rows] == [1.0, round(20 / 42, 2)]
    assert [r["same predictions"] for r in rows] == ["3 of 4", "4 of 4"]
    assert rows[1]["steady evals/s"] == 4000
