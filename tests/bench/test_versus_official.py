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


def test_backend_rows_leave_out_the_bare_network_and_name_each_backend_kernel():
    from dcanalysis.bench.versus_official import backend_rows

    def run(attention_s, kernel):
        row = {"task": "classify_batch, exhaustive 100 trials x 10 classes", "images_per_call": 256, "batch": 4096,
               "evals_per_s": 1000.4, "vs_eager": {"max_rel_diff_mean_error": 0.00123456, "same_prediction": 31 / 32},
               "groups": [{"group": "attention", "seconds_per_call": attention_s},
                          {"group": "matrix", "seconds_per_call": 1.0}, {"group": "other", "seconds_per_call": 1.0}],
               "top_kernels": [{"group": "matrix", "kernel": "gemm"}] + (
                   [{"group": "attention", "kernel": kernel}] if kernel else [])}
        return {"datasets": {"fashion_mnist": {"throughput": [{"task": "bare forward", "batch": 4096}, row]}}}

    rows = backend_rows({"default": run(2.0, "cudnn_sdpa_flash_fprop" + "x" * 50), "math": run(0.0, None)})
    assert [r["back end"] for r in rows] == ["default", "math"]
    assert rows[0]["longest attention kernel"] == ("cudnn_sdpa_flash_fprop" + "x" * 50)[:24]
    assert rows[1]["longest attention kernel"].startswith("none")
    assert rows[0]["attention % of kernels"] == 50.0 and rows[1]["attention % of kernels"] == 0.0
    assert rows[0]["evals/s"] == 1000 and rows[0]["same as eager (%)"] == 97
    assert rows[0]["error vs eager (max rel.)"] == 0.0012


def test_head_width_rows_keep_the_flops_and_change_the_heads(monkeypatch):
    import torch

    from dcanalysis.bench import versus_official

    built = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: built.append(model) or model)  # CPU: no inductor
    rows = versus_official.head_width_rows("fashion_mnist", device=torch.device("cpu"), batch=2, seconds=0.0,
                                           ref=1.0, widths=[8, 32])
    assert [r["head_width"] for r in rows] == [8, 32] and all(r["variant"] == "compiled" for r in rows)
    assert rows[0]["gflop_per_eval"] == rows[1]["gflop_per_eval"] > 0  # the same work, cut into other heads
    heads = [next(m.heads for m in unet.modules() if type(m).__name__ == "Attention") for unet in built]
    assert heads == [16, 4]


def test_head_width_rows_run_every_width_under_every_engine_variant(monkeypatch):
    from dcanalysis.bench import versus_official

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw["options"]) or model)
    rows = versus_official.head_width_rows("fashion_mnist", device=torch.device("cpu"), batch=2, seconds=0.0,
                                           ref=1.0, widths=[8, 16], variants=["compiled", "compiled, frozen"])
    assert [(r["head_width"], r["variant"]) for r in rows] == [(8, "compiled"), (8, "compiled, frozen"),
                                                               (16, "compiled"), (16, "compiled, frozen")]
    assert [o["freezing"] for o in seen] == [False, True, False, True]  # each variant's option reaches inductor


def test_every_classify_variant_names_options_the_engine_takes():
    import inspect

    from dcanalysis.engine.compile import optimise
    from dcanalysis.bench.versus_official import CLASSIFY_VARIANTS, DEFAULT_CLASSIFY_VARIANTS

    takes = set(inspect.signature(optimise).parameters) | {"channels_last"}
    assert all(set(o) <= takes for o in CLASSIFY_VARIANTS.values())
    assert set(DEFAULT_CLASSIFY_VARIANTS) <= set(CLASSIFY_VARIANTS)


def test_overlap_rows_set_both_timings_beside_the_bare_network_of_the_same_variant():
    from dcanalysis.bench.versus_official import overlap_rows

    agree = {"same_prediction": 1.0, "max_rel_diff_mean_error": 1e-3}
    tp = [{"task": "bare forward", "variant": "eager", "batch": 64, "evals_per_s": 10.0},
          {"task": "bare forward", "variant": "compiled", "batch": 64, "evals_per_s": 100.0},
          *({"task": "classify_batch", "variant": "compiled", "batch": 64, "images_per_call": n, "calls": 4,
             "overlap": o, "evals_per_s": e, "vs_eager": agree}
            for n, o, e in ((32, True, 50.0), (256, False, 90.0), (256, True, 97.0)))]
    [row] = overlap_rows({"datasets": {"fashion_mnist": {"throughput": tp}}})
    assert (row["variant"], row["images / call"], row["one call after another"], row["overlapped"]) == ("compiled", 256, 90, 97)
    assert row["overlapped, % of bare"] == 97.0
    # a run from before classify_stream (no 'overlap' key) has no such rows
    old = [{k: v for k, v in t.items() if k != "overlap"} for t in tp]
    assert overlap_rows({"datasets": {"fashion_mnist": {"throughput": old}}}) == []


def test_classify_variant_rows_set_each_variant_against_the_runs_default_compiled_network():
    from dcanalysis.bench.versus_official import classify_variant_rows

    agree = {"same_prediction": 0.5, "max_rel_diff_mean_error": 1e-3}
    tp = [{"task": "bare forward", "variant": "compiled, tuned pointwise", "batch": 64, "evals_per_s": 300.0},
          {"task": "bare forward", "variant": "compiled", "batch": 64, "evals_per_s": 200.0},
          {"task": "classify_batch", "variant": "compiled+graphs", "batch": 64, "images_per_call": 8,
           "evals_per_s": 210.0, "vs_eager": agree},
          {"task": "classify_batch", "variant": "compiled", "batch": 64, "images_per_call": 8, "evals_per_s": 190.0,
           "vs_eager": agree, "kernel_seconds_per_call": 0.9, "wall_seconds_per_call": 1.0}]
    graphs, plain = classify_variant_rows({"datasets": {"fashion_mnist": {"throughput": tp}}})
    assert (graphs["% of bare compiled"], graphs["kernels, % of the call"], graphs["same as eager (%)"]) == (105.0, None, 50)
    assert (plain["% of bare compiled"], plain["kernels, % of the call"]) == (95.0, 90.0)


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
