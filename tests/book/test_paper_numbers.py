"""Every paper number the book shows comes from data/paper/li2023.json: chapters print the paper's tables from it
and never type a table value into their text."""
import json
import re
from pathlib import Path

from dcanalysis.evaluation.paper import TABLES, load_paper, paper_numbers, paper_table
from dcanalysis.paths import DATA_DIR

CHAPTERS = Path(__file__).resolve().parents[2] / "book" / "chapters"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "paper" / "li2023.json"


def cells(kind):
    for p in sorted(CHAPTERS.glob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] == kind:
                yield p.stem, "".join(c["source"])


def test_reference_data_is_the_iccv_text_and_every_table_loads():
    paper = load_paper()
    assert "ICCV 2023" in paper["source"] and "open-access" in paper["source"]
    if SHARED.is_file():  # the copy beside a developer's checkout
        assert json.loads(SHARED.read_text()) == json.loads((DATA_DIR / "paper" / "li2023.json").read_text())
    for name in TABLES:
        t = paper_table(name)
        assert t.shape == (len(paper[name]["rows"]), len(paper[name]["columns"]))


def test_chapters_print_the_paper_tables_from_the_file_and_type_none_of_their_numbers():
    decimals = {n for n in paper_numbers() if n != int(n)}
    for chapter, text in cells("markdown"):
        typed = [m for m in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text) if float(m) in decimals]
        assert not typed, (chapter, typed)
    code = {ch: "" for ch, _ in cells("code")}
    for ch, text in cells("code"):
        code[ch] += text
    for chapter, table in [("06_zero_shot", "table1"), ("08_compositional", "table2"), ("09_robustness", "table3")]:
        assert f'paper_table("{table}' in code[chapter], chapter
