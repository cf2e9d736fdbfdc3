"""Smoke run of every chapter in the quick profile, as `make book` runs them (CI executes the book this way)."""
import nbformat
import pytest

from dcanalysis.book import build as book, plotting

CHAPTERS = sorted(p.stem for p in (book.BOOK / "chapters").glob("*.ipynb"))


def test_every_chapter_has_a_parameters_cell():
    for name in CHAPTERS:
        nb = nbformat.read(book.BOOK / "chapters" / f"{name}.ipynb", 4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert "profile" in tagged[0].source
        # a chapter that draws noise takes a seed; those that only replay committed tables and read committed
        # results and run records declare none (a seed that reached nothing would mislead: the test below)
        no_noise = ("03_which_timesteps", "05_adaptive", "09_robustness", "10_speed", "course_path")
        assert ("seed" in tagged[0].source) is (name not in no_noise), name


def test_every_core_chapter_asks_the_reader_to_predict_then_check():
    from dcanalysis.book.course import PARTS

    core = [n for n in CHAPTERS if n.split("_")[0] in PARTS["core: the method"]]
    assert len(core) == 6
    for name in core:
        nb = nbformat.read(book.BOOK / "chapters" / f"{name}.ipynb", 4)
        assert any("Predict, then check" in c.source for c in nb.cells if c.cell_type == "markdown"), name


def test_every_chapter_has_solutions_each_with_its_expected_answer():
    for name in [n for n in CHAPTERS if n not in book.META_PAGES]:
        nb = nbformat.read(book.BOOK / "chapters" / f"{name}.ipynb", 4)
        solutions = [c.source.split()[2] for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Solution")]
        answers = [c.source for c in nb.cells if c.cell_type == "markdown" and "the expected answer" in c.source]
        assert solutions and [a.split()[2].rstrip(":") for a in answers] == solutions, name


def test_unknown_profile():
    with pytest.raises(ValueError, match="quick"):
        book.chapter_parameters("01_generative_classification", "fast")


def test_all_chapters_execute_in_the_quick_profile(tmp_path, monkeypatch):
    import papermill as pm

    for name in CHAPTERS:
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(str(book.BOOK / "chapters" / f"{name}.ipynb"), str(out), cwd=str(tmp_path),
                            progress_bar=False, kernel_name="python3", execution_timeout=600)
        nb = nbformat.read(out, 4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert len(figures) >= 7
    # every figure legible at page width: its smallest label at 8 px or more (plotting.save_figure records it)
    from PIL import Image

    small = {f.name: Image.open(f).text["smallest text px"] for f in figures
             if float(Image.open(f).text["smallest text px"]) < plotting.SMALLEST_LEGIBLE_PX}
    assert not small, small


def _notebook(markdown: str, code: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown),
                nbformat.v4.new_code_cell(code[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in code[1:]]
    nb.cells.append(nbformat.v4.new_markdown_cell("closing words"))
    return nb


def _executed(nb, params="n = 5"):
    """What papermill leaves: an injected-parameters cell after the parameters cell, outputs on code cells."""
    ran = nbformat.from_dict(nb.copy())
    ran.cells = [c.copy() for c in nb.cells]
    for c in ran.cells:
        if c.cell_type == "code":
            c.outputs = [nbformat.v4.new_output("stream", text=f"ran: {c.source}")]
    ran.cells.insert(2, nbformat.v4.new_code_cell(params, metadata={"tags": ["injected-parameters"]}))
    return ran


def test_code_digest_ignores_markdown_and_injected_parameters():
    nb = _notebook("# Title", ["n = 1", "print(n)"])
    assert book.code_digest(nb) == book.code_digest(_executed(nb))
    edited = _notebook("# Another title", ["n = 1", "print(n)"])
    assert book.code_digest(edited) == book.code_digest(nb)
    assert book.code_digest(_notebook("# Title", ["n = 1", "print(n + 1)"])) != book.code_digest(nb)


def test_with_current_text_keeps_outputs_under_new_markdown():
    old = _notebook("# Old title", ["n = 1", "print(n)"])
    ran = _executed(old)
    new = _notebook("# New title", ["n = 1", "print(n)"])
    merged = book.with_current_text(new, ran)
    assert merged.cells[0].source == "# New title"
    assert [c.cell_type for c in merged.cells] == ["markdown", "code", "code", "code", "markdown"]
    assert "injected-parameters" in merged.cells[2].metadata["tags"] and merged.cells[2].source == "n = 5"
    assert merged.cells[3].outputs[0]["text"] == "ran: print(n)"
    assert not new.cells[2].get("outputs")  # the source notebook is not modified
    assert book.with_current_text(_notebook("# New", ["n = 1", "print(2 * n)"]), ran) is None


def _record(chapter, profile="full", gpu="NVIDIA H100 80GB HBM3"):
    return {"chapter": chapter, "profile": profile, "parameters": book.chapter_parameters(chapter, profile),
            "gpu": gpu, "cpu_count": 16,
            "finished_utc": "2026-11-23T12:00:00Z", "seconds": 42.0, "commit": "0123456789abcdef"}


def test_choose_page_prefers_a_current_committed_gpu_run(tmp_path):
    source, executed, committed = tmp_path / "src", tmp_path / "quick", tmp_path / "full"
    for d in (source, executed, committed):
        d.mkdir()
    nb = _notebook("# Chapter", ["n = 1", "print(n)"])
    nbformat.write(nb, source / "01_x.ipynb")
    nbformat.write(_executed(nb, "n = 1"), executed / "01_x.ipynb")
    (executed / "01_x.run.json").write_text(book.json.dumps(_record("01_x", "quick", None)))

    page, record, is_committed = book.choose_page(source / "01_x.ipynb", executed, committed)
    assert not is_committed and record["profile"] == "quick"  # nothing committed yet

    nbformat.write(_executed(nb, "n = 1000"), committed / "01_x.ipynb")
    (committed / "01_x.run.json").write_text(book.json.dumps(_record("01_x")))
    page, record, is_committed = book.choose_page(source / "01_x.ipynb", executed, committed)
    assert is_committed and page.cells[2].source == "n = 1000"
    note = book.with_note(page, record, is_committed).cells[1].source
    assert "**full** profile" in note and "H100" in note and "0123456789" in note and "make book" in note

    stale = dict(_record("01_x"), parameters={"n_images": 5})  # the full profile's parameters changed since
    (committed / "01_x.run.json").write_text(book.json.dumps(stale))
    assert not book.choose_page(source / "01_x.ipynb", executed, committed)[2]
    (committed / "01_x.run.json").write_text(book.json.dumps(_record("01_x")))

    nbformat.write(_notebook("# Chapter", ["n = 1", "print(n * 2)"]), source / "01_x.ipynb")  # code changed
    page, record, is_committed = book.choose_page(source / "01_x.ipynb", executed, committed)
    assert not is_committed and record["profile"] == "quick"


def test_committed_gpu_pages_match_their_chapters():
    """Every committed full-profile page has a run record from a GPU (or, for the chapters that run no network in
    their full profile, ``FULL_ON_CPU``, from any machine) and belongs to the chapter's current code (otherwise
    the book silently falls back to the quick profile for it)."""
    for nb_path in sorted(book.GPU_PAGES.glob("*.ipynb")):
        record = book.json.loads((book.GPU_PAGES / f"{nb_path.stem}.run.json").read_text())
        assert record["profile"] == "full" and (record["gpu"] or nb_path.stem in book.FULL_ON_CPU), nb_path.stem
        assert record["parameters"] == book.chapter_parameters(nb_path.stem, "full"), nb_path.stem
        source = nbformat.read(book.BOOK / "chapters" / nb_path.name, 4)
        assert book.code_digest(nbformat.read(nb_path, 4)) == book.code_digest(source), (
            f"{nb_path.stem}: its code changed since the committed GPU run. Rerun it on a GPU "
            f"(data/jobs/book_full.sh) or delete book/executed/full/{nb_path.stem}.* so the book shows the quick "
            "profile for it knowingly.")
        errors = [o for c in nbformat.read(nb_path, 4).cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, nb_path.stem


def test_readers_see_collapsed_code_one_parameters_cell_and_solutions_hidden():
    nb = _executed(_notebook("# Chapter", ["n = 1", "print(n)", "print('solution')"]))
    nb.cells[-2].metadata["tags"] = ["hide-cell"]  # an exercise's solution
    folded = book.fold_code(nb)
    tags = [c.metadata.get("tags", []) for c in folded.cells if c.cell_type == "code"]
    assert tags[0] == ["parameters"]
    assert "remove-cell" in tags[1] and "injected-parameters" in tags[1]
    assert tags[2] == ["hide-input"] and tags[3] == ["hide-cell"]
    assert [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"][2] == []  # the input is untouched


def test_the_visible_parameters_cell_shows_the_values_that_ran():
    nb = _notebook("# Chapter", ['profile = "quick"   # or "full"\nn = 1\nseed = 0', "print(n)"])
    ran = _executed(nb, params='profile = "full"\nn = 5\nseed = 0\nunused = 2')
    shown = [c.source for c in book.fold_code(ran).cells if "parameters" in c.metadata.get("tags", [])][0]
    assert shown.splitlines() == ['profile = "full"   # this run (default "quick"); or "full"',
                                  "n = 5   # this run (default 1)", "seed = 0"]
    assert book.fold_code(_executed(nb, params="")).cells[1].source == nb.cells[1].source  # nothing injected


def test_every_declared_parameter_reaches_the_chapters_code():
    """A parameter that no other cell reads would let a reader change it and see nothing change."""
    import ast

    for name in CHAPTERS:
        nb = nbformat.read(book.BOOK / "chapters" / f"{name}.ipynb", 4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])][0]
        declared = {n.targets[0].id for n in ast.parse(params.source).body if isinstance(n, ast.Assign)}
        used = set()
        for c in nb.cells:
            if c.cell_type == "code" and c is not params:
                used |= {n.id for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.Name)}
        assert declared - {"profile"} <= used, (name, sorted(declared - {"profile"} - used))


def test_the_staged_config_keeps_the_stylesheet_and_serves_vendored_mathjax():
    config = (book.BOOK / "_config.yml").read_text()
    assert "html_css_files: [dcanalysis.css]" in config and (book.BOOK / "_static" / "dcanalysis.css").is_file()
    assert book.staged_config(config, vendored=False) == config
    staged = book.staged_config(config, vendored=True)
    assert "html_static_path: [_static, _vendor]" in staged and "mathjax_path: mathjax/es5/tex-chtml.js" in staged
    with pytest.raises(ValueError, match="html_static_path"):
        book.staged_config(config.replace("    html_static_path: [_static]\n", ""), vendored=True)


def test_fold_code_drops_only_the_missing_widgets_notice():
    notice = ("/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.\n"
              "  from .autonotebook import tqdm as notebook_tqdm\n")
    other = "/x/y.py:3: UserWarning: something the reader should see\n"
    cell = nbformat.v4.new_code_cell("import dcanalysis")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=notice),
                    nbformat.v4.new_output("stream", name="stderr", text=notice + other),
                    nbformat.v4.new_output("stream", name="stdout", text="result\n")]
    folded = book.fold_code(nbformat.v4.new_notebook(cells=[cell])).cells[0]
    assert [o.text for o in folded.outputs] == [notice + other, "result\n"]


def test_make_book_passes_every_option_the_book_command_takes():
    import re

    options = set(re.findall(r'add_argument\("(--[\w-]+)"', (book.ROOT / "dcanalysis/book/build.py").read_text()))
    recipe = (book.ROOT / "Makefile").read_text().split("\nbook:")[1].split("\n\n")[0]
    assert options and not [o for o in options if o not in recipe]


def test_a_book_on_a_readers_model_reuses_the_labs_page_of_a_chapter_that_cannot_take_it(tmp_path, monkeypatch):
    import json

    import papermill

    chapters = tmp_path / "book" / "chapters"
    chapters.mkdir(parents=True)
    nb = _notebook("# 10. Speed", ['profile = "quick"', "print(1)"])
    nbformat.write(nb, chapters / "10_speed.ipynb")
    monkeypatch.setattr(book, "BOOK", tmp_path / "book")
    ran = []

    def fake_execute(src, target, parameters, **kw):  # papermill without a kernel: copy and record the call
        ran.append(parameters)
        nbformat.write(_executed(nbformat.read(src, 4), params=""), target)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    book.execute_chapters("quick")  # make book: the lab's own execution
    assert len(ran) == 1
    user = book.UserModel(model="my-model", dataset="pets")
    out = book.execute_chapters("quick", user=user, out=tmp_path / "mine")
    assert len(ran) == 1  # reused, not executed again
    record = json.loads((out / "10_speed.run.json").read_text())
    assert record["lab_only"] == book.LAB_ONLY["10_speed"] and record["user_model"]["model"] == "my-model"
    assert nbformat.read(out / "10_speed.ipynb", 4).cells[-2].outputs == \
        nbformat.read(tmp_path / "book" / "_build" / "executed" / "quick" / "10_speed.ipynb", 4).cells[-2].outputs
    # the lab's page no longer current (the chapter changed): executed with the lab's parameters instead
    nb.cells[2].source = "print(2)"
    nbformat.write(nb, chapters / "10_speed.ipynb")
    book.execute_chapters("quick", user=user, out=tmp_path / "mine")
    assert len(ran) == 2 and ran[-1] == book.chapter_parameters("10_speed", "quick")


def test_the_note_lists_only_the_parameters_the_page_declares():
    """The full profile passes n_images and device to every chapter; on a page that declares neither they reached
    nothing, and a note saying device='cuda' above a page run on a CPU would mislead."""
    nb = _notebook("# Chapter", ['profile = "quick"\ntoy_seeds = 2', "print(toy_seeds)"])
    record = dict(_record("16_x", gpu=None), parameters={"profile": "full", "n_images": 1000, "device": "cuda",
                                                          "toy_seeds": 10})
    note = book.with_note(nb, record, True).cells[1].source
    assert "toy_seeds=10" in note and "profile='full'" in note
    assert "device" not in note and "n_images" not in note and "2 CPU cores" not in note and "16 CPU cores" in note


def test_a_chapter_is_given_only_the_parameters_it_declares():
    # the full profile's n_images and device reach nothing in chapter 10, which declares neither; papermill would
    # inject them and the run record would list them as if they had been used
    assert book.chapter_parameters("10_speed", "full") == {"profile": "full"}
    assert book.chapter_parameters("03_which_timesteps", "full")["n_images"] == 1000
    for name in CHAPTERS:
        assert set(book.chapter_parameters(name, "full")) <= book.declared_parameters(name), name
