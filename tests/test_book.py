"""Smoke run of every chapter in the quick profile, as `make book` runs them (CI executes the book this way)."""
import nbformat
import pytest

from dcanalysis import book

CHAPTERS = sorted(p.stem for p in (book.BOOK / "chapters").glob("*.ipynb"))


def test_every_chapter_has_a_parameters_cell():
    for name in CHAPTERS:
        nb = nbformat.read(book.BOOK / "chapters" / f"{name}.ipynb", 4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert "profile" in tagged[0].source and "seed" in tagged[0].source


def test_unknown_profile():
    with pytest.raises(ValueError, match="quick"):
        book.chapter_parameters("01_generative_classification", "fast")


def test_all_chapters_execute_in_the_quick_profile(tmp_path, monkeypatch):
    import papermill as pm

    for name in CHAPTERS:
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(str(book.BOOK / "chapters" / f"{name}.ipynb"), str(out), cwd=str(tmp_path),
                            progress_bar=False, kernel_name="python3")
        nb = nbformat.read(out, 4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 7
