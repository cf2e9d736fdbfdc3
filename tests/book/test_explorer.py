import torch

from dcanalysis.book.explorer import denoising_example, denoising_explorer


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


def test_error_curves_are_the_paired_errors_at_every_t():
    from dcanalysis.adapters import PixelAdapter
    from dcanalysis.book.explorer import error_curves
    from tiny_models import tiny_pixel_unet

    adapter = PixelAdapter(tiny_pixel_unet(sample_size=16), image_size=16)
    x0 = torch.rand(1, 16, 16) * 2 - 1
    ts = torch.tensor([10, 500, 990])
    eps = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    curves = error_curves(adapter, x0, [3, 7], ts, eps)
    assert curves.shape == (2, 2, 3)
    # entry [k, e, i] by hand: one sample, one timestep, one condition
    abar = adapter.process.alphas_cumprod[990]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps[1:2]
    with torch.no_grad():
        pred = adapter.predict(x_t, ts[2:3], torch.tensor([7]))
    assert torch.allclose(curves[1, 1, 2], ((pred - eps[1:2]) ** 2).mean(), rtol=1e-5)
    assert not torch.allclose(curves[0], curves[1])  # the two conditions differ on the same noise
