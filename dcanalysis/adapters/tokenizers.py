"""CLIP- and T5-style tokenizers built without a download, for models with random weights (benchmarks, tests).
They are not the real vocabularies and are never used for trained models."""
from __future__ import annotations

import json
from pathlib import Path


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes: printable Latin-1 maps to itself, the rest
    (controls, space) to code points from 256 on."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    shifted = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(shifted))]


def byte_level_clip_tokenizer(folder: Path, *, model_max_length: int = 77):
    """Write vocab.json + merges.txt with no merges (every character is a token) and load a CLIPTokenizer."""
    from transformers import CLIPTokenizer

    chars = sorted(set(byte_alphabet()))
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=model_max_length)


def char_level_t5_tokenizer(*, model_max_length: int = 512):
    """A T5-style tokenizer (SentencePiece's word-boundary marker, ``</s>`` appended, ``<pad>`` = 0) whose tokens
    are single characters, built in memory; for T5 encoders with random weights."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in sorted(set(byte_alphabet())) + ["▁"]]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0,
                           model_max_length=model_max_length)
