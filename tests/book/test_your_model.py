"""The reader's path: the book run on their own model and images (tiny random pipelines built here; no accuracy
is claimed), chapter by chapter with papermill."""
import json

import nbformat
import pytest
from PIL import Image

import tiny_models as T
from dcanalysis.book import build

CLASSES = ["airplane", "automobile", "bird"]


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (16, 16), (80 * k, 40 * j, 200 - 60 * k)).save(root / name / f"{j}.png")
    return root


def model_folder(kind, tmp_path):
    if kind == "sd":
        return T.save_sd_folder(T.tiny_sd_components(tmp_path), tmp_path / "model")
    if kind == "dit":
        from diffusers import DiTPipeline
        comps = T.tiny_dit_components()
        DiTPipeline(**comps).save_pretrained(tmp_path / "model")
        return tmp_path / "model"
    pipe = T.tiny_sd3_pipeline(tmp_path)
    pipe.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize("kind", ["sd", "dit", "flow"])
def test_the_book_runs_on_a_readers_model_and_images(kind, tmp_path, image_folder):
    folder = model_folder(kind, tmp_path)
    out = tmp_path / "executed"
    build.main(["--model", str(folder), "--dataset", "cifar10", "--images", str(image_folder), "--device", "cpu",
                "--n-images", "6", "--trials", "4", "--chapters", "02", "03", "05", "--no-html", "--out", str(out)])
    for chapter in ("02_paired_differences", "03_which_timesteps", "05_adaptive"):
        nb = nbformat.read(out / f"{chapter}.ipynb", 4)
        outputs = [o for c in nb.cells for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], chapter
        record = json.loads((out / f"{chapter}.run.json").read_text())
        # chapter 5 declares no model: it reads the run the book made from the reader's model
        given = record["parameters"]
        assert (given["run"] if chapter == "05_adaptive" else given["model"] == str(folder)) and record["lab_only"] is None
        assert (out / "figures" / {"02_paired_differences": "ch2_paired_errors.png", "03_which_timesteps":
                                   "ch3_single_timestep.png", "05_adaptive": "ch5_frontier.png"}[chapter]).is_file()
    text = "".join(o.get("text", "") for c in nbformat.read(out / "03_which_timesteps.ipynb", 4).cells
                   for o in c.get("outputs", []))
    assert str(folder) in text and "(6 test images)" in text  # computed from the reader's run, not the lab's


def test_lab_only_chapters_say_so_on_their_page():
    record = {"chapter": "06_zero_shot", "profile": "quick", "parameters": {}, "cpu_count": 2,
              "finished_utc": "now", "seconds": 1.0, "commit": "abc", "lab_only": build.LAB_ONLY["06_zero_shot"],
              "user_model": {"model": "/models/sd3"}}
    nb = build.with_note(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 6")]), record, False)
    assert "does not apply to model `/models/sd3`" in nb.cells[1].source and "scene lab" in nb.cells[1].source
    assert set(build.LAB_ONLY) | set(build.USER_INPUTS) | set(build.META_PAGES) == {p.stem for p in (build.BOOK / "chapters").glob("*.ipynb")}
    assert build.chapter_parameters("06_zero_shot", "quick", build.UserModel("m", "pets")) == {}
