"""Model adapters behind one protocol (see ``base.DiffusionAdapter``)."""
from .base import Conditioning, DiffusionAdapter, index_conditioning
from .dit import DiTAdapter
from .pixel import PixelAdapter
from .stable_diffusion import StableDiffusionAdapter
from .text_pixel import TextPixelAdapter
from .toy import GaussianMixtureAdapter

__all__ = ["Conditioning", "DiffusionAdapter", "index_conditioning", "DiTAdapter", "PixelAdapter",
           "StableDiffusionAdapter", "TextPixelAdapter", "GaussianMixtureAdapter"]
