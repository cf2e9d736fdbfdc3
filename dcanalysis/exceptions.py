"""Every error the library raises on purpose, in one place, so a caller can catch exactly what it can handle.

Each message says what is wrong and what to do about it; the classes only name the kind of failure.
"""
from __future__ import annotations


class ImageLoadError(ValueError):
    """An image that cannot be read: missing, corrupt, truncated, too large, or not an image."""


class NonFiniteError(RuntimeError):
    """The network returned NaN or inf."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither in a given folder nor in the local Hugging Face cache."""


class ManifestMismatchError(ValueError):
    """A run directory holds results computed with other settings, files or models."""


class RunLockedError(RuntimeError):
    """Another process is writing the same rank of a run directory."""


class DatasetUnavailableError(RuntimeError):
    """No source could provide a lab dataset."""


class TextEncoderMissing(ImportError):
    """The scene lab's frozen text encoder is not installed."""


class UnsafeRunFileError(OSError):
    """A file of a run directory is a symbolic link, a FIFO, a device or otherwise not what the run wrote."""
