import pytest
import torch

from dcanalysis import gpu_profile


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


def test_attention_backends_report_what_runs_and_what_cannot():
    rows = gpu_profile.attention_backends(1, 2, 16, 8, device=torch.device("cpu"), dtype=torch.float32,
                                          ref_tflops=1.0, iters=2)
    by = {r["backend"]: r for r in rows}
    assert by["math"]["tflops"] > 0 and by["cudnn"]["tflops"] is None  # no cuDNN attention on a CPU
    with pytest.raises(ValueError, match="choose from"):
        gpu_profile.sdpa_backend("fa3")
