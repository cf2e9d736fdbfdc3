"""Issue 41's last point, on the CPU: would the sequential test spend fewer evaluations if its first trials were
the most informative ones? Replayed from the committed exhaustive error tables of the lab models (1,000 test images
x 10 classes x 100 trials of the `even` plan, `data/results/lab/{dataset}_test`), in two folds: the trial order and
the sequential test's settings (versus_official's candidates and rule, tolerance 0.005) are chosen on one half of
the images and judged on the other.

Orders: the plan's own (van der Corput over the even grid); all 100 trials sorted by the tuning half's single-trial
accuracy; sorted by the paired margin's signal-to-noise ratio (mean over sd of best-other minus true-class error);
the 2, 4 or 8 trials of highest ratio first, then the plan's own order. Permuting a table's columns keeps each
trial's (t, eps) pair: a plan that ordered its timesteps so would pair them with other eps, the same in law.
Usage: python data/jobs/trial_order.py OUT.json
"""
import json
import sys

import numpy as np

from dcanalysis import SequentialTest
from dcanalysis.bench.versus_official import choose_from_tables
from dcanalysis.estimators import accuracy_interval
from dcanalysis.evaluation.analysis import ErrorTables, replay
from dcanalysis.paths import RESULTS_DIR


def columns(tables: ErrorTables, images: np.ndarray, order: np.ndarray) -> ErrorTables:
    return ErrorTables(tables.errors[images][:, :, order], tables.labels[images], tables.timesteps[order],
                       tables.ids[images])


def orders(tables: ErrorTables, tune: np.ndarray) -> dict[str, np.ndarray]:
    """The candidate trial orders, each measured on the tuning images only."""
    e, labels = tables.errors[tune].astype(np.float64), tables.labels[tune]
    rows = np.arange(len(tune))
    single = (e.argmin(1) == labels[:, None]).mean(0)  # (T,) accuracy of each trial alone
    others = e.copy()
    others[rows, labels] = np.inf
    margin = others.min(1) - e[rows, labels]  # (images, T): positive where the true class wins the trial
    snr = margin.mean(0) / margin.std(0)
    by_snr = np.argsort(-snr, kind="stable")
    out = {"plan's own": np.arange(e.shape[2]), "single-trial accuracy": np.argsort(-single, kind="stable"),
           "margin snr": by_snr}
    for k in (2, 4, 8):
        head = list(by_snr[:k])
        out[f"margin snr, top {k} first"] = np.array(head + [c for c in range(e.shape[2]) if c not in head])
    return out


def main(out_path: str) -> None:
    result = {"command": "python data/jobs/trial_order.py " + out_path, "tolerance": 0.005, "datasets": {}}
    for name in ("mnist", "fashion_mnist"):
        tables = ErrorTables.load(RESULTS_DIR / "lab" / f"{name}_test")
        n = len(tables.labels)
        halves = (np.arange(n // 2), np.arange(n // 2, n))
        rows = result["datasets"][name] = []
        for fold, (tune, judged) in enumerate((halves, halves[::-1])):
            for label, order in orders(tables, tune).items():
                tuned = columns(tables, tune, order)
                exhaustive = float((tuned.errors.mean(2).argmin(1) == tuned.labels).mean())
                c = choose_from_tables(tuned, exhaustive, trials=order.size, tolerance=0.005)["chosen"]
                policy = SequentialTest(step=c["step"], min_trials=c["min_trials"], max_trials=c["max_trials"],
                                        confidence=c["confidence"])
                acc, evals = replay(columns(tables, judged, order), policy)
                lo, hi = accuracy_interval(round(acc * len(judged)), len(judged))
                rows.append({"fold": fold, "order": label, "chosen": c, "held_out_images": len(judged),
                             "held_out_accuracy": acc, "ci95": [lo, hi], "held_out_evaluations": evals,
                             "first_timesteps": tables.timesteps[order[:8]].tolist()})
                print(f"{name} fold {fold} {label:28s} {policy}: tuning {c['accuracy']:.3f} (exhaustive "
                      f"{exhaustive:.3f}), held out {acc:.3f} [{lo:.3f}, {hi:.3f}] at {evals:.1f} evaluations")
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
