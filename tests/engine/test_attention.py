import pytest
import torch

from dcanalysis.bench import attention_backends as backends
from dcanalysis.engine import attention
from dcanalysis.engine import compile as engine


class SelfAttention(torch.nn.Module):
    """One head-split self-attention over a (B, N, C) sequence, through scaled_dot_product_attention."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.qkv, self.heads, self.note = torch.nn.Linear(channels, 3 * channels), heads, "the network's own"

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)


def test_attention_backends_report_what_runs_and_what_cannot():
    rows = backends.attention_backends(1, 2, 16, 8, device=torch.device("cpu"), dtype=torch.float32,
                                        ref_tflops=1.0, iters=2)
    by = {r["backend"]: r for r in rows}
    assert by["math"]["tflops"] > 0 and by["cudnn"]["tflops"] is None  # no cuDNN attention on a CPU


def test_time_shapes_gives_every_backend_at_every_shape_and_prints_each(capsys):
    rows = backends.time_shapes([(1, 2, 16, 8), (1, 2, 4, 8)], device=torch.device("cpu"), dtype=torch.float32,
                                 ref_tflops=1.0)
    assert [(r["backend"], r["shape"]) for r in rows] == [(b, s) for s in ([1, 2, 16, 8], [1, 2, 4, 8])
                                                          for b in attention.ATTENTION_BACKENDS]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(rows) and "SDPA cudnn     1x2x16x8: n/a" in printed


def test_the_pinned_backend_is_the_one_that_runs():
    net, x = SelfAttention().eval(), torch.randn(3, 10, 16)
    with torch.no_grad():
        plain = net(x)
        torch.testing.assert_close(attention.WithAttentionBackend(net, "math")(x), plain)
        with pytest.raises(RuntimeError):  # cuDNN attention has no CPU kernel: the restriction is in force
            attention.WithAttentionBackend(net, "cudnn")(x)
        torch.testing.assert_close(net(x), plain)  # and it ends with the call


def test_the_wrapper_answers_for_the_network():
    net = SelfAttention()
    wrapped = attention.WithAttentionBackend(net, "math")
    assert wrapped.note == "the network's own" and wrapped.heads == 2 and wrapped.qkv is net.qkv
    assert wrapped.backend == "math"
    assert sorted(n for n, _ in wrapped.named_parameters()) == ["network.qkv.bias", "network.qkv.weight"]


def test_an_unknown_backend_is_refused_before_any_call():
    with pytest.raises(ValueError, match="unknown attention backend 'fa3'; choose from"):
        attention.WithAttentionBackend(SelfAttention(), "fa3")
    with pytest.raises(ValueError, match="choose from"):
        attention.sdpa_backend("fa3")


def test_compile_adapter_pins_the_backend_around_the_compiled_network(monkeypatch):
    from tiny_models import tiny_dit_components

    from dcanalysis.adapters import DiTAdapter

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # the wrapping, not inductor, is under test
    adapter = DiTAdapter(**tiny_dit_components())
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), adapter.embed([1, 3])
    with torch.no_grad():
        before = adapter.predict(x, t, c)
        engine.compile_adapter(adapter, attention="math")
        after = adapter.predict(x, t, c)
    assert isinstance(adapter.transformer, attention.WithAttentionBackend)
    assert adapter.transformer.backend == "math" and adapter.transformer.config.sample_size == 8
    torch.testing.assert_close(after, before)
    assert engine.optimise(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear  # no backend: nothing wrapped


def test_a_pinned_backend_survives_a_graph_compiled_earlier_under_another(monkeypatch, tmp_path):
    """Inductor's graph cache ignores the SDPA backend: without ``optimise`` bypassing it, the second compile below
    silently reuses the first one's flash kernel."""
    from torch.profiler import profile

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    net, x = SelfAttention().eval(), torch.randn(2, 16, 16)

    def attention_ops(fn):
        with profile() as prof:
            fn(x)
        return {e.name for e in prof.events() if "scaled_dot_product" in e.name or e.name == "aten::bmm"}

    with torch.no_grad():
        torch._dynamo.reset()
        with attention.attention_context("flash"):
            first = engine.optimise(net, fuse_qkv=False)  # the same options as the pinned compile below
            assert "aten::_scaled_dot_product_flash_attention_for_cpu" in attention_ops(first)
        torch._dynamo.reset()
        pinned = engine.optimise(net, fuse_qkv=False, attention="math")
        ops = attention_ops(pinned)  # the math backend: two batched matrix products, no fused kernel
        assert "aten::bmm" in ops and "aten::_scaled_dot_product_flash_attention_for_cpu" not in ops
        torch.testing.assert_close(pinned(x), net(x), rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


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
