import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import PixelAdapter
from tiny_models import tiny_pixel_unet


def test_pixel_adapter_pads_and_classifies(tmp_path):
    unet = tiny_pixel_unet(sample_size=16)
    unet.save_pretrained(str(tmp_path))
    adapter = PixelAdapter.from_pretrained(tmp_path, image_size=12)
    x0 = adapter.encode(torch.zeros(1, 1, 12, 12))
    assert x0.shape == (1, 1, 16, 16) and x0[0, 0, 0, 0] == -1 and x0[0, 0, 8, 8] == 0
    r = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(4))).classify(torch.zeros(1, 12, 12), range(10))
    assert r.n_evaluations == 40
    with pytest.raises(ValueError, match="0..9"):
        adapter.embed([10])
