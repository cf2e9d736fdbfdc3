"""Reading images from disk or memory into the tensors a diffusion model expects.

Preprocessing follows the paper (App. B): resize the shorter side to the model's resolution with bicubic
filtering, centre-crop to a square, scale pixels to [-1, 1]. Fixable problems (wrong mode, wrong size) are
fixed with a warning; unfixable ones (a file PIL cannot decode) raise ``ImageLoadError`` naming the file.
"""
from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .exceptions import ImageLoadError

ImageSource = Union[str, Path, Image.Image]
# the largest image file read (a 512 px photo is a few MB; paper-scale images stay far below): a guard against a
# link to a huge or endless file, not a limit a real dataset meets
MAX_IMAGE_BYTES = 256 * 2**20


def read_image_bytes(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file. A link to a regular file is followed (datasets are often folders of links);
    a FIFO, device or socket is refused without blocking, and so is a file over ``max_bytes``."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageLoadError(f"image file {str(path)!r} does not exist; check the path.") from None
    except OSError as e:
        raise ImageLoadError(f"cannot open image {str(path)!r} ({e.strerror}); check its permissions.") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, device or socket"
            raise ImageLoadError(f"{str(path)!r} is {kind}, not an image file; remove it from the dataset folder.")
        if st.st_size > max_bytes:
            raise ImageLoadError(f"image {str(path)!r} is {st.st_size / 2**20:.0f} MiB, over the "
                                 f"{max_bytes / 2**20:.0f} MiB read limit; downscale it or remove it.")
        os.set_blocking(fd, True)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise ImageLoadError(f"image {str(path)!r} is over the {max_bytes / 2**20:.0f} MiB read limit.")
    return data


def open_image(source: ImageSource) -> Image.Image:
    """Open and fully decode an image, so a truncated file fails here and not deep inside a model call."""
    if isinstance(source, Image.Image):
        return source
    path = Path(source)
    data = read_image_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.copy()
    except Image.DecompressionBombError as e:
        raise ImageLoadError(
            f"image {str(path)!r} is too large to decode safely ({e}); downscale it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file."
        ) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(
            f"cannot decode image {str(path)!r} ({type(e).__name__}: {e}); the file is corrupt or not an "
            "image. Re-download or re-export it (a dataset run records it as failed, goes on, and retries it "
            "once the file has changed)."
        ) from e


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode`` ("RGB" or "L"); transparent pixels are composited on white, as a viewer shows them."""
    if image.mode == mode:
        return image
    warnings.warn(f"image mode {image.mode} converted to {mode} for this model.", stacklevel=3)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bicubic), then the central ``size x size`` square."""
    w, h = image.size
    if (w, h) != (size, size):
        warnings.warn(f"image of size {w}x{h} resized and centre-cropped to {size}x{size}.", stacklevel=3)
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image to a float tensor (C, H, W) in [-1, 1]."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def pad_to(images: torch.Tensor, size: int, value: float = -1.0) -> torch.Tensor:
    """Centre images (..., h, w) on a ``size x size`` canvas filled with ``value`` (-1 is black in [-1, 1])."""
    ph, pw = size - images.shape[-2], size - images.shape[-1]
    if ph < 0 or pw < 0:
        raise ValueError(f"images of {tuple(images.shape[-2:])} px do not fit a {size} px canvas.")
    return torch.nn.functional.pad(images, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def to_pil(x: torch.Tensor) -> Image.Image:
    """Tensor (C, H, W) in [-1, 1] back to a PIL image (for figures)."""
    a = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def model_input(image: torch.Tensor | np.ndarray) -> torch.Tensor | Image.Image:
    """Check an in-memory image against dcanalysis's convention and return it as the classifier takes it.

    The convention (that of diffusers' pipelines): a float tensor (C, H, W) with values in [-1, 1] is a model
    input and passes through; a uint8 tensor (C, H, W) holds 0..255 and is scaled to [-1, 1]; a NumPy uint8 array
    (H, W) or (H, W, C) is an image (read like a PIL image: resized and cropped to the model). Refused with one
    line: a batch (N, C, H, W) where one image is expected, float values outside [-1, 1], float NumPy arrays.
    Warned about: a float tensor whose values all lie in [0, 1] (torchvision's ``ToTensor`` convention), which is
    taken as [-1, 1] as given."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"a NumPy array of dtype {image.dtype} and shape {image.shape}: pass uint8 pixels (H, W) "
                             "or (H, W, C), or a float tensor (C, H, W) in [-1, 1].")
        return Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    if image.ndim != 3:
        raise ValueError(f"an image tensor of shape {tuple(image.shape)}: one image is (C, H, W); pass a batch "
                         "(N, C, H, W) as a list or to classify_batch, which takes one image per entry.")
    if image.dtype == torch.uint8:
        return image.float() / 127.5 - 1.0
    if not image.is_floating_point():
        raise ValueError(f"an image tensor of dtype {image.dtype}: pass float values in [-1, 1] or uint8 0..255.")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"image values span [{lo:.3g}, {hi:.3g}]; dcanalysis takes float tensors in [-1, 1] (for "
                         "0..255 pass a uint8 tensor, for [0, 1] pass x * 2 - 1).")
    if lo >= 0.0 and hi > lo:
        warnings.warn(f"image values all lie in [0, 1] ([{lo:.3g}, {hi:.3g}]): taken as [-1, 1], so the image is read "
                      "as a washed-out one. If it came from torchvision's ToTensor, pass x * 2 - 1.", stacklevel=3)
    return image


def load_image(source: ImageSource, *, size: int, mode: str = "RGB") -> torch.Tensor:
    """Read, convert, resize and scale one image. Returns (C, H, W) in [-1, 1] with C = 3 for RGB, 1 for L."""
    image = open_image(source)
    image = convert_mode(image, mode)
    image = resize_center_crop(image, size)
    return to_tensor(image)
