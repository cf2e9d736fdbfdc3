"""The one crash-safe run store: a directory of results written as they are computed, resumable, never mixed.

A run directory holds
- ``manifest.json``: the settings every result depends on (model, classifier config, candidates, class names, seed,
  ...), the store's ``format``, the software versions and the device. It is created once, atomically (the first
  rank links a finished file into place; every other rank finds it and checks it). Opening the store with other
  settings is refused, so one directory never mixes two experiments; the run's extent (``neutral`` top-level
  settings such as the number of images and the world size) may change between sessions: a run grows.
  A resume under other torch / diffusers versions than those recorded is warned about (stored numbers may differ
  at float rounding), not refused.
- ``records-rank{R}.jsonl``: one JSON line per finished item (an ``"id"``, the ``"run"`` digest of the settings
  it was computed with, and whatever the caller records), flushed and fsynced before the next item starts. A line
  cut by a kill is dropped on reading and cut off before the next append, so the worst a crash costs is the items
  in flight. A later record of an id supersedes an earlier one (a recomputed item). Lines that are not records
  (garbage, edits) are moved to ``damaged-rank{R}.jsonl`` when the rank is opened again, never silently kept.
  The records are the truth: a lost manifest is rebuilt only if every record names the same settings.
- ``errors-rank{R}/{id}.npy``: optional per-item arrays (the classifier's error tables), written atomically.
- ``lock-rank{R}``: held (``flock``) by the process writing rank R; a second writer of that rank is refused.

Nothing in a run directory is reached through a symbolic link or is anything but a regular file (a directory for
the tables): every file is opened with ``O_NOFOLLOW`` and checked, so a planted link can neither redirect a write
nor leak another file into the run. Every file the store creates has one permission rule: readable and writable
as the process's umask allows for a new file (0644 under the usual umask 022), records, manifest, tables and lock
alike, so whoever can read the records can also run ``report``. Temporary files a kill left behind are removed
when the rank is opened again.

``runs.run_dataset`` (image datasets) and ``lab.scene_eval`` (the scene lab) both write through ``RunStore``.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import stat
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..exceptions import ManifestMismatchError, RunLockedError, UnsafeRunFileError

log = logging.getLogger(__name__)

# 2: every record carries the run digest (and an image run's records their image's identity); the digest covers
# the batch settings. Runs of format 1 are upgraded once (``runs.upgrade_run``) before they are resumed.
FORMAT = 2
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest is a few kB; a larger one is not ours
TEMP_AGE_S = 60.0  # a temporary file this old in a run directory was left by a killed process


def environment() -> dict:
    import diffusers

    return {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else (platform.processor() or "cpu"),
    }


def new_file_mode() -> int:
    """The mode a new file gets from ``open`` under this process's umask (0o666 & ~umask), read without changing
    the umask (reading it through ``os.umask`` sets it for a moment, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def open_run_file(path: Path, flags: int) -> int:
    """A file descriptor of ``path`` opened without following a symbolic link, refused unless it is a regular file
    (never blocks on a FIFO). ``flags``: ``os.O_RDONLY``, ``os.O_WRONLY | os.O_APPEND | os.O_CREAT``, ..."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, new_file_mode())
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeRunFileError(f"{str(path)!r} is a symbolic link; a run directory holds only regular files, "
                                     "so it is not followed. Remove the link (or move the run's own file back) and "
                                     "rerun.") from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise UnsafeRunFileError(f"{str(path)!r} is a FIFO, not a regular file; remove it and rerun.") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise UnsafeRunFileError(f"{str(path)!r} is {kind}, not a regular file; remove it and rerun.")
    os.set_blocking(fd, True)
    return fd


def read_run_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a run file (no links, regular files only; at most ``max_bytes``)."""
    fd = open_run_file(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise UnsafeRunFileError(f"{str(path)!r} is {size / 2**20:.0f} MiB, more than any file this run writes "
                                     f"({max_bytes / 2**20:.0f} MiB); it is not this run's. Remove it and rerun.")
        return f.read()


def run_subdir(path: Path, *, create: bool) -> Path:
    """A folder of a run (``errors-rank{R}``), refused if it is a link or not a folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if create:
            path.mkdir(mode=0o777)  # the umask applies, as for the files
        return path
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeRunFileError(f"{str(path)!r} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a folder'}"
                                 "; a run keeps its tables in a real folder. Remove it and rerun.")
    return path


def check_writable(run_dir: Path, *, min_free_bytes: int = 50 * 2**20) -> None:
    """Fail before any work if results could not be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe-", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(f"cannot write results to {str(run_dir)!r} ({e.strerror}); choose another --out.") from e
    free = shutil.disk_usage(run_dir).free
    if free < min_free_bytes:
        raise OSError(f"only {free / 2**20:.0f} MiB free under {str(run_dir)!r}; free some space or choose another --out.")


def _write_temp(path: Path, write) -> str:
    """A finished temporary file beside ``path`` (``mkstemp``: created exclusively, never an existing file or a
    planted link; given the store's one file mode), fsynced. Returns its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomically(path: Path, write) -> None:
    """Write a file through a fresh temporary name beside it, then rename it into place (a rename replaces a link
    at ``path`` itself, never its target). ``write(file object)`` writes the bytes."""
    tmp = _write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_exclusively(path: Path, write) -> bool:
    """Write ``path`` only if nothing is there, atomically: the finished file is hard-linked into place, which
    fails if any file (or link) has that name. True if this call created it."""
    tmp = _write_temp(path, write)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temps(folder: Path, prefix: str = ".", min_age_s: float = 0.0) -> int:
    """Delete temporary files (``.NAME-XXXX.tmp``) a killed writer left in ``folder``; returns how many."""
    now, n = time.time(), 0
    for p in folder.glob(f"{prefix}*.tmp"):
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= min_age_s:
                p.unlink()
                n += 1
        except FileNotFoundError:
            pass
    return n


def _comparable(settings: dict, neutral: Iterable[str]) -> dict:
    """The settings that decide a result: ``neutral`` keys (at the top level and in ``classifier``) left out."""
    d = {k: v for k, v in json.loads(json.dumps(settings)).items() if k not in neutral}
    if isinstance(d.get("classifier"), dict):
        d["classifier"] = {k: v for k, v in d["classifier"].items() if k not in neutral}
    return d


def settings_digest(settings: dict, neutral: Iterable[str] = ()) -> str:
    """16 hex digits naming the settings a result depends on (``neutral`` ones left out); stored in each record."""
    text = json.dumps(_comparable(settings, neutral), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(run_dir: Path) -> dict:
    """The run's manifest, checked to be one: a JSON object with a ``settings`` object."""
    path = Path(run_dir) / "manifest.json"
    fix = "Restore it from a copy, or start a fresh run in a new --out."
    try:
        manifest = json.loads(read_run_file(path, MAX_MANIFEST_BYTES))
    except json.JSONDecodeError as e:
        raise ManifestMismatchError(f"{str(path)!r} is not valid JSON ({e.msg} at line {e.lineno}); it was damaged. "
                                    f"{fix}") from None
    except UnicodeDecodeError:
        raise ManifestMismatchError(f"{str(path)!r} is not text; it was damaged. {fix}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise ManifestMismatchError(f"{str(path)!r} holds no run settings (it was emptied or edited). {fix}")
    return manifest


def settings_differences(before: dict, now: dict, prefix: str = "") -> dict:
    """{setting: (old, new)} of the settings that differ, nested ones named 'classifier.batch_size'."""
    diff = {}
    for k in [*before, *(k for k in now if k not in before)]:
        old, new = before.get(k), now.get(k)
        if isinstance(old, dict) and isinstance(new, dict):
            diff.update(settings_differences(old, new, f"{prefix}{k}."))
        elif old != new:
            diff[f"{prefix}{k}"] = (old, new)
    return diff


def read_entries_file(path: Path, settings: dict, *, what: str) -> dict:
    """The results file a resumable job adds entries to: ``{"settings": ..., "entries": {...}}`` as stored at
    ``path`` (read as a run file: no links or FIFOs), or a fresh one when there is none. A file written with other
    ``settings`` is refused with the settings that differ, never added to."""
    if not (path.exists() or path.is_symlink()):
        return {"settings": settings, "entries": {}}
    stored = json.loads(read_run_file(path))
    if stored.get("settings") != settings:
        raise SystemExit(f"{path} holds {what} run with other settings (stored, asked: "
                         f"{settings_differences(stored.get('settings', {}), settings)}); use another --out or move "
                         f"the file away.")
    return stored


def write_manifest(run_dir: Path, settings: dict, *, neutral: Iterable[str] = ()) -> dict:
    """Create the manifest once (atomically: of ranks racing, exactly one creates it), or check that the existing
    one has the same settings, ``neutral`` ones aside; those (the run's extent) are updated to ``settings``'
    values, so the manifest describes the run as it now is."""
    path = Path(run_dir) / "manifest.json"
    manifest = {"format": FORMAT, "settings": settings, "neutral": list(neutral), "environment": environment(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if create_exclusively(path, lambda f: f.write(json.dumps(manifest, indent=1).encode())):
        return manifest
    old = read_manifest(run_dir)
    if old.get("format", 1) < FORMAT:
        raise ManifestMismatchError(
            f"{str(run_dir)!r} was written by an older dcanalysis (format {old.get('format', 1)}: records without the "
            f"settings digest and image identity this version checks). Run `dcanalysis upgrade {run_dir}` once (it "
            "re-checks every record against its image and label), then resume.")
    before, now = _comparable(old["settings"], neutral), _comparable(settings, neutral)
    if before != now:
        raise ManifestMismatchError(
            f"{str(run_dir)!r} holds a run with other settings {settings_differences(before, now)} (old, new); resume with "
            "the same settings or use a new --out.")
    _warn_on_other_versions(run_dir, old.get("environment", {}))
    extent = {k: settings[k] for k in neutral if k in settings and old["settings"].get(k) != settings[k]}
    if extent:
        old = {**old, "settings": {**old["settings"], **extent}}
        write_atomically(path, lambda f: f.write(json.dumps(old, indent=1).encode()))
    return old


def _warn_on_other_versions(run_dir: Path, recorded: dict) -> None:
    now = environment()
    other = {k: (recorded[k], now[k]) for k in ("torch", "diffusers") if k in recorded and recorded[k] != now[k]}
    if other:
        warnings.warn(f"{str(run_dir)!r} was started with {other} (recorded, now): its stored errors may differ from "
                      "this session's at float rounding. Resume with the recorded versions for one uniform run.",
                      stacklevel=3)


def repair_torn_tail(path: Path) -> None:
    """Make the file end on a line break before the next append: a last line that a kill left half-written is
    cut; a complete record that only lacks its line break gets one (it was counted as done)."""
    try:
        fd = open_run_file(path, os.O_RDWR)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "r+b") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        if _parse(data[cut:].decode(errors="replace")) is not None:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(cut)


def _parse(line: str) -> dict | None:
    """A record, or None for a line that is not one (torn, garbage, or without an id)."""
    try:
        r = json.loads(line)
    except json.JSONDecodeError:
        return None
    return r if isinstance(r, dict) and "id" in r else None


def records_files(run_dir: Path) -> list[tuple[int, Path]]:
    """(rank, path) of every records file, by rank."""
    found = []
    for path in Path(run_dir).glob("records-rank*.jsonl"):
        rank = path.stem.removeprefix("records-rank")
        if rank.isdigit():
            found.append((int(rank), path))
    return sorted(found)


def scan_records(run_dir: Path) -> tuple[dict, list[str]]:
    """The last record of every id over all ranks with the rank whose file holds it, and one line per problem
    found on the way (lines that are not records, an id recorded by two ranks): ({id: (rank, record)}, problems)."""
    records, problems = {}, []
    for rank, path in records_files(run_dir):
        data = read_run_file(path)
        lines = data.decode(errors="replace").splitlines()
        torn_tail = not data.endswith(b"\n")
        for n, line in enumerate(lines, start=1):
            r = _parse(line)
            if r is None:
                if not (torn_tail and n == len(lines)):  # a torn last line is a kill, not damage
                    problems.append(f"{path.name} line {n} is not a record (no JSON object with an id): {line[:60]!r}")
                continue
            key = json.dumps(r["id"]) if isinstance(r["id"], (list, dict)) else r["id"]  # hashable, as written
            if key in records and records[key][0] != rank:
                problems.append(f"id {r['id']!r} is recorded by ranks {records[key][0]} and {rank}")
            records[key] = (rank, r)
    return records, problems


def load_records(run_dir: Path) -> list[dict]:
    """All records of all ranks (the last of each id), sorted by id; lines that are not records are skipped
    (``runs.verify_run`` reports them). Reports should use ``runs.trusted_records``: only the run's own ids."""
    records, _ = scan_records(run_dir)
    return [records[k][1] for k in sorted(records, key=lambda k: (type(k).__name__, k))]


def table_name(item_id) -> str:
    """File name of an item's array: ``0000042.npy`` for an int id, the id with '/' as '__' for a string id."""
    return f"{item_id:07d}.npy" if isinstance(item_id, int) else f"{str(item_id).replace('/', '__')}.npy"


def table_paths(run_dir: Path, item_id) -> list[Path]:
    """Where an item's array may be: ``errors-rank*/NAME`` of every rank (a run resumed on another world size
    keeps earlier ranks' tables)."""
    return sorted(Path(run_dir).glob(f"errors-rank*/{table_name(item_id)}"))


def read_table(path: Path) -> np.ndarray:
    """One stored array (no links; never a pickle)."""
    fd = open_run_file(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return np.load(f, allow_pickle=False)


def load_packed_tables(run_dir: Path) -> dict:
    """{id: (candidates x trials) float16 table} from the run's ``tables.npz`` (a committed run keeps only that),
    or {} when there is none."""
    path = Path(run_dir) / "tables.npz"
    if not path.is_file():
        return {}
    with np.load(io.BytesIO(read_run_file(path)), allow_pickle=False) as z:
        return dict(zip(z["ids"].tolist(), z["errors"]))


def load_error_table(run_dir: Path, image_id) -> np.ndarray:
    """The (candidates x trials) error table of one image."""
    hits = table_paths(run_dir, image_id)
    if not hits:
        raise FileNotFoundError(f"no error table for image {image_id} in {run_dir}.")
    return read_table(hits[0])


class RunStore:
    """One rank's writer of a run directory (see the module docstring). Use as a context manager::

        with RunStore(run_dir, settings, rank=0) as store:
            for item in work:
                if item.id in store.done: continue
                store.save_table(item.id, errors)      # optional
                store.append([{"id": item.id, ...}])

    Opening checks that the directory is writable, takes the rank's lock, writes or checks the manifest, removes
    temporary files a kill left and repairs a torn last record line.
    """

    def __init__(self, run_dir: str | Path, settings: dict, *, rank: int = 0, neutral: Iterable[str] = ()):
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.rank = rank
        self.neutral = tuple(neutral)
        self.records_path = self.run_dir / f"records-rank{rank}.jsonl"
        self.table_dir = self.run_dir / f"errors-rank{rank}"
        self.digest = settings_digest(settings, self.neutral)
        self._lock = None
        self._out = None

    def __enter__(self) -> "RunStore":
        check_writable(self.run_dir)
        self._take_lock()
        try:
            remove_stale_temps(self.run_dir, f".records-rank{self.rank}.")
            remove_stale_temps(self.run_dir, f".damaged-rank{self.rank}.")
            remove_stale_temps(self.run_dir, ".manifest.json-", min_age_s=TEMP_AGE_S)  # another rank may be writing
            if os.path.lexists(self.table_dir):
                remove_stale_temps(run_subdir(self.table_dir, create=False))
            if not os.path.lexists(self.run_dir / "manifest.json"):
                self._check_orphan_records()
            self.manifest = write_manifest(self.run_dir, self.settings, neutral=self.neutral)
            repair_torn_tail(self.records_path)
            self._set_aside_damaged_lines()
            fd = open_run_file(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            self._out = os.fdopen(fd, "a")
        except BaseException:
            self._release()
            raise
        return self

    def _check_orphan_records(self) -> None:
        """Without a manifest the records decide: every one must name these settings, else nothing is written."""
        records, _ = scan_records(self.run_dir)
        other = [r["id"] for _, r in records.values() if r.get("run") != self.digest]
        if other:
            raise ManifestMismatchError(
                f"{str(self.run_dir)!r} has no manifest.json, and {len(other)} of its {len(records)} records (ids "
                f"{other[:3]}...) were not computed with these settings (or by a version that did not record them). "
                "Restore manifest.json and resume with its settings, or start a fresh run in a new --out.")

    def _set_aside_damaged_lines(self) -> None:
        """Move lines of this rank's file that are not records to ``damaged-rank{R}.jsonl`` (kept, not lost)."""
        try:
            data = read_run_file(self.records_path)
        except FileNotFoundError:
            return
        lines = data.decode(errors="replace").splitlines(keepends=True)
        bad = [ln for ln in lines if _parse(ln) is None]
        if not bad:
            return
        fd = open_run_file(self.run_dir / f"damaged-rank{self.rank}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a") as f:
            f.writelines(ln if ln.endswith("\n") else ln + "\n" for ln in bad)
        good = "".join(ln for ln in lines if _parse(ln) is not None)
        write_atomically(self.records_path, lambda f: f.write(good.encode()))
        log.warning("%s: %d line(s) that are not records moved to damaged-rank%d.jsonl", self.records_path.name,
                    len(bad), self.rank)

    def __exit__(self, *exc) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._release()

    def _take_lock(self) -> None:
        path = self.run_dir / f"lock-rank{self.rank}"
        fd = open_run_file(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunLockedError(f"{str(self.run_dir)!r} rank {self.rank} is being written by another process "
                                     f"(pid {holder}); wait for it to finish or stop it, or use another --out.") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock = fd

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    @property
    def done(self) -> set:
        """Ids with a record in any rank."""
        return {r["id"] for r in load_records(self.run_dir)}

    def records(self) -> list[dict]:
        return load_records(self.run_dir)

    def save_table(self, item_id, array: np.ndarray) -> None:
        """Store an item's array atomically (before its record, so a record always has its table)."""
        run_subdir(self.table_dir, create=True)
        write_atomically(self.table_dir / table_name(item_id), lambda f: np.save(f, array, allow_pickle=False))

    def append(self, records: list[dict]) -> None:
        """Write records, each one complete line, and have them on disk before returning."""
        for r in records:
            self._out.write(json.dumps({**r, "run": self.digest}) + "\n")
        self._out.flush()
        os.fsync(self._out.fileno())
