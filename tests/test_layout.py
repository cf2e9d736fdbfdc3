"""The package's shape: layers whose imports run one way, checked over every import (function-level ones too).

    the method (dcanalysis/*.py)  <-  adapters/  <-  evaluation/  <-  engine/  <-  jobs.py, cli.py  <-  book/

A layer imports only from itself and the layers before it. The training lab (``lab/``) and the benchmark
(``bench/``) sit beside the library: they may import any of it, the benchmark may import the lab, and nothing in the
library imports either (the book, which shows the lab's results and the benchmark's, may read both).
"""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dcanalysis"
# the method: what a reader follows from an image to a prediction
METHOD = ["classifier", "denoiser", "denoising_error", "processes", "noise", "timesteps", "schedules", "sequential",
          "pruning", "losses", "posterior", "estimators", "inversion", "sampling", "images", "exceptions", "paths"]
LAYERS = {"method": 0, "adapters": 1, "evaluation": 2, "engine": 3, "entry": 4, "book": 5}
ENTRY_POINTS = {"jobs", "cli", "__main__"}
BESIDE = {"lab", "bench"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The layer (or the lab / the benchmark) a module belongs to."""
    parts = module.split(".")
    if len(parts) == 1:
        return "method"  # the package's face: the method's public names
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "entry" if parts[1] in ENTRY_POINTS else "method"


def imports_of(path: Path) -> set[str]:
    """dcanalysis modules ``path`` imports, at any depth of the file (function-level imports included)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` names the module x; `from .m import f` the module m
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != me}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_folder_is_a_known_layer_and_every_method_module_is_listed():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(LAYERS) - {"method", "entry"} | BESIDE, folders
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == set(METHOD) | ENTRY_POINTS, top ^ (set(METHOD) | ENTRY_POINTS)


def test_imports_run_one_way_between_layers():
    wrong = []
    for module, deps in graph().items():
        me = part_of(module)
        for dep in deps:
            them = part_of(dep)
            if them == me:
                continue
            if them in BESIDE:
                ok = me == "book" or (me, them) == ("bench", "lab")
            elif me in BESIDE:
                ok = True  # the lab and the benchmark use the library
            else:
                ok = LAYERS[them] < LAYERS[me]
            if not ok:
                wrong.append(f"{module} ({me}) imports {dep} ({them})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_two_modules_import_each_other():
    g = graph()
    pairs = sorted({tuple(sorted((a, b))) for a, deps in g.items() for b in deps
                    if a in g.get(b, set()) and not a.endswith("__init__") and not b.endswith("__init__")
                    and a.count(".") and b.count(".") and not (a in b or b in a)})
    assert not pairs, pairs


def test_the_package_imports_the_method_only():
    out = subprocess.run([sys.executable, "-c", "import dcanalysis, sys; "
                          "print(' '.join(sorted(m for m in sys.modules if m.startswith('dcanalysis'))))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out and {part_of(m) for m in out} == {"method"}, out
