import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import TextPixelAdapter
from tiny_models import tiny_caption_bank, tiny_text_unet


@pytest.fixture(scope="module")
def adapter():
    return TextPixelAdapter(tiny_text_unet(), tiny_caption_bank())


def test_prediction_depends_on_the_caption(adapter):
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([500, 500])
    cond = adapter.embed(["a red circle left of a blue square", "a blue circle left of a red square"])
    eps = adapter.predict(x[:1].expand(2, -1, -1, -1), t, cond)
    assert eps.shape == (2, 3, 32, 32) and eps.dtype == torch.float32
    assert (eps[0] - eps[1]).abs().max() > 1e-4


def test_bad_input_is_refused(adapter):
    with pytest.raises(TypeError, match="captions"):
        adapter.embed([3])
    with pytest.raises(ValueError, match="adapter.load"):
        adapter.encode(torch.zeros(1, 3, 28, 28))


def test_classifier_scores_captions_on_shared_trials(adapter):
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(4), batch_size=8))
    caps = ["a red circle", "a blue square", ""]
    x = torch.rand(3, 32, 32) * 2 - 1
    r = clf.classify(x, caps, image_index=2)
    assert r.errors.shape == (3, 4) and not torch.isnan(r.errors).any()
    # same (t, eps) per trial whatever the other candidates are: a caption's errors do not depend on its rivals
    again = clf.classify(x, caps[1::-1], image_index=2)
    assert torch.allclose(again.errors[1], r.errors[0], atol=1e-5)
