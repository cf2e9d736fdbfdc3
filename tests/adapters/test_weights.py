import time

import pytest

from dcanalysis.adapters import DiTAdapter, StableDiffusionAdapter
from dcanalysis.adapters.weights import WeightsNotFoundError, resolve_pretrained


def test_uncached_hub_id_fails_fast_with_the_fix():
    start = time.time()
    with pytest.raises(WeightsNotFoundError, match="huggingface-cli download"):
        StableDiffusionAdapter.from_pretrained("stabilityai/stable-diffusion-2-base")
    with pytest.raises(WeightsNotFoundError, match="local Hugging Face cache"):
        DiTAdapter.from_pretrained("facebook/DiT-XL-2-256")
    assert time.time() - start < 10


def test_missing_folder_and_missing_components(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_pretrained(str(tmp_path / "nope"), subfolders=("unet",))
    (tmp_path / "unet").mkdir()
    with pytest.raises(WeightsNotFoundError, match=r"\['vae'\]"):
        resolve_pretrained(tmp_path, subfolders=("unet", "vae"))
