"""The main job: execute every chapter with papermill, then build the HTML book.

    python -m dcanalysis.book --profile quick      # what `make book` runs

Executed notebooks go to ``book/_build/executed/<profile>/`` with their figures; a chapter is re-executed only
when its notebook, its parameters or the library changed (a content hash is kept beside it). The book is then
built from a staging copy, so the source notebooks in ``book/chapters`` stay free of outputs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

PROFILES = {
    "quick": {},
    "full": {"profile": "full", "n_images": 1000, "device": "cuda"},
}
# Per-chapter overrides of the full profile (quick uses each notebook's own defaults).
FULL_OVERRIDES = {
    "01_generative_classification": {"grid_size": 80, "trials": 250, "device": "cpu"},
    "02_paired_differences": {"n_timesteps": 200},
    # the scene chapters read and extend the committed evaluation (data/results/lab/scenes)
    "06_zero_shot": {"n_images": 10, "trials": 100, "run_dir": ""},
    "07_inversion": {"n_images": 8, "steps": 50},
    "08_compositional": {"n_images": 300, "trials": 100, "run_dir": ""},
}


def chapter_parameters(name: str, profile: str) -> dict:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}.")
    params = dict(PROFILES[profile])
    if profile == "full":
        params.update(FULL_OVERRIDES.get(name, {}))
    return params


def library_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "dcanalysis").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def execute_chapters(profile: str, *, chapters: list[str] | None = None, force: bool = False) -> Path:
    import papermill as pm

    out = BOOK / "_build" / "executed" / profile
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted((BOOK / "chapters").glob("*.ipynb"))
    if chapters:
        sources = [s for s in sources if any(s.stem.startswith(c) for c in chapters)]
    lib = library_digest()
    for src in tqdm(sources, desc=f"chapters ({profile})", unit="chapter"):
        params = chapter_parameters(src.stem, profile)
        key = hashlib.sha256(src.read_bytes() + json.dumps(params, sort_keys=True).encode() + lib.encode()).hexdigest()
        target, stamp = out / src.name, out / f"{src.stem}.key"
        if not force and target.is_file() and stamp.is_file() and stamp.read_text() == key:
            continue
        pm.execute_notebook(str(src), str(target), parameters=params, cwd=str(out), progress_bar=False,
                            kernel_name="python3")
        stamp.write_text(key)
    return out


def vendor_mathjax(target: Path) -> Path | None:
    """MathJax 3 from the npm registry, so formulas render in the offline HTML (the default loads a CDN)."""
    js = target / "mathjax" / "es5" / "tex-chtml.js"
    if js.is_file():
        return js
    if shutil.which("npm") is None:
        print("npm not found: formulas will need a network connection to render (MathJax from its CDN)")
        return None
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "mathjax@3", "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300)
        with tarfile.open(next(Path(tmp).glob("mathjax-*.tgz"))) as tar:
            tar.extractall(tmp, filter="data")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(tmp) / "package" / "es5", target / "mathjax" / "es5", dirs_exist_ok=True)
    return js


def build_html(executed: Path) -> Path:
    stage = BOOK / "_build" / "stage"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "chapters").mkdir(parents=True)
    vendor = BOOK / "_build" / "vendor"
    if vendor_mathjax(vendor):
        shutil.copytree(vendor, stage / "_vendor")
    for f in ("_toc.yml", "intro.md"):
        shutil.copy(BOOK / f, stage / f)
    config = (BOOK / "_config.yml").read_text()
    if (stage / "_vendor").is_dir():
        # Served from the book's own _static: html_static_path copies _vendor/* there.
        config = config.replace("  config:\n", "  config:\n    html_static_path: [_vendor]\n"
                                "    mathjax_path: mathjax/es5/tex-chtml.js\n", 1)
    (stage / "_config.yml").write_text(config)
    for nb in executed.glob("*.ipynb"):
        shutil.copy(nb, stage / "chapters" / nb.name)
    if (executed / "figures").is_dir():
        shutil.copytree(executed / "figures", stage / "chapters" / "figures")
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(stage), "--path-output", str(BOOK / "_build" / "site"), "-q"], check=True)
    return BOOK / "_build" / "site" / "_build" / "html" / "index.html"


def main(argv=None):
    p = argparse.ArgumentParser(description="Execute the book's chapters with papermill and build the HTML book.")
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    p.add_argument("--chapters", nargs="*", help="prefixes of chapters to execute, e.g. 01 04 (default: all)")
    p.add_argument("--force", action="store_true", help="re-execute even when nothing changed")
    p.add_argument("--no-html", action="store_true", help="execute only")
    a = p.parse_args(argv)
    from .lab.data import load_lab_dataset

    for name in ("mnist", "fashion_mnist"):  # fetch once up front, not inside a chapter
        load_lab_dataset(name, test_only=True)
    executed = execute_chapters(a.profile, chapters=a.chapters, force=a.force)
    if not a.no_html:
        print(f"book built: {build_html(executed)}")


if __name__ == "__main__":
    main()
