"""Where the refilled sequential test's loop spends its host time on MNIST (issue 41; a one-off diagnostic, its
output kept in data/results/speed/). The lab MNIST UNet compiled as versus_official compiles it, the policy its
tuning chose in runs f_both and h_both; 4,000 test images, 1,000 in flight. For each configuration: the share of
the compiled network's evaluations/s, RefillStats per call; then a cProfile of one run (top functions by own time).
Usage on the GPU machine: python3 data/jobs/refill_host_profile.py OUT.json"""
import cProfile
import io
import json
import pstats
import sys
import time

import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, SequentialTest
from dcanalysis.bench.versus_official import network_rate, timed, warm_padded_sizes
from dcanalysis.engine.batching import Batched
from dcanalysis.engine.compile import compile_adapter
from dcanalysis.engine.refill import RefillStats, classify_refilled
from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
from dcanalysis.lab.registry import load_lab_diffusion

out_file, device = sys.argv[1], torch.device("cuda")
x = list(to_model_input(load_lab_dataset("mnist", test_only=True).test_images[:4000]))
adapter = load_lab_diffusion("mnist_unet", device=device, dtype=torch.bfloat16)
compile_adapter(adapter)
policy = SequentialTest(step=2, min_trials=4, max_trials=100, confidence=0.98)
out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "policy": str(policy), "runs": []}
for rows in (2048, 4096):
    warm_padded_sizes(adapter, rows, 4)
    network = network_rate(adapter, rows, 2.0)["evals_per_s"]
    clf = DiffusionClassifier(Batched(adapter, static_rows=rows, padded_sizes=4),
                              ClassifierConfig(schedule=policy, batch_size=rows, seed=0))
    for threads, switch in ((0, None), (4, None), (4, 0.0002)) if rows == 2048 else ((0, None), (4, None)):
        default_switch = sys.getswitchinterval()
        if switch:
            sys.setswitchinterval(switch)
        timed(lambda: list(classify_refilled(clf, x[:300], range(10), in_flight=1000, host_threads=threads)), device)
        stats = RefillStats()
        res, wall = timed(lambda: list(classify_refilled(clf, x, range(10), in_flight=1000, host_threads=threads,
                                                         stats=stats)), device)
        evals = sum(r.n_evaluations for r in res)
        row = {"rows": rows, "host_threads": threads, "switch_interval_s": switch or default_switch,
               "of_network": evals / wall / network, "network_evals_per_s": network, "wall_s": wall,
               "per_call_ms": {k: 1000 * v / stats.calls for k, v in vars(stats).items() if k.endswith("_s")},
               "calls": stats.calls, "rows_sent": stats.rows, "rounds_decided": stats.decisions}
        print(json.dumps(row), flush=True)
        out["runs"].append(row)
        sys.setswitchinterval(default_switch)
for threads in (0, 4):
    clf = DiffusionClassifier(Batched(adapter, static_rows=2048, padded_sizes=4),
                              ClassifierConfig(schedule=policy, batch_size=2048, seed=0))
    profile = cProfile.Profile()
    torch.cuda.synchronize()
    profile.enable()
    list(classify_refilled(clf, x, range(10), in_flight=1000, host_threads=threads))
    torch.cuda.synchronize()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(30)
    out[f"profile_threads_{threads}"] = text.getvalue()
    print(text.getvalue(), flush=True)
with open(out_file, "w") as f:
    json.dump(out, f, indent=1)
