import matplotlib

matplotlib.use("Agg")  # tests only; never exported for notebooks (figures would vanish from the book)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dcanalysis.book import plotting  # noqa: E402


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


def test_scene_figures_draw_every_model_and_tag():
    import torch

    from dcanalysis.lab import scenes
    from dcanalysis.evaluation.winoground import CHANCE, score_table

    s = np.random.default_rng(0).normal(size=(12, 2, 2))
    tags = [scenes.SWAPS[i % 3] for i in range(12)]
    rows = [{"split": "test_seen", **r} for m in ("A", "B") for r in score_table(s, tags, m)]
    fig = plotting.winoground_bars(rows, CHANCE, split="test_seen")
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 2 * 4  # 2 models x (all + 3 tags)
    fig = plotting.zero_shot_bars([{"split": sp, "model": m, "accuracy": 50.0, "lo": 40.0, "hi": 60.0, "n": 10}
                                   for sp in ("test_seen", "test_unseen") for m in ("A", "B")])
    assert len(fig.axes[0].patches) == 4
    fig = plotting.swap_examples(scenes.swap_items(3, seed=0))
    assert sum(bool(ax.images) for ax in fig.axes) == 6
    recon = [torch.zeros(3, 1, 8, 8)]
    fig = plotting.inversion_grid([torch.zeros(1, 8, 8)], recon, [torch.tensor([0.3, 0.1, 0.2])], ["a", "b", "c"], [0],
                                  t_end=500)
    assert len(fig.axes) == 4


def test_training_curve_draws_the_run_and_the_reference_apart():
    rows = [{"model": f"run_{s}", "steps": s, "accuracy": a, "ci95": [a - 0.05, a + 0.03]}
            for s, a in [(125, 0.6), (1000, 0.9)]]
    rows.append({"model": "shipped", "steps": 3000, "accuracy": 0.91, "ci95": [0.88, 0.93]})
    fig = plotting.training_curve(rows, reference="shipped")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["snapshots of one training run",
                                                                   "shipped (3,000 steps)"]
    # the ticks are the snapshots' steps; the reference's step, close to the last one, is in its label instead
    assert [t.get_text() for t in ax.get_xticklabels()] == ["125", "1,000"]


def test_seed_spread_shows_every_seed_of_every_model():
    rows = [{"model": m, "metric": k, "mean": 50.0, "lo": 40.0, "hi": 60.0, "per_seed": {0: 45.0, 1: 50.0, 2: 55.0}}
            for m in ("A", "B") for k in ("zero-shot", "image")]
    fig = plotting.seed_spread(rows, ["zero-shot", "image"])
    assert len(fig.axes) == 2
    offsets = fig.axes[0].collections  # one scatter of 3 seeds per model (errorbar lines are LineCollections)
    assert sum(len(c.get_offsets()) for c in offsets if c.get_offsets().shape[0] == 3) == 6
    rows.append({"model": "C", "metric": "image", "mean": 9.0, "lo": 8.0, "hi": 10.0, "per_seed": {0: 9.0}})
    fig = plotting.seed_spread(rows, ["zero-shot", "image"])  # C only in the second panel: still in the legend
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["A", "B", "C"]


def test_kernel_time_and_clock_trace_draw_every_variant_and_window():
    import pandas as pd

    groups = lambda a, m, o: [{"group": "attention", "seconds_per_call": a, "ratio_to_matmul": 0.5},  # noqa: E731
                              {"group": "matrix", "seconds_per_call": m, "ratio_to_matmul": 0.9},
                              {"group": "other", "seconds_per_call": o, "ratio_to_matmul": None}]
    rows = [{"variant": "eager", "batch": 2, "groups": groups(0.001, 0.002, 0.004)},
            {"variant": "compiled", "batch": 2, "groups": groups(0.001, 0.003, 0.0005)},
            {"variant": "compiled+graphs", "batch": 2}]  # not profiled: left out
    fig = plotting.kernel_time(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["eager", "compiled"]
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == sorted([0.5, 1.0, 2.0, 0.5, 1.5, 0.25])  # ms per evaluation
    log = pd.DataFrame({"time": [0.0, 1.0, 2.0, 3.0], "sm_mhz": [1980, 1500, 1400, 1980], "power_w": [100, 700, 700, 100]})
    fig = plotting.clock_trace(log, [{"model": "m", "variant": "v", "timed_from": 1.0, "timed_to": 2.0}],
                               {"burst": [0.0, 0.01], "sustained": [0.5, 2.5]})
    # the millisecond burst has no panel; panels wrap three to a row, the unused ones hidden
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["matmul, sustained", "m, v"]


def test_calibration_figures_draw_each_posterior():
    import numpy as np

    from dcanalysis.book import plotting
    from dcanalysis.evaluation import calibration as C

    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    y = np.array([0, 1, 1])
    fig = plotting.reliability_diagrams({"a": C.reliability(p, y, n_bins=5), "b": C.reliability(p, y, n_bins=2)})
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == len(C.reliability(p, y, n_bins=5))
    fig = plotting.risk_coverage({"a": C.risk_coverage(p, y)})
    assert fig.axes[0].lines[0].get_ydata().tolist() == (100 * C.risk_coverage(p, y)[1]).tolist()


def test_the_new_figures_draw_what_they_are_given():
    import json

    import torch

    from dcanalysis.paths import RESULTS_DIR

    versus = json.loads((RESULTS_DIR / "speed" / "versus_official_h200_b.json").read_text())
    fig = plotting.versus_official(versus)
    acc_ax, time_ax = fig.axes
    assert len(acc_ax.patches) == 4 and time_ax.get_yscale() == "log"  # two datasets x two implementations
    assert fig.get_size_inches()[0] <= 8  # legible at the page's width
    rows = [{"model": m, "set": s, "accuracy": 0.5, "ci_lo": 0.4, "ci_hi": 0.6}
            for m in ("Diffusion Classifier", "CNN") for s in ("test", "gaussian_blur_s3")]
    ax = plotting.accuracy_bars(rows, ["test", "gaussian_blur_s3"]).axes[0]
    assert [round(p.get_height()) for p in ax.patches] == [50] * 4 and ax.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["test", "gaussian\nblur\n(severity 3)"]
    t = torch.arange(10)
    fig = plotting.forward_process([torch.zeros(1, 4, 4)] * 3, [0, 5, 9], 1 - t / 10, t / 10)
    assert [a.get_title() for a in fig.axes[:3]] == ["t = 0", "t = 5", "t = 9"] and len(fig.axes) == 4


def test_labelled_data_curves_draw_every_model_on_both_panels():
    import json

    from dcanalysis.lab.labelled_data import result_rows, shifted_mean
    from dcanalysis.paths import RESULTS_DIR

    result = json.loads((RESULTS_DIR / "labelled_data" / "labelled_data_h200.json").read_text())
    rows = result_rows(result, "mnist")
    shifted = shifted_mean(rows)
    assert {r["labelled"] for r in rows} == {600, 6000, 60000} and all(r["sets"] == 7 for r in shifted)
    fig = plotting.labelled_data_curves(rows, shifted)
    test_ax, shift_ax = fig.axes
    assert len(test_ax.lines) >= 4 and len(shift_ax.lines) == 4 and test_ax.get_xscale() == "log"
    assert [t.get_text() for t in test_ax.get_xticklabels()] == ["600", "6,000", "60,000"]
    assert fig.get_size_inches()[0] <= 8


def test_a_figure_saved_twice_is_the_same_file(tmp_path):
    import matplotlib.pyplot as plt

    from dcanalysis.book import plotting

    paths = []
    for run in ("a", "b"):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        ax.set_clip_on(True)
        plotting.save_figure(fig, "same", tmp_path / run)
        plt.close(fig)
        paths.append(tmp_path / run / "same")
    for suffix in (".svg", ".png"):
        assert paths[0].with_suffix(suffix).read_bytes() == paths[1].with_suffix(suffix).read_bytes()


def test_each_lab_model_keeps_its_colour_in_every_figure():
    from dcanalysis.book.plotting import model_colours

    alone = model_colours(["ViT", "Diffusion Classifier"])
    full = model_colours(["Diffusion Classifier", "CNN", "ResNet", "ViT", "CLIP-style"])
    assert alone["ViT"] == full["ViT"] and alone["Diffusion Classifier"] == full["Diffusion Classifier"]
    assert len(set(full.values())) == 5  # the extra series takes a colour none of the four has
    assert len(set(model_colours(["L2", "L1", "Huber"]).values())) == 3


def test_the_toy_sweeps_figure_has_one_panel_per_field_and_one_line_per_classifier():
    from dcanalysis.book import plotting
    rows = [{"classifier": c, "strength": s, "worst_group": w, "seed": k}
            for c, w in (("a", 0.5), ("b", 0.9)) for s in (0.9, 0.99) for k in (0, 1)]
    fig = plotting.toy_sweeps({"strength": rows, "also": [{**r, "also": r["strength"]} for r in rows]})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    assert list(fig.axes[0].lines[1].get_ydata()) == [90.0, 90.0]
    plotting.plt.close(fig)


def test_a_figure_records_how_large_its_smallest_text_shows_and_warns_when_a_page_would_shrink_it_illegibly(tmp_path):
    import warnings

    import matplotlib.pyplot as plt
    from PIL import Image

    plotting.set_style()
    narrow, ax = plt.subplots(figsize=(5, 3))
    ax.set_title("a title", fontsize=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = plotting.save_figure(narrow, "narrow", tmp_path)
    # narrower than the page: shown at its own size, 9 pt at 110 dpi
    assert float(Image.open(png).text["smallest text px"]) == pytest.approx(9 * 110 / 72, abs=0.1)
    wide, ax = plt.subplots(figsize=(14, 3))
    ax.set_title("a title", fontsize=7)
    with pytest.warns(UserWarning, match="figure 'wide': its smallest text shows at"):
        png = plotting.save_figure(wide, "wide", tmp_path)
    # shown scaled to the page's width: the recorded size is the scaled one
    shown = 7 * 110 / 72 * plotting.PAGE_WIDTH_PX / Image.open(png).size[0]
    assert float(Image.open(png).text["smallest text px"]) == pytest.approx(shown, abs=0.15)
