import pytest
import torch

from dcanalysis.engine import fp8


def test_quantize_rows_scales_each_row_to_the_e4m3_range():
    x = torch.tensor([[1.0, -2.0, 0.5], [1000.0, 10.0, 0.0], [0.0, 0.0, 0.0]])
    q, scale = fp8.quantize_rows(x)
    assert q.dtype == fp8.E4M3 and scale.shape == (3, 1)
    assert q.float().abs().amax(dim=1)[:2].tolist() == [fp8.E4M3_MAX] * 2  # each row's largest value hits the top
    assert torch.isfinite(scale).all() and (q[2].float() == 0).all()  # an all-zero row stays zero, no NaN
    torch.testing.assert_close(q.float() * scale, x, rtol=0.07, atol=1e-6)  # 3 mantissa bits: within 1/16


def test_fp8_linear_is_close_to_the_linear_it_replaces_across_row_scales():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32)
    x = torch.randn(5, 7, 64) * torch.logspace(-3, 3, 7).view(1, 7, 1)  # rows six decades apart
    layer = fp8.Fp8Linear.from_linear(lin)
    with torch.no_grad():
        ref, out = lin(x), layer(x)
    assert out.shape == (5, 7, 32) and out.dtype == x.dtype
    # per-row scales: the same small relative error (of the product, the bias is exact) for the tiniest rows as
    # for the largest; one scale for the whole tensor would flush the tiniest to zero
    rel = (out - ref).norm(dim=-1) / (ref - lin.bias).norm(dim=-1)
    assert rel.max() < 0.06 and rel.min() > 0


def test_convert_linears_keeps_embeddings_and_odd_sizes_and_the_output_close():
    from dcanalysis.bench.bench import sd2_base_unet
    from dcanalysis.engine.compile import set_fused_qkv

    torch.manual_seed(0)
    unet = sd2_base_unet(tiny=True).eval()
    unet.add_module("odd", torch.nn.Linear(24, 8))  # not a multiple of 16: the 8-bit kernels cannot take it
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 77, 32)
    with torch.no_grad():
        ref = unet(x, t, encoder_hidden_states=c).sample
        set_fused_qkv(unet, True)
        names = fp8.convert_linears(unet)
        out = unet(x, t, encoder_hidden_states=c).sample
    left = {n for n, m in unet.named_modules() if type(m) is torch.nn.Linear}
    assert "odd" in left and "time_embedding.linear_1" in left and all("emb" in n or n == "odd" for n in left)
    assert any(n.endswith("attn1.to_qkv") for n in names) and any(n.endswith("ff.net.2") for n in names)
    assert all(isinstance(unet.get_submodule(n), fp8.Fp8Linear) for n in names)
    rel = float((out - ref).norm() / ref.norm())
    assert 0 < rel < 0.05  # no longer the same arithmetic, but close


def test_fp8_linear_refuses_a_weight_cast_after_conversion():
    layer = fp8.Fp8Linear.from_linear(torch.nn.Linear(16, 16))
    layer.to(torch.float32)  # Module.to casts every floating buffer, 8-bit ones included
    with pytest.raises(TypeError, match="cast after convert_linears.*then convert"):
        layer(torch.randn(2, 16))


def test_old_gpus_get_a_clear_refusal(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    with pytest.raises(ValueError, match="capability 8.9 or newer.*A100.*Drop the fp8 option"):
        fp8.check_fp8_device(torch.device("cuda", 0))
    fp8.check_fp8_device(torch.device("cpu"))  # the CPU's (slow) 8-bit products are there for tests


def test_placing_with_fp8_linears_converts_layer_by_layer_and_casts_the_rest():
    """The 24 GB path for large transformers: linear weights reach the device in e4m3, the rest in the model
    dtype, embeddings kept wide; the output stays close to the wide model's."""
    from dcanalysis.bench.families import flux_schnell_transformer

    torch.manual_seed(0)
    model, inputs = flux_schnell_transformer(True, "cpu", torch.float32)
    model.eval()
    x = inputs(2)
    with torch.no_grad():
        ref = model(**x).sample
    converted = fp8.place_with_fp8_linears(model, "cpu", torch.float32)
    assert converted and not any("emb" in n for n in converted)
    fp8_layers = [m for m in model.modules() if isinstance(m, fp8.Fp8Linear)]
    assert len(fp8_layers) == len(converted) and all(m.weight.dtype == fp8.E4M3 for m in fp8_layers)
    assert not any(type(m) is torch.nn.Linear and m.in_features % 16 == 0 and m.out_features % 16 == 0
                   and m.weight.dtype == fp8.E4M3 for m in model.modules())
    with torch.no_grad():
        out = model(**x).sample
    assert (out - ref).norm() / ref.norm() < 0.1
