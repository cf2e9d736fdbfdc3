"""The course path page: the chapters in reading order, with what each takes to read and to run.

Reading time is counted from each chapter's prose (its markdown cells) at ``WORDS_PER_MINUTE``; running time is
what the chapter took when it was last executed: here (the ``<chapter>.run.json`` records of the book run that
executes this page, quick profile by default) and on the GPU machine that made the committed full pages.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

WORDS_PER_MINUTE = 200  # a careful reader of technical prose with formulas; a choice, stated on the page

# the three parts of a course on the book, in order: the method, what it does on harder tasks, how far it goes
PARTS = {
    "core: the method": ("00", "01", "02", "03", "04", "05"),
    "applications: text, inversion, composition, shifts": ("06", "07", "08", "08b", "09"),
    "extensions: speed, calibration, labelled data, error functions, own images, attacks, shortcuts":
        ("10", "11", "12", "13", "14", "15", "16"),
}


def part_of(stem: str) -> str | None:
    """The part a chapter (file stem such as ``05_adaptive``) belongs to, or None for pages outside the path."""
    number = stem.split("_", 1)[0]
    return next((part for part, numbers in PARTS.items() if number in numbers), None)


def prose_words(nb) -> int:
    """Words of a notebook's markdown cells, admonitions (goals, takeaways) included, math left out."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
    return len(re.findall(r"[A-Za-z][A-Za-z'-]*", text))


def title_of(nb) -> str:
    """The chapter's first heading, without its number."""
    for c in nb.cells:
        if c.cell_type == "markdown":
            m = re.search(r"^#\s+(.*)$", c.source, flags=re.M)
            if m:
                return re.sub(r"^\d+[a-z]?\.\s*", "", m.group(1)).strip()
    return ""


def _seconds(record_path: Path) -> tuple[float | None, str]:
    if not record_path.is_file():
        return None, ""
    r = json.loads(record_path.read_text())
    where = r.get("gpu") or f"{r.get('cpu_count', '?')} CPU cores"
    return float(r["seconds"]), where


def course_rows(chapters: Path, executed: Path, committed: Path) -> list[dict]:
    """One row per chapter on the path, in order: part, chapter, title, minutes to read, seconds it ran here
    (``executed``: this book run's records) and on the machine of the committed full pages (``committed``)."""
    rows = []
    for source in sorted(chapters.glob("*.ipynb")):
        part = part_of(source.stem)
        if part is None:
            continue
        nb = nbformat.read(source, 4)
        here, here_on = _seconds(executed / f"{source.stem}.run.json")
        full, full_on = _seconds(committed / f"{source.stem}.run.json")
        rows.append({"part": part, "chapter": source.stem.split("_", 1)[0], "title": title_of(nb),
                     "minutes to read": round(prose_words(nb) / WORDS_PER_MINUTE),
                     "seconds to run here": "" if here is None else round(here),  # "": not executed in this run
                     "full profile: seconds": "" if full is None else round(full), "full profile: on": full_on})
    return rows
