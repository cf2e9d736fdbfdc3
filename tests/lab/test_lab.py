import numpy as np
import pytest
import torch

from dcanalysis.evaluation.lab_datasets import parse_idx, sklearn_digits_28
from dcanalysis.lab.registry import load_lab_classifier, load_lab_diffusion, model_card
from dcanalysis.lab.shifts import CORRUPTIONS, corrupt


def test_parse_idx_round_trip_and_errors():
    raw = bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))
    assert parse_idx(raw).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x1f\x8b" + raw)
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(raw[:-1])


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruptions_are_seeded_and_change_the_images(name):
    x, _ = sklearn_digits_28()
    a = corrupt(x[:8], name, 3, seed=1)
    assert a.shape == (8, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, corrupt(x[:8], name, 3, seed=1))
    assert not np.array_equal(a, x[:8])
    with pytest.raises(ValueError, match="severity"):
        corrupt(x[:2], name, 6)


def test_shipped_models_load_offline_on_cpu():
    adapter = load_lab_diffusion("mnist_unet")
    eps = adapter.predict(torch.zeros(2, 1, 32, 32), torch.tensor([10, 500]), torch.tensor([3, 7]))
    assert eps.shape == (2, 1, 32, 32) and torch.isfinite(eps).all()
    clf = load_lab_classifier("mnist_cnn")
    assert clf(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    card = model_card("fashion_mnist_unet")
    assert card["config"]["dataset"] == "fashion_mnist" and card["augmentation"] == "random horizontal flip"
    with pytest.raises(ValueError, match="mnist_unet"):
        load_lab_diffusion("cifar_unet")


def test_trained_mnist_model_classifies_real_digits():
    """The README example: a shipped, trained model on the first MNIST test images."""
    from dcanalysis import ClassifierConfig, DiffusionClassifier, Schedule
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset, to_model_input

    test = load_lab_dataset("mnist", test_only=True)
    clf = DiffusionClassifier(load_lab_diffusion("mnist_unet"), ClassifierConfig(schedule=Schedule.exhaustive(10), batch_size=100))
    x = to_model_input(test.test_images[:5])
    preds = [clf.classify(x[i], range(10), image_index=i).prediction for i in range(5)]
    assert sum(p == l for p, l in zip(preds, test.test_labels[:5])) >= 4
