import matplotlib

matplotlib.use("Agg")  # tests only; never exported for notebooks (figures would vanish from the book)

import numpy as np  # noqa: E402

from dcanalysis import plotting  # noqa: E402


def test_figures_are_saved_as_png_and_svg(tmp_path):
    plotting.set_style()
    fig = plotting.scaling_curves([1, 10], {"even": np.array([0.5, 0.9])}, {"even": (np.array([0.4, 0.8]), np.array([0.6, 1.0]))})
    png = plotting.save_figure(fig, "curves", tmp_path)
    assert png.stat().st_size > 1000 and (tmp_path / "curves.svg").is_file()


def test_effective_robustness_fits_only_discriminative_models():
    rows = [{"model": m, "set": s, "accuracy": a} for m, s, a in [
        ("Diffusion Classifier", "test", 0.9), ("Diffusion Classifier", "blur", 0.7),
        ("CNN", "test", 0.8), ("CNN", "blur", 0.4), ("ResNet", "test", 0.95), ("ResNet", "blur", 0.5)]]
    fig = plotting.effective_robustness(rows, ["blur"])
    ax = fig.axes[0]
    assert any(line.get_label().startswith("fit") for line in ax.lines)
