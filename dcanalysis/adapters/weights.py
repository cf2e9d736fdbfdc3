"""Finding pretrained weights without touching the network.

Hub ids are resolved from the local Hugging Face cache only; a folder is used as it is. Anything missing
fails at once with a message that says what was looked for and how to point at a local copy, instead of a
download that hangs on a machine without internet.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import WeightsNotFoundError


def resolve_pretrained(name_or_path: str | os.PathLike, *, subfolders: tuple[str, ...]) -> Path:
    """Return a local folder holding ``subfolders`` (e.g. "unet", "vae") for a hub id or a path.

    Raises ``WeightsNotFoundError`` naming the missing pieces and the fix.
    """
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

            folder = Path(snapshot_download(text, local_files_only=True))
        except Exception as e:  # huggingface_hub raises several types for 'not cached'
            cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
            raise WeightsNotFoundError(
                f"weights for {text!r} are not in the local Hugging Face cache ({cache}) and dcanalysis never "
                "downloads them itself. On a machine with internet run `huggingface-cli download "
                f"{text} --local-dir PATH`, copy PATH here and pass model='PATH'. ({type(e).__name__})"
            ) from None
        where = f"cached snapshot of {text!r} at {str(folder)!r}"
    missing = [s for s in subfolders if not (folder / s).is_dir()]
    if missing:
        raise WeightsNotFoundError(
            f"the {where} lacks the component folder(s) {missing}; a diffusers pipeline folder holds "
            f"{list(subfolders)}. Save one with `pipeline.save_pretrained(PATH)`."
        )
    return folder
