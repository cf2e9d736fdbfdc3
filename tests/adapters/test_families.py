"""SDXL, SD 3 / 3.5, Flux and PixArt on tiny random diffusers pipelines: from a pipeline and from a folder, each
forward process checked against its diffusers scheduler, end to end through classify and the CLI. Random weights:
nothing here says anything about accuracy."""
import json

import numpy as np
import pytest
import torch

import tiny_models as T
from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import FluxAdapter, PixArtAdapter, StableDiffusion3Adapter, StableDiffusionXLAdapter
from dcanalysis.adapters.registry import adapter_for_pipe, load_adapter
from dcanalysis.processes import add_noise

FAMILIES = {"sd3": StableDiffusion3Adapter, "flux": FluxAdapter, "sdxl": StableDiffusionXLAdapter,
            "pixart": PixArtAdapter}
OPTIONS = {"sd3": {"max_sequence_length": 16}, "flux": {"max_sequence_length": 16},
           "pixart": {"max_sequence_length": 16}, "sdxl": {}}
PROMPTS = ["a photo of a cat", "a photo of a dog", "a red bird"]


def adapter_of(family, tmp_path, **extra):
    pipe = getattr(T, f"tiny_{family}_pipeline")(tmp_path)
    return pipe, adapter_for_pipe(pipe, resolution=16, **OPTIONS[family], **extra)


def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_classifies_a_loaded_pipeline(family, tmp_path):
    pipe, adapter = adapter_of(family, tmp_path)
    assert isinstance(adapter, FAMILIES[family]) and adapter.network is getattr(pipe, adapter.NETWORK)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.from_lists((4, 8), (2, 1)), batch_size=8))
    r = clf.classify(image(), PROMPTS)
    assert r.n_evaluations == 3 * 4 + 2 * 4 and torch.isfinite(r.mean_errors).all()
    assert not torch.allclose(r.errors[0, :4], r.errors[1, :4])  # the prompt reaches the network


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_pipeline_folder_loads_to_the_same_adapter_and_numbers(family, tmp_path):
    pipe, adapter = adapter_of(family, tmp_path)
    pipe.save_pretrained(tmp_path / "pipe")
    again = load_adapter(str(tmp_path / "pipe"))
    assert type(again) is type(adapter)
    again.resolution, again.max_sequence_length = 16, getattr(adapter, "max_sequence_length", None)
    if family == "flux":  # the packed-token grid follows the resolution
        again = FluxAdapter.from_pipe(again.pipe, resolution=16, max_sequence_length=16)
    if family == "sdxl":
        again = StableDiffusionXLAdapter.from_pipe(again.pipe, resolution=16)
    cfg = ClassifierConfig(schedule=Schedule.exhaustive(3))
    a = DiffusionClassifier(adapter, cfg).classify(image(), PROMPTS)
    b = DiffusionClassifier(again, cfg).classify(image(), PROMPTS)
    torch.testing.assert_close(a.errors, b.errors, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_process_is_its_diffusers_scheduler(family, tmp_path):
    pipe, adapter = adapter_of(family, tmp_path)
    g = torch.Generator().manual_seed(1)
    x0 = adapter.encode(image()[None]).expand(3, *adapter.encode(image()[None]).shape[1:])
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([5, 400, 990])
    ours = add_noise(x0, eps, *adapter.process.scales(t))
    sched = pipe.scheduler
    if family in ("sd3", "flux"):
        n = sched.config.num_train_timesteps
        sigmas = np.linspace(1.0, 1 / n, n)
        if family == "flux":  # Flux's pipeline shifts by mu from the number of image tokens
            tokens = x0.shape[1]
            mu = 0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256)
            sched.set_timesteps(sigmas=sigmas, mu=mu)
        # (SD 3's scheduler holds its shifted training grid from construction on)
        theirs = sched.scale_noise(x0, sched.timesteps[n - 1 - t], eps)
        assert torch.allclose(adapter.process.model_time(t), sched.timesteps[n - 1 - t], rtol=1e-4)
    else:
        from diffusers import DDPMScheduler

        # the pipelines' samplers (Euler, DPM-Solver) share the training schedule that DDPMScheduler.add_noise noises by
        ddpm = DDPMScheduler.from_config(sched.config)
        assert torch.allclose(ddpm.alphas_cumprod, sched.alphas_cumprod)
        theirs = ddpm.add_noise(x0, eps, t)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_the_embeddings_are_the_pipelines_own(tmp_path):
    pipe, adapter = adapter_of("sd3", tmp_path)
    embeds, pooled = adapter.embed(PROMPTS)
    ref, _, ref_pooled, _ = pipe.encode_prompt(PROMPTS, None, None, do_classifier_free_guidance=False,
                                               max_sequence_length=16)
    assert torch.equal(embeds, ref) and torch.equal(pooled, ref_pooled)


def test_flux_dev_guidance_and_sd3_without_t5(tmp_path):
    _, dev = adapter_of("flux", tmp_path)
    assert dev.guidance == 1.0
    _, schnell = adapter_of("flux", tmp_path, guidance=3.5)
    x = schnell.encode(image()[None])
    cond = tuple(c[:1] for c in schnell.embed(PROMPTS[:1]))
    t = torch.tensor([500])
    assert not torch.allclose(dev.predict(x, t, cond), schnell.predict(x, t, cond))  # guidance reaches the model
    pipe = T.tiny_sd3_pipeline(tmp_path, drop_t5=True)
    no_t5 = adapter_for_pipe(pipe, resolution=16, max_sequence_length=16)
    r = DiffusionClassifier(no_t5, ClassifierConfig(schedule=Schedule.exhaustive(2))).classify(image(), PROMPTS)
    assert torch.isfinite(r.errors).all()


def test_text_encoders_are_released_after_embedding_only_from_a_pipeline_the_adapter_owns(tmp_path):
    pipe, borrowed = adapter_of("sd3", tmp_path)
    DiffusionClassifier(borrowed, ClassifierConfig(schedule=Schedule.exhaustive(2))).embed(PROMPTS)
    borrowed.release_text_encoders()
    assert pipe.text_encoder_3 is not None  # the caller's pipeline still works
    adapter = adapter_for_pipe(pipe, resolution=16, max_sequence_length=16, take_ownership=True)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(2)))
    clf.embed(PROMPTS)
    adapter.release_text_encoders()
    assert adapter.pipe.text_encoder_3 is None
    assert clf.classify(image(), PROMPTS).n_evaluations == 6  # the cached embeddings still serve
    with pytest.raises(RuntimeError, match="released"):
        clf.classify(image(), ["a new prompt"])


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_the_small_gpu_placement_keeps_the_numbers_close(family, tmp_path):
    """8-bit linears (the denoiser's linear weights in e4m3, placed layer by layer) and text encoders on another
    device: the same candidates win on these tiny random models and the errors stay within fp8's precision."""
    from dcanalysis.engine.fp8 import Fp8Linear, place_with_fp8_linears

    pipe, wide = adapter_of(family, tmp_path)
    cfg = ClassifierConfig(schedule=Schedule.exhaustive(4))
    a = DiffusionClassifier(wide, cfg).classify(image(), PROMPTS)
    small = getattr(T, f"tiny_{family}_pipeline")(tmp_path)
    narrow = adapter_for_pipe(small, resolution=16, **OPTIONS[family], place_network=place_with_fp8_linears,
                              text_device="cpu")
    assert any(isinstance(m, Fp8Linear) for m in narrow.network.modules())
    assert narrow.text_device == torch.device("cpu")
    b = DiffusionClassifier(narrow, cfg).classify(image(), PROMPTS)
    assert (b.errors - a.errors).abs().max() / a.errors.abs().max() < 0.1


def test_the_small_gpu_options_are_refused_where_they_do_not_apply():
    from dcanalysis.cli import main

    with pytest.raises(SystemExit, match="--fp8-linears: mnist_unet is a lab model.*Drop them"):
        main(["classify", "x.png", "--model", "mnist_unet", "--dataset", "mnist", "--device", "cpu", "--fp8-linears"])


def test_an_unsupported_pipeline_names_the_supported_ones(tmp_path):
    pipe = T.tiny_sd3_pipeline(tmp_path)
    pipe.save_pretrained(tmp_path / "pipe")
    index = tmp_path / "pipe" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "_class_name": "KandinskyV22Pipeline"}))
    with pytest.raises(ValueError, match="KandinskyV22Pipeline.*StableDiffusion3Pipeline"):
        load_adapter(str(tmp_path / "pipe"))
    with pytest.raises(TypeError, match="takes a FluxPipeline"):
        FluxAdapter(pipe)


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_the_cli_classifies_and_evaluates_with_a_family_folder(family, tmp_path, capsys):
    from PIL import Image

    from dcanalysis.cli import main

    pipe = getattr(T, f"tiny_{family}_pipeline")(tmp_path)
    pipe.save_pretrained(tmp_path / "pipe")
    Image.new("RGB", (20, 16), (200, 30, 30)).save(tmp_path / "x.png")
    main(["classify", str(tmp_path / "x.png"), "--model", str(tmp_path / "pipe"), "--dataset", "cifar10",
          "--schedule", "2:1", "--device", "cpu"])
    assert "prediction:" in capsys.readouterr().out
    main(["classify", str(tmp_path / "x.png"), "--model", str(tmp_path / "pipe"), "--dataset", "cifar10",
          "--schedule", "2:1", "--device", "cpu", "--fp8-linears", "--text-device", "cpu"])
    assert "prediction:" in capsys.readouterr().out
    root = tmp_path / "images" / "cat"
    root.mkdir(parents=True)
    Image.new("RGB", (16, 16), (10, 200, 30)).save(root / "a.png")
    main(["eval", "--model", str(tmp_path / "pipe"), "--dataset", "cifar10", "--images", str(tmp_path / "images"),
          "--schedule", "2:1", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert "on 1 images" in capsys.readouterr().out


def test_an_adapter_never_casts_a_callers_pipeline_unless_handed_over(tmp_path):
    pipe = T.tiny_sd3_pipeline(tmp_path)
    with pytest.raises(ValueError, match="transformer is float32.*cast or move it in place to bfloat16.*take_ownership"):
        adapter_for_pipe(pipe, dtype=torch.bfloat16, resolution=16)
    assert pipe.transformer.dtype == torch.float32
    adapter_for_pipe(pipe, dtype=torch.bfloat16, resolution=16, take_ownership=True)
    assert pipe.transformer.dtype == torch.bfloat16


def test_load_adapter_drops_t5_when_asked(tmp_path):
    pipe = T.tiny_sd3_pipeline(tmp_path)
    pipe.save_pretrained(tmp_path / "sd3")
    assert load_adapter(str(tmp_path / "sd3")).pipe.text_encoder_3 is not None
    without = load_adapter(str(tmp_path / "sd3"), text_encoder_3=None, tokenizer_3=None)
    assert without.pipe.text_encoder_3 is None and without.pipe.tokenizer_3 is None
    with pytest.raises(ValueError, match="--no-t5: mnist_unet is a lab model"):
        load_adapter("mnist_unet", text_encoder_3=None)
