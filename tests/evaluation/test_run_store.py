"""The run store and dataset runs against careless and hostile use: each case once broke a run silently."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.evaluation.datasets import ImageFolder
from dcanalysis.evaluation.run_store import RunStore, load_records
from dcanalysis.evaluation.runs import run_dataset, summarize, verify_run
from dcanalysis.exceptions import ManifestMismatchError, RunLockedError, UnsafeRunFileError


def toy_classifier(toy_adapter, seed=0):
    return DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(8), seed=seed))


def points(n=6):
    pts = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return lambda i: (pts[i], int(pts[i, 0] < 0))


def toy_run(toy_adapter, run, n=6, **kw):
    return run_dataset(toy_classifier(toy_adapter, kw.pop("seed", 0)), kw.pop("get", points(n)), n, [0, 1], run,
                       settings={"m": "toy"}, progress=False, **kw)


def folder_of_pngs(root, names, *, value=0):
    for k, name in enumerate(names):
        (root / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), color=(value + 40 * k) % 256).save(root / "cat" / name)
    return root


def pixel_classifier():
    from dcanalysis.adapters import PixelAdapter
    from tiny_models import tiny_pixel_unet

    return DiffusionClassifier(PixelAdapter(tiny_pixel_unet(sample_size=16), image_size=16),
                               ClassifierConfig(schedule=Schedule.exhaustive(2)))


def folder_run(root, run, **kw):
    folder = ImageFolder(root)
    return run_dataset(pixel_classifier(), folder.__getitem__, len(folder), list(range(10)), run, settings={},
                       item_name=folder.relative_name, progress=False, **kw)


def test_a_swapped_file_at_the_same_position_is_refused(tmp_path):
    root = folder_of_pngs(tmp_path / "images", ["a.png", "b.png", "c.png"])
    folder_run(root, tmp_path / "run")
    (root / "cat" / "b.png").unlink()
    folder_of_pngs(root, ["bb.png"], value=7)  # same count, another file at position 1
    with pytest.raises(ManifestMismatchError, match="image 1 was 'cat/b.png'.*is now 'cat/bb.png'.*new --out"):
        folder_run(root, tmp_path / "run")


def test_an_edited_file_is_refused_but_a_fixed_failed_file_is_retried(tmp_path):
    root = folder_of_pngs(tmp_path / "images", ["a.png", "b.png"])
    (root / "cat" / "b.png").write_bytes(b"not a png")
    recs = folder_run(root, tmp_path / "run")
    assert "error" in recs[1] and "prediction" in recs[0]
    folder_of_pngs(root, ["b.png"], value=99)  # the user fixes the broken file
    recs = folder_run(root, tmp_path / "run")
    assert "prediction" in recs[1]
    folder_of_pngs(root, ["a.png"], value=3)  # and edits a finished one
    with pytest.raises(ManifestMismatchError, match="image 0 was 'cat/a.png'"):
        folder_run(root, tmp_path / "run")


def test_any_per_image_failure_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    root = folder_of_pngs(tmp_path / "images", ["a.png", "b.png", "c.png", "d.png"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # every 16x16 image (256 px) is now a decompression bomb
    Image.new("L", (4, 4)).save(root / "cat" / "b.png")  # ... except this small one
    clf = pixel_classifier()
    original = clf.adapter.predict
    calls = {"n": 0}

    def flaky(x_t, t, cond, rows=None):
        calls["n"] += 1
        return original(x_t, t, cond, rows) * float("nan")  # the network returns NaN

    clf.adapter.predict = flaky
    folder = ImageFolder(root)
    recs = run_dataset(clf, folder.__getitem__, 4, list(range(10)), tmp_path / "run", settings={},
                       item_name=folder.relative_name, progress=False, images_per_batch=2)
    assert "too large" in recs[0]["error"] and "NaN" in recs[1]["error"] and len(recs) == 4
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**8)
    clf.adapter.predict = original
    recs = run_dataset(clf, folder.__getitem__, 4, list(range(10)), tmp_path / "run", settings={},
                       item_name=folder.relative_name, progress=False, retry_failed=True, images_per_batch=2)
    assert all("prediction" in r for r in recs)


def test_an_exception_in_one_image_spares_its_batch_neighbours(toy_adapter, tmp_path):
    get = points()

    def bad_item(i):
        if i == 2:
            raise KeyError("label table has no entry for image 2")
        return get(i)

    recs = toy_run(toy_adapter, tmp_path / "run", get=bad_item, images_per_batch=3)
    assert recs[2]["error"].startswith("KeyError") and all("prediction" in r for k, r in enumerate(recs) if k != 2)


def test_a_missing_manifest_is_rebuilt_only_from_agreeing_records(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=3)
    (run / "manifest.json").unlink()
    with pytest.raises(ManifestMismatchError, match="no manifest.json.*were not computed with these settings"):
        toy_run(toy_adapter, run, n=3, seed=1)
    assert len(toy_run(toy_adapter, run, n=3)) == 3 and (run / "manifest.json").is_file()


def test_ranks_outside_the_world_are_refused(toy_adapter, tmp_path):
    with pytest.raises(ValueError, match="rank 1 of world size 1"):
        toy_run(toy_adapter, tmp_path / "a", rank=1, world_size=1)
    with pytest.raises(ValueError, match="rank 3 of world size 2"):
        toy_run(toy_adapter, tmp_path / "b", rank=3, world_size=2)


def test_a_complete_last_record_without_its_newline_is_kept(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run)
    path = run / "records-rank0.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert len(toy_run(toy_adapter, run)) == 6
    assert verify_run(run).done == 6 and path.read_bytes().endswith(b"\n")


def test_damage_is_found_reported_and_recomputed(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run)
    path = run / "records-rank0.jsonl"
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["prediction"] = 1 - edited["prediction"]
    extra = {**json.loads(lines[0]), "id": 30}
    path.write_text("\n".join([lines[0], "garbage{", json.dumps(edited), '{"no_id": 1}', *lines[2:],
                               json.dumps(extra)]) + "\n")
    (run / "errors-rank0" / "0000003.npy").write_bytes(b"junk")
    (run / "errors-rank0" / "0000004.npy").unlink()
    check = verify_run(run)
    assert check.damaged == {1, 3, 4} and check.foreign == {30} and check.done == 3
    text = str(check)
    assert "line 2 is not a record" in text and "line 4 is not a record" in text
    assert "recorded prediction" in text and "unreadable" in text and "missing" in text and "30" in text
    recs = toy_run(toy_adapter, run)  # resume recomputes what is damaged
    assert [r["id"] for r in recs] == list(range(6))
    after = verify_run(run)
    assert after.damaged == set() and after.done == 6
    assert "garbage{" in (run / "damaged-rank0.jsonl").read_text()  # set aside, not lost
    assert summarize([r for r in load_records(run) if r["id"] not in after.foreign]).n == 6


def test_a_second_writer_is_refused_and_planted_links_are_not_followed(tmp_path):
    with RunStore(tmp_path, {"a": 1}) as store:
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunStore(tmp_path, {"a": 1}).__enter__()
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        (tmp_path / "errors-rank0").mkdir()
        for name in ("0000000.tmp.npy", ".0000000.npy-.tmp", "0000000.npy.tmp"):
            (tmp_path / "errors-rank0" / name).symlink_to(victim)
        store.save_table(0, np.zeros((2, 3), np.float32))
        store.append([{"id": 0}])
    assert victim.read_text() == "keep me"
    assert np.load(tmp_path / "errors-rank0" / "0000000.npy").shape == (2, 3)
    with RunStore(tmp_path, {"a": 1}):  # released on exit
        pass


def test_a_truncated_manifest_names_the_file(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run)
    (run / "manifest.json").write_text('{"settings": {')
    with pytest.raises(ManifestMismatchError, match="manifest.json' is not valid JSON"):
        toy_run(toy_adapter, run)


def test_a_run_feeds_the_timestep_chapters_or_says_why_not(toy_adapter, tmp_path):
    from dcanalysis.evaluation.analysis import ErrorTables, single_timestep_accuracy
    from dcanalysis.evaluation.runs import consolidate_tables
    from dcanalysis.noise import make_noise_plan

    run = tmp_path / "even"
    toy_run(toy_adapter, run)
    tables = ErrorTables.load(consolidate_tables(run).parent)
    plan = make_noise_plan(8, (2,), seed=0, image_index=3, strategy="even")
    assert np.array_equal(tables.timesteps, plan.timesteps.numpy())
    ts, acc = single_timestep_accuracy(tables)
    assert len(ts) == 8 and acc.shape == (8,)
    uniform = DiffusionClassifier(toy_adapter, ClassifierConfig(schedule=Schedule.exhaustive(8), timesteps="uniform"))
    run_dataset(uniform, points(), 6, [0, 1], tmp_path / "uniform", settings={}, progress=False)
    tables = ErrorTables.load(consolidate_tables(tmp_path / "uniform").parent)
    assert tables.timesteps.shape == (6, 8)  # each image's own draw, kept
    assert np.array_equal(tables.timesteps[3], make_noise_plan(8, (2,), seed=0, image_index=3, strategy="uniform").timesteps)
    with pytest.raises(ValueError, match="each image drew its own timesteps"):
        single_timestep_accuracy(tables)
    empty = ErrorTables(tables.errors, tables.labels, np.array([]), tables.ids)
    with pytest.raises(ValueError, match="record no timesteps.*dcanalysis tables"):
        single_timestep_accuracy(empty)


# --- round two: links, labels, configs, old records, hostile files (issue 37) ---

def test_a_link_at_a_records_name_is_refused_and_its_target_untouched(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2)
    secret = tmp_path / "secret.txt"
    secret.write_text('{"id": 0, "private": 1}\nlast line without break')
    os.chmod(secret, 0o600)
    (run / "records-rank0.jsonl").unlink()
    (run / "records-rank0.jsonl").symlink_to(secret)
    with pytest.raises(UnsafeRunFileError, match="symbolic link.*not followed"):
        toy_run(toy_adapter, run, n=2)
    assert secret.read_text().endswith("last line without break") and not (run / "damaged-rank0.jsonl").exists()
    with pytest.raises(UnsafeRunFileError):
        verify_run(run)


def test_a_linked_table_folder_and_a_fifo_in_the_run_are_refused(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2)
    elsewhere = tmp_path / "elsewhere"
    (run / "errors-rank0").rename(elsewhere)
    (run / "errors-rank0").symlink_to(elsewhere)
    with pytest.raises(UnsafeRunFileError, match="symbolic link"):
        toy_run(toy_adapter, run, n=3)
    (run / "errors-rank0").unlink()
    elsewhere.rename(run / "errors-rank0")
    os.mkfifo(run / "damaged-rank0.jsonl")
    (run / "records-rank0.jsonl").open("a").write("garbage\n")  # makes the store write damaged-rank0.jsonl
    with pytest.raises(UnsafeRunFileError, match="FIFO"):
        toy_run(toy_adapter, run, n=3)


def test_every_file_of_a_run_has_one_mode_and_killed_temporaries_are_removed(toy_adapter, tmp_path):
    run = tmp_path / "run"
    old = os.umask(0o022)
    try:
        toy_run(toy_adapter, run, n=2)
        from dcanalysis.evaluation.runs import consolidate_tables

        consolidate_tables(run)
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}, [(p.name, oct(p.stat().st_mode)) for p in files]
    orphan = run / "errors-rank0" / ".0000001.npy-abcd.tmp"
    orphan.write_bytes(b"half a table")
    toy_run(toy_adapter, run, n=2)
    assert not orphan.exists()


def test_an_emptied_manifest_gets_one_line(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2)
    (run / "manifest.json").write_text("{}")
    with pytest.raises(ManifestMismatchError, match="holds no run settings.*Restore it"):
        toy_run(toy_adapter, run, n=2)


def test_the_manifest_is_created_once_when_ranks_race(tmp_path, monkeypatch):
    """Another rank's manifest appears between our check and our write: ours must not replace it."""
    from dcanalysis.evaluation import run_store

    real_link = os.link

    def racing_link(src, dst):
        if str(dst).endswith("manifest.json") and not os.path.exists(dst):
            Path(dst).write_text(json.dumps({"format": run_store.FORMAT, "settings": {"seed": 1}, "neutral": []}))
        return real_link(src, dst)

    monkeypatch.setattr(run_store.os, "link", racing_link)
    with pytest.raises(ManifestMismatchError, match="other settings.*'seed': \\(1, 2\\)"):
        run_store.write_manifest(tmp_path, {"seed": 2})
    assert json.loads((tmp_path / "manifest.json").read_text())["settings"] == {"seed": 1}


def test_a_resume_under_other_library_versions_is_warned_about(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2)
    m = json.loads((run / "manifest.json").read_text())
    m["environment"]["torch"] = "1.0.0"
    (run / "manifest.json").write_text(json.dumps(m))
    with pytest.warns(UserWarning, match=r"started with \{'torch': \('1.0.0'"):
        toy_run(toy_adapter, run, n=2)


def test_fifos_devices_and_huge_files_among_images_fail_alone_without_hanging(tmp_path):
    import signal

    root = folder_of_pngs(tmp_path / "images", ["a.png", "d.png"])
    os.mkfifo(root / "cat" / "b.png")
    (root / "cat" / "c.png").symlink_to("/dev/zero")
    signal.alarm(60)  # a hang fails the test instead of the suite
    try:
        recs = folder_run(root, tmp_path / "run")
    finally:
        signal.alarm(0)
    assert "FIFO" in recs[1]["error"] and "FIFO, device" in recs[2]["error"]
    assert "prediction" in recs[0] and "prediction" in recs[3]


def test_an_edited_label_is_found_by_verify_and_recomputed_on_resume(toy_adapter, tmp_path, caplog):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=4)
    path = run / "records-rank0.jsonl"
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    lines[2]["label"] = 1 - lines[2]["label"]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    get = points(4)
    check = verify_run(run, (get, str))
    assert check.damaged == {2} and "label" in check.problems[0] and "(an edited record)" in check.problems[0]
    assert verify_run(run).damaged == set()  # without the dataset the label cannot be checked: said in a note
    recs = toy_run(toy_adapter, run, n=4)
    assert recs[2]["label"] == get(2)[1] and verify_run(run, (get, str)).problems == []
    assert "1 record(s) whose label is not the dataset's (edited) will be recomputed" in caplog.text


def test_a_reordered_class_list_is_another_run(toy_adapter, tmp_path):
    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2, class_names=["cat", "dog"])
    with pytest.raises(ManifestMismatchError, match=r"'class_names': \(\['cat', 'dog'\], \['dog', 'cat'\]\)"):
        toy_run(toy_adapter, run, n=2, class_names=["dog", "cat"])


def test_foreign_ids_count_nowhere(toy_adapter, tmp_path):
    from dcanalysis.evaluation.runs import consolidate_tables, trusted_records

    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=3)
    with open(run / "records-rank0.jsonl", "a") as f:
        f.write(json.dumps({**load_records(run)[0], "id": 7}) + "\n")
    records, check = trusted_records(run)
    assert [r["id"] for r in records] == [0, 1, 2] and check.foreign == {7}
    assert np.load(consolidate_tables(run))["ids"].tolist() == [0, 1, 2]


def test_a_run_grows_and_resumes_on_another_world_size_without_recomputing(toy_adapter, tmp_path):
    run, ref = tmp_path / "run", tmp_path / "ref"
    whole = toy_run(toy_adapter, ref, n=6)
    toy_run(toy_adapter, run, n=4, rank=0, world_size=2)
    toy_run(toy_adapter, run, n=4, rank=1, world_size=2)
    before = {r["id"]: r for r in load_records(run)}
    calls = []
    clf = toy_classifier(toy_adapter)
    original = clf.classify_batch
    clf.classify_batch = lambda images, *a, image_indices, **kw: calls.extend(image_indices) or original(
        images, *a, image_indices=image_indices, **kw)
    run_dataset(clf, points(6), 6, [0, 1], run, settings={"m": "toy"}, progress=False)  # one process, 6 images
    assert sorted(calls) == [4, 5]
    after = load_records(run)
    assert all(before[i] == r for r in after for i in [r["id"]] if i in before)
    assert [r["prediction"] for r in after] == [r["prediction"] for r in whole]
    assert json.loads((run / "manifest.json").read_text())["settings"]["n_items"] == 6 and not verify_run(run).problems


def test_an_older_run_is_refused_until_upgraded_and_the_upgrade_rechecks_labels(toy_adapter, tmp_path):
    from dcanalysis.evaluation.runs import upgrade_run

    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=3)
    # make it look like a format-1 run: no format, records without their image identity and digest
    m = json.loads((run / "manifest.json").read_text())
    del m["format"], m["neutral"]
    (run / "manifest.json").write_text(json.dumps(m))
    old = [{k: v for k, v in r.items() if k not in ("item", "run")} for r in load_records(run)]
    (run / "records-rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    with pytest.raises(ManifestMismatchError, match="older dcanalysis.*dcanalysis upgrade"):
        toy_run(toy_adapter, run, n=3)
    assert "older dcanalysis" in verify_run(run).problems[0]
    wrong = lambda i: (points(3)(i)[0], 1 - points(3)(i)[1])  # noqa: E731 (a dataset whose labels differ)
    with pytest.raises(ManifestMismatchError, match="cannot upgrade.*image 0: its label"):
        upgrade_run(run, (wrong, str))
    assert "upgraded 3 record(s)" in upgrade_run(run, (points(3), str))
    assert verify_run(run, (points(3), str)).problems == [] and len(toy_run(toy_adapter, run, n=3)) == 3


def test_the_library_logs_and_never_prints(toy_adapter, tmp_path, capsys, caplog):
    import logging

    run = tmp_path / "run"
    toy_run(toy_adapter, run, n=2)
    (run / "records-rank0.jsonl").open("a").write("garbage\n")
    with caplog.at_level(logging.INFO, logger="dcanalysis"):
        toy_run(toy_adapter, run, n=3, time_limit_s=1e-9)
    assert capsys.readouterr().out == ""
    messages = [r.getMessage() for r in caplog.records]
    assert any("moved to damaged-rank0.jsonl" in m for m in messages) and any("time limit" in m for m in messages)
