import pytest
import torch

from dcanalysis.engine import attention
from dcanalysis.engine import compile as engine
from tiny_models import SelfAttention


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
