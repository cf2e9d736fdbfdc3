"""Compute the condition-independent start of a text-conditional UNet once per noisy sample, not once per candidate.

The classifier sends each (x_t, t) through the network with every candidate condition, and the batch holds
those copies side by side (trial-major order). In a diffusers ``UNet2DConditionModel`` nothing sees the condition
before the first cross-attention: ``conv_in``, every down block without attention, and in the first attention
block its first ResNet and the first transformer block's self-attention. Forward hooks on those modules run them
on one row per run of identical (x_t, t) rows and copy the result back out, so the network's output is unchanged
(up to floating-point reassociation) while K candidates cost that prefix once. For SD-2 at 512 px the prefix is
about 5 % of a forward pass (a 64x64 ResNet and self-attention over 4,096 tokens), so the gain is at most that.

Hooks, not wrappers: module names and state dicts stay as they are, and ``torch.compile`` traces the hooks.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch

from ..denoiser import RowGroups, row_groups


@dataclass
class _Groups:
    """Rows of the current batch: ``starts`` (G,) the first row of each run, ``index`` (B,) each row's run."""

    batch: int = 0
    starts: torch.Tensor | None = None
    index: torch.Tensor | None = None


def runs_of_identical_rows(x_t: torch.Tensor, t: torch.Tensor) -> RowGroups:
    """Group consecutive rows with equal (x_t, t). Exact comparison: copies are copies. Reading the number of
    runs back stalls the GPU's queue once per batch; callers that know the runs (the classifier) pass them."""
    same = (x_t[1:] == x_t[:-1]).flatten(1).all(1) & (t[1:] == t[:-1])
    ids = torch.cat([torch.zeros(1, dtype=torch.long, device=x_t.device), torch.cumsum((~same).long(), 0)])
    return row_groups(ids)


def pad_to_power_of_two(starts: torch.Tensor) -> torch.Tensor:
    """Repeat the last run start until there are a power of two of them. Under ``torch.compile`` every distinct
    number of runs is its own graph, and past eight graphs PyTorch stops compiling; a batch of B rows then needs at
    most log2(B) + 1 graphs. The extra rows are computed and never read (no row's index points at them)."""
    g = starts.numel()
    extra = (1 << max(g - 1, 0).bit_length()) - g
    return torch.cat([starts, starts[-1:].expand(extra)]) if extra else starts


def condition_independent_modules(unet) -> list[torch.nn.Module]:
    """The modules of a ``UNet2DConditionModel`` that run before anything reads the condition, in order."""
    mods = [unet.conv_in]
    for block in unet.down_blocks:
        attentions = getattr(block, "attentions", None)
        if not attentions:
            mods.append(block)  # no cross-attention inside: the whole block, downsampler included
            continue
        mods.append(block.resnets[0])
        first = attentions[0].transformer_blocks[0]
        if not getattr(first, "only_cross_attention", False) and not first.attn1.is_cross_attention:
            mods.append(first.attn1)
        break
    return mods


def _map(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_map(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


@dataclass
class PrefixSharing:
    """Forward hooks on a UNet's condition-independent modules; active only inside ``share(x_t, t)``."""

    unet: torch.nn.Module
    modules: list = field(default_factory=list)
    calls: int = 0  # prefix module calls that ran on fewer rows than the batch (for tests and the benchmark)

    def __post_init__(self):
        self._groups = _Groups()
        self.modules = condition_independent_modules(self.unet)
        self._handles = []
        for m in self.modules:
            self._handles.append(m.register_forward_pre_hook(self._shrink, with_kwargs=True))
            self._handles.append(m.register_forward_hook(self._expand))

    def _rows(self, x):
        return isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == self._groups.batch

    def _shrink(self, module, args, kwargs):
        g = self._groups
        if g.starts is None:
            return None
        if not torch.compiler.is_compiling():  # a Python int bumped inside a compiled graph recompiles it per call
            self.calls += 1
        # x[idx], not index_select: indexing keeps a channels_last input channels_last, index_select does not, and a
        # UNet fed NCHW activations runs its convolutions on slower paths
        pick = lambda x: x[g.starts] if self._rows(x) else x  # noqa: E731
        return _map(args, pick), _map(kwargs, pick)

    def _expand(self, module, args, output):
        g = self._groups
        if g.starts is None:
            return None
        n = g.starts.numel()
        return _map(output, lambda y: y[g.index] if y.dim() > 0 and y.shape[0] == n else y)

    @contextmanager
    def share(self, x_t: torch.Tensor, t: torch.Tensor, rows: RowGroups | None = None):
        """Within this block, UNet calls on this batch compute the prefix once per run of identical rows
        (``rows`` when the caller knows them, else found by comparing the rows)."""
        rows = rows if rows is not None else runs_of_identical_rows(x_t, t)
        starts = pad_to_power_of_two(rows.starts)
        if starts.numel() < x_t.shape[0]:
            self._groups = _Groups(x_t.shape[0], starts, rows.index)
        try:
            yield
        finally:
            self._groups = _Groups()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def share_prefix(adapter) -> None:
    """Make ``adapter`` compute its UNet's condition-independent first layers once per noisy sample, in place.

    For adapters of text-conditional UNets (Stable Diffusion 1.x / 2.x, the scene lab's UNet), which declare a
    ``prefix`` slot; the numbers are those of the plain UNet (``tests/engine/test_prefix_sharing.py``).
    Class-conditional models see their class from the first layer on, so nothing of them can be shared.
    """
    if not hasattr(adapter, "prefix") or not isinstance(getattr(adapter, "unet", None), torch.nn.Module):
        raise ValueError(f"--share-prefix: {type(adapter).__name__} has no condition-independent prefix that "
                         "dcanalysis shares. It applies to Stable Diffusion 1.x / 2.x (a folder with unet/ and "
                         "text_encoder/) and the scene lab's UNet; drop the flag for this model.")
    if adapter.prefix is None:
        adapter.prefix = PrefixSharing(adapter.unet)
    adapter.uses_row_groups = True
