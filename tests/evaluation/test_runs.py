
import pytest
import torch
from PIL import Image

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.exceptions import ManifestMismatchError
from dcanalysis.evaluation.runs import consolidate_tables, load_records, run_dataset, summarize, verify_run


def classifier(toy_adapter, seed=0):
    return DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(8), seed=seed))


def items(n=6):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(n, 2, generator=g)
    return lambda i: (pts[i], int(pts[i, 0] < 0))


def test_resume_skips_finished_images_and_matches_an_uninterrupted_run(toy_adapter, tmp_path):
    full = run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path / "a", settings={"m": "toy"}, progress=False)
    # Simulate a crash after 3 images plus a torn last line.
    b = tmp_path / "b"
    run_dataset(classifier(toy_adapter), items(), 6, [0, 1], b, settings={"m": "toy"}, progress=False)
    lines = (b / "records-rank0.jsonl").read_text().splitlines()
    (b / "records-rank0.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    calls = []
    clf = classifier(toy_adapter)
    classify_batch = clf.classify_batch
    clf.classify_batch = lambda xs, c, image_indices, **kw: calls.extend(image_indices) or classify_batch(
        xs, c, image_indices=image_indices, **kw)
    resumed = run_dataset(clf, items(), 6, [0, 1], b, settings={"m": "toy"}, progress=False)
    assert calls == [3, 4, 5]  # the finished images' identities are checked, never recomputed
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed) == strip(full)
    assert consolidate_tables(b).is_file()


def test_other_settings_are_refused(toy_adapter, tmp_path):
    run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path, settings={"m": "toy"}, progress=False)
    with pytest.raises(ManifestMismatchError, match="other settings"):
        run_dataset(classifier(toy_adapter, seed=1), items(), 6, [0, 1], tmp_path, settings={"m": "toy"}, progress=False)


def test_corrupt_images_are_recorded_and_the_run_goes_on(tmp_path):
    from dcanalysis.adapters import PixelAdapter
    from tiny_models import tiny_pixel_unet

    adapter = PixelAdapter(tiny_pixel_unet(sample_size=16), image_size=16)
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("L", (16, 16)).save(good)
    bad.write_bytes(b"not a png")
    paths = [good, bad, good]
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(2)))
    run_dataset(clf, lambda i: (paths[i], 0), 3, list(range(10)), tmp_path / "run", settings={}, progress=False)
    recs = load_records(tmp_path / "run")
    assert "bad.png" in recs[1]["error"] and "prediction" in recs[2]
    assert summarize(recs).failed == 1


def test_unwritable_directory_fails_before_work(toy_adapter, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises((PermissionError, OSError), match="choose another --out"):
        run_dataset(classifier(toy_adapter), items(), 6, [0, 1], blocker / "run", settings={}, progress=False)


def test_images_per_batch_gives_the_same_records(toy_adapter, tmp_path):
    one = run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path / "one", settings={}, progress=False)
    four = run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path / "four", settings={},
                       images_per_batch=4, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert [r["id"] for r in four] == list(range(6))
    for a, b in zip(strip(one), strip(four)):
        assert a["prediction"] == b["prediction"] and abs(a["mean_errors"][0] - b["mean_errors"][0]) < 1e-9


def test_batching_changes_stored_errors_so_a_resume_with_other_batching_is_refused(toy_adapter, tmp_path):
    """Which rows share a network call changes the stored errors at float rounding (measured here on the MNIST
    UNet: batch 7 against 50), so the batch settings are settings of the run: a resume with others is refused."""
    from dcanalysis.adapters.registry import load_adapter

    adapter = load_adapter("mnist_unet")
    x = torch.zeros(1, 28, 28).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    errors = [DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(10), batch_size=b))
              .classify(x, range(10), image_index=0).errors for b in (7, 50)]
    assert not torch.equal(*errors) and torch.allclose(*errors, rtol=1e-4)
    run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path, settings={}, time_limit_s=1e-9,
                progress=False)
    other = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(8), batch_size=3))
    with pytest.raises(ManifestMismatchError, match=r"'classifier.batch_size': \(64, 3\)"):
        run_dataset(other, items(), 6, [0, 1], tmp_path, settings={}, progress=False)
    with pytest.raises(ManifestMismatchError, match=r"'images_per_batch': \(None, 2\)"):
        run_dataset(classifier(toy_adapter), items(), 6, [0, 1], tmp_path, settings={}, images_per_batch=2,
                    progress=False)


def test_a_resumed_committed_run_repacks_from_its_tables_npz(toy_adapter, tmp_path):
    import numpy as np

    run = tmp_path / "run"
    run_dataset(classifier(toy_adapter), items(), 6, [0, 1], run, settings={"m": "toy"}, progress=False)
    first = dict(np.load(consolidate_tables(run, max_images=3)))
    # a commit keeps records and tables.npz; the images finished before it lose their per-image tables
    for image_id in range(3):
        next(run.glob(f"errors-rank*/{image_id:07d}.npy")).unlink()
    again = dict(np.load(consolidate_tables(run)))
    assert again["ids"].tolist() == list(range(6))
    np.testing.assert_array_equal(again["errors"][:3], first["errors"])
    (run / "tables.npz").unlink()  # now records 0-2 have no table anywhere: damaged, left out of what is packed
    assert dict(np.load(consolidate_tables(run)))["ids"].tolist() == [3, 4, 5]
    assert "image 0: its error table is missing" in verify_run(run).problems


@pytest.mark.parametrize("switch, shown", [({}, True), ({"TQDM_DISABLE": "1"}, False)])
def test_the_progress_bar_follows_tqdms_own_switch(tmp_path, switch, shown):
    """tqdm reads its TQDM_* switches when it is imported, so each case runs in a fresh interpreter."""
    import os
    import subprocess
    import sys

    code = ("import torch\n"
            "from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule\n"
            "from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like\n"
            "from dcanalysis.evaluation.runs import run_dataset\n"
            "clf = DiffusionClassifier(GaussianMixtureAdapter(two_moons_like()), "
            "ClassifierConfig(schedule=Schedule.exhaustive(4)))\n"
            f"run_dataset(clf, lambda i: (torch.zeros(2), 0), 2, [0, 1], {str(tmp_path / 'r')!r}, settings={{}})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")} | switch
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr
    assert ("rank 0" in err) is shown


def committed_runs():
    from dcanalysis.paths import RESULTS_DIR

    return sorted(p.parent for p in (RESULTS_DIR / "lab").rglob("manifest.json"))


@pytest.mark.parametrize("run", committed_runs(), ids=lambda p: p.name)
def test_every_committed_run_is_complete_and_undamaged(run):
    check = verify_run(run)
    assert check.problems == [] and check.done + check.failed == check.n_items > 0, str(check)


@pytest.mark.parametrize("name", ["fashion_mnist_strategy_middle", "mnist_sklearn_digits", "mnist_far_ood_fashion_mnist"])
def test_committed_lab_runs_match_their_images_and_labels(name):
    from dcanalysis.evaluation.lab_datasets import to_model_input
    from dcanalysis.evaluation.run_store import read_manifest
    from dcanalysis.lab.evaluate import set_images
    from dcanalysis.paths import RESULTS_DIR

    run = RESULTS_DIR / "lab" / name
    s = read_manifest(run)["settings"]
    images, labels = set_images(s["model"].removesuffix("_unet"), s["set"], s["n_items"], s["classifier"]["seed"])
    x = to_model_input(images)
    check = verify_run(run, (lambda i: (x[i], int(labels[i])), str))
    assert check.problems == [] and check.done == s["n_items"] and "checked against the dataset" in check.notes[-1]


def test_a_near_tie_that_float16_packing_reorders_is_not_damage_but_a_wrong_prediction_is(tmp_path):
    import numpy as np

    from dcanalysis.evaluation.runs import _table_problem

    exact = np.array([[1.00049] * 4, [1.0, 1.0, 1.0, 1.002]])  # means 1.00049 < 1.0005: class 0
    packed = {0: exact.astype(np.float16)}  # rounded: 1.000977 > 1.000488, class 1 by the packed table alone
    record = {"mean_errors": exact.mean(1).tolist(), "evaluations": 8, "prediction": 0}
    assert _table_problem(tmp_path, 0, record, 2, packed) == (None, True)
    clear = np.array([[1.2] * 4, [1.0] * 4])  # no tie: class 1, whatever the rounding
    wrong = {"mean_errors": clear.mean(1).tolist(), "evaluations": 8, "prediction": 0}
    problem, _ = _table_problem(tmp_path, 0, wrong, 2, {0: clear.astype(np.float16)})
    assert "recorded prediction 0" in problem
