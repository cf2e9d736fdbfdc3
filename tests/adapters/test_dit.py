import pytest
import torch

from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
from dcanalysis.adapters import DiTAdapter
from tiny_models import tiny_dit_components


def test_dit_uses_only_the_eps_half_and_classifies():
    comps = tiny_dit_components()
    adapter = DiTAdapter(**comps)
    x_t, t, c = torch.randn(3, 4, 8, 8), torch.tensor([1, 500, 999]), torch.tensor([0, 4, 9])
    full = comps["transformer"](x_t, timestep=t, class_labels=c).sample
    assert full.shape[1] == 8
    assert torch.equal(adapter.predict(x_t, t, c), full[:, :4])
    r = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(6))).classify(torch.zeros(3, 16, 16), [0, 3, 9])
    assert r.errors.shape == (3, 6) and r.n_evaluations == 18


def test_dit_class_range():
    with pytest.raises(ValueError, match="0..9"):
        DiTAdapter(**tiny_dit_components()).embed([10])


def test_dit_folder_round_trip(tmp_path):
    comps = tiny_dit_components()
    for name, obj in comps.items():
        obj.save_pretrained(str(tmp_path / name))
    adapter = DiTAdapter.from_pretrained(str(tmp_path))
    assert adapter.num_classes == 10 and adapter.resolution == 16
