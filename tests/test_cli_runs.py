"""Runs as a user launches them: separate processes, killed mid-way, or sharded by torchrun."""
import os
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
