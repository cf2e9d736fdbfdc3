import shlex
import pytest
from PIL import Image

from dcanalysis.cli import main, parse_schedule


def test_classify_eval_report(tmp_path, capsys):
    from dcanalysis.evaluation.lab_datasets import load_lab_dataset

    digit = load_lab_dataset("mnist", test_only=True).test_images[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    main(["classify", str(tmp_path / "digit.png"), "--model", "mnist_unet", "--schedule", "exhaustive_100",
          "--batch-size", "500", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "prediction: 7" in out and "1000 network evaluations" in out
    main(["eval", "--model", "mnist_unet", "--dataset", "mnist", "--schedule", "5:3,10:1", "--n-images", "3",
          "--out", str(tmp_path / "run"), "--device", "cpu"])
    main(["report", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "on 3 images" in out and "class 7" in out


def test_schedule_syntax():
    assert parse_schedule("25:5,250:1").evaluations(37) == 2050
    with pytest.raises(SystemExit, match="stages like"):
        parse_schedule("25-5")


def test_missing_image_folder_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="--images is required"):
        main(["eval", "--model", "mnist_unet", "--dataset", "pets", "--out", str(tmp_path), "--device", "cpu"])


def test_compile_flag_compiles_the_network_once_and_pads_batches(tmp_path, monkeypatch, capsys):
    import torch

    from dcanalysis.evaluation.lab_datasets import load_lab_dataset

    from dcanalysis import cli

    seen, built = [], []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)  # eager stand-in
    from dcanalysis import jobs

    build = jobs.build_classifier
    monkeypatch.setattr(jobs, "build_classifier", lambda job, **kw: built.append(build(job, **kw)) or built[-1])
    Image.fromarray(load_lab_dataset("mnist", test_only=True).test_images[0]).save(tmp_path / "digit.png")
    main(["classify", str(tmp_path / "digit.png"), "--model", "mnist_unet", "--schedule", "3:2,4:1",
          "--batch-size", "7", "--device", "cpu", "--compile"])
    out = capsys.readouterr().out
    # 3 trials x 10 classes, then 1 more trial x 2 (cumulative 4): 30 + 2 evaluations in batches of 7, the last
    # batch of each stage padded, the padding's errors dropped
    clf, engine = built[0]
    assert len(seen) == 1 and seen[0]["dynamic"] is False and engine.compile and clf.adapter.static_rows == 7
    assert "prediction: 7" in out and "32 network evaluations" in out


def test_share_prefix_is_refused_for_class_conditional_models(tmp_path):
    with pytest.raises(SystemExit, match="no condition-independent prefix.*drop the flag"):
        main(["classify", str(tmp_path / "x.png"), "--model", "mnist_unet", "--device", "cpu", "--share-prefix"])


def test_share_prefix_reaches_the_stable_diffusion_adapter(tmp_path):
    import torch
    from tiny_models import save_sd_folder, tiny_sd_components

    from dcanalysis.cli import build_parser, classify_job
    from dcanalysis.jobs import build_classifier

    folder = save_sd_folder(tiny_sd_components(tmp_path), tmp_path / "pipeline")
    for flags, shared in (([], False), (["--share-prefix"], True)):
        a = build_parser().parse_args(["classify", "x.png", "--model", str(folder), "--dataset", "pets", "--device",
                                       "cpu", *flags])
        clf, engine = build_classifier(classify_job(a))
        assert (clf.adapter.prefix is not None) is shared and clf.adapter.uses_row_groups is shared
        assert engine.identity()["share_prefix"] is shared


@pytest.mark.parametrize("schedule, message", [("10:1:3", "exactly one ':'"), ("ten:1", "not two whole numbers"),
                                                ("10:2,5:1", "must increase"), ("", "exactly one ':'")])
def test_each_malformed_schedule_gets_its_reason(schedule, message):
    with pytest.raises(SystemExit, match=message):
        parse_schedule(schedule)


def test_cli_errors_are_one_line_and_name_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "mnist_unet", "--dataset", "mnist", "--out", str(tmp_path / "r"), "--rank", "3",
              "--world-size", "2", "--device", "cpu", "--schedule", "2:1", "--n-images", "2"])
    assert "--rank 3 --world-size 2" in str(e.value) and "\n" not in str(e.value) and "--debug" in str(e.value)
    with pytest.raises(SystemExit, match="unknown model 'mnist_unett'.*mnist_unet"):
        main(["classify", "x.png", "--model", "mnist_unett", "--dataset", "mnist", "--device", "cpu"])
    with pytest.raises(SystemExit, match="which classes\\? give --classes FILE"):  # before any model is loaded
        main(["classify", "x.png", "--model", "/models/sd-2", "--device", "cpu"])


def test_a_pipeline_folder_without_weights_says_so(tmp_path):
    from tiny_models import save_sd_folder, tiny_sd_components

    folder = save_sd_folder(tiny_sd_components(tmp_path), tmp_path / "pipeline")
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(SystemExit, match=r"no weights in \['unet'\].*incomplete"):
        main(["classify", "x.png", "--model", str(folder), "--device", "cpu", "--dataset", "pets"])


def test_ctrl_c_during_eval_prints_the_command_that_resumes(tmp_path, monkeypatch):
    import dcanalysis.jobs as jobs

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "run_dataset", interrupted)
    out = tmp_path / "my run's folder"
    args = ["eval", "--model", "mnist_unet", "--dataset", "mnist", "--out", str(out), "--device", "cpu"]
    with pytest.raises(SystemExit) as e:
        main(args)
    command = str(e.value).split("Resume with: ", 1)[1]
    assert command.startswith("dcanalysis eval --model mnist_unet") and shlex.split(command)[7] == str(out)


def test_model_identity_tells_weights_dtype_and_compilation_apart(tmp_path):
    import shutil

    import torch

    from dcanalysis.adapters.registry import model_identity
    from dcanalysis.paths import MODELS_DIR

    from dcanalysis.engine.config import EngineConfig

    base = model_identity("mnist_unet", dtype=torch.float32, device="cpu")
    assert base != model_identity("mnist_unet", dtype=torch.bfloat16, device="cpu")
    assert EngineConfig(compile=False).identity() != EngineConfig(compile=True).identity()
    assert base["weights"] != model_identity("fashion_mnist_unet", dtype=torch.float32, device="cpu")["weights"]
    from dcanalysis.adapters.weights import weights_fingerprint

    copy = shutil.copytree(MODELS_DIR / "mnist_unet", tmp_path / "m")
    assert weights_fingerprint(copy) == base["weights"]
    w = next(copy.glob("*.safetensors"))
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    w.write_bytes(bytes(data))
    assert weights_fingerprint(copy) != base["weights"]


def test_tables_packs_a_cli_run_with_its_timesteps(tmp_path, capsys):
    import numpy as np

    from dcanalysis.noise import plan_timesteps

    run = tmp_path / "run"
    main(["eval", "--model", "mnist_unet", "--dataset", "mnist", "--n-images", "2", "--schedule", "3:1",
          "--device", "cpu", "--out", str(run)])
    main(["tables", str(run)])
    assert "errors (2, 10, 3)" in capsys.readouterr().out
    with np.load(run / "tables.npz") as z:
        assert z["timesteps"].tolist() == plan_timesteps(3, seed=0).tolist()


def test_report_prints_calibration_with_a_temperature_from_another_run(tmp_path, capsys):
    common = ["--model", "mnist_unet", "--dataset", "mnist", "--schedule", "3:1", "--device", "cpu"]
    main(["eval", *common, "--n-images", "4", "--out", str(tmp_path / "a")])
    main(["eval", *common, "--n-images", "4", "--seed", "1", "--out", str(tmp_path / "b")])
    capsys.readouterr()
    main(["report", str(tmp_path / "a"), "--calibrate-on", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert "NLL" in out and "log K = 2.303" in out and "fitted on 4 images" in out
    with pytest.raises(SystemExit, match="names this run itself"):
        main(["report", str(tmp_path / "a"), "--calibrate-on", str(tmp_path / "a")])


def test_cuda_graphs_and_tuned_kernels_compile_with_those_options_and_enter_the_run_identity(tmp_path, monkeypatch):
    import torch

    from dcanalysis import cli
    from dcanalysis.engine.config import EngineConfig
    from dcanalysis.jobs import build_classifier

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)  # eager stand-in
    parser = cli.build_parser()
    a = parser.parse_args(["classify", "x.png", "--model", "mnist_unet", "--device", "cpu", "--cuda-graphs",
                           "--tune-kernels"])
    clf, engine = build_classifier(cli.classify_job(a))
    assert engine.compile and clf.adapter.static_rows == clf.config.batch_size
    [kw] = seen
    assert kw["options"]["triton.cudagraphs"] and kw["options"]["coordinate_descent_tuning"]
    with pytest.raises(SystemExit, match="drop --no-compile"):
        cli.main(["classify", "x.png", "--model", "mnist_unet", "--device", "cpu", "--no-compile", "--tune-kernels"])
    plain = EngineConfig(compile=True).identity()
    assert "cuda_graphs" not in plain and "tuned_kernels" not in plain  # earlier runs' manifests still match
    assert EngineConfig(cuda_graphs=True).identity() != plain
    assert EngineConfig(tune_kernels=True).identity() != plain


def test_the_resume_command_under_torchrun_is_the_launchers_own(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    from dcanalysis.cli import resume_command

    launcher = tmp_path / "bin" / "torchrun"
    launcher.parent.mkdir()
    launcher.write_text("import time\ntime.sleep(60)\n")
    argv = [sys.executable, str(launcher), "--nproc_per_node", "2", "-m", "dcanalysis", "eval", "--out", "my run"]
    proc = subprocess.Popen(argv)
    try:
        time.sleep(0.5)
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
        monkeypatch.setattr("dcanalysis.cli.os.getppid", lambda: proc.pid)
        assert shlex.split(resume_command(["eval", "--out", "my run"])) == argv
    finally:
        proc.kill()
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resume_command(["eval", "--out", "my run"]) == "dcanalysis eval --out 'my run'"


def test_the_same_images_through_a_relative_or_linked_path_are_the_same_run(tmp_path, monkeypatch):
    import numpy as np

    from dcanalysis.evaluation.runs import load_records

    for k, name in enumerate(["zero", "one"]):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(np.full((28, 28), 100 * k, np.uint8)).save(tmp_path / "data" / name / "a.png")
    (tmp_path / "classes.txt").write_text("zero\none\n")
    (tmp_path / "linked").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    common = ["eval", "--model", "mnist_unet", "--classes", "classes.txt", "--out", "run", "--schedule", "2:1",
              "--device", "cpu", "--quiet"]
    main([*common, "--images", "data"])
    before = load_records(tmp_path / "run")
    main([*common, "--images", str(tmp_path / "linked")])  # refused before: the path string was a setting
    assert load_records(tmp_path / "run") == before and len(before) == 2
    with pytest.raises(SystemExit, match="--world-size 0.*need world size >= 1"):
        main([*common, "--images", "data", "--world-size", "0"])


def test_every_flag_of_every_command_has_help_text():
    from dcanalysis.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {action.option_strings or action.dest}" for name, sub in commands.items()
               for action in sub._actions if action.help is None]
    assert missing == []
