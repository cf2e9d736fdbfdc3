import pytest
import torch

from dcanalysis.bench import compile_choice
from dcanalysis.bench.compile_choice import break_even_evaluations


def test_break_even_is_where_compiled_plus_its_first_call_equals_eager():
    n = break_even_evaluations(eager=100.0, compiled=200.0, first_call_s=10.0)
    assert n == pytest.approx(2000.0)
    assert n / 100.0 == pytest.approx(10.0 + n / 200.0)  # the same time either way
    assert break_even_evaluations(eager=200.0, compiled=100.0, first_call_s=1.0) == float("inf")


def test_the_compile_rule_holds_the_break_even_of_each_committed_measurement():
    from dcanalysis.engine.compile_rule import BREAK_EVEN

    by_name = {b.network: b for b in BREAK_EVEN.values()}
    assert set(by_name) == set(compile_choice.MEASURED)
    for name, load in compile_choice.MEASURED.items():
        cost = load()
        assert cost.compiled_evals_per_s > cost.eager_evals_per_s > 0
        assert by_name[name].evaluations == round(cost.break_even_evaluations())
        assert by_name[name].source.endswith(cost.source)


def test_the_rule_decides_by_device_network_and_run_size():
    from diffusers import UNet2DModel

    from dcanalysis.engine.compile_rule import choose_compile
    from dcanalysis.lab.registry import diffusion_from_folder
    from dcanalysis.paths import MODELS_DIR

    unet = diffusion_from_folder(MODELS_DIR / "fashion_mnist_unet", device="cpu", dtype=torch.float32).unet
    assert choose_compile(unet, 10**9, "cpu") == (False, "eager: compilation is measured to pay on a GPU only")
    assert choose_compile(unet, 600_000, "cuda")[0] is True
    small, why = choose_compile(unet, 500_000, "cuda")
    assert small is False and "597,654" in why and "versus_official_h200_a.json" in why
    other = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    assert "never measured" in choose_compile(other, 10**9, "cuda")[1]


def test_the_cli_default_resolves_compile_once_from_the_job(monkeypatch, caplog):
    import logging

    from dcanalysis import cli, jobs
    from dcanalysis.engine import compile_rule

    monkeypatch.setattr(compile_rule, "BREAK_EVEN", {("Linear", 2, None): compile_rule.BreakEven("lin", 2_000, "x")})
    compiled = []
    monkeypatch.setattr("dcanalysis.engine.compile.compile_adapter", lambda adapter, **options: compiled.append(adapter))
    monkeypatch.setattr(jobs, "load_adapter", lambda *args, **kw: type("A", (), {"unet": torch.nn.Linear(1, 1),
                                                                                 "dtype": torch.float32})())
    monkeypatch.setattr(jobs, "DiffusionClassifier", lambda adapter, cfg, **kw: adapter)
    for n_images, expect in ((1, False), (10, True)):  # 1 or 10 images x (100 trials x 10 classes)
        a = cli.build_parser().parse_args(["classify", "x.png", "--model", "fashion_mnist_unet", "--dataset",
                                           "fashion_mnist", "--device", "cuda", "--fp32"])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dcanalysis"):
            adapter, engine = jobs.build_classifier(cli.classify_job(a), n_images=n_images)
        assert engine.compile is expect and (adapter.static_rows is not None) is expect
        assert len(compiled) == int(expect)
        assert ("compiled: at most 10,000" if expect else "eager: at most 1,000") in caplog.text


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
