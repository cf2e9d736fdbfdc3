"""Finding pretrained weights without touching the network.

Hub ids are resolved from the local Hugging Face cache only; a folder is used as it is. Anything missing
fails at once with a message that says what was looked for and how to point at a local copy, instead of a
download that hangs on a machine without internet.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import WeightsNotFoundError


@dataclass(frozen=True)
class HubOptions:
    """Which files of a pipeline diffusers reads, by its own ``from_pretrained`` options: ``variant`` ('fp16': the
    ``*.fp16.safetensors`` files a folder may hold beside or instead of the full ones), ``revision`` (a branch, tag
    or commit of a cached hub id) and ``cache_dir`` (a Hugging Face cache other than the default)."""

    variant: str | None = None
    revision: str | None = None
    cache_dir: str | None = None

    def loading(self, dtype=None) -> dict:
        """Keyword arguments for a diffusers / transformers ``from_pretrained`` of a model component: offline, in
        ``dtype`` from the start (``dtype=``, diffusers' and transformers' current name), the variant's files if one
        is given (``resolve_pretrained`` refuses a variant-only folder without it, before diffusers would look for
        other weight files)."""
        return {"local_files_only": True, **({"dtype": dtype} if dtype is not None else {}),
                **({"variant": self.variant} if self.variant else {})}


def resolve_pretrained(name_or_path: str | os.PathLike, *, subfolders: tuple[str, ...],
                       hub: HubOptions | None = None) -> Path:
    """Return a local folder holding ``subfolders`` (e.g. "unet", "vae") for a hub id or a path (``hub``: revision
    and cache of a hub id, variant of the weight files).

    Raises ``WeightsNotFoundError`` naming the missing pieces and the fix.
    """
    hub = hub or HubOptions()
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        folder = path
        where = f"folder {str(path)!r}"
    elif text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise WeightsNotFoundError(
            f"model folder {text!r} does not exist. Pass an existing folder laid out like a diffusers pipeline "
            f"(with {', '.join(subfolders)} inside) or a hub id such as 'stabilityai/stable-diffusion-2-base'."
        )
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(text, local_files_only=True, revision=hub.revision,
                                            cache_dir=hub.cache_dir))
        except Exception as e:  # huggingface_hub raises several types for 'not cached'
            cache = hub.cache_dir or os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
            rev = f" at revision {hub.revision!r}" if hub.revision else ""
            raise WeightsNotFoundError(
                f"weights for {text!r}{rev} are not in the local Hugging Face cache ({cache}) and dcanalysis never "
                f"downloads them itself. On a machine with internet run `hf download {text} --local-dir PATH`, "
                f"copy PATH here and pass --model PATH (in Python: load_adapter('PATH')). ({type(e).__name__})"
            ) from None
        where = f"cached snapshot of {text!r} at {str(folder)!r}"
    missing = [s for s in subfolders if not (folder / s).is_dir()]
    if missing:
        raise WeightsNotFoundError(
            f"the {where} lacks the component folder(s) {missing}; a diffusers pipeline folder holds "
            f"{list(subfolders)}. Save one with `pipeline.save_pretrained(PATH)`."
        )
    # a model component (it has a config.json) needs its weights beside it; say so before diffusers asks for a .bin
    components = [p for p in sorted(folder.iterdir()) if p.is_dir() and (p / "config.json").is_file()]
    files = {p.name: [w.name for ext in WEIGHT_SUFFIXES for w in p.glob(f"*{ext}")] for p in components}
    # a variant's file is NAME.VARIANT.EXT (a shard, NAME-00001-of-00002.EXT, is a full weight file); without a
    # variant its files are not the weights diffusers looks for, with one diffusers takes them where a component
    # has them and the full ones elsewhere
    is_variant = lambda w: len(w.split(".")) > 2 and "-of-" not in w  # noqa: E731
    found = {k: [w for w in v if not is_variant(w) or (hub.variant and f".{hub.variant}." in w)]
             for k, v in files.items()}
    variants = sorted({w.split(".")[-2] for v in files.values() for w in v if is_variant(w)})
    empty = [name for name, files in found.items() if not files]
    if empty and variants and not hub.variant:
        raise WeightsNotFoundError(
            f"the {where} holds only {variants[0]!r}-variant weights in {empty} (*.{variants[0]}.safetensors): pass "
            f"--variant {variants[0]} (in Python: hub=HubOptions(variant={variants[0]!r})).")
    if empty:
        raise WeightsNotFoundError(
            f"the {where} has no weights in {empty} (no {' / '.join(WEIGHT_SUFFIXES)} file beside config.json): "
            "the copy is incomplete. Copy the weight files too, or save the pipeline again with save_pretrained."
        )
    return folder


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_fingerprint(folder: str | os.PathLike, *, sample_bytes: int = 4 << 20) -> str:
    """16 hex digits that change when any weight file under ``folder`` does: a sha256 over each file's relative
    path, its size and its first and last ``sample_bytes`` (whole files when smaller, which covers the lab
    models). Recorded with a run, so results of other weights are never mixed into it; reading two 4 MiB
    windows keeps this instant for multi-GB checkpoints, at the price of missing an edit confined to the middle
    of a large file."""
    h = hashlib.sha256()
    root = Path(folder)
    files = sorted(p for ext in WEIGHT_SUFFIXES for p in root.rglob(f"*{ext}"))
    if not files:
        raise WeightsNotFoundError(f"no weight files ({' / '.join(WEIGHT_SUFFIXES)}) under {str(root)!r}.")
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(root)}\0{size}\0".encode())
        with open(p, "rb") as f:
            h.update(f.read(sample_bytes))
            if size > 2 * sample_bytes:
                f.seek(-sample_bytes, os.SEEK_END)
            h.update(f.read(sample_bytes))
    return h.hexdigest()[:16]


# files of a model folder that cannot change its outputs: documentation, and what git or the hub cache keep beside
IGNORED_FILES = (".md", ".gitattributes", ".lock", ".metadata")
CONFIG_BYTES = 64 << 20  # a config, scheduler config or tokenizer file is far smaller; a larger file is hashed by size


def config_fingerprint(folder: str | os.PathLike) -> str:
    """16 hex digits that change when any file under ``folder`` other than a weight file does: model, scheduler and
    VAE configs (``norm_eps``, ``beta_schedule``, ...), tokenizer files, a lab model's card. Every such file is
    hashed whole with its relative path (one larger than ``CONFIG_BYTES`` by its size), so an edited config is never
    mixed into a run computed before it."""
    h = hashlib.sha256()
    root = Path(folder)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (not p.is_file() or p.suffix in WEIGHT_SUFFIXES or p.name.endswith(IGNORED_FILES)
                or any(part.startswith(".") for part in rel.parts)):
            continue
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= CONFIG_BYTES:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
