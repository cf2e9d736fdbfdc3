import numpy as np
import pytest
from PIL import Image

from dcanalysis.images import ImageLoadError, load_image


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_modes_are_converted_with_a_note(tmp_path, mode):
    im = Image.fromarray((np.random.rand(10, 10, 3) * 255).astype("uint8")).convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    im.save(path)
    with pytest.warns(UserWarning, match="converted to RGB"):
        x = load_image(path, size=10, mode="RGB")
    assert x.shape == (3, 10, 10) and x.min() >= -1 and x.max() <= 1


def test_odd_sizes_are_resized_and_center_cropped():
    im = Image.new("RGB", (37, 20), (255, 0, 0))
    with pytest.warns(UserWarning, match="37x20 resized"):
        x = load_image(im, size=16)
    assert x.shape == (3, 16, 16) and x[0].mean() > 0.99


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    data = Image.new("RGB", (64, 64)).tobytes()
    Image.new("RGB", (64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:40] + data[:10])
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        load_image(path, size=64)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.png", size=64)
