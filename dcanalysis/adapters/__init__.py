"""Model adapters behind one protocol (see ``base.DiffusionAdapter``); ``registry.load_adapter`` picks one."""
from ..denoiser import Conditioning, DiffusionAdapter, index_conditioning
from .dit import DiTAdapter
from .flux import FluxAdapter
from .pixart import PixArtAdapter
from .pixel import PixelAdapter
from .sd3 import StableDiffusion3Adapter
from .sdxl import StableDiffusionXLAdapter
from .stable_diffusion import StableDiffusionAdapter
from .text_pixel import TextPixelAdapter
from .toy import GaussianMixtureAdapter
from .weights import HubOptions

__all__ = ["Conditioning", "DiffusionAdapter", "index_conditioning", "DiTAdapter", "FluxAdapter", "PixArtAdapter",
           "PixelAdapter", "StableDiffusion3Adapter", "StableDiffusionXLAdapter", "StableDiffusionAdapter",
           "TextPixelAdapter", "GaussianMixtureAdapter"]
