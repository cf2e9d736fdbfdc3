"""The package as a pip user gets it: a wheel installed into a clean folder, away from the checkout."""
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, cwd=tmp, timeout=600)
    wheel = next((tmp / "dist").glob("dcanalysis-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True, timeout=600)
    return tmp


def run_installed(tmp: Path, code: str) -> str:
    """``code`` in a fresh interpreter that sees the installed wheel and the dependencies, not the checkout."""
    env = {"PYTHONPATH": f"{tmp / 'site'}:{sysconfig.get_paths()['purelib']}", "HF_HUB_OFFLINE": "1",
           "HOME": str(tmp), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_wheel_finds_its_data_outside_the_checkout(installed):
    out = run_installed(installed, """
import dcanalysis, torch
from dcanalysis import ClassifierConfig, DiffusionClassifier, PAPER_PETS, Schedule
from dcanalysis.adapters import StableDiffusionAdapter
from dcanalysis.evaluation.datasets import dataset_info
from dcanalysis.lab.registry import load_lab_diffusion
from dcanalysis.paths import DATA_DIR
print(dcanalysis.__file__)
print(DATA_DIR)
print(dataset_info("pets").prompts()[0])
adapter = load_lab_diffusion("mnist_unet")
r = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(2))).classify(torch.zeros(1, 28, 28), range(10))
print(r.n_evaluations)
""")
    lines = out.splitlines()
    assert str(ROOT) not in lines[0] and "site" in lines[0] and lines[1].endswith("_data")
    assert lines[2] == "a photo of a Abyssinian, a type of pet." and lines[3] == "20"


def test_the_cli_classifies_from_the_wheel_with_no_results_folder(installed):
    """The ``--compile`` default reads no committed result (the wheel ships none), so a lab model classifies."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(installed / "blank.png")
    out = run_installed(installed, """
import sys
from dcanalysis.paths import RESULTS_DIR
print(RESULTS_DIR.exists())
from dcanalysis.cli import main
main(["classify", "blank.png", "--model", "fashion_mnist_unet", "--dataset", "fashion_mnist", "--schedule", "2:1",
      "--device", "cpu", "--top", "1"])
""")
    lines = out.splitlines()
    assert lines[0] == "False" and lines[1].startswith("prediction: ") and "20 network evaluations" in lines[1]


def test_the_wheel_pins_what_requirements_pin_and_carries_its_license():
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.M))
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for name in ("diffusers", "transformers", "accelerate", "seaborn", "papermill", "jupyter-book", "ipywidgets"):
        assert f"{name}=={pins[name]}" in deps, name
    torch_spec = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert f"<={pins['torch']}" in torch_spec  # a range that admits the pinned build
    assert "matplotlib" not in " ".join(project["dependencies"])  # plotting is an extra
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_cli_tells_its_version(capsys):
    import dcanalysis
    from dcanalysis.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"dcanalysis {dcanalysis.__version__}"
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == dcanalysis.__version__


def test_a_researchers_first_hour_from_the_wheel(installed):
    """Install, --version, classify with a prompts file on a tiny saved SD pipeline, eval on a folder of images,
    grow the run, report --json: all from the installed wheel in a clean folder, no lab dataset involved."""
    import json

    import numpy as np
    from PIL import Image

    from tiny_models import save_sd_folder, tiny_sd_components

    pipeline = save_sd_folder(tiny_sd_components(installed), installed / "my-sd")
    (installed / "prompts.txt").write_text("a photo of a cat\na photo of a dog\n")
    for k, name in enumerate(["cat", "dog"]):
        (installed / "images" / name).mkdir(parents=True, exist_ok=True)
        for j in range(3):
            Image.fromarray(np.full((16, 16, 3), 40 * k + 10 * j, np.uint8)).save(installed / "images" / name / f"{j}.png")
    (installed / "classes.txt").write_text("cat\ndog\n")
    common = ["--model", str(pipeline), "--schedule", "2:1", "--device", "cpu", "--quiet"]
    out = run_installed(installed, f"""
import subprocess, sys
from dcanalysis.cli import main
for argv in (["--version"],
             ["classify", "images/cat/0.png", "--prompts", "prompts.txt", *{common!r}],
             ["eval", "--images", "images", "--classes", "classes.txt", "--out", "run", "--n-images", "2", *{common!r}],
             ["eval", "--images", "images", "--classes", "classes.txt", "--out", "run", *{common!r}],
             ["report", "run", "--json"]):
    try:
        main(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    print("=== done", argv[0])
""")
    parts = out.split("=== done")
    assert parts[0].strip().startswith("dcanalysis ")
    assert "prediction: a photo of a" in parts[1]
    report = json.loads(parts[4].split("\n", 1)[1])
    assert report["n_items"] == report["done"] == 6 and report["to_go"] == 0
    assert report["class_names"] == ["cat", "dog"] and set(report["per_class_accuracy"]) == {"cat", "dog"}
    records = [json.loads(ln) for ln in (installed / "run" / "records-rank0.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == list(range(6))  # the pilot's 2 images were not recomputed
