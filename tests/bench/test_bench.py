import json


def test_tiny_benchmark_writes_ratios_to_the_same_run_matmul(tmp_path):
    from dcanalysis.bench import bench

    out = tmp_path / "bench.json"
    res = bench.main(["--tiny", "--batch", "2", "--seconds", "0", "--no-end-to-end", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["matmul_tflops"] > 0 and saved["matmul_tflops_burst"] > 0 and saved["note"].startswith("random weights")
    assert saved["matmul_tflops_at_end"] > 0
    names = {r["model"] for r in saved["models"]}
    assert names == {"sd2-unet-512", "sd2-unet-256", "dit-xl-2-256"}
    for r in res["models"]:
        assert abs(r["ratio_to_matmul"] - r["tflops"] / saved["matmul_tflops"]) < 1e-9 and r["gflop_per_eval"] > 0
        assert abs(r["ratio_to_burst_matmul"] - r["tflops"] / saved["matmul_tflops_burst"]) < 1e-9
        assert r["timed_to"] >= r["timed_from"]


def test_end_to_end_rows_keep_each_task_beside_its_own_reference():
    from dcanalysis.bench.bench import end_to_end_rows

    from dcanalysis.evaluation.paper import load_paper

    paper = load_paper()
    results = {"end_to_end": [
        {"task": "Pets schedule, SD-2-base", "resolution": 512, "evaluations": 2050, "seconds_per_image": 4.25},
        {"task": "Pets schedule, SD-2-base, shared prefix", "resolution": 512, "evaluations": 2050,
         "seconds_per_image": 4.22, "shared_prefix": True},
        {"task": "ImageNet 1,000 classes, DiT-XL/2", "resolution": 256, "evaluations": 27250, "seconds_per_image": 14.3}]}
    rows = end_to_end_rows(results, paper)
    pets = paper["pets_adaptive_schedule"]
    assert [r["paper (reference)"] for r in rows[:2]] == [f"{pets['seconds_per_image']} s on an {pets['gpu']}", ""]
    assert rows[2]["paper (reference)"].startswith("none for DiT (for Stable Diffusion: about 1000 s")
    assert rows[2]["evaluations"] == 27250


def test_sweep_times_the_512_unet_at_each_batch(tmp_path):
    from dcanalysis.bench import bench

    out = tmp_path / "sweep.json"
    bench.main(["--tiny", "--sweep", "--batches", "1", "3", "--seconds", "0", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["sweep"] and saved["end_to_end"] == []
    # on the CPU only the eager variant runs (compiling is for the GPU)
    assert [(r["model"], r["variant"], r["batch"]) for r in saved["models"]] == [
        ("sd2-unet-512", "eager", 1), ("sd2-unet-512", "eager", 3)]


def test_variants_pass_their_options_and_unknown_variants_are_named(monkeypatch):
    import pytest
    import torch

    from dcanalysis.bench import bench

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)
    bench.run_variant(torch.nn.Linear(2, 2), "compiled+graphs")
    bench.run_variant(torch.nn.Linear(2, 2), "compiled, frozen")
    bench.run_variant(torch.nn.Linear(2, 2), "compiled, tuned pointwise")
    assert [(kw["options"]["triton.cudagraphs"], kw["options"]["freezing"], kw["options"]["coordinate_descent_tuning"])
            for kw in seen] == [(True, False, False), (False, True, False), (False, False, True)]
    pinned = bench.run_variant(torch.nn.Linear(2, 2), "compiled", attention="math")
    assert pinned.backend == "math" and seen.pop()["options"]["fx_graph_cache"] is False  # see speed.attention
    assert all("fx_graph_cache" not in kw["options"] for kw in seen)  # unpinned compiles keep the cache
    net = torch.nn.Sequential(torch.nn.Linear(16, 16))
    fast = bench.run_variant(net, "compiled, fp8 linear")  # converts a copy: the next variant gets the original
    assert type(net[0]) is torch.nn.Linear and net[0].weight.dtype == torch.float32
    assert type(fast[0]).__name__ == "Fp8Linear" and "fp8_linear" not in seen[-1]["options"]
    with pytest.raises(ValueError, match="compiled\\+graphs"):  # the message lists the known variants
        bench.bench_model("m", torch.nn.Linear(2, 2), lambda b: {"input": torch.zeros(b, 2)}, batch=1,
                          device=torch.device("cpu"), dtype=torch.float32, ref_tflops=1.0, compile_model=False,
                          variants=("eager", "fast"))


def test_time_calls_keeps_calling_until_the_minimum_time_has_passed():
    import time

    import torch

    from dcanalysis.bench.timing import time_calls

    calls = []
    t0 = time.perf_counter()
    per_call = time_calls(lambda: calls.append(time.sleep(0.002)), device=torch.device("cpu"), warmup=1, iters=2,
                          min_seconds=0.05)
    assert time.perf_counter() - t0 >= 0.05 and len(calls) > 3 and (len(calls) - 1) % 2 == 0  # whole rounds
    assert 0.002 <= per_call < 0.05
    calls.clear()
    time_calls(lambda: calls.append(1), device=torch.device("cpu"), warmup=1, iters=2)
    assert len(calls) == 3


def test_variants_name_what_they_change_and_fusing_keeps_the_output():
    import pytest
    import torch

    from dcanalysis.bench import bench

    unet = bench.sd2_base_unet(tiny=True).eval()
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 77, 32)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=c).sample
        fused = bench.run_variant(unet, "eager, fused qkv")
        assert all("Fused" in type(p).__name__ for p in unet.attn_processors.values())
        torch.testing.assert_close(fused(x, t, encoder_hidden_states=c).sample, plain, rtol=1e-4, atol=1e-5)
        bench.run_variant(unet, "eager")  # unfuses again
        assert not any("Fused" in type(p).__name__ for p in unet.attn_processors.values())
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        bench.run_variant(unet, "fast")


def test_probe_profiles_each_variant(tmp_path):
    from dcanalysis.bench import bench

    out = tmp_path / "probe.json"
    bench.main(["--tiny", "--probe", "--batch", "2", "--seconds", "0", "--variants", "eager", "eager, fused qkv",
                "--out", str(out)])
    saved = json.loads(out.read_text())
    assert [r["variant"] for r in saved["models"]] == ["eager", "eager, fused qkv"]
    for r in saved["models"]:
        assert [g["group"] for g in r["groups"]] == ["attention", "matrix", "other"]
        assert abs(sum(g["share_of_time"] for g in r["groups"]) - 1) < 1e-9
        assert r["top_kernels"] and r["top_kernels"][0]["group"] == "matrix"  # the convolutions dominate
    assert {row["backend"] for row in saved["attention_kernels"]} == {"flash", "efficient", "cudnn", "math"}
    # each variant is checked against the eager model's output: eager again is exact, fused qkv within rounding
    assert saved["models"][0]["rel_err_vs_eager"] == 0.0 and saved["models"][1]["rel_err_vs_eager"] < 1e-5


def test_each_row_reports_how_far_the_variant_is_from_the_eager_output():
    import torch

    from dcanalysis.bench import bench

    class Drifting(torch.nn.Module):
        """Returns its input times the number of calls so far: every call computes something else."""
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, input):
            self.calls += 1
            return input * self.calls

    rows = bench.bench_model("m", Drifting(), lambda b: {"input": torch.ones(b, 4)}, batch=2,
                             device=torch.device("cpu"), dtype=torch.float32, ref_tflops=1.0, compile_model=False,
                             variants=("eager",))
    assert rows[0]["rel_err_vs_eager"] > 0.2  # at least |(n + 1) - n| / n with n the few calls made before


def test_floor_rows_divide_the_work_by_each_rate():
    from dcanalysis.bench.bench import floor_rows

    results = {"matmul_tflops": 600.0, "matmul_tflops_burst": 800.0,
               "models": [{"model": "sd2-unet-512", "gflop_per_eval": 800.0, "tflops": 300.0},
                          {"model": "sd2-unet-512", "gflop_per_eval": 800.0, "tflops": 400.0},
                          {"model": "dit", "gflop_per_eval": 1.0, "tflops": 999.0}]}
    rows = {r["rate"]: r["seconds per image"] for r in floor_rows(results, evaluations=1000)}
    assert rows == {"matmul, burst": 1.0, "matmul, sustained": 1.33, "75 % of burst matmul": 1.33,
                    "75 % of sustained matmul": 1.78, "sd2-unet-512, fastest variant": 2.0}


def test_shared_prefix_variant_equals_the_plain_model_and_cleans_up(monkeypatch):
    import torch

    from dcanalysis.bench import bench

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # compiling is for the GPU
    unet = bench.sd2_base_unet(tiny=True).eval()
    x = torch.randn(2, 4, 8, 8).repeat_interleave(3, 0)
    inputs = {"sample": x, "timestep": torch.tensor([10, 500]).repeat_interleave(3),
              "encoder_hidden_states": torch.randn(6, 77, 32)}
    with torch.no_grad():
        plain = unet(**inputs).sample
        shared = bench.run_variant(unet, "compiled, shared prefix")
        torch.testing.assert_close(shared(**inputs).sample, plain, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(shared(**inputs).sample, plain, rtol=1e-4, atol=1e-5)  # runs kept from the first call
    assert shared.sharing.calls == 2 * len(shared.sharing.modules)
    shared.sharing.remove()
    with torch.no_grad():
        assert torch.equal(unet(**inputs).sample, unet(**inputs).sample)
    assert shared.sharing.calls == 2 * len(shared.sharing.modules)  # the hooks are gone


def test_profiled_end_to_end_pets_rows_carry_their_kernel_time(tmp_path):
    from dcanalysis.bench import bench

    out = tmp_path / "pets.json"
    bench.main(["--tiny", "--pets-only", "--share-prefix", "--profile-end-to-end", "--images-per-call", "2",
                "--batch", "16", "--seconds", "0", "--out", str(out)])
    plain, plain_two, shared, shared_two = json.loads(out.read_text())["end_to_end"]
    assert (plain["shared_prefix"], shared["shared_prefix"]) == (False, True)
    # two images sharing batches: each still gets the whole schedule, timed per image
    for one, two in ((plain, plain_two), (shared, shared_two)):
        assert two["images_per_call"] == 2 and two["evaluations"] == one["evaluations"] == 2050
        assert two["task"] == one["task"] + ", 2 images per call" and two["seconds_per_image"] > 0
    for r in (plain, shared):
        assert [g["group"] for g in r["groups"]] == ["attention", "matrix", "other"]
        assert 0 < r["kernel_seconds"] == sum(g["seconds_per_call"] for g in r["groups"])
        assert r["top_kernels"]


def test_family_rows_time_each_denoiser_with_its_pipeline_inputs(tmp_path):
    import json

    from dcanalysis.bench import bench

    out = tmp_path / "families.json"
    bench.main(["--tiny", "--families", "--family-batch", "2", "--seconds", "0", "--out", str(out)])
    rows = json.loads(out.read_text())["models"]
    assert [r["model"] for r in rows] == ["sdxl-unet-1024", "sd3.5-medium-1024", "flux-schnell-1024"]
    for r in rows:
        assert r["evals_per_s"] > 0 and r["gflop_per_eval"] > 0 and r["parameters_b"] > 0
        assert r["ratio_to_matmul"] == r["tflops"] / json.loads(out.read_text())["matmul_tflops"]


def test_full_size_family_configs_have_their_published_sizes():
    """Built on the meta device (no memory): the parameter counts the configs give."""
    import torch

    from dcanalysis.bench.families import FAMILIES

    counts = {n: sum(p.numel() for p in b(False, "meta", torch.bfloat16)[0].parameters()) / 1e9
              for n, (b, _, _) in FAMILIES.items()}
    assert abs(counts["sdxl-unet-1024"] - 2.57) < 0.01 and abs(counts["flux-schnell-1024"] - 11.89) < 0.01
    assert abs(counts["sd3.5-medium-1024"] - 2.24) < 0.01  # Stability calls SD 3.5 medium a 2.5 B model


def test_the_memory_capped_rows_place_fp8_linears_and_report_weights_and_error(tmp_path):
    import json

    from dcanalysis.bench import bench

    out = tmp_path / "capped.json"
    bench.main(["--tiny", "--families", "flux-schnell-1024", "--memory-cap-gib", "24", "--family-batch", "2",
                "--seconds", "0", "--out", str(out)])
    (row,) = json.loads(out.read_text())["models"]
    assert row["variant"] == "eager, fp8 linear weights" and row["memory_cap_gib"] == 24 and row["layers_in_fp8"] > 0
    assert row["weights_gib"] < row["weights_bf16_gib"] and 0 < row["rel_err_vs_bf16"] < 0.1 and row["evals_per_s"] > 0


def test_the_peer_row_times_the_official_loop_and_every_pets_row_gets_its_ratio(tmp_path):
    import json

    from dcanalysis.evaluation.paper import load_paper
    from dcanalysis.bench import bench

    out = tmp_path / "pets.json"
    bench.main(["--tiny", "--pets-only", "--peer", "--seconds", "0", "--out", str(out)])
    results = json.loads(out.read_text())
    default, best, ours = results["end_to_end"]
    assert default["peer"] and best["peer"] and default["evaluations"] == best["evaluations"] == ours["evaluations"] == 2050
    # the official loop at its default batch, then at one network call per stage (37 x 25 and 5 x 225 rows)
    assert default["batch"] == 32 and best["batch"] == 5 * 225
    rows = bench.end_to_end_rows(results, load_paper())
    fastest = min(default["seconds_per_image"], best["seconds_per_image"])
    assert rows[2]["x faster than the official loop at its best"] == round(fastest / ours["seconds_per_image"], 2)
