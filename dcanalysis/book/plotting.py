"""Figures of the book: one function per paper figure, one shared style, one ``save_figure``.

Every function takes plain arrays (from ``analysis.py`` or a ``ClassificationResult``) and returns a
matplotlib Figure; nothing here computes a result.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import seaborn as sns

from ..evaluation.analysis import shift_name

PALETTE = "colorblind"


# One colour per model in every figure of the book (the colour-blind palette's indices): the Diffusion Classifier
# always blue, each baseline its own; other series take the palette's remaining colours, the vermilion (3), easily
# confused with the orange (1), last.
FIXED_COLOURS = {"Diffusion Classifier": 0, "CNN": 1, "ResNet": 2, "ViT": 4}
_OTHER_COLOURS = (5, 6, 8, 9, 7, 3)


def model_colours(models: Sequence[str]) -> dict:
    """{name: RGB} for the series of one figure: fixed colours for the lab's models (``FIXED_COLOURS``), distinct
    colours for the rest, in order."""
    palette = sns.color_palette(PALETTE, 10)
    taken = {FIXED_COLOURS[m] for m in models if m in FIXED_COLOURS}
    free = itertools.cycle([i for i in (0, 1, 2, 4, *_OTHER_COLOURS) if i not in taken])
    return {m: palette[FIXED_COLOURS[m] if m in FIXED_COLOURS else next(free)] for m in dict.fromkeys(models)}


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


# The book's text column at a 1,280 px window (Jupyter Book's theme, measured in headless Chromium): a wider figure
# is shown scaled down to it. Below 8 px on screen a label stops being readable.
PAGE_WIDTH_PX = 676
SMALLEST_LEGIBLE_PX = 8.0


def smallest_text_px(fig) -> float:
    """The height in screen pixels of the figure's smallest visible text, as the book shows it: its size in points
    at the figure's dpi, times the scale at which a figure wider than ``PAGE_WIDTH_PX`` is shown (its saved width:
    the tight bounding box plus ``savefig.pad_inches`` on each side). inf for a figure without text."""
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    if not sizes:
        return float("inf")
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width_px = (box.width + 2 * plt.rcParams["savefig.pad_inches"]) * fig.dpi
    return min(sizes) * fig.dpi / 72 * min(1.0, PAGE_WIDTH_PX / width_px)


def save_figure(fig, name: str, out_dir: str | Path = "figures") -> Path:
    """Save as PNG and SVG under ``out_dir`` (beside the executed notebook); returns the PNG path.

    The PNG records ``smallest_text_px`` (key ``smallest text px``), and a figure whose smallest label would show
    under ``SMALLEST_LEGIBLE_PX`` at page width is saved with a warning that says so."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text_px = smallest_text_px(fig)
    if text_px < SMALLEST_LEGIBLE_PX:
        warnings.warn(f"figure {name!r}: its smallest text shows at {text_px:.1f} px on a {PAGE_WIDTH_PX} px page; "
                      "make the figure narrower or its fonts larger.", stacklevel=2)
    # no date and fixed element ids: a figure redrawn from the same numbers is the same file (a rerun in Jupyter
    # leaves tracked figures unchanged)
    fig.savefig(out / f"{name}.png", metadata={"Software": None, "smallest text px": f"{text_px:.1f}"})
    with plt.rc_context({"svg.hashsalt": name}):
        fig.savefig(out / f"{name}.svg", metadata={"Date": None})
    return out / f"{name}.png"


def decision_regions(grid_x: np.ndarray, grid_y: np.ndarray, exact: np.ndarray, elbo: np.ndarray,
                     points: np.ndarray | None = None, labels: np.ndarray | None = None):
    """Chapter 1: exact-Bayes vs ELBO-classifier decision regions on a 2-D grid (arrays (H, W) of class ids)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, z, title in zip(axes, (exact, elbo), ("exact Bayes: argmax log p(x|c)", "ELBO (Diffusion Classifier)")):
        ax.contourf(grid_x, grid_y, z, levels=[-0.5, 0.5, 1.5], colors=sns.color_palette(PALETTE, 2), alpha=0.35)
        ax.contour(grid_x, grid_y, exact, levels=[0.5], colors="k", linewidths=1.2, linestyles="--")
        if points is not None:
            ax.scatter(points[:, 0], points[:, 1], c=[sns.color_palette(PALETTE)[int(l)] for l in labels], s=6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x1")
    axes[0].set_ylabel("x2")
    fig.suptitle("Dashed: the exact Bayes boundary", fontsize=9)
    return fig


def paired_errors(timesteps: np.ndarray, errors: np.ndarray, condition_names: Sequence[str]):
    """Fig. 2: errors over t for several fixed eps (rows of ``errors``: (C conditions, E eps, T timesteps)),
    normalised per t by the mean over conditions and eps, as in the paper."""
    norm = errors / errors.mean(axis=(0, 1), keepdims=True)
    # 11 in wide showed its legend at under 8 px; constrained layout keeps the right panel's long y label clear of
    # the left panel (it ran into its legend at 1280 px)
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.6), layout="constrained")
    styles = ["-", "--", ":", "-."]
    colors = sns.color_palette(PALETTE, len(condition_names))
    for c, name in enumerate(condition_names):
        for e in range(errors.shape[1]):
            axes[0].plot(timesteps, norm[c, e], styles[e % 4], color=colors[c], lw=1,
                         label=f"{name}" if e == 0 else None)
    axes[0].set(xlabel="timestep t", ylabel="error / mean error at t", title=f"errors for {errors.shape[1]} fixed eps")
    axes[0].legend(fontsize=8)
    diff = norm[0] - norm[1]
    for e in range(errors.shape[1]):
        axes[1].plot(timesteps, diff[e], styles[e % 4], color="k", lw=1)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xlabel="timestep t", ylabel=f"{condition_names[0]} - {condition_names[1]}",
                title="paired difference: the eps effect cancels")
    return fig


def single_timestep_accuracy(curves: dict[str, tuple[np.ndarray, np.ndarray]], chance: float):
    """Fig. 3: accuracy when every class is scored at one timestep, over t; one curve per model."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, (t, acc) in curves.items():
        ax.plot(t, 100 * acc, marker=".", lw=1.2, label=name)
    ax.axhline(100 * chance, color="grey", ls=":", label="chance")
    ax.set(xlabel="timestep t (0-based)", ylabel="accuracy (%)", title="Accuracy from a single timestep")
    ax.legend(fontsize=8)
    return fig


def scaling_curves(n_trials: Sequence[int], curves: dict[str, np.ndarray],
                   bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
    """Fig. 4: accuracy vs trials per timestep strategy (``curves``: name -> (len(n_trials),) accuracies in [0, 1]),
    with bootstrap bands; names starting with "fixed" are drawn dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = model_colours(list(curves))
    # six strategies are more than six colours can keep apart: fixed sets dashed, every curve its own marker
    for (name, acc), marker in zip(curves.items(), itertools.cycle("osD^vP")):
        line, = ax.plot(n_trials, 100 * acc, marker=marker, ms=4, color=colours[name],
                        ls="--" if name.startswith("fixed") else "-", label=name)
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(n_trials, 100 * lo, 100 * hi, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set(xlabel="trials per class", ylabel="accuracy (%)", title="Timestep strategies")
    ax.legend(fontsize=8)
    return fig


def compute_frontier(points: dict[str, tuple[Sequence[float], Sequence[float]]]):
    """Chapter 5: accuracy vs network evaluations per image, one series per method."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, (evals, acc) in points.items():
        ax.plot(evals, 100 * np.asarray(acc), marker="o", ms=4, label=name)
    ax.set_xscale("log")
    ax.set(xlabel="network evaluations per image", ylabel="accuracy (%)", title="Compute-accuracy frontier")
    ax.legend(fontsize=8)
    return fig


def effective_robustness(rows: list[dict], ood_sets: Sequence[str]):
    """Fig. 7: in-distribution accuracy (x) vs mean accuracy over shifted sets (y), one point per model.

    The diagonal-ish trend of discriminative models is what 'effective robustness' is measured against.
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    id_acc = df[df.set == "test"].set_index("model").accuracy
    ood_acc = df[df.set.isin(ood_sets)].groupby("model").accuracy.mean()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colours = model_colours(list(id_acc.index))
    for model in id_acc.index:
        marker = "*" if model == "Diffusion Classifier" else "o"
        ax.scatter(100 * id_acc[model], 100 * ood_acc[model], s=160 if marker == "*" else 60, marker=marker,
                   color=colours[model], label=model, zorder=3)
    base = [m for m in id_acc.index if m != "Diffusion Classifier"]
    if len(base) >= 2:
        fit = np.polyfit(100 * id_acc[base].values, 100 * ood_acc[base].values, 1)
        xs = np.linspace(100 * id_acc.min() - 1, 100 * id_acc.max() + 1, 10)
        ax.plot(xs, np.polyval(fit, xs), color="grey", ls="--", lw=1, label="fit to discriminative models")
    ax.set(xlabel="in-distribution accuracy (%)", ylabel="mean accuracy on shifted sets (%)",
           title="Effective robustness")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def accuracy_bars(rows: list[dict], sets: Sequence[str]):
    """Per-set accuracies (%) with 95 % intervals for every model (chapter 9 table as a figure); the legend above
    the bars, set names on two lines where they are long."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    colours = model_colours(models).values()
    fig, ax = plt.subplots(figsize=(7.6, 3.9))
    width = 0.8 / len(models)
    x = np.arange(len(sets))
    for m, (model, colour) in enumerate(zip(models, colours)):
        got = {r["set"]: r for r in rows if r["model"] == model}
        acc = np.array([100 * got[s]["accuracy"] if s in got else np.nan for s in sets])
        lo = np.array([100 * got[s]["ci_lo"] if s in got else np.nan for s in sets])
        hi = np.array([100 * got[s]["ci_hi"] if s in got else np.nan for s in sets])
        ax.bar(x + (m - (len(models) - 1) / 2) * width, acc, width, color=colour, label=model,
               yerr=np.nan_to_num(_yerr(acc, lo, hi)), capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, [shift_name(s, "\n") for s in sets], fontsize=9)
    ax.set(ylabel="accuracy (%)", ylim=(0, 100))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(models), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def training_curve(rows: list[dict], *, reference: str | None = None):
    """Diffusion Classifier accuracy (95 % intervals) against training steps, log x; ``reference`` names a row
    drawn apart (e.g. the shipped model, from another run of the same config)."""
    run = [r for r in rows if r["model"] != reference]
    fig, ax = plt.subplots(figsize=(7.6, 3.6))
    steps = np.array([r["steps"] for r in run])
    acc = np.array([100 * r["accuracy"] for r in run])
    ax.errorbar(steps, acc, yerr=_yerr(acc, [100 * r["ci95"][0] for r in run], [100 * r["ci95"][1] for r in run]),
                marker="o", capsize=3, label="snapshots of one training run")
    for r in rows:
        if r["model"] == reference:
            a = 100 * r["accuracy"]
            ax.errorbar([r["steps"]], [a], yerr=_yerr([a], [100 * r["ci95"][0]], [100 * r["ci95"][1]]), marker="s",
                        capsize=3, linestyle="none", label=f"{reference} ({r['steps']:,} steps)")
    ax.set(xscale="log", xlabel="training steps (batch 256)", ylabel="accuracy (%)",
           title="Diffusion Classifier accuracy during training")
    # the snapshots' steps only: the reference sits close to the last one, and its step is in the legend
    ax.xaxis.set_minor_locator(plt.NullLocator())  # log minor labels collide at this width
    ax.set_xticks(steps, [f"{t:,}" for t in steps], rotation=45)
    ax.legend(loc="lower right")  # the corner the curve leaves empty: it rises early and stays high
    fig.tight_layout()
    return fig


def throughput(rows: list[dict]):
    """Chapter 10: achieved TFLOP/s as a fraction of the same-run bf16 matmul, per model and variant."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["percent of matmul"] = 100 * df["ratio_to_matmul"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(df, x="model", y="percent of matmul", hue="variant", ax=ax)
    for c in ax.containers:
        ax.bar_label(c, fmt="%.0f%%", fontsize=8)
    ax.set(xlabel="", ylabel="% of bf16 matmul TFLOP/s", title="Evaluation-loop efficiency (random weights)")
    ax.set_ylim(0, 1.15 * df["percent of matmul"].max())  # room for the bar labels
    ax.legend(title="", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # beside the bars, off them
    fig.tight_layout()
    return fig


def kernel_time(rows: list[dict]):
    """Chapter 10: GPU kernel time per evaluation of each profiled variant, split into attention, convolutions
    and linears ("matrix") and the rest, each labelled with its achieved % of the same-run matmul
    (rows of a ``bench --probe`` run, which carry ``groups``)."""
    colours = {"attention": "#4c72b0", "matrix": "#55a868", "other": "#c44e52"}
    rows = [r for r in rows if r.get("groups")]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4))
    for y, r in enumerate(rows):
        left = 0.0
        for g in r["groups"]:
            ms = 1e3 * g["seconds_per_call"] / r["batch"]
            ax.barh(y, ms, left=left, color=colours[g["group"]], label=g["group"] if y == 0 else None)
            if g["ratio_to_matmul"] and ms > 0.12:
                ax.text(left + ms / 2, y, f"{100 * g['ratio_to_matmul']:.0f}%", ha="center", va="center",
                        fontsize=8, color="white")
            left += ms
    ax.set_yticks(range(len(rows)), [r["variant"] for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel="GPU kernel time per evaluation (ms)",
           title="Where the time goes (bar labels: % of matmul TFLOP/s)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def clock_trace(log, rows: list[dict], windows: dict | None = None, margin: float = 1.0, per_row: int = 3):
    """Chapter 10: the GPU's SM clock (MHz) and power draw (W) in each timed window of a benchmark run (the
    reference matmuls, ``windows``, then each row), from ``gpu_profile.read_clock_log``; one panel each, ``per_row``
    to a row, ``margin`` seconds either side, the window itself shaded."""
    spans = [(f"matmul, {k}", w) for k, w in (windows or {}).items() if w[1] - w[0] > 0.5]
    spans += [(f"{r['model']}, {r['variant']}", (r["timed_from"], r["timed_to"])) for r in rows]
    n_rows = -(-len(spans) // per_row)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(2.4 * per_row, 2.5 * n_rows + 0.6), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(spans):]:
        ax.set_visible(False)
    for ax, (label, (a, b)) in zip(axes.flat, spans):
        w = log[(log.time >= a - margin) & (log.time <= b + margin)]
        ax.axvspan(0, b - a, color="0.88", zorder=0)
        ax.plot(w.time - a, w.sm_mhz, color="#4c72b0", lw=1.4, label="SM clock (MHz)")
        ax.plot(w.time - a, w.power_w * 2, color="#c44e52", lw=1.4, label="power x 2 (W)")  # 700 W -> 1400
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("seconds", fontsize=10)
    for ax in axes[:, 0]:
        ax.set(ylim=(0, 2100), ylabel="MHz, or W x 2")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_size_inches()[1]))
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=10, frameon=False)
    return fig


def denoising_panel(example: dict, condition_names: Sequence[str], *, true_name: str | None = None):
    """Top: x_0, x_t and the true noise. Below, per condition: its denoised estimate of x_0 and its squared
    error map (from ``explorer.denoising_example``); a darker map means the condition explains the noise."""
    k = len(condition_names)
    fig, axes = plt.subplots(1 + k, 3, figsize=(9.0, 2.7 * (1 + k)))
    show = lambda ax, img, title, **kw: (ax.imshow(img.permute(1, 2, 0).squeeze(-1).float().numpy(), **kw),  # noqa: E731
                                         ax.set_title(title, fontsize=9), ax.axis("off"))
    show(axes[0, 0], example["x0"], "image x_0", cmap="gray", vmin=-1, vmax=1)
    show(axes[0, 1], example["x_t"], f"noisy x_t (t = {example['t']})", cmap="gray")
    show(axes[0, 2], example["eps"], "true noise eps", cmap="gray")
    vmax = float(example["error_maps"].max())
    for row, (name, err) in enumerate(zip(condition_names, example["errors"].tolist()), start=1):
        show(axes[row, 0], example["denoised"][row - 1], f"denoised | {name}", cmap="gray", vmin=-1, vmax=1)
        show(axes[row, 1], example["error_maps"][row - 1], f"squared error, mean {err:.4f}", cmap="magma", vmin=0, vmax=vmax)
        axes[row, 2].axis("off")
    gap = example["errors"][1] - example["errors"][0] if k > 1 else 0.0
    fig.suptitle((f"true class {true_name}; " if true_name else "") + f"error gap (B - A) = {gap:.4f}", fontsize=10)
    return fig


def inversion_grid(originals: Sequence[torch.Tensor], recons: Sequence[torch.Tensor], mses: Sequence[torch.Tensor],
                   condition_names: Sequence[str], true_index: Sequence[int], *, t_end: int, per_row: int = 6):
    """Paper Fig. 5 for several images: the original, then its DDIM reconstruction under each condition.

    originals[i] (C, H, W), recons[i] (K, C, H, W), mses[i] (K,) in [-1, 1] pixel units. The true condition's
    title is marked with *, the lowest error is framed. Each image's K + 1 panels wrap over rows of ``per_row``,
    so that the class names stay legible at the page's width.
    """
    n, k = len(originals), len(condition_names)
    cols = min(per_row, k + 1)
    rows_each = -(-(k + 1) // cols)
    fig, axes = plt.subplots(n * rows_each, cols, figsize=(1.3 * cols, 1.55 * n * rows_each), squeeze=False)
    to_img = lambda x: ((x.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy()  # noqa: E731
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    for i in range(n):
        panel = lambda j: axes[i * rows_each + j // cols, j % cols]  # noqa: E731  (j = 0: the original)
        gray = dict(cmap="gray", vmin=0, vmax=1) if originals[i].shape[0] == 1 else {}
        first = panel(0)
        first.set_visible(True)
        first.imshow(to_img(originals[i]), **gray)
        first.set_title(f"image {i + 1}: original", fontsize=9, fontweight="bold")
        best = int(torch.argmin(mses[i]))
        for j in range(k):
            ax = panel(j + 1)
            ax.set_visible(True)
            ax.imshow(to_img(recons[i][j]), **gray)
            star = "*" if j == true_index[i] else ""
            ax.set_title(f"{star}{condition_names[j]}\n{float(mses[i][j]):.3f}", fontsize=9)
            if j == best:
                for side in ax.spines.values():
                    side.set_visible(True)
                    side.set_color("tab:orange")
                    side.set_linewidth(3)
    fig.suptitle(f"DDIM-inverted to t = {t_end} under the true condition (*), decoded under each condition;\n"
                 "number = MSE to the original, orange frame = lowest", fontsize=10)
    fig.tight_layout()
    return fig


def _yerr(value, lo, hi) -> np.ndarray:
    """Asymmetric error bars from an interval; rounding can put the value a hair outside it."""
    return np.clip(np.stack([np.asarray(value) - np.asarray(lo), np.asarray(hi) - np.asarray(value)]), 0, None)


def swap_examples(items: Sequence, *, per_row: int = 2):
    """Winoground-style items (``lab.scenes.SwapItem``): both images of each item with their captions; two items a
    row, so the captions stay at least 8 px on a 1280 px page (three a row shrank them to 5 px)."""
    n = len(items)
    rows = (n + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.2 * 2 * per_row, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, it in enumerate(items):
        r, c = divmod(i, per_row)
        for j in range(2):
            ax = axes[r, 2 * c + j]
            ax.imshow(it.images[j], interpolation="nearest")
            words = it.captions[j].split(" ")
            cut = len(words) // 2
            ax.set_title(f"{it.tag} swap, #{j}\n" + " ".join(words[:cut]) + "\n" + " ".join(words[cut:]), fontsize=8)
    fig.tight_layout()
    return fig


def winoground_bars(rows: list[dict], chance: dict[str, float], *, split: str | None = None,
                    names: dict[str, str] | None = None):
    """Text, image and group scores (%) per swap tag and model with 95 % intervals; dashed line = chance.
    ``names``: how tags and the split are printed (e.g. ``scene_eval.SWAP_TICKS`` and ``SPLIT_NAMES``)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if split is not None:
        df = df[df["split"] == split]
    metrics = [m for m in ("text", "image", "group") if m in set(df["metric"])]
    tags = ["all"] + sorted(t for t in df["tag"].unique() if t != "all")
    models = list(dict.fromkeys(df["model"]))
    colours = model_colours(models).values()
    # drawn at the page's width (7.6 in), so its type is printed at the size it is set
    fig, axes = plt.subplots(1, len(metrics), figsize=(7.6, 3.2), sharey=True, squeeze=False)
    width = 0.8 / len(models)
    for ax, metric in zip(axes[0], metrics):
        for m, (model, colour) in enumerate(zip(models, colours)):
            sub = df[(df["metric"] == metric) & (df["model"] == model)].set_index("tag").reindex(tags)
            xs = np.arange(len(tags)) + (m - (len(models) - 1) / 2) * width
            ax.bar(xs, sub["score"], width, color=colour, label=model)
            ax.errorbar(xs, sub["score"], yerr=_yerr(sub["score"], sub["lo"], sub["hi"]), fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
        ax.axhline(chance[metric], color="gray", ls="--", lw=1)
        name = (names or {}).get
        ax.set_xticks(range(len(tags)), [name(t, t) for t in tags], fontsize=8, rotation=30)
        ax.set_title(f"{metric} score" + (f"\n({name(split, split)})" if split else ""), fontsize=10)
        ax.set_ylim(0, 100)
    axes[0, 0].set_ylabel("% of items")
    fig.tight_layout()
    # below the panels: bars near 100 % leave no free corner inside them
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(2, len(models)), fontsize=9,
               frameon=False)
    return fig


def seed_spread(rows: list[dict], panels: Sequence[str]):
    """Scores over training seeds (rows of ``scene_eval.across_seeds`` with a ``metric`` field): per panel
    (a metric), each model's seeds as dots and their mean with its t-interval over seeds as a bar."""
    import pandas as pd

    df = pd.DataFrame(rows)
    models = list(dict.fromkeys(df["model"]))
    colours = model_colours(models).values()
    cols = min(2, len(panels))
    fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(3.7 * cols, 3.0 * -(-len(panels) // cols)),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, panels):
        for m, (model, colour) in enumerate(zip(models, colours)):
            sub = df[(df["metric"] == metric) & (df["model"] == model)]
            if sub.empty:
                continue
            r = sub.iloc[0]
            ax.errorbar([m], [r["mean"]], yerr=[[r["mean"] - r["lo"]], [r["hi"] - r["mean"]]], fmt="_", ms=18,
                        color=colour, ecolor=colour, elinewidth=1.5, capsize=4, label=model)
            seeds = list(r["per_seed"].values())
            ax.scatter(np.full(len(seeds), m) + np.linspace(-0.12, 0.12, len(seeds)), seeds, s=22, color=colour,
                       edgecolor="black", linewidth=0.4, zorder=3)
        ax.set_xticks([])
        ax.set_title(metric, fontsize=11)
        ax.set_ylim(-3, 103)
    for ax in axes[:, 0]:
        ax.set_ylabel("% (dots: seeds)")
    fig.tight_layout()
    legend = {}  # a model may be missing from some panels (no normalised zero-shot score)
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(legend.values()), list(legend), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2, fontsize=10, frameon=False)
    return fig


def zero_shot_bars(rows: list[dict]):
    """Zero-shot accuracy (%) on seen vs held-out compositions per model, with 95 % intervals."""
    import pandas as pd

    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    splits = list(dict.fromkeys(df["split"]))
    models = list(dict.fromkeys(df["model"]))
    width = 0.8 / len(models)
    for m, (model, colour) in enumerate(zip(models, model_colours(models).values())):
        sub = df[df["model"] == model].set_index("split").reindex(splits)
        xs = np.arange(len(splits)) + (m - (len(models) - 1) / 2) * width
        ax.bar(xs, sub["accuracy"], width, color=colour, label=model)
        ax.errorbar(xs, sub["accuracy"], yerr=_yerr(sub["accuracy"], sub["lo"], sub["hi"]), fmt="none",
                    ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_xticks(range(len(splits)), [s.replace("test_", "") + " pairs" for s in splits])
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)  # beside the bars, off them
    fig.tight_layout()
    return fig


def reliability_diagrams(curves: dict[str, list[dict]]):
    """One panel per posterior: accuracy against mean confidence in each bin (``calibration.reliability`` rows),
    the diagonal of perfect calibration, and each bin's number of images above its bar (few images: a noisy bar)."""
    k = len(curves)
    cols = min(k, 2)  # two panels a row: legible at the page's width
    n_rows = -(-k // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.6 * n_rows), sharey=True, squeeze=False)
    for ax in axes.flat[k:]:
        fig.delaxes(ax)
    for ax, (name, rows) in zip(axes.flat, curves.items()):
        conf = [100 * r["confidence"] for r in rows]
        acc = [100 * r["accuracy"] for r in rows]
        ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1)
        ax.bar(conf, acc, width=4, color=sns.color_palette(PALETTE)[0])
        for c, a, r in zip(conf, acc, rows):
            ax.text(c, a + 2, str(r["count"]), ha="center", fontsize=8)  # 7 pt showed at 7.8 px
        ax.set(title=name, xlabel="confidence (%)", ylabel="accuracy (%)", xlim=(0, 100), ylim=(0, 112))
    fig.tight_layout()
    return fig


def risk_coverage(curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Error rate among the answered images against the share answered, most confident first."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, (coverage, risk) in curves.items():
        ax.plot(100 * coverage, 100 * risk, label=name)
    ax.set(xlabel="coverage: images answered (%)", ylabel="error among them (%)", xlim=(0, 100))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def versus_official(results: dict):
    """Chapters 5 and 10: per dataset, accuracy with its 95 % interval (left) and wall-clock milliseconds per image
    on a log axis (right), the official algorithm beside dcanalysis (a ``versus_official`` JSON). Where the run also
    timed the official loop at one network call per stage, its time at its default batch of 32 is a third bar."""
    names = [n for n, r in results["datasets"].items() if "official" in r]
    rows = [results["datasets"][n] for n in names]
    both = all("official_default" in r for r in rows)
    timings = ([("official loop, batch 32", "official_default"), ("official loop, one call per stage", "official")]
               if both else [("official algorithm", "official")]) + [("dcanalysis", "dcanalysis")]
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(8, 3.8))
    colors = dict(zip(["official algorithm", "official loop, batch 32", "official loop, one call per stage",
                       "dcanalysis"], sns.color_palette(PALETTE, 4)))
    colors["official algorithm"] = colors["official loop, one call per stage"]
    x = np.arange(len(names))
    for j, (label, key) in enumerate([("official algorithm", "official_decisions"), ("dcanalysis", "dcanalysis")]):
        acc = np.array([100 * r[key]["accuracy"] for r in rows])
        lo, hi = (np.array([100 * r[key]["ci95"][i] for r in rows]) for i in (0, 1))
        # the official algorithm's bars take the colour of its timing at its best, and no legend entry of their own
        acc_ax.bar(x + (j - 0.5) * 0.38, acc, 0.38, yerr=_yerr(acc, lo, hi), capsize=4, color=colors[label],
                   label=label if label == "dcanalysis" or not both else None)
    width = 0.8 / len(timings)
    for j, (label, key) in enumerate(timings):
        ms = np.array([1e3 * r[key]["seconds_per_image"] for r in rows])
        bars = time_ax.bar(x + (j - (len(timings) - 1) / 2) * width, ms, width, color=colors[label], label=label)
        time_ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"
                                        for v in ms], fontsize=9, padding=2)
    for ax in (acc_ax, time_ax):
        ax.set_xticks(x, [n.replace("_", "-") for n in names], fontsize=11)
    low = min(100 * r[k]["ci95"][0] for r in rows for k in ("official_decisions", "dcanalysis"))
    acc_ax.set(ylim=(max(0, low - 5), 100), ylabel="accuracy (%)", title="Accuracy, 95 % intervals")
    time_ax.set(yscale="log", ylabel="milliseconds per image (log)", title="Wall-clock time per image")
    time_ax.set_ylim(top=time_ax.get_ylim()[1] * 4)
    handles = {l: h for ax in (time_ax, acc_ax) for h, l in zip(*ax.get_legend_handles_labels())}
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=2, fontsize=10, frameon=False)
    return fig


def forward_process(images: Sequence[torch.Tensor], ts: Sequence[int], alpha: torch.Tensor, sigma: torch.Tensor):
    """The primer: one image noised at each t of ``ts`` (top row, each (1, H, W) or (3, H, W) in [-1, 1]) above
    the process's signal and noise scales alpha_t and sigma_t (T,) (DDPM: sqrt(abar_t), sqrt(1 - abar_t)) over all
    t, the same t marked."""
    fig = plt.figure(figsize=(10, 5.2))
    grid = fig.add_gridspec(2, len(ts), height_ratios=(1, 1.25), hspace=0.25)
    for i, (im, t) in enumerate(zip(images, ts)):
        ax = fig.add_subplot(grid[0, i])
        pic = im.detach().float().clamp(-1, 1).add(1).div(2)
        ax.imshow(pic[0] if pic.shape[0] == 1 else pic.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"t = {t}", fontsize=11)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    t_all = np.arange(len(alpha))
    ax.plot(t_all, alpha, label=r"signal scale $\alpha_t$ ($\sqrt{\bar\alpha_t}$ for DDPM)")
    ax.plot(t_all, sigma, label=r"noise scale $\sigma_t$ ($\sqrt{1-\bar\alpha_t}$)")
    for t in ts:
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="timestep t", ylabel="scale", xlim=(0, len(alpha) - 1))
    ax.legend(loc="center right", fontsize=10)
    return fig


def labelled_data_curves(rows: list[dict], shifted: list[dict]):
    """Accuracy (%) against labelled training images (log x), one line per model: on the test split with 95 %
    intervals (left) and averaged over the shifted sets (right); the legend above both panels."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    colours = model_colours(models)
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.6), sharex=True)
    for model in models:
        test = sorted((r for r in rows if r["model"] == model and r["set"] == "test"), key=lambda r: r["labelled"])
        n = [r["labelled"] for r in test]
        acc = np.array([100 * r["accuracy"] for r in test])
        axes[0].errorbar(n, acc, yerr=_yerr(acc, [100 * r["ci_lo"] for r in test], [100 * r["ci_hi"] for r in test]),
                         marker="o", capsize=3, color=colours[model], label=model)
        ood = sorted((r for r in shifted if r["model"] == model), key=lambda r: r["labelled"])
        axes[1].plot([r["labelled"] for r in ood], [100 * r["accuracy"] for r in ood], marker="o",
                     color=colours[model])
    ticks = sorted({r["labelled"] for r in rows})
    for ax, title in zip(axes, ("test split", "shifted sets (mean)")):
        ax.set(xscale="log", xlabel="labelled training images", title=title)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    axes[0].set_ylabel("accuracy (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, 0.97),
               ncol=len(models), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig



def residual_histogram(residuals: np.ndarray, delta: float = 1.0):
    """Histogram (log counts) of per-element residuals, prediction - target, with Huber's +/- ``delta`` marked and a
    normal curve of the same standard deviation for comparison (chapter 13)."""
    r = np.asarray(residuals, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    edge = max(2.0 * delta, float(np.abs(r).max()))
    bins = np.linspace(-edge, edge, 121)
    counts, _, _ = ax.hist(r, bins=bins, color=sns.color_palette(PALETTE)[0], label="residuals")
    centres, width = (bins[:-1] + bins[1:]) / 2, bins[1] - bins[0]
    normal = len(r) * width * np.exp(-0.5 * (centres / r.std()) ** 2) / (r.std() * np.sqrt(2 * np.pi))
    ax.plot(centres, normal, color="k", lw=1.2, ls="--", label="normal, same std")
    for s in (-delta, delta):
        ax.axvline(s, color=sns.color_palette(PALETTE)[3], lw=1.5)
    ax.text(delta, counts.max(), f"  Huber's delta = {delta:g}", color=sns.color_palette(PALETTE)[3], va="top",
            fontsize=10)
    ax.set(yscale="log", ylim=(0.5, 3 * counts.max()), xlabel="predicted noise - true noise, per pixel", ylabel="pixels")
    ax.legend(loc="upper left", fontsize=10, frameon=False)
    fig.tight_layout()
    return fig


def sample_grid(images: np.ndarray, titles: Sequence[str], *, per_row: int = 10, title_colours=None):
    """Small grey images (N, H, W) uint8 in a grid, one short title each (two lines at most), at page width."""
    n = len(images)
    rows = int(np.ceil(n / per_row))
    fig, axes = plt.subplots(rows, per_row, figsize=(7.6, 1.05 * rows + 0.2), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=8, color=title_colours[i] if title_colours is not None else "k",
                         fontweight="normal", pad=2)
    fig.tight_layout(pad=0.2, h_pad=0.6, w_pad=0.2)
    return fig


def toy_sweeps(sweeps: dict[str, list[dict]], measure: str = "worst_group"):
    """One panel per swept config field ({field: rows of ``gaussian_shortcuts.sweep``}): ``measure`` (%) of each
    classifier against the field's values (evenly placed), the mean over seeds with their range as a band."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(7.6, 3.5), sharey=True, squeeze=False)
    names = list(dict.fromkeys(r["classifier"] for rows in sweeps.values() for r in rows))
    colours = model_colours(names)
    for ax, (field, rows) in zip(axes[0], sweeps.items()):
        values = sorted({r[field] for r in rows})
        for name in names:
            per = [[100 * r[measure] for r in rows if r["classifier"] == name and r[field] == v] for v in values]
            ax.plot(range(len(values)), [np.mean(p) for p in per], marker="o", color=colours[name], label=name)
            ax.fill_between(range(len(values)), [min(p) for p in per], [max(p) for p in per], color=colours[name],
                            alpha=0.15, linewidth=0)
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set(xlabel=field.replace("_", " "), ylim=(0, 100))
    axes[0][0].set_ylabel(f"{measure.replace('_', '-')} accuracy (%)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, 0.97),
               ncol=len(names), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
