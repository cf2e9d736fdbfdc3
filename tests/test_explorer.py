import torch

from dcanalysis.explorer import denoising_example, denoising_explorer


def test_example_matches_the_classifier_error_and_is_seeded():
    from dcanalysis.adapters import PixelAdapter
    from tiny_models import tiny_pixel_unet

    adapter = PixelAdapter(tiny_pixel_unet(sample_size=16), image_size=16)
    x0 = torch.zeros(1, 16, 16)
    a = denoising_example(adapter, x0, 300, [0, 1], seed=1)
    b = denoising_example(adapter, x0, 300, [0, 1], seed=1)
    assert torch.equal(a["errors"], b["errors"]) and a["predictions"].shape == (2, 1, 16, 16)
    assert torch.allclose(a["errors"], ((a["predictions"] - a["eps"]) ** 2).flatten(1).mean(1))


def test_explorer_builds_a_widget():
    from dcanalysis.adapters import PixelAdapter
    from tiny_models import tiny_pixel_unet

    adapter = PixelAdapter(tiny_pixel_unet(sample_size=16), image_size=16)
    box = denoising_explorer(adapter, torch.zeros(3, 1, 16, 16), [0, 1, 2], [str(i) for i in range(10)])
    assert len(box.children) == 3
