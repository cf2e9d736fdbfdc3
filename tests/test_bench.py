import json


def test_tiny_benchmark_writes_ratios_to_the_same_run_matmul(tmp_path):
    from dcanalysis import bench

    out = tmp_path / "bench.json"
    res = bench.main(["--tiny", "--batch", "2", "--no-end-to-end", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["matmul_tflops"] > 0 and saved["note"].startswith("random weights")
    names = {r["model"] for r in saved["models"]}
    assert names == {"sd2-unet-512", "sd2-unet-256", "dit-xl-2-256"}
    for r in res["models"]:
        assert abs(r["ratio_to_matmul"] - r["tflops"] / saved["matmul_tflops"]) < 1e-9 and r["gflop_per_eval"] > 0


def test_end_to_end_rows_keep_each_task_beside_its_own_reference():
    from dcanalysis.bench import end_to_end_rows

    paper = {"pets_adaptive_schedule": {"seconds_per_image": 18, "gpu": "RTX 3090"},
             "imagenet_dit_seconds_per_image": {"value": 1000, "note": "order of magnitude"}}
    results = {"end_to_end": [
        {"task": "Pets schedule, SD-2-base", "resolution": 512, "evaluations": 2050, "seconds_per_image": 4.25},
        {"task": "Pets schedule, SD-2-base, shared prefix", "resolution": 512, "evaluations": 2050,
         "seconds_per_image": 4.22, "shared_prefix": True},
        {"task": "ImageNet 1,000 classes, DiT-XL/2", "resolution": 256, "evaluations": 27250, "seconds_per_image": 14.3}]}
    rows = end_to_end_rows(results, paper)
    assert [r["paper (reference)"] for r in rows] == ["18 s on an RTX 3090", "", "about 1,000 s (order of magnitude)"]
    assert rows[2]["evaluations"] == 27250


def test_sweep_times_the_512_unet_at_each_batch(tmp_path):
    from dcanalysis import bench

    out = tmp_path / "sweep.json"
    bench.main(["--tiny", "--sweep", "--batches", "1", "3", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["sweep"] and saved["end_to_end"] == []
    # on the CPU only the eager variant runs (compiling is for the GPU)
    assert [(r["model"], r["variant"], r["batch"]) for r in saved["models"]] == [
        ("sd2-unet-512", "eager", 1), ("sd2-unet-512", "eager", 3)]


def test_optimise_options_and_unknown_variants(monkeypatch):
    import pytest
    import torch

    from dcanalysis import bench

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)
    bench.optimise(torch.nn.Linear(2, 2), cuda_graphs=True)
    bench.optimise(torch.nn.Linear(2, 2))
    assert [kw["options"]["triton.cudagraphs"] for kw in seen] == [True, False]
    assert all(kw["dynamic"] is False and kw["options"]["conv_1x1_as_mm"] for kw in seen)
    with pytest.raises(ValueError, match="compiled\\+graphs"):
        bench.bench_model("m", torch.nn.Linear(2, 2), lambda b: {"input": torch.zeros(b, 2)}, batch=1,
                          device=torch.device("cpu"), dtype=torch.float32, ref_tflops=1.0, compile_model=False,
                          variants=("eager", "fast"))
