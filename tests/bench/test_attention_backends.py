import torch

from dcanalysis.bench import attention_backends as backends
from tiny_models import SelfAttention


def test_attention_backends_report_what_runs_and_what_cannot():
    rows = backends.attention_backends(1, 2, 16, 8, device=torch.device("cpu"), dtype=torch.float32,
                                        ref_tflops=1.0, iters=2)
    by = {r["backend"]: r for r in rows}
    assert by["math"]["tflops"] > 0 and by["cudnn"]["tflops"] is None  # no cuDNN attention on a CPU


def test_time_shapes_gives_every_backend_at_every_shape_and_prints_each(capsys):
    rows = backends.time_shapes([(1, 2, 16, 8), (1, 2, 4, 8)], device=torch.device("cpu"), dtype=torch.float32,
                                 ref_tflops=1.0)
    assert [(r["backend"], r["shape"]) for r in rows] == [(b, s) for s in ([1, 2, 16, 8], [1, 2, 4, 8])
                                                          for b in backends.ATTENTION_BACKENDS]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(rows) and "SDPA cudnn     1x2x16x8: n/a" in printed


def test_attention_shapes_are_read_off_a_forward_pass():
    net = SelfAttention(channels=16, heads=2)
    with torch.no_grad():
        assert backends.attention_shapes(lambda: (net(torch.randn(3, 10, 16)), net(torch.randn(3, 5, 16)),
                                                   net(torch.randn(1, 10, 16)))) == [(2, 10, 8), (2, 5, 8)]


def test_the_lab_unet_attends_with_narrow_heads():
    from dcanalysis.lab.registry import load_lab_diffusion

    unet = load_lab_diffusion("fashion_mnist_unet").unet
    s = unet.config.sample_size
    with torch.no_grad():
        shapes = backends.attention_shapes(lambda: unet(torch.randn(1, unet.config.in_channels, s, s), 10,
                                                         class_labels=torch.tensor([3])))
    assert shapes and all(width == unet.config.attention_head_dim for _, _, width in shapes)
    assert {tokens for _, tokens, _ in shapes} == {(s // 2) ** 2, (s // 4) ** 2}  # its two attention resolutions
