"""Look inside one denoising step: x_t, the true noise, and the noise each of two conditions predicts.

``error_curves`` is paper Fig. 2's computation (each condition's error at every t for fixed noise draws);
``denoising_example`` is one step of it with the images kept (pure, testable); ``denoising_explorer`` wraps it in ipywidgets
sliders for a live notebook. The book's static HTML shows ``plotting.denoising_panel`` of one example instead
of a widget that would need a running kernel.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..denoiser import conditioning_to
from ..classifier import evaluate_triples
from ..denoising_error import denoising_error, noisy_sample
from ..noise import derive_generator
from ..processes import predicted_clean_and_noise


def error_curves(adapter, x0: torch.Tensor, conditions: Sequence, timesteps: torch.Tensor, eps: torch.Tensor, *,
                 error: str = "l2") -> torch.Tensor:
    """Paper Fig. 2: each condition's denoising error at every timestep, for fixed noise draws.

    x0 (*sample_shape) in the diffusion space, timesteps (T,) 0-based, eps (E, *sample_shape). Returns (K, E, T)
    float32 on the CPU for K conditions: ``denoising_error`` with the ``error`` loss (name as in
    ``ClassifierConfig``), with x_t the same for every condition (the paired design). The classifier's own ``evaluate_triples`` does the work, over a one-image plan
    of E x T trials; one network call per (noise draw, condition) covers all T timesteps.
    """
    ts = torch.as_tensor(timesteps, dtype=torch.long).cpu()
    n_eps, n_t, k = len(eps), len(ts), len(conditions)
    plan_t = ts.repeat(n_eps)[None]                      # trial e * T + i: timestep i ...
    plan_eps = eps.repeat_interleave(n_t, dim=0)[None]   # ... with noise draw e
    trial = torch.arange(n_eps * n_t).repeat(k)
    cand = torch.arange(k).repeat_interleave(n_eps * n_t)
    cond = conditioning_to(adapter.embed(list(conditions)), adapter.device)
    errors = evaluate_triples(adapter, x0[None].to(adapter.device), cond, plan_t, plan_eps,
                              torch.zeros_like(trial), trial, cand, error=error, batch_size=n_t)
    return errors.view(k, n_eps, n_t).float()


def denoising_example(adapter, x0: torch.Tensor, t: int, conditions: Sequence, *, seed: int = 0) -> dict:
    """One x_t and each condition's noise prediction.

    x0 : (*sample_shape) in the diffusion space. Returns tensors x0, x_t, eps (sample_shape); predictions (each
    condition's eps_hat, whatever the network's own parameterisation), denoised (the clean image each implies)
    and error_maps ``(eps_hat - eps)^2``, each (len(conditions), *sample_shape); errors (len(conditions),), the
    L2 denoising error in eps space (paper Eq. 5).
    """
    eps = torch.randn(x0.shape, generator=derive_generator(seed, t))
    k = len(conditions)
    ts = torch.full((k,), int(t), dtype=torch.long)
    process = adapter.process
    x_t = noisy_sample(process, x0, eps.expand(k, *x0.shape), ts)
    with torch.no_grad():
        cond = conditioning_to(adapter.embed(list(conditions)), adapter.device)
        out = adapter.predict(x_t.to(adapter.device), ts.to(adapter.device), cond).cpu()
    denoised, pred = predicted_clean_and_noise(process, out, x_t, ts)
    errors = denoising_error(process, out, x_t, x0.expand_as(x_t), eps.expand_as(x_t), ts, target="epsilon")
    return {"x0": x0, "x_t": x_t[0], "eps": eps, "predictions": pred, "denoised": denoised,
            "error_maps": (pred - eps) ** 2, "errors": errors, "t": int(t)}


def denoising_explorer(adapter, images: torch.Tensor, labels: Sequence[int], class_names: Sequence[str], *, seed: int = 0):
    """An ipywidgets explorer: pick a test image, a timestep and two classes; see x_t, eps and both predictions.

    images : (N, C, H, W) model inputs in [-1, 1]; labels : (N,) class indices.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .plotting import denoising_panel

    index = w.IntSlider(0, 0, len(images) - 1, description="image")
    t = w.IntSlider(400, 0, adapter.process.num_timesteps - 1, step=10, description="t")
    a = w.Dropdown(options=[(n, i) for i, n in enumerate(class_names)], value=int(labels[0]), description="class A")
    b = w.Dropdown(options=[(n, i) for i, n in enumerate(class_names)], value=(int(labels[0]) + 1) % len(class_names),
                   description="class B")

    def show(index, t, a, b):
        x0 = adapter.encode(images[index:index + 1])[0]
        ex = denoising_example(adapter, x0, t, [a, b], seed=seed)
        fig = denoising_panel(ex, [class_names[a], class_names[b]], true_name=class_names[int(labels[index])])
        display(fig)
        plt.close(fig)

    out = w.interactive_output(show, {"index": index, "t": t, "a": a, "b": b})
    return w.VBox([w.HBox([index, t]), w.HBox([a, b]), out])
