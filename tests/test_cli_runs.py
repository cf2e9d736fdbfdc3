"""Runs as a user launches them: separate processes, killed mid-way, or sharded by torchrun."""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcanalysis.evaluation.runs import load_records

EVAL = ["eval", "--model", "mnist_unet", "--dataset", "mnist", "--schedule", "3:1", "--batch-size", "30",
        "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def run_cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "dcanalysis", *args], env=ENV, capture_output=True, text=True, **kw)


def same(a, b):
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):
        assert x["prediction"] == y["prediction"] and x["evaluations"] == y["evaluations"]
        assert max(abs(p - q) for p, q in zip(x["mean_errors"], y["mean_errors"])) < 1e-5


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    n = "40"
    ref = run_cli([*EVAL, "--n-images", n, "--out", str(tmp_path / "ref")], timeout=600)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen([sys.executable, "-m", "dcanalysis", *EVAL, "--n-images", n, "--out", str(tmp_path / "run")],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "run" / "records-rank0.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not records.is_file() or len(records.read_text().splitlines()) < 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(load_records(tmp_path / "run"))
    assert 5 <= done < int(n), "the kill should land mid-run"
    resumed = run_cli([*EVAL, "--n-images", n, "--out", str(tmp_path / "run")], timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    same(load_records(tmp_path / "run"), load_records(tmp_path / "ref"))


def test_resume_with_other_settings_is_refused(tmp_path):
    assert run_cli([*EVAL, "--n-images", "2", "--out", str(tmp_path)], timeout=600).returncode == 0
    other = run_cli([*EVAL[:-4], "--seed", "3", "--batch-size", "30", "--device", "cpu", "--n-images", "2", "--out", str(tmp_path)], timeout=600)
    assert other.returncode != 0 and "other settings" in other.stderr


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_ranks_with_gloo_merge_to_the_one_rank_result(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    one = run_cli([*EVAL, "--n-images", "6", "--out", str(tmp_path / "one")], timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dcanalysis", *EVAL, "--n-images", "6",
                          "--out", str(tmp_path / "two")], env=ENV, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "two").glob("records-rank*.jsonl")) == ["records-rank0.jsonl", "records-rank1.jsonl"]
    same(load_records(tmp_path / "two"), load_records(tmp_path / "one"))
    assert "on 6 images" in two.stdout


def start_eval(out, n="6", schedule="60:1"):
    args = [*EVAL, "--n-images", n, "--out", str(out)]
    args[args.index("--schedule") + 1] = schedule
    return subprocess.Popen([sys.executable, "-m", "dcanalysis", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_records(out, k, proc, timeout=300):
    records = out / "records-rank0.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and (
            not records.is_file() or len(records.read_text().splitlines()) < k):
        time.sleep(0.05)


def test_ctrl_c_saves_finished_images_stops_within_a_network_call_and_prints_a_quoted_resume(tmp_path):
    out = tmp_path / "a run's folder"
    proc = start_eval(out)
    wait_for_records(out, 1, proc)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # a network call here (30 rows of the MNIST UNet on one thread) takes well under 5 s; an image takes 20 calls
    assert proc.returncode == 130 and time.time() - t0 < 10, err[-2000:]
    assert "terminate called" not in err and "Traceback" not in err
    command = err.split("Resume with: ", 1)[1].strip()
    assert shlex.split(command)[0] == "dcanalysis" and str(out) in shlex.split(command)
    done = len(load_records(out))
    assert 1 <= done < 6
    resumed = run_cli(shlex.split(command)[1:], timeout=600)
    assert resumed.returncode == 0 and len(load_records(out)) == 6, resumed.stderr[-2000:]


def test_a_second_ctrl_c_exits_cleanly(tmp_path):
    proc = start_eval(tmp_path / "run")
    wait_for_records(tmp_path / "run", 1, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "terminate called" not in err and "Traceback" not in err, err[-2000:]


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_a_pilot_grows_on_two_ranks_without_recomputing_its_images(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    one = run_cli([*EVAL, "--n-images", "6", "--out", str(tmp_path / "one")], timeout=600)
    pilot = run_cli([*EVAL, "--n-images", "3", "--out", str(tmp_path / "run")], timeout=600)
    assert one.returncode == 0 and pilot.returncode == 0, pilot.stderr
    first = {r["id"]: r for r in load_records(tmp_path / "run")}
    grown = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "dcanalysis", *EVAL,
                            "--n-images", "6", "--out", str(tmp_path / "run")], env=ENV, capture_output=True,
                           text=True, timeout=600)
    assert grown.returncode == 0, grown.stderr[-2000:]
    after = load_records(tmp_path / "run")
    assert all(r == first[r["id"]] for r in after if r["id"] in first)  # the pilot's records untouched
    same(after, load_records(tmp_path / "one"))
    assert "on 6 images" in grown.stdout
