"""Equal accuracy, far less time: the official algorithm and dcanalysis's fastest configuration on the same images.

On a lab model, where accuracy can be measured, one command runs

- **the official algorithm** as its repository runs a 10-class dataset (its CIFAR-10 command: 50 grid timesteps
  for all 10 classes, keep 5, 500 in all; L2 error, its default): timed as its loop spends a GPU (``bench.peer``,
  re-stated: fp16, eager, one image at a time) on the first test images until ``--peer-seconds`` run out, twice:
  at its default batch of 32, and with its batch raised to the largest stage (one network call per stage, its
  fastest on a big GPU: the fair comparison). Its decisions on every image are computed by our engine on its grid,
  in its order (the same arithmetic under the same noise, ``tests/bench/test_peer.py``), for an accuracy interval
  as narrow as ours;
- **dcanalysis**: the sequential paired test (``SequentialTest``), bf16, the network compiled, in two ways: every
  image in lockstep rounds (``classify_batch``), and ``--in-flight`` images in flight with each finished one
  replaced (``engine.refill``) at each of ``--rows`` rows per call, timed on the first ``--refill-images`` test
  images; each beside the compiled network's own evaluations per second at the same rows, in the same run.

The sequential test's step and confidence are chosen on other images (the last ``--tune-images`` of the test
split, from exhaustive tables replayed offline), never on the images the two are compared on: the cheapest setting
whose replayed accuracy is within ``--tolerance`` of exhaustive classification's. Both report accuracy with a
95 % Wilson interval, evaluations per image and wall-clock seconds per image (noise, images and the network, not
compilation: that is reported apart, as the first call).

``--throughput`` also measures the classifier's own overhead on this small model: the bare network forward,
eager and compiled, against ``classify_batch`` of an exhaustive 100-trial run, with the GPU kernel time of one
call beside its wall-clock time.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..engine.batching import Batched, padded_size
from ..estimators import accuracy_interval
from ..evaluation.analysis import ErrorTables, replay
from ..evaluation.lab_datasets import load_lab_dataset, to_model_input
from ..lab.registry import load_lab_diffusion
from ..noise import NoisePlan, make_noise_plan
from ..schedules import Schedule
from ..sequential import SequentialTest
from .bench import VARIANTS as BARE_VARIANTS, bench_model
from . import gpu_profile
from ..engine.compile import compile_adapter
from ..engine.overlap import classify_all
from ..engine.refill import RefillStats, classify_refilled
from .peer import official_grid, peer_classify, rows_per_stage, stage_timesteps
from .timing import sync, time_calls

PEER_STAGES = ((50, 500), (5, 1))  # the official repository's command for its 10-class datasets
# step and confidence, first pruned after two rounds (the 2026-11 grid), then also smaller steps pruned from the
# fourth trial on, also at lower confidences: fewer evaluations where the tuning images allow it (issue 41)
SEQUENTIAL_CANDIDATES = ([dict(step=s, min_trials=2 * s, confidence=c) for s in (2, 5, 10) for c in (0.99, 0.999)]
                         + [dict(step=s, min_trials=4, confidence=c) for s in (1, 2) for c in (0.95, 0.98, 0.99, 0.999)])


def accuracy_row(name: str, correct: np.ndarray, evaluations: float, seconds: float, **extra) -> dict:
    k, n = int(correct.sum()), len(correct)
    lo, hi = accuracy_interval(k, n)
    return {"implementation": name, "images": n, "accuracy": k / n, "ci95": [lo, hi],
            "evaluations_per_image": evaluations, "seconds_per_image": seconds / n, **extra}


def run_peer(adapter, x, labels, *, seconds: float, seed: int, batch: int = 32,
             dtype: torch.dtype = torch.float16) -> tuple[dict, np.ndarray]:
    """The official loop on the images of x in order until ``seconds`` have passed (at least one image), in
    ``dtype`` (the official code's fp16; float32 for a CPU smoke run); (row, predictions)."""
    device = adapter.device
    unet = adapter.unet.to(dtype)
    abar = adapter.process.alphas_cumprod.to(device)
    predict = lambda x_t, t, c: unet(x_t, t.to(dtype), class_labels=c).sample  # noqa: E731  (fp16 timesteps, as it does)
    gen = torch.Generator(device).manual_seed(seed)
    preds, evals = [], 0
    (n_samples, to_keep), shape = PEER_STAGES, (adapter.channels, adapter.sample_size, adapter.sample_size)

    def one(image):
        x0 = adapter.encode(image.unsqueeze(0).to(device))[0].to(dtype)
        noise = torch.randn((max(n_samples), *shape), generator=gen, device=device, dtype=dtype)
        return peer_classify(predict, x0, 10, abar, n_samples=n_samples, to_keep=to_keep, noise=noise,
                             batch_size=batch)

    with torch.inference_mode():
        one(x[-1])  # untimed warm-up, as ours is warmed: CUDA context, cuDNN's algorithm search for each shape
        sync(device)
        start = time.perf_counter()
        for i in tqdm(range(len(x)), desc="official loop", mininterval=5):
            r = one(x[i])
            preds.append(r.prediction)
            evals += r.n_evaluations
            if time.perf_counter() - start > seconds:
                break
    sync(device)
    wall = time.perf_counter() - start
    preds = np.array(preds)
    row = accuracy_row(f"official algorithm (re-stated): 50 -> keep 5 -> 500, {str(dtype)[6:]} eager, batch {batch}, one image at a time",
                       preds == labels[:len(preds)], evals / len(preds), wall, batch=batch, stages=PEER_STAGES)
    return row, preds


def official_order(num_timesteps: int) -> list[int]:
    """The timesteps in the order the official loop evaluates them for ``PEER_STAGES``: the first stage's sub-grid,
    then the rest of the grid."""
    (n_samples, _) = PEER_STAGES
    grid = official_grid(num_timesteps, max(n_samples))
    first = stage_timesteps(grid, n_samples[0])
    return first + [t for t in grid if t not in first]


def official_through_engine(adapter, x, y, *, common: dict, per_call: int, seed: int) -> tuple[dict, np.ndarray]:
    """The official algorithm's decisions for every image, computed by our batched engine: its stages
    (``Schedule.from_lists(*PEER_STAGES)``) on its grid in its order, each image its own noise draw per timestep.
    Under the same noise this is the official loop's arithmetic (tests/bench/test_peer.py), so its accuracy can be
    measured on as many images as ours while the loop itself is timed on the first few."""
    order = torch.tensor(official_order(adapter.process.num_timesteps))
    shape = (adapter.channels, adapter.sample_size, adapter.sample_size)
    plan = lambda i: NoisePlan(order, make_noise_plan(len(order), shape, seed=seed, image_index=i).noise)  # noqa: E731
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.from_lists(*PEER_STAGES), **common))
    results, wall = classify_all(clf, x, first_index=0, per_call=per_call, desc="official algorithm, our engine",
                                 plan=plan)
    preds = np.array([r.prediction_index for r in results])
    row = accuracy_row("official algorithm's decisions (50 -> keep 5 -> 500 on its grid), computed by our engine",
                       preds == y[:len(x)], float(np.mean([r.n_evaluations for r in results])), wall)
    return row, preds


def timed(work, device):
    """(work(), wall seconds), the GPU's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    out = work()
    sync(device)
    return out, time.perf_counter() - start


def network_rate(adapter, rows: int, seconds: float) -> dict:
    """The (compiled) network alone, as the classifier calls it (``adapter.predict``), at ``rows`` rows per call on
    random inputs, for at least ``seconds``: what the classifier's evaluations per second are measured against."""
    shape = (adapter.channels, adapter.sample_size, adapter.sample_size)
    dev = adapter.device
    g = torch.Generator(dev).manual_seed(0)
    x = torch.randn(rows, *shape, device=dev, generator=g)
    t = torch.randint(0, 1000, (rows,), device=dev, generator=g)
    c = torch.randint(0, 10, (rows,), device=dev, generator=g)
    with torch.no_grad():
        per_call = time_calls(lambda: adapter.predict(x, t, c), device=dev, warmup=1, iters=5, min_seconds=seconds)
    return {"rows": rows, "evals_per_s": rows / per_call}


def refill_row(name: str, results, y, wall: float, *, rows: int, network: dict, **extra) -> dict:
    """``accuracy_row`` of classifier results, with evaluations per second and their share of the network's."""
    preds = np.array([r.prediction_index for r in results])
    evals = np.array([r.n_evaluations for r in results])
    rate = evals.sum() / wall
    return accuracy_row(name, preds == y[:len(results)], float(evals.mean()), wall, rows=rows, evals_per_s=rate,
                        of_network=rate / network["evals_per_s"], **extra)


def warm_padded_sizes(adapter, batch: int, sizes: int) -> float:
    """Call the (compiled) network once at every batch size the classifier can send: no compilation is timed
    later. Returns the seconds it took (the compilation)."""
    start = time.perf_counter()
    shape = (adapter.channels, adapter.sample_size, adapter.sample_size)
    dev = adapter.device
    with torch.no_grad():
        for b in sorted({padded_size(n, batch, sizes) for n in range(1, batch + 1)}, reverse=True):
            adapter.predict(torch.zeros(b, *shape, device=dev), torch.zeros(b, dtype=torch.long, device=dev),
                            torch.zeros(b, dtype=torch.long, device=dev))
    sync(dev)
    return time.perf_counter() - start


def choose_sequential(clf_exhaustive: DiffusionClassifier, x, labels, *, first_index: int, per_call: int,
                      trials: int, tolerance: float, candidates: list | None = None) -> dict:
    """Exhaustive tables on tuning images, every candidate setting replayed; the cheapest within tolerance."""
    results, wall = classify_all(clf_exhaustive, x, first_index=first_index, per_call=per_call, desc="tuning tables",
                                 candidates=candidates)
    tables = ErrorTables(torch.stack([r.errors for r in results]).float().numpy(), labels, np.zeros(0), np.arange(len(x)))
    exhaustive = float(np.mean([r.prediction_index == y for r, y in zip(results, labels)]))
    return {"images": len(x), **choose_from_tables(tables, exhaustive, trials=trials, tolerance=tolerance),
            "tables_seconds": wall}


def choose_from_tables(tables: ErrorTables, exhaustive: float, *, trials: int, tolerance: float) -> dict:
    """Every ``SEQUENTIAL_CANDIDATES`` setting replayed on exhaustive tables (``analysis.replay``); the cheapest
    whose accuracy is within ``tolerance`` of the exhaustive classifier's ``exhaustive``, else the most accurate."""
    rows = []
    for c in SEQUENTIAL_CANDIDATES:
        min_trials = c.get("min_trials", 2 * c["step"])
        acc, ev = replay(tables, SequentialTest(step=c["step"], min_trials=min_trials, max_trials=trials,
                                                confidence=c["confidence"]))
        rows.append({**c, "min_trials": min_trials, "max_trials": trials, "accuracy": acc, "evaluations": ev})
    ok = [r for r in rows if r["accuracy"] >= exhaustive - tolerance]
    chosen = min(ok, key=lambda r: r["evaluations"]) if ok else max(rows, key=lambda r: r["accuracy"])
    return {"exhaustive_accuracy": exhaustive, "exhaustive_trials": trials, "tolerance": tolerance,
            "candidates": rows, "chosen": chosen}


# classify_batch's adapter: eager, compiled as it loads (NCHW), compiled with the UNet in channels_last as the bare
# rows have it, and compiled with one more of engine.optimise's options, as bench.VARIANTS names and sets them
CLASSIFY_VARIANTS = {"eager": {}, "compiled": {}, "compiled, channels_last": {"channels_last": True},
                     **{name: {k: v for k, v in BARE_VARIANTS[name].items() if k != "compile"}
                        for name in ("compiled, frozen", "compiled, tuned pointwise", "compiled+graphs",
                                  "compiled+graphs, tuned pointwise")}}
DEFAULT_CLASSIFY_VARIANTS = ("eager", "compiled", "compiled, channels_last")


def agreement(results, reference) -> dict:
    """How far classify_batch results are from reference results of the same images, plans and classes: the
    largest relative difference of a class's mean error, and the share of images with the same prediction."""
    err = torch.stack([r.mean_errors.float() for r in results])
    ref = torch.stack([r.mean_errors.float() for r in reference])
    same = [r.prediction_index == q.prediction_index for r, q in zip(results, reference)]
    return {"images": len(results), "max_rel_diff_mean_error": float(((err - ref).abs() / ref.abs()).max()),
            "same_prediction": float(np.mean(same))}


def throughput_classifier(adapter, batch: int, compiled: bool) -> DiffusionClassifier:
    """The classifier the throughput benchmark times: exhaustive, 100 trials x every class, ``batch`` network rows
    per call, padded to that one shape when the network is ``compiled``."""
    return DiffusionClassifier(Batched(adapter, static_rows=batch if compiled else None),
                               ClassifierConfig(schedule=Schedule.exhaustive(100), batch_size=batch))


def kernel_profile(clf: DiffusionClassifier, x, *, device, ref: float) -> dict:
    """One profiled ``classify_batch`` call of the images ``x`` over the 10 lab classes: the GPU's kernel seconds,
    its kernel groups and its eight longest kernels (``gpu_profile.breakdown``)."""
    prof = gpu_profile.breakdown(lambda: clf.classify_batch(list(x), list(range(10)), image_indices=range(len(x))),
                                 device=device, ref_tflops=ref, iters=1, flops={})
    return {"kernel_seconds_per_call": sum(g["seconds_per_call"] for g in prof["groups"]),
            "groups": prof["groups"], "top_kernels": prof["top_kernels"][:8]}


def throughput_rows(dataset: str, x, *, device, batch: int, seconds: float, ref: float,
                    variants=DEFAULT_CLASSIFY_VARIANTS, per_calls=(32, 256), attentions=(None,), agree_images: int = 32,
                    calls: int = 4, bare_variants=("eager", "compiled"), one_by_one: bool = True,
                    rows: list | None = None, on_row=None) -> list[dict]:
    """The bare network against classify_batch (exhaustive, 100 trials x 10 classes) on this small model, at
    ``batch`` network rows per call; ``variants`` of the adapter (a subset of ``CLASSIFY_VARIANTS``), ``per_calls``
    images per classify_batch call, ``calls`` calls of each timed (the last size both one after another and with
    each call's host work overlapped with the GPU's work on the one before, ``classify_stream``; the other sizes
    overlapped only), the last size also profiled for its kernel time. Each compiled variant runs
    under each of ``attentions`` (SDPA backends, ``engine.attention``; None: PyTorch's choice), and its results on
    the first ``agree_images`` images are compared with eager classification's (``agreement``). ``ref``: the same-run matmul
    TFLOP/s that every ratio is to. The bare network runs as each of ``bare_variants`` (``bench.VARIANTS``) for
    ``seconds``; ``one_by_one=False`` leaves out the one-after-another timing. Rows go into ``rows`` (a new list
    unless given) as they are measured, and ``on_row()`` hears of each (to save a long run as it goes)."""
    # bf16 on a GPU, as the benchmark runs; float32 on a CPU, whose bf16 kernels are emulated and far slower
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    unet = load_lab_diffusion(f"{dataset}_unet", device=device, dtype=dtype).unet
    rows = [] if rows is None else rows
    first, runnable = len(rows), []
    for attention in attentions:
        try:
            rows += bench_model(f"{dataset}_unet", unet, lab_unet_inputs(unet, device), batch=batch, device=device,
                                dtype=dtype, ref_tflops=ref, compile_model=True, seconds=seconds,
                                variants=bare_variants if attention is None else [v for v in bare_variants
                                                                                 if v != "eager"],
                                attention=attention)
            runnable.append(attention)
        except RuntimeError as e:  # the backend cannot run these shapes (dynamo's compile failures are RuntimeErrors)
            print(f"attention {attention}: cannot run {dataset}_unet ({str(e).splitlines()[0][:200]}); left out")
    for r in rows[first:]:
        r["task"] = "bare forward"
    if on_row is not None:
        on_row()
    if len(rows) == first:
        raise SystemExit(f"no attention backend of {attentions} could run {dataset}_unet.")
    gflop = rows[first]["gflop_per_eval"]

    eager_results, _ = classify_all(throughput_classifier(load_lab_diffusion(f"{dataset}_unet", device=device,
                                                                             dtype=dtype), batch, False),
                                    x[:agree_images], first_index=0, per_call=agree_images, desc="eager reference")
    for variant in variants:
        options, compiled = dict(CLASSIFY_VARIANTS[variant]), variant != "eager"
        channels_last = options.pop("channels_last", False)
        for attention in runnable if compiled else (None,):
            torch._dynamo.reset()
            adapter = load_lab_diffusion(f"{dataset}_unet", device=device, dtype=dtype)
            if channels_last:
                adapter.unet = adapter.unet.to(memory_format=torch.channels_last)
            if compiled:
                compile_adapter(adapter, attention=attention, **options)
            for per_call in per_calls:
                clf = throughput_classifier(adapter, batch, compiled)
                try:
                    classify_all(clf, x[:per_call], first_index=50_000, per_call=per_call, desc="warm-up")
                except RuntimeError as e:  # an option inductor cannot apply to this graph: reported, not fatal
                    print(f"classify_batch {variant}: cannot run ({str(e).splitlines()[0][:200]}); left out")
                    break
                # the largest calls are timed both ways: one after another, and with each call's host work done
                # while the GPU runs the one before (classify_stream); four calls, so one pipeline fill in four
                for overlap in (False, True) if per_call == per_calls[-1] and one_by_one else (True,):
                    timed_from = time.time()  # wall clock, to line up with the GPU's clock log
                    res, wall = classify_all(clf, x[:calls * per_call], first_index=0, per_call=per_call,
                                             desc="classify_batch", overlap=overlap)
                    evals = sum(r.n_evaluations for r in res)
                    row = {"task": "classify_batch, exhaustive 100 trials x 10 classes", "variant": variant,
                           "attention": attention or "default", "images_per_call": per_call, "calls": calls,
                           "overlap": overlap, "batch": batch, "evals_per_s": evals / wall,
                           "timed_from": timed_from, "timed_to": time.time(),
                           "ratio_to_matmul": evals / wall * gflop / 1e3 / ref,
                           "vs_eager": agreement(res[:agree_images], eager_results)}
                    # the largest overlapped calls are profiled for their kernel time where the profiler sees them
                    if overlap and per_call == per_calls[-1] and gpu_profile.sees_kernels(options):
                        row.update(kernel_profile(clf, x[:per_call], device=device, ref=ref))
                        row["wall_seconds_per_call"] = per_call * 1000 / row["evals_per_s"]
                    print_row(row)
                    rows.append(row)
                    if on_row is not None:
                        on_row()
    return rows


def lab_unet_inputs(unet, device):
    """make_inputs(batch) for a lab UNet: random noisy images (in the network's dtype), timesteps and class labels."""
    s, c = unet.config.sample_size, unet.config.in_channels
    return lambda b: {"sample": torch.randn(b, c, s, s, device=device, dtype=unet.dtype),
                      "timestep": torch.randint(0, 1000, (b,), device=device),
                      "class_labels": torch.randint(0, 10, (b,), device=device)}


def print_row(row: dict) -> None:
    """One line for a ``throughput_rows`` classify_batch row."""
    print(f"classify_batch {row['variant']:24s} attention {row['attention']:9s} {row['images_per_call']:4d} images "
          f"per call{', overlapped' if row['overlap'] else ', one by one'}, batch {row['batch']}: "
          f"{row['evals_per_s']:9.0f} evals/s; against eager: mean errors within "
          f"{row['vs_eager']['max_rel_diff_mean_error']:.1e}, {100 * row['vs_eager']['same_prediction']:.0f} % same "
          "predictions" + (f"; kernels {row['kernel_seconds_per_call']:.3f} s of {row['wall_seconds_per_call']:.3f} s "
                           "wall" if "kernel_seconds_per_call" in row else ""))


def host_profile(run, top: int = 40) -> list[dict]:
    """``run()`` under cProfile: the ``top`` functions by own time, each {function, calls, own_s, cumulative_s}.
    From Python 3.12 cProfile records every thread (it uses sys.monitoring), the worker threads too, and a
    function's time includes its waits for the GIL; before 3.12 this thread only."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(run)
    rows = [{"function": f"{Path(file).name}:{line}({fn})", "calls": int(nc), "own_s": tt, "cumulative_s": ct}
            for (file, line, fn), (_, nc, tt, ct, _) in pstats.Stats(prof).stats.items()]
    return sorted(rows, key=lambda r: -r["own_s"])[:top]


def main(argv=None):
    p = argparse.ArgumentParser(description="The official algorithm against dcanalysis's fastest configuration.")
    p.add_argument("--datasets", nargs="+", default=["fashion_mnist"], choices=["fashion_mnist", "mnist"])
    p.add_argument("--n-images", type=int, default=1000, help="test images (the head of the split) for dcanalysis")
    p.add_argument("--peer-seconds", type=float, default=120.0, help="the official loop runs this long per dataset")
    p.add_argument("--tune-images", type=int, default=500, help="the last images of the test split, for tuning")
    p.add_argument("--tolerance", type=float, default=0.005, help="accuracy the tuned test may give up (fraction)")
    p.add_argument("--trials", type=int, default=100, help="most trials per candidate for dcanalysis")
    p.add_argument("--rows", type=int, nargs="+", default=[2048, 4096],
                   help="rows per network call of the refilled sequential test, each timed (one compiled shape each); "
                        "the last is also the batch of the exhaustive and staged runs")
    p.add_argument("--padded-sizes", type=int, default=1,
                   help="the lockstep classify_batch run pads its shrinking rounds to the smallest of this many sizes "
                        "(the last --rows, half of it, ...), each compiled")
    p.add_argument("--refill-padded-sizes", type=int, default=4,
                   help="the refilled test pads each call to the smallest of this many sizes (its --rows, half of it, "
                        "...) that holds it: a run's last calls, as its last images finish, are small")
    p.add_argument("--host-threads", type=int, nargs="+", default=[4],
                   help="worker threads reading images and drawing noise plans ahead of the refilled test's loop "
                        "(each value a run)")
    p.add_argument("--call-graphs", nargs="+", choices=["off", "on"], default=["off"],
                   help="the refilled test launches each call's device work kernel by kernel (off) or replays it as "
                        "one CUDA graph per padded size (on: classify_refilled(cuda_graphs=True)); each value a run")
    p.add_argument("--profile-host", action="store_true",
                   help="after the timed refilled runs, one more (the last --rows, --in-flight, --host-threads and "
                        "--call-graphs) under cProfile, untimed: host time by function (host_profile)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="compile dcanalysis's network with CUDA graphs (engine.compile.optimise(cuda_graphs=True)); "
                        "the network's own rate is then measured so too")
    p.add_argument("--in-flight", type=int, nargs="+", default=[1000],
                   help="images in flight in the refilled sequential test, each timed with each --rows")
    p.add_argument("--refill-images", type=int, default=4000,
                   help="test images (the head of the split) the refilled test is timed on; the first --n-images of "
                        "them are compared with the official algorithm; with the tuning images at most the split")
    p.add_argument("--throughput", action="store_true",
                   help="also the bare network against classify_batch (batch 8,000: 32 images x 1,000 per call)")
    p.add_argument("--seconds", type=float, default=2.0, help="time each bare-network row at least this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda (the benchmark), or cpu for a smoke run of the command")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("this comparison times a GPU; run it on a machine with CUDA (--device cpu: a smoke run).")
    torch.backends.cudnn.benchmark = True
    # bf16 and the official code's fp16 on a GPU; float32 on a CPU, whose half-precision kernels are emulated
    ours_dtype, peer_dtype = (torch.bfloat16, torch.float16) if device.type == "cuda" else (torch.float32,) * 2
    out = {"command": "python -m dcanalysis.bench.versus_official " + " ".join(argv if argv is not None else
                                                                                  __import__("sys").argv[1:]),
           "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__, "seed": a.seed, "datasets": {}}

    def save():
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))

    if a.throughput:
        from .timing import matmul_tflops

        out["matmul_tflops"] = matmul_tflops(device, torch.bfloat16, 8192, min_seconds=a.seconds)
    for name in a.datasets:
        ds = load_lab_dataset(name, test_only=True)
        x, y = to_model_input(ds.test_images), ds.test_labels.astype(np.int64)
        if max(a.refill_images, a.n_images) + a.tune_images > len(x):
            raise SystemExit(f"{name} has {len(x)} test images: --refill-images {a.refill_images} (or --n-images "
                             f"{a.n_images}) and the last --tune-images {a.tune_images} overlap; lower one of them.")
        res = out["datasets"][name] = {}
        if a.throughput:
            res["throughput"] = throughput_rows(name, x, device=device, batch=8000, seconds=a.seconds,
                                                ref=out["matmul_tflops"])
            save()
        torch._dynamo.reset()
        adapter = load_lab_diffusion(f"{name}_unet", device=device, dtype=ours_dtype)
        compile_adapter(adapter, cuda_graphs=a.cuda_graphs)
        # the compiled shapes: each refill call padded to the smallest of --refill-padded-sizes halvings of its
        # rows that holds it (the last calls of a run are small), each classify_batch chunk likewise
        res["compile_seconds"] = {r: warm_padded_sizes(adapter, r, a.refill_padded_sizes) for r in a.rows}
        res["compile_seconds"]["lockstep"] = warm_padded_sizes(adapter, a.rows[-1], a.padded_sizes)
        res["network"] = {r: network_rate(adapter, r, a.seconds) for r in a.rows}
        main_rows = a.rows[-1]
        batched = Batched(adapter, static_rows=main_rows)  # the exhaustive tuning tables and the official decisions
        refilled = {r: Batched(adapter, static_rows=r, padded_sizes=a.refill_padded_sizes) for r in a.rows}
        common = dict(batch_size=main_rows, seed=a.seed)
        tune = slice(len(x) - a.tune_images, len(x))
        res["tuning"] = choose_sequential(
            DiffusionClassifier(batched, ClassifierConfig(schedule=Schedule.exhaustive(a.trials),
                                                                     **common)),
            x[tune], y[tune], first_index=tune.start, per_call=a.tune_images, trials=a.trials, tolerance=a.tolerance)
        c = res["tuning"]["chosen"]
        policy = SequentialTest(step=c["step"], min_trials=c["min_trials"], max_trials=c["max_trials"],
                                confidence=c["confidence"])
        print(f"{name}: chosen on the tuning images: {policy}")
        n = a.n_images
        # before: classify_batch, every image of the run in lockstep rounds (the 2026-11 benchmark's configuration,
        # here padded to --padded-sizes shapes)
        clf = DiffusionClassifier(Batched(adapter, static_rows=main_rows, padded_sizes=a.padded_sizes),
                                  ClassifierConfig(schedule=policy, **common))
        classify_all(clf, x[tune][:200], first_index=tune.start, per_call=200, desc="warm-up")
        lockstep, wall = classify_all(clf, x[:n], first_index=0, per_call=n, desc="dcanalysis, lockstep")
        res["lockstep"] = refill_row(f"dcanalysis: {policy}, classify_batch of {n} images in lockstep", lockstep,
                                     y, wall, rows=main_rows, network=res["network"][main_rows])
        save()
        # after: a fixed number of images in flight, each finished one replaced (engine.refill)
        for rows, in_flight, threads, graphs in ((r, f, h, g == "on") for r in a.rows for f in a.in_flight
                                                 for h in a.host_threads for g in a.call_graphs):
            clf = DiffusionClassifier(refilled[rows], ClassifierConfig(schedule=policy, **dict(common, batch_size=rows)))
            warm = x[tune][:200]
            # graphs are captured per run (they read the run's own slots): the timed run pays its captures too
            # (RefillStats.capture_s)
            timed(lambda: list(classify_refilled(clf, list(warm), range(10), in_flight=in_flight,
                                                 image_indices=range(tune.start, tune.start + len(warm)),
                                                 host_threads=threads, cuda_graphs=graphs)), device)
            stats = RefillStats()
            results, wall = timed(lambda: list(classify_refilled(
                clf, list(x[:a.refill_images]), range(10), in_flight=in_flight, progress=True,
                host_threads=threads, cuda_graphs=graphs, stats=stats)), device)
            results.sort(key=lambda r: r.image_index)
            row = refill_row(f"dcanalysis: {policy}, {in_flight} images in flight, {rows} rows per call"
                             + (", calls replayed as CUDA graphs" if graphs else ""),
                             results, y, wall, rows=rows, network=res["network"][rows], in_flight=in_flight,
                             calls=stats.calls, rows_sent=stats.rows, fill=stats.rows / (stats.calls * rows),
                             waited_seconds=stats.waited_s, host_threads=threads,
                             host_seconds={"admit": stats.admit_s, "launch": stats.launch_s, "decide": stats.decide_s,
                                           "graph_capture": stats.capture_s,
                                           "admit_waiting_for_workers": stats.waited_workers_s},
                             rounds_decided=stats.decisions, call_graphs=graphs,
                             padded_sizes=a.refill_padded_sizes)
            row["same_images"] = accuracy_row("the same run, its first images", np.array(
                [r.prediction_index for r in results[:n]]) == y[:n], float(np.mean([r.n_evaluations for r in
                                                                                   results[:n]])), 0.0)
            row["vs_lockstep"] = agreement(results[:n], lockstep)
            res.setdefault("refill", []).append(row)
            print(f"{name} refill, {rows} rows, {in_flight} in flight, {threads} host threads, call graphs "
                  f"{'on' if graphs else 'off'}: {row['evals_per_s']:.0f} evals/s = {100 * row['of_network']:.0f} % of "
                  f"the compiled network's {res['network'][rows]['evals_per_s']:.0f}; lockstep: "
                  f"{100 * res['lockstep']['of_network']:.0f} %; predictions as lockstep's: "
                  f"{100 * row['vs_lockstep']['same_prediction']:.1f} %; calls {100 * row['fill']:.0f} % full on "
                  f"average, {row['waited_seconds']:.1f} s of {wall:.1f} s waiting for the GPU; per call "
                  + ", ".join(f"{k} {1000 * v / stats.calls:.1f} ms" for k, v in row["host_seconds"].items())
                  + f", {stats.decisions / stats.calls:.0f} rounds decided")
            save()
        if a.profile_host:
            res["host_profile"] = host_profile(lambda: list(classify_refilled(
                clf, list(x[:a.refill_images]), range(10), in_flight=in_flight, host_threads=threads,
                cuda_graphs=graphs)))
            print(f"{name}: the refilled loop's thread under cProfile, by own time:")
            for r in res["host_profile"][:25]:
                print(f"  {r['own_s']:7.3f} s own {r['cumulative_s']:7.3f} s cum {r['calls']:8d} calls  {r['function']}")
            save()
        best = max(res["refill"], key=lambda r: r["evals_per_s"])
        res["dcanalysis"] = {**best["same_images"], "implementation": best["implementation"],
                             "seconds_per_image": best["seconds_per_image"], "rows": best["rows"]}
        res["official_decisions"], official = official_through_engine(batched, x[:n], y, common=common,
                                                                      per_call=250, seed=a.seed)
        save()
        del adapter, clf, batched
        torch._dynamo.reset()
        lo, hi = res["official_decisions"]["ci95"]
        res["inside_official_interval"] = bool(lo <= res["dcanalysis"]["accuracy"] <= hi)
        peer_model = load_lab_diffusion(f"{name}_unet", device=device, dtype=peer_dtype)
        stage_rows = rows_per_stage(peer_model.process.num_timesteps, 10, *PEER_STAGES)
        # the official loop at its default batch, then with its batch raised to one network call per stage
        for key, batch in (("official_default", 32), ("official", max(stage_rows))):
            row, peer = run_peer(peer_model, x[:n], y, seconds=a.peer_seconds, seed=a.seed, batch=batch,
                                 dtype=peer_dtype)
            row["agreement_with_engine_decisions"] = float((official[:len(peer)] == peer).mean())
            res[key] = row
            save()
        ours = res["dcanalysis"]["seconds_per_image"]
        res["speedup"] = res["official"]["seconds_per_image"] / ours  # the fair ratio: the peer at its best
        res["speedup_default_batch"] = res["official_default"]["seconds_per_image"] / ours
        for k in ("official_default", "official", "official_decisions", "lockstep", "dcanalysis"):
            r = res[k]
            print(f"{name} {k:20s} {r['images']:5d} images {100 * r['accuracy']:5.1f}% "
                  f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] {r['evaluations_per_image']:7.1f} evals/image "
                  f"{1e3 * r['seconds_per_image']:8.2f} ms/image")
        print(f"{name}: {res['speedup']:.1f}x less wall time per image than the official loop at its best batch "
              f"({res['speedup_default_batch']:.0f}x at its default); inside the official algorithm's interval: "
              f"{res['inside_official_interval']}")
        save()
    return out


if __name__ == "__main__":
    main()


def merge_runs(*results: dict) -> dict:
    """One ``versus_official`` JSON of several runs' datasets (one dataset per GPU command fits its time limit);
    the runs must come from one device."""
    devices = {r["device"] for r in results}
    if len(devices) > 1:
        raise ValueError(f"runs from different devices {sorted(devices)}: their times do not compare.")
    merged = {k: v for k, v in results[0].items() if k != "datasets"}
    merged["command"] = "; ".join(r["command"] for r in results)
    merged["datasets"] = {name: r for run in results for name, r in run["datasets"].items()}
    return merged


def summary_rows(results: dict) -> list[dict]:
    """One row per dataset of a ``versus_official`` JSON: the official algorithm (accuracy from its decisions on
    every image, time from its own loop) beside dcanalysis, in %, evaluations and milliseconds per image. Runs that
    also timed the official loop at one call per stage show that ratio first (the fair one), then the one at its
    default batch of 32."""
    rows = []
    for name, r in results["datasets"].items():
        if "official" not in r:
            continue
        dec, ours = r["official_decisions"], r["dcanalysis"]
        pct = lambda row: f"{100 * row['accuracy']:.1f} % [{100 * row['ci95'][0]:.1f}, {100 * row['ci95'][1]:.1f}]"  # noqa: E731
        row = {"dataset": name, "images": ours["images"],
               "official: accuracy [95 %]": pct(dec), "official: evals/image": round(dec["evaluations_per_image"])}
        if "official_default" in r:
            best, default = r["official"], r["official_default"]
            row.update({f"official loop, batch {best['batch']:,} (one call per stage): ms/image":
                        round(1e3 * best["seconds_per_image"], 1),
                        "official loop, batch 32: ms/image": round(1e3 * default["seconds_per_image"], 1),
                        "official loop: images timed": f"{best['images']} and {default['images']}"})
        else:
            row.update({"official loop, batch 32: ms/image": round(1e3 * r["official"]["seconds_per_image"], 1),
                        "official loop: images timed": r["official"]["images"]})
        row.update({"dcanalysis: accuracy [95 %]": pct(ours), "dcanalysis: evals/image": round(ours["evaluations_per_image"], 1),
                    "dcanalysis: ms/image": round(1e3 * ours["seconds_per_image"], 2)})
        if "official_default" in r:
            row.update({"x less time than the official loop at its best": round(r["speedup"], 1),
                        "x less time than at its default batch": round(r["speedup_default_batch"], 1)})
        else:
            row["x less time than at its default batch"] = round(r["speedup"], 1)
        row["inside the official interval"] = r["inside_official_interval"]
        rows.append(row)
    return rows
