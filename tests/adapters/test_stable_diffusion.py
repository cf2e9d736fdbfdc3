import numpy as np
import pytest
import torch
from PIL import Image

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import StableDiffusionAdapter
from tiny_models import save_sd_folder, tiny_sd_components


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd")
    return save_sd_folder(tiny_sd_components(tmp), tmp / "pipeline")


def test_end_to_end_from_a_folder(sd_folder):
    adapter = StableDiffusionAdapter.from_pretrained(str(sd_folder))
    assert adapter.resolution == 16
    image = Image.fromarray((np.random.default_rng(0).random((24, 30, 3)) * 255).astype("uint8"))
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.from_lists((4, 10), (2, 1)), batch_size=8))
    prompts = ["a photo of a cat.", "a photo of a dog.", "a photo of a bird."]
    with pytest.warns(UserWarning, match="resized"):
        r = clf.classify(image, prompts)
    assert r.n_evaluations == 3 * 4 + 2 * 6 and r.prediction in prompts
    assert abs(r.posterior.sum().item() - 1) < 1e-9
    # The same image and seed reproduce; embeddings are cached per candidate list.
    r2 = clf.classify(image, prompts)
    assert torch.equal(r.errors.nan_to_num(), r2.errors.nan_to_num()) and len(clf._embedding_cache) == 1


def test_latent_shape_and_prompt_type(sd_folder):
    adapter = StableDiffusionAdapter.from_pretrained(str(sd_folder))
    x0 = adapter.encode(torch.zeros(1, 3, 16, 16))
    assert x0.shape == (1, 4, 8, 8)
    with pytest.raises(TypeError, match="prompts"):
        adapter.embed([1, 2])


def test_v_prediction_is_declared_and_compared_in_eps_space_by_default(tmp_path):
    """SD 2.x 768-v: the adapter returns v and says so; the error converts it to eps (Eq. 5), as before."""
    from dcanalysis.denoising_error import denoising_error
    from dcanalysis.processes import convert_prediction

    comps = tiny_sd_components(tmp_path, prediction_type="v_prediction")
    adapter = StableDiffusionAdapter(**comps)
    assert adapter.process.prediction_type == "v_prediction" and adapter.process.default_target == "epsilon"
    x_t, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    cond = adapter.embed(["a", "b"])
    v = comps["unet"](x_t, t, encoder_hidden_states=cond).sample
    assert torch.equal(adapter.predict(x_t, t, cond), v)
    abar = adapter.process.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps_hat = abar.sqrt() * v + (1 - abar).sqrt() * x_t
    assert torch.allclose(convert_prediction(adapter.process, v, x_t, t, "epsilon"), eps_hat, atol=1e-5)
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    err = denoising_error(adapter.process, v, x_t, x0, eps, t)
    assert torch.allclose(err, ((eps_hat - eps) ** 2).flatten(1).mean(1), atol=1e-5)


def test_placeholder_tokenizer_is_refused(tmp_path):
    comps = tiny_sd_components(tmp_path)

    class Placeholder:
        vocab_size = 2

    comps["tokenizer"] = Placeholder()
    with pytest.raises(ValueError, match="did not load"):
        StableDiffusionAdapter(**comps)
