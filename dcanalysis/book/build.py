"""The main job: execute every chapter with papermill, then build the HTML book.

    python -m dcanalysis.book --profile quick      # what `make book` runs

Executed notebooks go to ``book/_build/executed/<profile>/`` with their figures and a ``<chapter>.run.json``
record (parameters, device, seconds, commit); a chapter is re-executed only when its notebook, its parameters or
the library changed (a content hash is kept beside it). The book is then built from a staging copy, so the source
notebooks in ``book/chapters`` stay free of outputs.

``book/executed/full/`` holds the full profile as executed on a GPU machine (``data/jobs/book_full.sh``) and
committed. When a chapter's code cells are unchanged since that run, the HTML page shows the GPU run (with the
current text) and says so at its top; otherwise it shows this machine's execution. ``--pages executed`` shows
only what was executed here.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
GPU_PAGES = BOOK / "executed" / "full"

PROFILES = {
    "quick": {},
    "full": {"profile": "full", "n_images": 1000, "device": "cuda"},
}
# Per-chapter overrides of the full profile (quick uses each notebook's own defaults); a chapter receives only the
# parameters its parameters cell declares (``declared_parameters``).
FULL_OVERRIDES = {
    "00_primer": {"n_images": 100, "n_trials": 100},
    "13_error_functions": {"device": "cpu", "n_images": 32, "trials": 25},  # residuals of more images, live
    "14_own_images": {"device": "cpu", "per_class": 2, "trials": 25},  # more live samples, more trials
    "15_attacks": {"device": "cpu", "n_live": 4, "steps_live": 10, "eot_live": 2, "trials": 25},  # a longer live attack
    "16_shortcuts": {"toy_seeds": 10, "toy_n_test": 20000},  # the toy's sweeps with more seeds (CPU only)
    "01_generative_classification": {"grid_size": 80, "trials": 250},
    "02_paired_differences": {"n_timesteps": 200},
    # the scene chapters read and extend the committed evaluation (data/results/lab/scenes)
    "06_zero_shot": {"n_images": 10, "trials": 100, "run_dir": ""},
    "07_inversion": {"n_images": 8, "steps": 50, "device": "cpu"},  # 8 + 3 images, 50 DDIM steps each way: minutes
    "08_compositional": {"n_images": 300, "trials": 100, "run_dir": "", "device": "cpu"},  # the run is complete
}


# Chapters whose full profile runs no trained network: they replay committed error tables and read committed GPU
# results (chapter 8 reads the complete scene evaluation, so nothing is left to evaluate), or (chapter 1) use the
# analytic toy model; chapters 13, 14 and 15 read committed GPU results and run only a few images through a lab UNet
# live, chapter 7 inverts eleven images, chapter 16 runs a Gaussian toy. Their committed full pages are executed on
# a CPU machine (their provenance note says so)
FULL_ON_CPU = ("01_generative_classification", "03_which_timesteps", "04_timestep_strategies", "05_adaptive",
               "07_inversion", "08_compositional", "08b_training_seeds", "09_robustness", "10_speed", "12_labelled_data",
               "13_error_functions", "14_own_images", "15_attacks", "16_shortcuts")

CELL_TIMEOUT_S = 1800  # the longest full-profile cell takes about a minute on the GPU

# What each chapter can take from a reader's own model ("model": a model and images; "run": a run directory of
# error tables), or, for the chapters that only the lab can serve, what they need instead.
USER_INPUTS = {"00_primer": "model", "02_paired_differences": "model", "03_which_timesteps": "run", "05_adaptive": "run"}
LAB_ONLY = {
    "01_generative_classification": "the analytic 2-D toy model, whose exact likelihood is known",
    "04_timestep_strategies": "one run per timestep strategy (the lab model's committed runs)",
    "06_zero_shot": "the scene lab's held-out (colour, shape) pairs",
    "07_inversion": "a pixel-space lab model (DDIM inversion shown in pixels) and the scene lab",
    "08_compositional": "the scene lab's swap items",
    "08b_training_seeds": "the scene lab's models retrained with other seeds",
    "09_robustness": "the lab's shifted test sets and the discriminative baselines trained on the same split",
    "10_speed": "the benchmark's GPU results (`python -m dcanalysis.bench.bench` measures your GPU)",
    "12_labelled_data": "the lab's models retrained on shares of its training split (data/jobs/labelled_data_h200.sh)",
    "13_error_functions": "the lab's runs of each error function on the same images and noise (a reader's model: "
                          "`python -m dcanalysis.lab.evaluate --errors` shows the pattern of the job)",
    "14_own_images": "samples drawn from the lab models and the baselines trained on the same split",
    "15_attacks": "the lab's UNets and baselines attacked on the GPU (`python -m dcanalysis.lab.attack_eval` attacks "
                  "them; `dcanalysis.evaluation.attacks` works on any adapter)",
    "16_shortcuts": "the lab's models retrained on a split with a spurious cue (data/jobs/shortcuts_h200.sh)",
    "11_calibration": "the lab's stored per-trial tables and its baselines (`dcanalysis.evaluation.calibration` "
                      "measures any posterior)",
}


# Pages that take no model and read no results of their own: the course path reads the chapters' run records
META_PAGES = ("course_path",)


@dataclass(frozen=True)
class UserModel:
    """A reader's model and data for the whole book: ``python -m dcanalysis.book --model M --dataset D ...``."""

    model: str
    dataset: str
    images: str = ""
    device: str = "cpu"
    n_images: int = 100
    trials: int = 100
    seed: int = 0
    run: str = ""  # a run directory; made by the book (exhaustive, ``trials``) when empty

    def slug(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def chapter_parameters(name: str, profile: str, user: UserModel | None = None) -> dict:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}.")
    params = dict(PROFILES[profile])
    if profile == "full":
        params.update(FULL_OVERRIDES.get(name, {}))
    takes = USER_INPUTS.get(name)
    if user is not None and takes == "model":
        params.update(model=user.model, dataset=user.dataset, images=user.images, device=user.device, seed=user.seed)
    elif user is not None and takes == "run":
        params.update(model=user.model, run=user.run, n_images=user.n_images)
    declared = declared_parameters(name)
    if declared is None:
        return params
    return {k: v for k, v in params.items() if k in declared}  # a value the chapter does not declare reaches nothing


def declared_parameters(name: str) -> set[str] | None:
    """The names a chapter's parameters cell assigns: the only values a run can give it (None: no such chapter in
    book/chapters)."""
    path = BOOK / "chapters" / f"{name}.ipynb"
    if not path.is_file():
        return None
    nb = nbformat.read(path, 4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def prepare_run(user: UserModel, root: Path) -> UserModel:
    """The run the run-reading chapters use: the reader's, or one made here (every candidate, ``trials`` evenly
    spaced trials, the first ``n_images`` images) as a ``jobs.EvalJob``, resumable like any other run."""
    if user.run:
        return user
    from ..classifier import ClassifierConfig
    from ..jobs import EvalJob, evaluate
    from ..schedules import Schedule

    out = root / f"run-{user.slug()}"
    evaluate(EvalJob(model=user.model, dataset=user.dataset, out=out, images=Path(user.images) if user.images else None,
                     n_images=user.n_images, device=user.device,
                     classifier=ClassifierConfig(schedule=Schedule.exhaustive(user.trials), batch_size=250,
                                                 seed=user.seed)))
    return replace(user, run=str(out))


def library_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "dcanalysis").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def is_injected(cell) -> bool:
    return "injected-parameters" in cell.metadata.get("tags", [])


def code_digest(nb) -> str:
    """Hash of a notebook's code cells (papermill's injected-parameters cell left out): what decides its outputs,
    apart from the library. Markdown edits do not change it."""
    h = hashlib.sha256()
    for c in nb.cells:
        if c.cell_type == "code" and not is_injected(c):
            h.update(c.source.encode() + b"\0")
    return h.hexdigest()


def git_commit() -> str:
    """The commit the run was made from: $DCANALYSIS_COMMIT (a copied tree has no .git), else git's HEAD."""
    if os.environ.get("DCANALYSIS_COMMIT"):
        return os.environ["DCANALYSIS_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_record(source: Path, profile: str, params: dict, seconds: float, library: str) -> dict:
    """Provenance of one executed chapter, written beside it as ``<chapter>.run.json`` (``library``: the
    ``library_digest`` the run was keyed on)."""
    import torch

    return {
        "chapter": source.stem, "profile": profile, "parameters": params,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1), "commit": git_commit(),
        "code_digest": code_digest(nbformat.read(source, 4)), "library_digest": library,
    }


def chapter_key(src: Path, params: dict, lib: str) -> str:
    """What decides an execution: the notebook's bytes, its parameters and the library."""
    return hashlib.sha256(src.read_bytes() + json.dumps(params, sort_keys=True).encode() + lib.encode()).hexdigest()


def lab_page(src: Path, profile: str, lib: str) -> Path | None:
    """The folder of the lab's own execution of ``src`` in ``profile`` (``make book``'s), if it is current: what a
    book on a reader's model shows for a chapter that cannot take the model, without executing it again."""
    lab = BOOK / "_build" / "executed" / profile
    stamp = lab / f"{src.stem}.key"
    current = stamp.is_file() and stamp.read_text() == chapter_key(src, chapter_parameters(src.stem, profile), lib)
    return lab if current and (lab / src.name).is_file() and (lab / f"{src.stem}.run.json").is_file() else None


def execute_chapters(profile: str, *, chapters: list[str] | None = None, force: bool = False,
                     out: Path | None = None, user: UserModel | None = None) -> Path:
    """Execute the chapters into ``out``; with ``user``, the chapters that can take a reader's model compute from
    it (the run-reading ones from ``prepare_run``'s run), the others keep the lab's and say so on their page (the
    lab's current execution is reused, ``lab_page``; without one they are executed with the lab's parameters)."""
    import papermill as pm

    out = out or BOOK / "_build" / "executed" / (profile if user is None else f"{profile}-{user.slug()}")
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted((BOOK / "chapters").glob("*.ipynb"))
    if chapters:
        sources = [s for s in sources if any(s.stem.startswith(c) for c in chapters)]
    if user is not None and any(USER_INPUTS.get(s.stem) == "run" for s in sources):
        user = prepare_run(user, out.parent)
    lib = library_digest()
    for src in tqdm(sources, desc=f"chapters ({profile})", unit="chapter"):
        params = chapter_parameters(src.stem, profile, user)
        key = chapter_key(src, params, lib)
        target, stamp = out / src.name, out / f"{src.stem}.key"
        if not force and target.is_file() and stamp.is_file() and stamp.read_text() == key:
            continue
        lab = lab_page(src, profile, lib) if user is not None and src.stem in LAB_ONLY else None
        if lab is not None:  # a chapter that cannot take the reader's model: the lab's page, not a rerun of it
            shutil.copyfile(lab / src.name, target)
            record = json.loads((lab / f"{src.stem}.run.json").read_text())
            record.update(user_model=asdict(user), lab_only=LAB_ONLY[src.stem], reused_from=str(lab / src.name))
            (out / f"{src.stem}.run.json").write_text(json.dumps(record, indent=1))
            stamp.write_text(key)
            continue
        start = time.perf_counter()
        # a cell that runs past the timeout fails the chapter instead of hanging the book (a lost kernel message
        # once left a run waiting forever)
        # the kernel's own log (a warning per chapter about its local TCP transport) stays out of the progress
        # output; a failing cell is still reported by papermill with its traceback
        pm.execute_notebook(str(src), str(target), parameters=params, cwd=str(out), progress_bar=False,
                            kernel_name="python3", execution_timeout=CELL_TIMEOUT_S,
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        record = run_record(src, profile, params, time.perf_counter() - start, lib)
        if user is not None:
            record["user_model"] = asdict(user)
            record["lab_only"] = LAB_ONLY.get(src.stem)  # what it needs instead, where it cannot take the model
        (out / f"{src.stem}.run.json").write_text(json.dumps(record, indent=1))
        stamp.write_text(key)
    return out


def with_current_text(source, executed):
    """The executed notebook's outputs under the source notebook's current markdown: a copy of ``source`` whose
    code cells are the executed ones (papermill's injected-parameters cell kept after the parameters cell).
    None when the code cells differ, i.e. when the outputs may no longer belong to this code."""
    if code_digest(source) != code_digest(executed):
        return None
    ran = iter(c for c in executed.cells if c.cell_type == "code" and not is_injected(c))
    injected = [c for c in executed.cells if is_injected(c)]
    merged = copy.deepcopy(source)
    cells = []
    for c in merged.cells:
        if c.cell_type != "code":
            cells.append(c)
            continue
        cells.append(copy.deepcopy(next(ran)))
        if "parameters" in c.metadata.get("tags", []):
            cells.extend(copy.deepcopy(injected))
    merged.cells = cells
    return merged


def provenance_note(record: dict, committed: bool, declared: set[str] | None = None) -> str:
    """A MyST note for the top of a page: which run made the outputs below it. ``declared``: the parameters the
    page's notebook declares; a profile's other values (``device="cuda"`` for a chapter with no device) reached
    nothing and are left out of the note."""
    params = ", ".join(f"{k}={v!r}" for k, v in record["parameters"].items()
                       if declared is None or k in declared) or "the notebook's defaults"
    where = f"GPU: {record['gpu']}" if record.get("gpu") else f"{record.get('cpu_count', '?')} CPU cores"
    text = (f"Outputs on this page: the **{record['profile']}** profile ({params}), executed on a machine with "
            f"{where}, finished {record['finished_utc']} in {record['seconds']:.0f} s, commit "
            f"`{record['commit'][:10]}`.")
    if committed:
        text += (" This run is committed in `book/executed/full/`; `make book` re-executes the quick profile "
                 f"on your machine (`book/_build/executed/quick/{record['chapter']}.ipynb`).")
    return f"```{{note}}\n{text}\n```"


def choose_page(source: Path, executed_dir: Path, committed_dir: Path | None = GPU_PAGES):
    """The notebook to render for one chapter: the committed GPU run when its code cells and its full-profile
    parameters are the chapter's current ones, else this machine's execution. Returns (notebook, record,
    committed?)."""
    src = nbformat.read(source, 4)
    if committed_dir is not None:
        nb_path, rec_path = committed_dir / source.name, committed_dir / f"{source.stem}.run.json"
        if nb_path.is_file() and rec_path.is_file():
            record = json.loads(rec_path.read_text())
            merged = (with_current_text(src, nbformat.read(nb_path, 4))
                      if record["parameters"] == chapter_parameters(source.stem, "full") else None)
            if merged is not None:
                return merged, record, True
            print(f"{source.stem}: its code or full-profile parameters changed since the committed GPU run; "
                  "showing this machine's execution")
    rec_path = executed_dir / f"{source.stem}.run.json"
    record = json.loads(rec_path.read_text()) if rec_path.is_file() else None
    return nbformat.read(executed_dir / source.name, 4), record, False


# tqdm's notice that the executing machine lacks ipywidgets (the GPU machine has no widget front end): it says
# nothing about the chapter, so readers are spared it; every other warning stays on the page
_WIDGET_NOTICE = "TqdmWarning: IProgress not found"


def _is_widget_notice(output) -> bool:
    return output.get("output_type") == "stream" and output.get("name") == "stderr" and \
        _WIDGET_NOTICE in output.get("text", "") and \
        all(_WIDGET_NOTICE in line or "notebook_tqdm" in line or not line.strip()
            for line in output.get("text", "").splitlines())


def _assignments(source: str):
    """(name, node) of each top-level ``name = value`` statement of a cell's source."""
    import ast

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            yield node.targets[0].id, node


def injected_values(nb) -> dict:
    """The values papermill injected into an executed notebook ({} when it injected none), read from its cell."""
    import ast

    return {name: ast.literal_eval(node.value) for cell in nb.cells if cell.cell_type == "code" and is_injected(cell)
            for name, node in _assignments(cell.source)}


def with_run_values(source: str, values: dict) -> str:
    """A parameters cell's source with each assignment the run overrode showing the value that ran, its default
    and its comment kept: ``device = 'cuda'  # this run (default "cpu"); where the chapter runs``. Parameters the
    cell does not declare are left out (the provenance note lists every parameter of the run)."""
    import ast

    lines = source.splitlines()
    for name, node in _assignments(source):
        if name not in values or node.lineno != node.end_lineno:
            continue
        default = ast.get_source_segment(source, node.value)
        try:
            if ast.literal_eval(node.value) == values[name]:
                continue
        except ValueError:
            pass
        line = lines[node.lineno - 1]
        comment = line[node.end_col_offset:].strip().removeprefix("#").strip()
        shown = json.dumps(values[name]) if isinstance(values[name], str) else repr(values[name])
        lines[node.lineno - 1] = (f"{name} = {shown}   # this run (default {default})"
                                  + (f"; {comment}" if comment else ""))
    return "\n".join(lines)


def fold_code(nb):
    """A copy of ``nb`` as readers see it: code cells collapsed (their outputs shown), the parameters cell open and
    showing the values that ran (``with_run_values``), papermill's injected-parameters cell removed, tqdm's
    missing-widgets notice dropped."""
    nb = copy.deepcopy(nb)
    ran = injected_values(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []) and ran:
            cell.source = with_run_values(cell.source, ran)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not _is_widget_notice(o)]
        tags = cell.metadata.setdefault("tags", [])
        if is_injected(cell):
            tags.append("remove-cell")
        elif "parameters" not in tags and not any(t.startswith(("hide-", "remove-")) for t in tags):
            tags.append("hide-input")
    return nb


def with_note(nb, record: dict | None, committed: bool):
    """A copy of ``nb`` with the provenance note after its first (title) cell, and, in a book run on a reader's
    model, a warning on a chapter that cannot take it."""
    if record is None:
        return nb
    nb = copy.deepcopy(nb)
    declared = {name for c in nb.cells if "parameters" in c.metadata.get("tags", []) for name, _ in _assignments(c.source)}
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(provenance_note(record, committed, declared or None)))
    if record.get("lab_only"):
        model = record["user_model"]["model"]
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(
            f"```{{warning}}\nThis chapter needs {record['lab_only']}; it does not apply to model `{model}`, so this "
            "page shows the lab's result, not your model's.\n```"))
    return nb


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


def staged_config(config: str, *, vendored: bool) -> str:
    """The book's _config.yml as the staged build uses it: with the vendored MathJax served from the book's own
    static files (html_static_path copies _vendor/* beside _static/*) where it was fetched."""
    if not vendored:
        return config
    if "    html_static_path: [_static]\n" not in config:
        raise ValueError("book/_config.yml must set html_static_path: [_static] (its stylesheet lives there)")
    return config.replace("    html_static_path: [_static]\n", "    html_static_path: [_static, _vendor]\n"
                          "    mathjax_path: mathjax/es5/tex-chtml.js\n", 1)


def build_html(executed: Path, *, committed_dir: Path | None = GPU_PAGES) -> Path:
    stage = BOOK / "_build" / "stage"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "chapters").mkdir(parents=True)
    vendor = BOOK / "_build" / "vendor"
    if vendor_mathjax(vendor):
        shutil.copytree(vendor, stage / "_vendor")
    for f in ["_toc.yml", *sorted(p.name for p in BOOK.glob("*.md"))]:  # intro, glossary: the pages beside chapters
        shutil.copy(BOOK / f, stage / f)
    shutil.copytree(BOOK / "_static", stage / "_static")
    (stage / "_config.yml").write_text(staged_config((BOOK / "_config.yml").read_text(),
                                                     vendored=(stage / "_vendor").is_dir()))
    for source in sorted((BOOK / "chapters").glob("*.ipynb")):
        if not (executed / source.name).is_file():
            continue
        nb, record, committed = choose_page(source, executed, committed_dir)
        nbformat.write(fold_code(with_note(nb, record, committed)), stage / "chapters" / source.name)
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
    p.add_argument("--pages", choices=("committed-gpu", "executed"), default="committed-gpu",
                   help="committed-gpu (default): a chapter's page shows the committed full-profile GPU run "
                        "(book/executed/full) while its code is unchanged; executed: only what ran here")
    p.add_argument("--out", type=Path, help="where the executed notebooks go (default book/_build/executed/PROFILE)")
    g = p.add_argument_group("your own model", "run the book on it: chapters 2, 3 and 5 compute from it, the others "
                                              "say that they show the lab's result")
    g.add_argument("--model", help="a model folder or cached hub id (any family of adapters.registry) or lab name")
    g.add_argument("--dataset", help="its label set: mnist, fashion_mnist or a dataset of data/datasets")
    g.add_argument("--images", default="", help="root/<class>/<image> folder of that dataset's images")
    g.add_argument("--run", default="", help="an existing run directory (dcanalysis eval --out RUN) to read")
    g.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    g.add_argument("--n-images", type=int, default=100, help="images of the run the book makes")
    g.add_argument("--trials", type=int, default=100, help="trials per candidate of the run the book makes")
    a = p.parse_args(argv)
    user = None
    if a.model:
        if not a.dataset:
            p.error("--model needs --dataset (its class names and prompts)")
        absolute = lambda v: str(Path(v).expanduser().resolve()) if v and Path(v).expanduser().exists() else v  # noqa: E731
        # the chapters execute in their output folder: relative paths are made absolute first
        user = UserModel(absolute(a.model), a.dataset, absolute(a.images), a.device, a.n_images, a.trials,
                         run=absolute(a.run))
    from ..evaluation.lab_datasets import load_lab_dataset

    for name in ("mnist", "fashion_mnist"):  # fetch once up front, not inside a chapter
        load_lab_dataset(name, test_only=True)
    executed = execute_chapters(a.profile, chapters=a.chapters, force=a.force, out=a.out, user=user)
    if not a.no_html:
        # A full run made here is the page to show; the committed GPU pages stand in for the quick profile (never
        # for a book run on a reader's model).
        committed = GPU_PAGES if a.pages == "committed-gpu" and a.profile == "quick" and user is None else None
        print(f"book built: {build_html(executed, committed_dir=committed)}")


if __name__ == "__main__":
    main()
