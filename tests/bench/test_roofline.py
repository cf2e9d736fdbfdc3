import torch

from dcanalysis.bench import roofline


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.SiLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 10))


def test_trace_counts_bytes_and_flops_of_each_operator():
    net, x = small_net(), torch.randn(4, 3, 16, 16)
    ops = roofline.trace_ops(lambda: net(x))
    assert [o.name for o in ops] == ["convolution", "native_group_norm", "silu", "addmm"]
    conv = ops[0]
    # input, weight, bias and output, float32; 2 FLOP per multiply-add, 3 x 3 x 3 of them per output value
    assert conv.bytes == 4 * (x.numel() + 8 * 3 * 3 * 3 + 8 + 4 * 8 * 16 * 16)
    assert conv.flops == 2 * (4 * 8 * 16 * 16) * 27
    assert ops[1].flops == ops[2].flops == 0
    assert ops[3].flops == 2 * 4 * (8 * 16 * 16) * 10


def test_attention_without_a_flop_formula_gets_two_products():
    q = torch.randn(2, 4, 64, 32)
    k = torch.randn(2, 4, 48, 32)
    (op,) = roofline.trace_ops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k))
    assert op.flops == roofline.attention_flops(q, k) == 4 * (2 * 4 * 64) * 48 * 32


def test_each_operator_is_bound_by_its_slower_resource():
    ops = [roofline.OpCost("mm", bytes=10, flops=1000), roofline.OpCost("add", bytes=100, flops=0)]
    # mm: 10 B / 10 B/s = 1 s against 1000 / 100 FLOP/s = 10 s; add: 10 s of bytes
    assert roofline.roofline_seconds(ops, bandwidth=10, flop_rate=100, fused=False) == 20
    assert roofline.roofline_seconds(ops, bandwidth=10, flop_rate=100, fused=True) == 10


def test_fusion_raises_the_ceiling_and_keeps_the_flops():
    net, x = small_net(), torch.randn(4, 3, 16, 16)
    ops = roofline.trace_ops(lambda: net(x))
    eager, fused = roofline.ceiling_rows(ops, batch=4, bandwidth=1e9, flop_rate=1e12)
    assert fused["evals_per_s"] > eager["evals_per_s"]
    assert fused["mb_per_eval"] < eager["mb_per_eval"]
    assert fused["gflop_per_eval"] == eager["gflop_per_eval"] > 0
    assert (eager["operators"], fused["operators"]) == (4, 2)


def test_copy_bandwidth_is_positive_on_the_cpu():
    assert roofline.copy_bandwidth("cpu", gib=0.01, seconds=0.05) > 0
