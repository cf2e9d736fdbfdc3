"""Linear layers in 8-bit floating point: on a Hopper GPU, twice bf16's tensor-core rate and half its bytes.

An opt-in trade of precision for speed, not a free one: e4m3 keeps 3 mantissa bits, so each product carries about
3 % relative error before the sums average it down. On the SD-2 UNet on an H100 it did not pay (chapter 10: the
matrix products ran faster, quantising each activation row cost more, 486 evaluations/s against 517; output 5 %
from bf16's); it stays for models whose linear layers weigh more. With no trained SD or DiT weights here, what
it does to accuracy is not measured.

Scaling is per row, both sides: each weight row (output channel) is quantised once, with scale amax / 448 (e4m3's
largest value); each activation row (token) at every call. ``torch._scaled_mm`` multiplies the 8-bit operands
and applies both scales and the bias in its epilogue, returning the model's dtype. Per-row scales follow the
activations' outliers, which sit in a few tokens, far better than one scale per tensor.
"""
from __future__ import annotations

import torch

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) float -> (M, K) e4m3 and (M, 1) float32 scales, with x ~= q * scale row by row."""
    amax = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)  # an all-zero row keeps a usable scale
    scale = amax / E4M3_MAX
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


class Fp8Linear(torch.nn.Module):
    """A ``torch.nn.Linear`` whose weight is stored in e4m3 with one scale per output channel.

    Input (..., in_features) in bf16 (or another float dtype on the CPU); output (..., out_features) in the
    input's dtype. Build it with ``from_linear`` after the model has its final device and dtype: ``Module.to``
    would cast the 8-bit weight back to a wide dtype, which ``forward`` refuses.
    """

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight_fp8.shape
        self.register_buffer("weight", weight_fp8)  # (N, K) e4m3
        self.register_buffer("weight_scale", weight_scale)  # (1, N) float32
        self.register_buffer("bias", bias)  # (N,) in the model's dtype, or None

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear) -> "Fp8Linear":
        with torch.no_grad():
            q, scale = quantize_rows(linear.weight)
            bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(q, scale.t().contiguous(), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.dtype != E4M3:
            raise TypeError(f"Fp8Linear's weight is {self.weight.dtype}, not {E4M3}: the model was cast after "
                            "convert_linears. Move and cast the model first, then convert.")
        lead = x.shape[:-1]
        q, scale = quantize_rows(x.reshape(-1, self.in_features))
        # the weight's transpose is column-major, the layout _scaled_mm wants for its second operand
        y = torch._scaled_mm(q, self.weight.t(), scale_a=scale, scale_b=self.weight_scale, bias=self.bias,
                             out_dtype=x.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def check_fp8_device(device: torch.device) -> None:
    """Raise a ValueError naming the fix where ``device`` has no 8-bit matrix products (CUDA before compute 8.9)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        name = torch.cuda.get_device_name(device)
        raise ValueError(f"fp8 linear layers need an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper); "
                         f"{name} is {torch.cuda.get_device_capability(device)}. Drop the fp8 option.")


def convert_linears(model: torch.nn.Module, *, keep=lambda name: "emb" in name) -> list[str]:
    """Replace, in place, every ``nn.Linear`` of ``model`` by an ``Fp8Linear``; returns the names replaced.

    Left as they are: layers whose sizes are not multiples of 16 (the 8-bit kernels' tile constraint) and those
    ``keep(name)`` picks, by default the embeddings (timestep, class, text-time): they run on one row per sample,
    cost nothing, and set the scale and shift of every block after them.
    """
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is not torch.nn.Linear or keep(full):
                continue
            if child.in_features % 16 or child.out_features % 16:
                continue
            check_fp8_device(child.weight.device)
            setattr(module, child_name, Fp8Linear.from_linear(child))
            replaced.append(full)
    return replaced


def place_with_fp8_linears(model: torch.nn.Module, device, dtype: torch.dtype, *,
                           keep=lambda name: "emb" in name) -> list[str]:
    """Move ``model`` to ``device`` with its linear layers stored in e4m3 (what ``convert_linears`` picks), one
    layer at a time: the device never holds more than the 8-bit weights and one layer in ``dtype``, so a model too
    large for a GPU in bf16 reaches it in 8 bits (Flux.1's 12 B parameters: about 24 GB in bf16, 12 GB in e4m3).
    Everything else is cast to ``dtype``. Returns the names of the converted layers.
    """
    device = torch.device(device)
    converted = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is not torch.nn.Linear or keep(full) or child.in_features % 16 or child.out_features % 16:
                continue
            check_fp8_device(device)
            wide = child.to(device=device, dtype=dtype)
            setattr(module, child_name, Fp8Linear.from_linear(wide))
            del wide, child
            converted.append(full)
    # the rest, module by module so that no 8-bit buffer is cast back to a wide dtype
    for module in model.modules():
        if isinstance(module, Fp8Linear):
            module.weight = module.weight.to(device)
            module.weight_scale = module.weight_scale.to(device)
            module.bias = None if module.bias is None else module.bias.to(device, dtype)
            continue
        for key, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[key] = torch.nn.Parameter(p.detach().to(device, dtype if p.is_floating_point()
                                                                            else p.dtype), requires_grad=False)
        for key, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[key] = b.to(device, dtype if b.is_floating_point() else b.dtype)
    return converted
