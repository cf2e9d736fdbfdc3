"""The paper's own numbers (Li et al., ICCV 2023), as reference data: ``data/paper/li2023.json``, copied from the
open-access ICCV text (its ``source`` line says so). Nothing here is computed by dcanalysis; the book prints
these tables beside our results, labelled as the paper's, and never types a paper number into its text."""
from __future__ import annotations

import json
from functools import lru_cache

from ..paths import DATA_DIR

TABLES = ("table1_zero_shot_top1", "table2_winoground_text_score", "table3_imagenet_supervised_top1")


@lru_cache(maxsize=1)
def load_paper() -> dict:
    return json.loads((DATA_DIR / "paper" / "li2023.json").read_text())


def paper_table(name: str) -> "pandas.DataFrame":  # noqa: F821
    """One of ``TABLES`` as a DataFrame (rows: methods, columns: datasets or swap tags), its caption in
    ``.attrs["caption"]`` and the source in ``.attrs["source"]``."""
    import pandas as pd

    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; choose one of {TABLES}.")
    paper = load_paper()
    t = paper[name]
    df = pd.DataFrame.from_dict(t["rows"], orient="index", columns=t["columns"])
    df.attrs.update(caption=t["caption"], source=paper["source"])
    return df


def paper_numbers() -> set[float]:
    """Every number in the paper's tables and stated figures (for tests that the book types none of them)."""
    found: set[float] = set()

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, (int, float)):
            found.add(float(v))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk({k: v for k, v in load_paper().items() if k not in ("source", "note")})
    return found


def beats_all(table: "pandas.DataFrame", method: str, others: list[str]) -> list[str]:  # noqa: F821
    """The columns where ``method`` scores above every one of ``others``."""
    return [c for c in table.columns if all(table.loc[method, c] > table.loc[o, c] for o in others)]
