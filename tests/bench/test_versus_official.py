import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters.toy import GaussianMixtureAdapter, two_moons_like
from dcanalysis.bench.versus_official import SEQUENTIAL_CANDIDATES, choose_sequential


def test_the_sequential_test_is_tuned_on_its_own_images_and_the_cheapest_within_tolerance_wins():
    adapter = GaussianMixtureAdapter(two_moons_like(3))
    points = torch.randn(30, 2, generator=torch.Generator().manual_seed(0)) * 1.3
    labels = torch.stack([torch.tensor(0)] * 30).numpy()
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(40), batch_size=256))
    out = choose_sequential(clf, points, labels, first_index=1000, per_call=16, trials=40, tolerance=1.0,
                            candidates=[0, 1, 2])
    assert len(out["candidates"]) == len(SEQUENTIAL_CANDIDATES) and out["images"] == 30
    # with a tolerance of 100 % every setting qualifies: the one replaying the fewest evaluations is chosen
    assert out["chosen"]["evaluations"] == min(r["evaluations"] for r in out["candidates"])
    strict = choose_sequential(clf, points, labels, first_index=1000, per_call=16, trials=40, tolerance=0.0,
                               candidates=[0, 1, 2])
    assert strict["chosen"]["accuracy"] >= strict["exhaustive_accuracy"] or \
        strict["chosen"]["accuracy"] == max(r["accuracy"] for r in strict["candidates"])


def test_every_classify_variant_names_options_the_engine_takes():
    import inspect

    from dcanalysis.engine.compile import optimise
    from dcanalysis.bench.versus_official import CLASSIFY_VARIANTS, DEFAULT_CLASSIFY_VARIANTS

    takes = set(inspect.signature(optimise).parameters) | {"channels_last"}
    assert all(set(o) <= takes for o in CLASSIFY_VARIANTS.values())
    assert set(DEFAULT_CLASSIFY_VARIANTS) <= set(CLASSIFY_VARIANTS)


def test_throughput_rows_time_the_bare_variants_and_save_each_row_as_it_comes(monkeypatch):
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
    from dcanalysis.schedules import Schedule
    from dcanalysis.bench import versus_official

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # CPU: no inductor
    # two trials instead of the benchmark's 100, so the real lab UNet runs in seconds on the CPU
    monkeypatch.setattr(versus_official, "Schedule", type("Few", (), {"exhaustive": staticmethod(
        lambda n: Schedule.exhaustive(2))}))
    x = to_model_input(load_lab_dataset("fashion_mnist", test_only=True).test_images[:4])
    saved, rows = [], []
    versus_official.throughput_rows("fashion_mnist", x, device=torch.device("cpu"), batch=8, seconds=0.0, ref=1.0,
                                    variants=["compiled"], per_calls=(2,), calls=2, agree_images=2,
                                    bare_variants=("eager", "compiled, frozen"), rows=rows,
                                    on_row=lambda: saved.append(len(rows)))
    bare = [r["variant"] for r in rows if r["task"] == "bare forward"]
    timed = [(r["images_per_call"], r["overlap"]) for r in rows if r["task"] != "bare forward"]
    assert bare == ["eager", "compiled, frozen"] and timed == [(2, False), (2, True)]
    assert saved == [2, 3, 4]  # after the bare rows, then after each classify row
    assert all(r["timed_from"] < r["timed_to"] for r in rows) and "kernel_seconds_per_call" in rows[-1]
    assert rows[-1]["vs_eager"]["same_prediction"] == 1.0  # torch.compile replaced: the same numbers as eager
    rows.clear()
    versus_official.throughput_rows("fashion_mnist", x, device=torch.device("cpu"), batch=8, seconds=0.0, ref=1.0,
                                    variants=["compiled"], per_calls=(2,), calls=2, agree_images=2, rows=rows,
                                    one_by_one=False)
    assert [r.get("overlap") for r in rows if r["task"] != "bare forward"] == [True]


def test_timed_images_that_would_overlap_the_tuning_images_are_refused_in_one_line(tmp_path):
    from dcanalysis.bench import versus_official

    with pytest.raises(SystemExit, match="--refill-images 9600 .* overlap; lower one of them"):
        versus_official.main(["--device", "cpu", "--refill-images", "9600", "--tune-images", "500",
                              "--out", str(tmp_path / "v.json")])
    assert not (tmp_path / "v.json").exists()


@pytest.mark.slow  # 95 s here: the lab UNet runs about 30 evaluations/s on a 2-core CPU
def test_the_gpu_command_runs_end_to_end_in_miniature_on_the_cpu(tmp_path, monkeypatch):
    """The whole ``versus_official`` job, tiny and eager, on the CPU: every row it writes, the fair ratio (the
    official loop at one call per stage) beside the default-batch one, the refilled test against the network."""
    import json

    from dcanalysis.bench import versus_official

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # CPU: no inductor
    # the lab UNet runs about 30 evaluations/s on this CPU: 48 evaluations an image for the peer, not 2,750
    monkeypatch.setattr(versus_official, "PEER_STAGES", ((4, 8), (2, 1)))
    monkeypatch.setattr(versus_official, "SEQUENTIAL_CANDIDATES", [dict(step=2, confidence=0.99)])
    out = tmp_path / "v.json"
    versus_official.main(["--device", "cpu", "--n-images", "4", "--refill-images", "6", "--tune-images", "4",
                          "--trials", "8", "--rows", "16", "32", "--in-flight", "3", "5", "--peer-seconds", "0",
                          "--seconds", "0", "--profile-host", "--out", str(out)])
    r = json.loads(out.read_text())["datasets"]["fashion_mnist"]
    assert r["official_default"]["batch"] == 32 and r["official"]["batch"] == 10 * 4  # the largest stage's rows
    assert [(row["rows"], row["in_flight"]) for row in r["refill"]] == [(16, 3), (16, 5), (32, 3), (32, 5)]
    assert all(row["images"] == 6 and row["same_images"]["images"] == 4 for row in r["refill"])
    # results identical to the lockstep run's on the images both classified
    assert all(row["vs_lockstep"]["same_prediction"] == 1.0 for row in r["refill"])
    # what the calls carried: rows sent over calls made, each call at most --rows full
    assert all(0 < row["fill"] <= 1 and row["rows_sent"] == pytest.approx(row["evaluations_per_image"] * 6)
               for row in r["refill"])
    assert r["refill"][0]["of_network"] == pytest.approx(r["refill"][0]["evals_per_s"] / r["network"]["16"]["evals_per_s"])
    assert r["speedup"] == pytest.approx(r["official"]["seconds_per_image"] / r["dcanalysis"]["seconds_per_image"])
    assert r["official_decisions"]["images"] == 4 and isinstance(r["inside_official_interval"], bool)
    # the untimed profile of one more refilled run: the loop's own functions, by own time
    profile = r["host_profile"]
    assert any(f["function"].startswith("refill.py:") for f in profile)
    assert [f["own_s"] for f in profile] == sorted((f["own_s"] for f in profile), reverse=True)
