"""What an engine does to a whole evaluation run: its first call, its steady rate, and whether it gives the same
answers as another run of the same images.

A run's records (``evaluation.runs``) each carry ``seconds``: the time of the ``classify_batch`` call the image
shared, divided by the images in it. The first call of a compiled network includes its compilation, so a run's
time splits into that first call and a steady per-image time, and a run of any size can be projected from the two:

    seconds(n) = first_call_s + (n - images_per_call) * steady_s_per_image

Two runs of the same images with the same seed use the same noise per image (``host_inputs`` seeds each image by
its id), so they differ only in arithmetic: ``compare_runs`` counts the images whose prediction changed.

    python -m dcanalysis.bench.engine_runs RUN_A RUN_B --images-per-call 256 --project 18500
"""
from __future__ import annotations

import argparse
import json
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..estimators import accuracy_interval
from ..evaluation.run_store import load_records


@dataclass(frozen=True)
class RunTiming:
    """Seconds of a run whose records were computed ``images_per_call`` at a time, in id order."""

    n: int
    images_per_call: int
    first_call_s: float  # the first classify_batch call (for a compiled network: with its compilation)
    steady_s_per_image: float  # the mean over every later call (NaN when there was none)
    total_s: float  # the sum over all calls

    def projected_s(self, n_images: int) -> float:
        """The time of a run of ``n_images`` at this first call and steady rate."""
        return self.first_call_s + max(0, n_images - self.images_per_call) * self.steady_s_per_image


def run_timing(records: Sequence[dict], images_per_call: int) -> RunTiming:
    """``RunTiming`` of finished records (failed ones left out), taken in id order."""
    ok = sorted((r for r in records if "error" not in r), key=lambda r: r["id"])
    if not ok or images_per_call < 1:
        raise ValueError(f"need finished records and images_per_call >= 1; got {len(ok)} records, "
                         f"images_per_call={images_per_call}.")
    seconds = np.array([r["seconds"] for r in ok], dtype=float)
    first, rest = seconds[:images_per_call], seconds[images_per_call:]
    return RunTiming(n=len(ok), images_per_call=images_per_call, first_call_s=float(first.sum()),
                     steady_s_per_image=float(rest.mean()) if len(rest) else float("nan"),
                     total_s=float(seconds.sum()))


@dataclass(frozen=True)
class RunComparison:
    """Two runs on the images both finished: how often they agree, and each one's accuracy (Wilson 95 %)."""

    n: int
    same_predictions: int
    max_relative_error_difference: float  # max over images and classes of |a - b| / |b| of the mean errors
    accuracy_a: float
    ci95_a: tuple[float, float]
    accuracy_b: float
    ci95_b: tuple[float, float]


def compare_runs(records_a: Sequence[dict], records_b: Sequence[dict]) -> RunComparison:
    """Compare run A with run B on the ids both finished with the same label (an id whose label differs is a
    different image: refused)."""
    a = {r["id"]: r for r in records_a if "error" not in r}
    b = {r["id"]: r for r in records_b if "error" not in r}
    ids = sorted(a.keys() & b.keys())
    if not ids:
        raise ValueError("the two runs have no finished image in common: compare runs of the same images.")
    if any(a[i]["label"] != b[i]["label"] for i in ids):
        raise ValueError("the two runs give the same id different labels: they are not runs of the same images.")
    ea = np.array([a[i]["mean_errors"] for i in ids])
    eb = np.array([b[i]["mean_errors"] for i in ids])
    correct_a = sum(a[i]["prediction"] == a[i]["label"] for i in ids)
    correct_b = sum(b[i]["prediction"] == b[i]["label"] for i in ids)
    return RunComparison(n=len(ids), same_predictions=sum(a[i]["prediction"] == b[i]["prediction"] for i in ids),
                         max_relative_error_difference=float((np.abs(ea - eb) / np.abs(eb)).max()),
                         accuracy_a=correct_a / len(ids), ci95_a=accuracy_interval(correct_a, len(ids)),
                         accuracy_b=correct_b / len(ids), ci95_b=accuracy_interval(correct_b, len(ids)))


def records_from_archive(archive: Path, run_name: str) -> list[dict]:
    """The records of run directory ``run_name`` inside a .tgz of run directories (what a GPU job sends back)."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers()
                   if m.isfile() and m.name.removeprefix("./").startswith(f"{run_name}/records-rank")]
        if not members:
            raise FileNotFoundError(f"{archive} holds no records of run {run_name!r}.")
        lines = [line for m in members for line in tar.extractfile(m).read().decode().splitlines()]
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class EngineRun:
    """One timed run: its dataset, the engine's name, the .tgz its run directory came back in, and the images it
    classified per call."""

    dataset: str
    engine: str
    archive: Path
    images_per_call: int


def engine_rows(runs: Sequence[EngineRun], references: dict[str, Sequence[dict]], job_images: dict[str, int],
                baseline: str = "eager") -> list[dict]:
    """One row per run: its first call and steady rate, the time projected for ``job_images[dataset]`` images
    and as a share of the ``baseline`` engine's projection for the same dataset, and its agreement with the
    reference records of the same images (``references[dataset]``)."""
    records = [records_from_archive(r.archive, f"{r.dataset}_test") for r in runs]
    timings = [run_timing(rec, r.images_per_call) for r, rec in zip(runs, records)]
    projected = {(r.dataset, r.engine): t.projected_s(job_images[r.dataset]) for r, t in zip(runs, timings)}
    rows = []
    for r, rec, t in zip(runs, records, timings):
        c = compare_runs(rec, references[r.dataset])
        evals = float(np.mean([x["evaluations"] for x in rec if "error" not in x]))
        base = projected.get((r.dataset, baseline))
        rows.append({"dataset": r.dataset, "engine": r.engine, "images / call": r.images_per_call,
                     "images timed": t.n, "first call (s)": round(t.first_call_s, 1),
                     "steady s / image": round(t.steady_s_per_image, 4),
                     "steady evals/s": round(evals / t.steady_s_per_image),
                     "projected s, lab job": round(projected[(r.dataset, r.engine)]),
                     "lab job images": job_images[r.dataset],
                     f"share of {baseline}": round(projected[(r.dataset, r.engine)] / base, 2) if base else None,
                     "same predictions": f"{c.same_predictions:,} of {c.n:,}",
                     "accuracy (95 % CI)": _percent(c.accuracy_a, c.ci95_a),
                     "reference accuracy": _percent(c.accuracy_b, c.ci95_b)})
    return rows


def _percent(p: float, ci: tuple[float, float]) -> str:
    return f"{100 * p:.1f} % ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Time a run and compare it with another run of the same images.")
    p.add_argument("run", type=Path, help="the run directory timed (A)")
    p.add_argument("reference", type=Path, help="a run of the same images to compare with (B)")
    p.add_argument("--images-per-call", type=int, required=True, help="the run's --images-per-batch")
    p.add_argument("--project", type=int, nargs="*", default=[], help="image counts to project the run's time to")
    a = p.parse_args(argv)
    records = load_records(a.run)
    timing = run_timing(records, a.images_per_call)
    out = {"timing": asdict(timing), "projected_s": {n: round(timing.projected_s(n), 1) for n in a.project},
           "comparison": asdict(compare_runs(records, load_records(a.reference)))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
