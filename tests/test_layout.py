"""The package's shape: no module pair imports each other, and the method never imports the speed tooling."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dcanalysis"
# the method: what a reader follows from an image to a prediction
METHOD = ["classifier", "denoising_error", "processes", "noise", "timesteps", "schedules", "sequential",
          "pruning", "losses", "posterior", "estimators", "inversion", "images", "exceptions"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """dcanalysis modules ``path`` imports, at any depth of the file (function-level imports included)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in names + [target] if n.startswith("dcanalysis"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dcanalysis"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != me}


def test_no_two_modules_import_each_other():
    graph = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, set()) and not a.endswith("__init__") and not b.endswith("__init__")
                    and a.count(".") and b.count(".") and not (a in b or b in a)})
    assert not pairs, pairs


def test_the_method_does_not_import_speed_code():
    for name in METHOD:
        deps = imports_of(PACKAGE / f"{name}.py")
        assert not {d for d in deps if d.startswith("dcanalysis.speed")}, (name, deps)
