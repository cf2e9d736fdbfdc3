import time

import pytest

from dcanalysis.adapters import DiTAdapter, StableDiffusionAdapter
from dcanalysis.adapters.weights import WeightsNotFoundError, resolve_pretrained


def test_uncached_hub_id_fails_fast_with_the_fix():
    start = time.time()
    with pytest.raises(WeightsNotFoundError, match="`hf download stabilityai/stable-diffusion-2-base --local-dir PATH`"
                                                   ".*--model PATH"):
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


def test_the_config_fingerprint_changes_with_any_config_and_not_with_documentation(tmp_path):
    import json
    import shutil

    from dcanalysis.adapters.weights import config_fingerprint
    from dcanalysis.paths import MODELS_DIR

    copy = shutil.copytree(MODELS_DIR / "mnist_unet", tmp_path / "m")
    base = config_fingerprint(copy)
    (copy / "README.md").write_text("notes")
    assert config_fingerprint(copy) == base
    config = json.loads((copy / "config.json").read_text())
    config["norm_eps"] = config.get("norm_eps", 1e-5) * 2  # changes the network's outputs, not its weights
    (copy / "config.json").write_text(json.dumps(config))
    edited = config_fingerprint(copy)
    assert edited != base
    (copy / "scheduler").mkdir()
    (copy / "scheduler" / "scheduler_config.json").write_text('{"beta_schedule": "linear"}')
    assert config_fingerprint(copy) != edited


def test_variant_only_folders_name_the_variant_and_load_with_it(tmp_path):
    """A folder saved with variant='fp16' has no full weights: the message names --variant, and with it the
    pipeline loads from the variant's files (in safetensors, never a pickle fallback)."""
    import torch

    import tiny_models as T
    from dcanalysis.adapters import HubOptions
    from dcanalysis.adapters.registry import load_adapter

    pipe = T.tiny_sd3_pipeline(tmp_path)
    pipe.save_pretrained(tmp_path / "sd3", variant="fp16")
    with pytest.raises(WeightsNotFoundError, match="only 'fp16'-variant weights.*--variant fp16"):
        load_adapter(str(tmp_path / "sd3"))
    adapter = load_adapter(str(tmp_path / "sd3"), hub=HubOptions(variant="fp16"))
    torch.testing.assert_close(next(adapter.network.parameters()), next(pipe.transformer.parameters()))
