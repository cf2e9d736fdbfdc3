import argparse

import pytest
import torch

from dcanalysis.bench import compile_choice
from dcanalysis.bench.compile_choice import CompileCost, break_even_evaluations, choose_compile


def test_break_even_is_where_compiled_plus_its_first_call_equals_eager():
    n = break_even_evaluations(eager=100.0, compiled=200.0, first_call_s=10.0)
    assert n == pytest.approx(2000.0)
    assert n / 100.0 == pytest.approx(10.0 + n / 200.0)  # the same time either way
    assert break_even_evaluations(eager=200.0, compiled=100.0, first_call_s=1.0) == float("inf")


def test_the_committed_measurements_load_and_decide_by_the_run_size():
    for name, load in compile_choice.MEASURED.items():
        cost = load()
        assert cost.network == name and cost.compiled_evals_per_s > cost.eager_evals_per_s > 0
        n_star = cost.break_even_evaluations()
        assert choose_compile(int(2 * n_star), cost, "cuda")[0] is True
        small, why = choose_compile(int(n_star / 2), cost, "cuda")
        assert small is False and f"{n_star:,.0f}" in why and cost.source in why
    cost = compile_choice.MEASURED["sd2-unet-512"]()
    assert choose_compile(10**9, cost, "cpu") == (False, "eager: compilation is measured to pay on a GPU only")
    assert "never measured" in choose_compile(10**9, None, "cuda")[1]


def test_a_network_is_recognised_by_class_parameter_count_and_sample_size():
    from diffusers import UNet2DModel

    from dcanalysis.lab.registry import diffusion_from_folder
    from dcanalysis.paths import MODELS_DIR

    adapter = diffusion_from_folder(MODELS_DIR / "fashion_mnist_unet", device="cpu", dtype=torch.float32)
    assert compile_choice.measured_cost(adapter.unet).network == "fashion_mnist_unet"
    assert compile_choice.measured_cost(UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
                                                    down_block_types=("DownBlock2D",) * 2,
                                                    up_block_types=("UpBlock2D",) * 2)) is None


def test_the_cli_default_resolves_compile_once_from_the_arguments(monkeypatch, capsys):
    from dcanalysis import cli

    fake = CompileCost("fashion_mnist_unet", 100.0, 200.0, 10.0, "x.json")  # break-even: 2,000 evaluations
    monkeypatch.setattr(compile_choice, "measured_cost", lambda network: fake)
    compiled = []
    monkeypatch.setattr(cli, "compile_adapter", lambda adapter, **options: compiled.append(adapter))
    for n_images, expect in ((1, False), (10, True)):  # 1 or 10 images x (100 trials x 10 classes)
        a = argparse.Namespace(model="fashion_mnist_unet", schedule="exhaustive_100", timesteps="even", error="l2",
                               batch_size=8, seed=0, device="cuda", fp32=True, compile=None, share_prefix=False,
                               fp8_linears=False, text_device=None, dataset="fashion_mnist",
                               cuda_graphs=False, tune_kernels=False)
        monkeypatch.setattr(cli, "load_adapter", lambda *args, **kw: type("A", (), {"unet": torch.nn.Linear(1, 1),
                                                                                     "dtype": torch.float32})())
        monkeypatch.setattr(cli, "DiffusionClassifier", lambda adapter, cfg: cfg)
        cfg = cli.build_classifier(a, n_images=n_images)
        assert a.compile is expect and cfg.static_shapes is expect and len(compiled) == int(expect)
        assert ("compiled: at most 10,000" if expect else "eager: at most 1,000") in capsys.readouterr().out


def test_first_call_and_band_rows_read_both_cache_states():
    import json

    from dcanalysis.paths import RESULTS_DIR

    cold, warm = (json.loads((RESULTS_DIR / "speed" / f"compile_and_peer_h200_compile_{k}.json").read_text())
                  for k in ("cold", "warm"))
    rows = compile_choice.first_call_rows(cold, warm)
    assert [r["inductor cache"] for r in rows].count("empty") == len(cold["models"])
    bands = compile_choice.band_rows(cold, warm)
    whole = next(b for b in bands if b["inductor cache"] == "empty" and (b["variant"], b["against"]) == ("compiled", "eager"))
    assert whole["pays above (evaluations)"] == round(compile_choice.MEASURED["sd2-unet-512"]().break_even_evaluations())
    cached = next(b for b in bands if b["inductor cache"] != "empty" and (b["variant"], b["against"]) == ("compiled", "eager"))
    assert cached["pays above (evaluations)"] < whole["pays above (evaluations)"]  # a cache makes compiling pay sooner
