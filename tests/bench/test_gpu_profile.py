import pytest
import torch

from dcanalysis.bench import gpu_profile


@pytest.mark.parametrize("name, group", [
    # kernel names as the H100 profile printed them (data/results/logs/gpu_session5_probe2.log)
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0", "attention"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize256x128x64_warpgroupsize2x1x1", "matrix"),
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_bias_TNT", "matrix"),
    ("triton_poi_fused_gelu_mul_split_view_14", "other"),
    ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy", "other"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float, false>", "other"),
    ("aten::mkldnn_convolution", "matrix"), ("aten::addmm", "matrix"), ("aten.mm.default", "matrix"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"), ("aten::native_group_norm", "other"),
    ("aten::mul", "other"),
    # inductor's kernels carry the names of what they fused: a bias add from a convolution is not matrix work
    ("triton_poi_fused_convolution_native_group_norm_silu_120", "other"),
    ("triton_red_fused_convolution_native_group_norm_3", "other"), ("triton_tem_fused_mm_7", "matrix"),
])
def test_kernel_group(name, group):
    assert gpu_profile.kernel_group(name) == group


def test_flops_by_group_counts_linears_and_convolutions_as_matrix_work():
    conv, lin = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Linear(8, 5)
    x = torch.randn(2, 3, 6, 6)
    flops = gpu_profile.flops_by_group(lambda: lin(torch.relu(conv(x)).mean((2, 3))))
    expected = 2 * (2 * 6 * 6) * 8 * (3 * 3 * 3) + 2 * 2 * 8 * 5
    assert flops == {"attention": 0.0, "matrix": float(expected), "other": 0.0}


def test_breakdown_shares_and_longest_kernels_on_the_cpu():
    lin = torch.nn.Linear(256, 256)
    x = torch.randn(64, 256)
    out = gpu_profile.breakdown(lambda: torch.nn.functional.gelu(lin(x)), device=torch.device("cpu"), ref_tflops=1.0,
                                iters=2)
    groups = {g["group"]: g for g in out["groups"]}
    assert abs(sum(g["share_of_time"] for g in out["groups"]) - 1) < 1e-9
    assert groups["matrix"]["gflop_per_call"] == pytest.approx(2 * 64 * 256 * 256 / 1e9)
    assert groups["matrix"]["tflops"] > 0 and groups["attention"]["tflops"] is None
    times = [k["seconds_per_call"] for k in out["top_kernels"]]
    assert times == sorted(times, reverse=True)
    assert {k["group"] for k in out["top_kernels"]} >= {"matrix", "other"}


CLOCK_LOG = """timestamp, clocks.current.sm [MHz], clocks.max.sm [MHz], power.draw [W], power.limit [W], temperature.gpu, clocks_event_reasons.active
2026/11/23 19:40:57.000, 345 MHz, 1980 MHz, 75.30 W, 700.00 W, 41, 0x0000000000000001
2026/11/23 19:40:58.000, 1980 MHz, 1980 MHz, 300.00 W, 700.00 W, 50, 0x0000000000000000
2026/11/23 19:40:59.000, 1400 MHz, 1980 MHz, 699.00 W, 700.00 W, 60, 0x0000000000000004
2026/11/23 19:41:00.000, 1500 MHz, 1980 MHz, 698.00 W, 700.00 W, 61, 0x0000000000000004
"""


def test_clock_log_lines_up_with_benchmark_windows(tmp_path):
    import datetime

    path = tmp_path / "clocks.csv"
    path.write_text(CLOCK_LOG)
    log = gpu_profile.read_clock_log(path)
    assert list(log.sm_mhz) == [345, 1980, 1400, 1500] and list(log.throttle) == [1, 0, 4, 4]
    t = datetime.datetime(2026, 11, 23, 19, 40, 58, tzinfo=datetime.timezone.utc).timestamp()
    assert log.time[1] == pytest.approx(t)
    rows = [{"model": "m", "variant": "busy", "timed_from": t + 0.5, "timed_to": t + 2.5},
            {"model": "m", "variant": "before", "timed_from": t - 100, "timed_to": t - 50}]
    busy, before = gpu_profile.clocks_during(log, rows)
    assert busy["sm_mhz"] == 1450 and busy["power_capped"] == 1.0 and busy["samples"] == 2
    assert before["samples"] == 0 and before["sm_mhz"] is None


def test_energy_per_evaluation_and_per_flop_from_the_power_in_each_window(tmp_path):
    import datetime

    path = tmp_path / "clocks.csv"
    path.write_text(CLOCK_LOG)
    log = gpu_profile.read_clock_log(path)
    t = datetime.datetime(2026, 11, 23, 19, 40, 58, tzinfo=datetime.timezone.utc).timestamp()
    model = {"model": "m", "variant": "busy", "timed_from": t + 0.5, "timed_to": t + 2.5, "evals_per_s": 500.0,
             "tflops": 400.0}
    results = {"matmul_tflops": 600.0, "matmul_tflops_burst": 800.0,
               "matmul_windows": {"burst": [t - 0.1, t + 0.1], "sustained": [t + 0.5, t + 2.5]}}
    # the 0.2 s burst is too short for nvidia-smi's power reading and is left out
    busy, sustained = gpu_profile.clocks_during(log, [model] + gpu_profile.reference_rows(results))
    # median power 698.5 W: 1.397 J per evaluation at 500 evaluations/s; 698.5 W / 400 TFLOP/s = 1.746 pJ/FLOP
    assert busy["joules_per_eval"] == pytest.approx(698.5 / 500) and busy["pj_per_flop"] == pytest.approx(698.5 / 400)
    assert sustained["variant"] == "sustained" and sustained["joules_per_eval"] is None
    assert sustained["pj_per_flop"] == pytest.approx(698.5 / 600)
    assert [r["variant"] for r in gpu_profile.reference_rows(results, min_seconds=0.1)] == ["burst", "sustained"]


def test_variant_rows_give_milliseconds_per_evaluation_per_group():
    probe = {"models": [
        {"variant": "compiled", "batch": 64, "evals_per_s": 520.04, "first_call_s": 58.7, "rel_err_vs_eager": 0.014,
         "groups": [{"group": "attention", "seconds_per_call": 0.0198}, {"group": "matrix", "seconds_per_call": 0.0832},
                    {"group": "other", "seconds_per_call": 0.0155}]},
        {"variant": "compiled+graphs", "batch": 64, "evals_per_s": 530.0, "first_call_s": 70.0}]}  # not profiled
    (row,) = gpu_profile.variant_rows(probe)
    assert row == {"variant": "compiled", "evals/s": 520.0, "attention ms/eval": 0.309, "matrix ms/eval": 1.3,
                   "other ms/eval": 0.242, "first call s": 58.7, "|out - eager| / |eager|": 0.014}


def test_headroom_rows_replace_one_group_at_a_time_down_to_the_matmul_floor():
    # a call of 4 evaluations, 10 GFLOP each: 30 of matrix work in 60 ms, 10 of attention in 30 ms, 10 ms of rest
    groups = [{"group": "attention", "seconds_per_call": 0.030, "gflop_per_call": 10.0},
              {"group": "matrix", "seconds_per_call": 0.060, "gflop_per_call": 30.0},
              {"group": "other", "seconds_per_call": 0.010, "gflop_per_call": 0.0}]
    rows = gpu_profile.headroom_rows(groups, batch=4, gflop_per_eval=10.0, ref_tflops=1.0)  # 1 GFLOP per ms
    assert [r["ms/eval"] for r in rows] == [25.0, 17.5, 12.5, 10.0]
    assert [r["% of matmul"] for r in rows] == [40.0, 57.1, 80.0, 100.0]
    assert rows[0]["evals/s"] == 40.0


def test_headroom_rows_need_the_flops_of_the_groups_they_replace():
    groups = [{"group": g, "seconds_per_call": 0.01, "gflop_per_call": 0.0} for g in gpu_profile.GROUPS]
    with pytest.raises(ValueError, match="no FLOPs for the matrix and attention"):
        gpu_profile.headroom_rows(groups, batch=1, gflop_per_eval=1.0, ref_tflops=1.0)


def test_group_rows_give_each_variants_groups_per_evaluation():
    probe = {"models": [
        {"variant": "compiled", "batch": 4, "groups": [
            {"group": "matrix", "seconds_per_call": 0.008, "share_of_time": 0.8, "tflops": 500.0, "ratio_to_matmul": 0.98},
            {"group": "other", "seconds_per_call": 0.002, "share_of_time": 0.2, "tflops": None, "ratio_to_matmul": None}]},
        {"variant": "unprofiled", "batch": 4}]}
    rows = gpu_profile.group_rows(probe)
    assert [(r["variant"], r["group"], r["ms/eval"], r["% of matmul"]) for r in rows] == [
        ("compiled", "matrix", 2.0, 98.0), ("compiled", "other", 0.5, None)]


def test_kernels_are_profiled_except_under_cuda_graphs():
    from dcanalysis.bench.bench import VARIANTS

    assert [name for name, options in VARIANTS.items() if not gpu_profile.sees_kernels(options)] == [
        name for name in VARIANTS if "graphs" in name]
