"""What every adapter does when it loads: place a module for inference. The protocol the adapters implement is
the method's, ``dcanalysis.denoiser``."""
from __future__ import annotations

import torch


def place_module(module: torch.nn.Module, device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a module for inference; cast only when needed (diffusers logs a warning for every cast)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval()
