import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.engine.batching import Batched
from dcanalysis.adapters import StableDiffusionAdapter
from dcanalysis.denoiser import row_groups
from dcanalysis.engine.prefix_sharing import PrefixSharing, condition_independent_modules, runs_of_identical_rows
from tiny_models import tiny_sd_components, tiny_text_unet


def _batch(unet, trials=3, k=4, dim=None):
    """Trial-major batch: each (x_t, t) repeated for k candidates, each row its own condition."""
    g = torch.Generator().manual_seed(0)
    c, s = unet.config.in_channels, unet.config.sample_size
    x = torch.randn(trials, c, s, s, generator=g).repeat_interleave(k, 0)
    t = torch.tensor([100, 500, 900])[:trials].repeat_interleave(k)
    cond = torch.randn(trials * k, 5, dim or unet.config.cross_attention_dim, generator=g)
    return x, t, cond


def test_runs_of_identical_rows():
    x = torch.tensor([[1.0], [1.0], [2.0], [2.0], [1.0]])
    t = torch.tensor([5, 5, 5, 6, 6])
    rows = runs_of_identical_rows(x, t)
    assert rows.starts.tolist() == [0, 2, 3, 4] and rows.index.tolist() == [0, 0, 1, 2, 3]


@pytest.mark.parametrize("which", ["sd", "text_pixel"])
def test_shared_prefix_equals_the_plain_forward(which, tmp_path):
    unet = tiny_sd_components(tmp_path)["unet"] if which == "sd" else tiny_text_unet()
    unet.eval()
    x, t, cond = _batch(unet)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=cond).sample
        sharing = PrefixSharing(unet)
        with sharing.share(x, t):
            shared = unet(x, t, encoder_hidden_states=cond).sample
        outside = unet(x, t, encoder_hidden_states=cond).sample
    assert sharing.calls == len(sharing.modules) >= 2  # every prefix module ran on the 3 unique rows only
    assert torch.allclose(shared, plain, atol=1e-5)
    assert torch.equal(outside, plain)  # hooks are inert outside share()
    sharing.remove()


def test_prefix_stops_at_the_first_cross_attention(tmp_path):
    sd = condition_independent_modules(tiny_sd_components(tmp_path)["unet"])
    assert [type(m).__name__ for m in sd] == ["Conv2d", "ResnetBlock2D", "Attention"]
    assert not sd[-1].is_cross_attention
    lab = condition_independent_modules(tiny_text_unet())
    assert [type(m).__name__ for m in lab] == ["Conv2d", "DownBlock2D", "ResnetBlock2D", "Attention"]


def test_bf16_shared_prefix_within_bf16_tolerance(tmp_path):
    unet = tiny_sd_components(tmp_path)["unet"].eval()
    x, t, cond = _batch(unet)
    with torch.no_grad():
        ref = unet(x, t, encoder_hidden_states=cond).sample
        unet16 = unet.to(torch.bfloat16)
        plain16 = unet16(x.bfloat16(), t, encoder_hidden_states=cond.bfloat16()).sample.float()
        sharing = PrefixSharing(unet16)
        with sharing.share(x.bfloat16(), t):
            shared16 = unet16(x.bfloat16(), t, encoder_hidden_states=cond.bfloat16()).sample.float()
    scale = ref.abs().max()
    # sharing adds no error beyond what bf16 itself costs
    assert (shared16 - ref).abs().max() <= 1.5 * (plain16 - ref).abs().max() + 1e-3 * scale
    assert (shared16 - plain16).abs().max() < 3e-2 * scale


def test_classifier_results_unchanged_with_sharing(tmp_path):
    comps = tiny_sd_components(tmp_path)
    cfg = ClassifierConfig(schedule=Schedule.from_lists((4, 8), (2, 1)), batch_size=5)  # runs of 3 straddle batches
    image = torch.rand(3, 16, 16) * 2 - 1
    prompts = ["a cat", "a dog", "a bird"]
    plain = DiffusionClassifier(StableDiffusionAdapter(**comps), cfg).classify(image, prompts, image_index=1)
    adapter = with_shared_prefix(StableDiffusionAdapter(**comps))
    shared = DiffusionClassifier(adapter, cfg).classify(image, prompts, image_index=1)
    assert adapter.prefix.calls > 0
    assert torch.allclose(plain.errors, shared.errors, atol=1e-5, equal_nan=True) and plain.ranking == shared.ranking


def test_row_groups_match_the_rows_they_name():
    ids = torch.tensor([7, 7, 7, 3, 3, 7])  # the last 7 is a padding row: a run of its own
    rows = row_groups(ids)
    assert rows.starts.tolist() == [0, 3, 5] and rows.index.tolist() == [0, 0, 0, 1, 1, 2]
    x = torch.tensor([[1.0], [1.0], [1.0], [2.0], [2.0], [1.0]])
    found = runs_of_identical_rows(x, torch.zeros(6))
    assert (found.starts.tolist(), found.index.tolist()) == (rows.starts.tolist(), rows.index.tolist())


def test_the_classifier_names_the_runs_so_rows_are_never_compared(tmp_path, monkeypatch):
    import dcanalysis.engine.prefix_sharing as ps

    comps = tiny_sd_components(tmp_path)
    cfg = ClassifierConfig(schedule=Schedule.from_lists((4, 8), (2, 1)), batch_size=5)
    image = torch.rand(3, 16, 16) * 2 - 1
    prompts = ["a cat", "a dog", "a bird"]
    plain = DiffusionClassifier(StableDiffusionAdapter(**comps), cfg).classify(image, prompts, image_index=1)
    monkeypatch.setattr(ps, "runs_of_identical_rows", lambda *a: pytest.fail("compared rows on the device"))
    adapter = with_shared_prefix(StableDiffusionAdapter(**comps))
    shared = DiffusionClassifier(adapter, cfg).classify(image, prompts, image_index=1)
    assert adapter.prefix.calls > 0
    assert torch.allclose(plain.errors, shared.errors, atol=1e-5, equal_nan=True) and plain.ranking == shared.ranking


def test_shared_prefix_keeps_channels_last_activations(tmp_path):
    unet = tiny_sd_components(tmp_path)["unet"].eval().to(memory_format=torch.channels_last)
    x, t, cond = _batch(unet)
    seen = []
    unet.down_blocks[0].attentions[0].register_forward_hook(lambda m, a, out: seen.append(a[0]))
    sharing = PrefixSharing(unet)
    with torch.no_grad(), sharing.share(x.to(memory_format=torch.channels_last), t):
        unet(x.to(memory_format=torch.channels_last), t, encoder_hidden_states=cond)
    assert sharing.calls > 0 and seen[0].shape[0] == x.shape[0]
    assert seen[0].is_contiguous(memory_format=torch.channels_last)  # the expanded ResNet output, as the plain one


def test_sharing_under_torch_compile_compiles_once(tmp_path):
    """The hooks run inside the compiled graph: nothing they touch may force a recompile on every call."""
    unet = tiny_sd_components(tmp_path)["unet"].eval()
    x, t, cond = _batch(unet)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(unet, backend=counting_backend, dynamic=False)
    sharing = PrefixSharing(unet)
    rows = runs_of_identical_rows(x, t)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=cond).sample
        for _ in range(3):
            with sharing.share(x, t, rows):
                out = compiled(x, t, encoder_hidden_states=cond).sample
    assert len(graphs) == 1
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-5)
    sharing.remove()
    torch._dynamo.reset()


def test_pad_to_power_of_two():
    from dcanalysis.engine.prefix_sharing import pad_to_power_of_two

    assert pad_to_power_of_two(torch.tensor([0, 3, 9])).tolist() == [0, 3, 9, 9]
    assert pad_to_power_of_two(torch.tensor([0, 5, 6, 7])).tolist() == [0, 5, 6, 7]
    assert pad_to_power_of_two(torch.tensor([4])).tolist() == [4]
    assert pad_to_power_of_two(torch.arange(5)).numel() == 8


def test_compiled_classifier_sees_few_run_counts(tmp_path, monkeypatch):
    """Every distinct number of runs is a compiled graph of its own; padding to powers of two keeps them few."""
    import dcanalysis.engine.prefix_sharing as ps

    comps = tiny_sd_components(tmp_path)
    sizes, graphs = [], []
    pad = ps.pad_to_power_of_two  # called by share(), outside the compiled graph: the spy adds no graph break
    monkeypatch.setattr(ps, "pad_to_power_of_two", lambda starts: sizes.append(pad(starts).numel()) or pad(starts))
    torch._dynamo.reset()
    adapter = with_shared_prefix(StableDiffusionAdapter(**comps))
    adapter.unet = torch.compile(adapter.unet, backend=lambda gm, ex: graphs.append(gm) or gm.forward, dynamic=False)
    # 13 candidates pruned to 7, 4, 2, 1 in batches of 32: runs of 13, 7, 4 and 2 copies, and padded last batches
    cfg = ClassifierConfig(schedule=Schedule.from_lists((3, 9, 20, 40), (7, 4, 2, 1)), batch_size=32)
    image, prompts = torch.rand(3, 16, 16) * 2 - 1, [f"pet {i}" for i in range(13)]
    shared = DiffusionClassifier(Batched(adapter, static_rows=32), cfg).classify(image, prompts, image_index=0)
    torch._dynamo.reset()
    ref = DiffusionClassifier(StableDiffusionAdapter(**comps), cfg).classify(image, prompts, image_index=0)
    assert sizes and all(s & (s - 1) == 0 for s in sizes)  # powers of two only
    assert len(graphs) == len(set(sizes)) <= 5
    assert torch.allclose(shared.errors, ref.errors, atol=1e-5, equal_nan=True) and shared.ranking == ref.ranking


def test_images_sharing_batches_share_only_their_own_prefix(tmp_path):
    # two images in one call: a batch holds the end of one image's trials and the start of the other's
    comps = tiny_sd_components(tmp_path)
    cfg = ClassifierConfig(schedule=Schedule.from_lists((4, 8), (2, 1)), batch_size=7)
    images = [torch.rand(3, 16, 16) * 2 - 1 for _ in range(2)]
    prompts = ["a cat", "a dog", "a bird"]
    plain = DiffusionClassifier(StableDiffusionAdapter(**comps), cfg)
    alone = [plain.classify(im, prompts, image_index=i) for i, im in enumerate(images)]
    together = DiffusionClassifier(with_shared_prefix(StableDiffusionAdapter(**comps)), cfg).classify_batch(
        images, prompts, image_indices=[0, 1])
    for a, b in zip(alone, together):
        assert torch.allclose(a.errors, b.errors, atol=1e-5, equal_nan=True) and a.ranking == b.ranking


def with_shared_prefix(adapter):
    """``adapter`` with its prefix shared (``engine.prefix_sharing.share_prefix``)."""
    from dcanalysis.engine.prefix_sharing import share_prefix

    share_prefix(adapter)
    return adapter
