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


def check_borrowed(modules: dict, device, dtype: torch.dtype | None, *, take_ownership: bool) -> None:
    """An adapter wrapping modules the caller loaded (``from_pipe``) must not cast or move them unless asked:
    ``place_module`` works in place, so the caller's pipeline would change under them. Refuses, in one line, a
    ``device`` or ``dtype`` that differs from the modules' unless ``take_ownership``."""
    if take_ownership:
        return
    for name, module in modules.items():
        if module is None:
            continue
        p = next(module.parameters())
        if (dtype is not None and p.dtype != dtype) or (device is not None and p.device != torch.device(device)):
            raise ValueError(f"your pipeline's {name} is {str(p.dtype).removeprefix('torch.')} on {p.device}; the "
                             f"adapter would cast or move it in place to {str(dtype).removeprefix('torch.')} on "
                             f"{device}, changing your pipeline. Move it yourself (pipe.to(...)), or pass "
                             "take_ownership=True to let the adapter do it.")
