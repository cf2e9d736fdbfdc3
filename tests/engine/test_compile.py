import pytest
import torch

from dcanalysis.engine import compile as engine


def _recording_compile(monkeypatch):
    """torch.compile replaced by one that records its arguments and returns a marked wrapper of the model."""
    seen = []

    class Compiled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args, **kwargs):
            return self.model(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or Compiled(model))
    return seen, Compiled


def test_optimise_compiles_for_static_shapes_with_the_measured_defaults(monkeypatch):
    seen, _ = _recording_compile(monkeypatch)
    engine.optimise(torch.nn.Linear(2, 2), cuda_graphs=True)
    engine.optimise(torch.nn.Linear(2, 2), freezing=True, tune_pointwise=True)
    assert all(kw["dynamic"] is False and kw["options"]["conv_1x1_as_mm"] for kw in seen)
    assert [kw["options"]["triton.cudagraphs"] for kw in seen] == [True, False]
    assert [(kw["options"]["freezing"], kw["options"]["coordinate_descent_tuning"]) for kw in seen] == [
        (False, False), (True, True)]


def test_optimise_with_fp8_converts_the_fused_projections_before_compiling(monkeypatch):
    from dcanalysis.bench.bench import sd2_base_unet
    from dcanalysis.engine.fp8 import Fp8Linear

    seen, _ = _recording_compile(monkeypatch)
    unet = sd2_base_unet(tiny=True).eval()
    engine.optimise(unet, fp8_linear=True)
    qkv = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_qkv
    assert isinstance(qkv, Fp8Linear) and len(seen) == 1
    assert isinstance(unet.time_embedding.linear_1, torch.nn.Linear)


def test_regional_compilation_compiles_each_repeated_block_in_place_and_can_be_undone(monkeypatch):
    from dcanalysis.bench.bench import sd2_base_unet

    seen = []  # nn.Module.compile calls torch.compile on its call; the stand-in returns that call unchanged
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(kw) or fn)
    unet = sd2_base_unet(tiny=True).eval()
    inputs = dict(sample=torch.randn(2, 4, 8, 8), timestep=torch.tensor([3, 700]),
                  encoder_hidden_states=torch.randn(2, 77, 32))
    with torch.no_grad():
        before = unet(**inputs).sample
        blocks = engine.repeated_blocks(unet)
        assert blocks and {type(b).__name__ for b in blocks} == {"BasicTransformerBlock"}
        assert engine.optimise(unet, regional=True) is unet  # in place: the UNet itself, its blocks compiled
        assert len(seen) == len(blocks) and all(kw["dynamic"] is False for kw in seen)
        assert all(b._compiled_call_impl is not None for b in blocks)
        torch.testing.assert_close(unet(**inputs).sample, before)
    engine.uncompile_regions(unet)
    assert all(b._compiled_call_impl is None for b in blocks)
    with pytest.raises(ValueError, match="names no repeated blocks.*regional=False"):
        engine.optimise(torch.nn.Linear(2, 2), regional=True)


def test_compile_adapter_replaces_the_network_and_keeps_its_output(monkeypatch):
    from tiny_models import tiny_dit_components

    from dcanalysis.adapters import DiTAdapter

    seen, Compiled = _recording_compile(monkeypatch)
    adapter = DiTAdapter(**tiny_dit_components())
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), adapter.embed([1, 3])
    with torch.no_grad():
        before = adapter.predict(x, t, c)
        engine.compile_adapter(adapter)
        after = adapter.predict(x, t, c)
    assert len(seen) == 1 and isinstance(adapter.transformer, Compiled)
    torch.testing.assert_close(after, before)


def test_compile_adapter_names_what_it_could_not_find():
    class NoNetwork:
        pass

    with pytest.raises(TypeError, match="nothing to compile.*engine.optimise"):
        engine.compile_adapter(NoNetwork())


def test_sd35_dual_attention_stays_unfused_and_runs():
    """diffusers' fused joint processor cannot run SD 3.5's extra self-attention; fusing is skipped there."""
    import torch

    from dcanalysis.engine.compile import set_fused_qkv
    from dcanalysis.bench.families import sd35_medium_transformer

    model, inputs = sd35_medium_transformer(True, "cpu", torch.float32)
    x = inputs(2)
    with torch.no_grad():
        before = model(**x).sample
        set_fused_qkv(model, True)
        after = model(**x).sample
    assert torch.equal(before, after)


def _lab_classification(device, dtype, n_images, trials, *, compiled=True, **compile_options):
    """classify_batch of the first Fashion-MNIST test images by the lab UNet, eager (``compiled=False``) or
    compiled with ``compile_options``, through classify_stream's worker thread as the runs use it."""
    from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input
    from dcanalysis.lab.registry import load_lab_diffusion

    x = to_model_input(load_lab_dataset("fashion_mnist", test_only=True).test_images[:n_images])
    adapter = load_lab_diffusion("fashion_mnist_unet", device=device, dtype=dtype)
    if compiled:
        torch._dynamo.reset()
        engine.compile_adapter(adapter, **compile_options)
    from dcanalysis.engine.batching import Batched

    clf = DiffusionClassifier(Batched(adapter, static_rows=64 if compiled else None),
                              ClassifierConfig(schedule=Schedule.exhaustive(trials), batch_size=64))
    [results] = clf.classify_stream([(x, range(n_images))], list(range(10)))
    return torch.stack([r.mean_errors for r in results]), [r.prediction_index for r in results]


@pytest.mark.slow
def test_compiled_lab_classification_equals_eager_on_the_cpu():
    # real inductor (generated C++): the same numbers up to float32 reordering, the same predictions
    cpu = torch.device("cpu")
    eager, eager_pred = _lab_classification(cpu, torch.float32, 4, 6, compiled=False)
    fast, fast_pred = _lab_classification(cpu, torch.float32, 4, 6)
    assert float(((fast - eager).abs() / eager.abs()).max()) < 1e-4 and fast_pred == eager_pred


@pytest.mark.gpu
@pytest.mark.parametrize("options", [{}, {"cuda_graphs": True}, {"cuda_graphs": True, "tune_pointwise": True}],
                         ids=["default", "cuda graphs", "cuda graphs, tuned kernels"])
def test_compiled_lab_classification_on_cuda_equals_eager_within_bf16_tolerance(options):
    # the options the benchmark found fastest (README, Speed): bf16 in another order, not other numbers; CUDA
    # graphs also through classify_stream's worker thread, which once lacked inductor's per-thread graph trees
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = torch.device("cuda")
    eager, eager_pred = _lab_classification(cuda, torch.bfloat16, 16, 20, compiled=False)
    fast, fast_pred = _lab_classification(cuda, torch.bfloat16, 16, 20, **options)
    assert float(((fast - eager).abs() / eager.abs()).max()) < 1e-2
    assert sum(a == b for a, b in zip(fast_pred, eager_pred)) >= 15
