"""The refilled loop's host cost per image with the network replaced by a nearly free stand-in, on the CPU: what
`engine.refill` spends outside the GPU (admitting images, drawing their noise, deciding rounds, building results),
the ceiling on images per second however fast the network. The stand-in's errors favour one class per slot, with
noise, so the sequential test decides round by round as it does on a model. Run it at two commits (PYTHONPATH=TREE)
on the same machine to compare them; each run records its commit.
Usage: PYTHONPATH=TREE python data/jobs/host_loop_cpu.py OUT.json [IMAGES]  (TREE: a checkout of the commit to time)
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import dcanalysis
from dcanalysis import ClassifierConfig, DiffusionClassifier, SequentialTest
from dcanalysis.engine import refill
from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
from dcanalysis.lab.registry import load_lab_diffusion


def stand_in_errors(self, rows, host_rows=None):
    """(n,) errors for rows (n, 3) = (slot, trial, candidate): 1 for the slot's class (slot mod 10), 1.02 for the
    others, plus N(0, 0.05^2) drawn from the call's first row."""
    slot, _, cand = rows.unbind(1)
    g = torch.Generator().manual_seed(int(rows[0, 0]) * 7919 + int(rows[0, 1]))
    return 1.0 + (cand != slot % 10).float() * 0.02 + 0.05 * torch.randn(len(rows), generator=g)


def main(out: str, n: int = 4000) -> None:
    refill._Refill._errors = stand_in_errors
    tree = Path(dcanalysis.__file__).parent.parent
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    x = list(to_model_input(load_lab_dataset("mnist", test_only=True).test_images[:n]))
    policy = SequentialTest(step=2, min_trials=4, max_trials=100, confidence=0.98)
    clf = DiffusionClassifier(load_lab_diffusion("mnist_unet"), ClassifierConfig(schedule=policy, batch_size=2048))
    rows = []
    for threads in (0, 1, 2):
        best = None
        for _ in range(2):  # the faster of two runs: this 2-core machine is shared with the OS
            stats = refill.RefillStats()
            start = time.perf_counter()
            done = list(refill.classify_refilled(clf, x, range(10), in_flight=1000, rows=2048, host_threads=threads,
                                                 stats=stats))
            wall = time.perf_counter() - start
            if best is None or wall < best[0]:
                best = (wall, stats, len(done))
        wall, stats, images = best
        rows.append({"host_threads": threads, "images": images, "ms_per_image": 1e3 * wall / images,
                     "calls": stats.calls, "fill": stats.rows / (stats.calls * 2048),
                     "evaluations_per_image": stats.rows / images,
                     "per_call_ms": {k: 1e3 * getattr(stats, k) / stats.calls
                                     for k in ("admit_s", "waited_workers_s", "launch_s", "decide_s")}})
        print(f"{commit}: {threads} host threads: {rows[-1]['ms_per_image']:.3f} ms per image, {stats.calls} calls")
    Path(out).write_text(json.dumps({"command": "python data/jobs/host_loop_cpu.py", "commit": commit,
                                     "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
                                     "policy": str(policy), "rows": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
