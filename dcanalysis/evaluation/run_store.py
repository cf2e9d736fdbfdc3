"""The one crash-safe run store: a directory of results written as they are computed, resumable, never mixed.

A run directory holds
- ``manifest.json``: the settings every result depends on (model, classifier config, candidates, seed, ...),
  the software versions and the device. Opening the store with other settings is refused, so one directory never
  mixes two experiments; settings named in ``neutral`` (how work is batched) may differ between sessions.
- ``records-rank{R}.jsonl``: one JSON line per finished item (an ``"id"``, the ``"run"`` digest of the settings
  it was computed with, and whatever the caller records), flushed and fsynced before the next item starts. A line
  cut by a kill is dropped on reading and cut off before the next append, so the worst a crash costs is the items
  in flight. A later record of an id supersedes an earlier one (a recomputed item). Lines that are not records
  (garbage, edits) are moved to ``damaged-rank{R}.jsonl`` when the rank is opened again, never silently kept.
  The records are the truth: a lost manifest is rebuilt only if every record names the same settings.
- ``errors-rank{R}/{id}.npy``: optional per-item arrays (the classifier's error tables), written atomically.
- ``lock-rank{R}``: held (``flock``) by the process writing rank R; a second writer of that rank is refused.

``runs.run_dataset`` (image datasets) and ``lab.scene_eval`` (the scene lab) both write through ``RunStore``.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..exceptions import ManifestMismatchError, RunLockedError


def environment() -> dict:
    import diffusers

    return {
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else (platform.processor() or "cpu"),
    }


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


def write_atomically(path: Path, write) -> None:
    """Write a file through a fresh temporary name beside it (``mkstemp``: created exclusively, never an existing
    file or a planted link), then rename it into place. ``write(file object)`` writes the bytes."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _comparable(settings: dict, neutral: Iterable[str]) -> dict:
    d = json.loads(json.dumps(settings))
    if isinstance(d.get("classifier"), dict):
        d["classifier"] = {k: v for k, v in d["classifier"].items() if k not in neutral}
    return d


def settings_digest(settings: dict, neutral: Iterable[str] = ()) -> str:
    """16 hex digits naming the settings a result depends on (``neutral`` ones left out); stored in each record."""
    text = json.dumps(_comparable(settings, neutral), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestMismatchError(f"{str(path)!r} is not valid JSON ({e.msg} at line {e.lineno}); it was damaged. "
                                    "Restore it, or start a fresh run in a new --out.") from None


def write_manifest(run_dir: Path, settings: dict, *, neutral: Iterable[str] = ()) -> dict:
    """Create the manifest, or check that an existing one has the same settings (``neutral`` ones aside)."""
    path = run_dir / "manifest.json"
    if path.is_file():
        old = read_manifest(run_dir)
        before, now = _comparable(old["settings"], neutral), _comparable(settings, neutral)
        if before != now:
            diff = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
            diff.update({k: (v, None) for k, v in before.items() if k not in now})
            raise ManifestMismatchError(
                f"{str(run_dir)!r} holds a run with other settings {diff} (old, new); resume with the same settings "
                "or use a new --out."
            )
        return old
    manifest = {"settings": settings, "environment": environment(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomically(path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    return manifest


def repair_torn_tail(path: Path) -> None:
    """Make the file end on a line break before the next append: a last line that a kill left half-written is
    cut; a complete record that only lacks its line break gets one (it was counted as done)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    if _parse(data[cut:].decode(errors="replace")) is not None:
        with open(path, "ab") as f:
            f.write(b"\n")
    else:
        with open(path, "r+b") as f:
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
        data = path.read_bytes()
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
    (``runs.verify_run`` reports them)."""
    records, _ = scan_records(run_dir)
    return [records[k][1] for k in sorted(records, key=lambda k: (type(k).__name__, k))]


def table_name(item_id) -> str:
    """File name of an item's array: ``0000042.npy`` for an int id, the id with '/' as '__' for a string id."""
    return f"{item_id:07d}.npy" if isinstance(item_id, int) else f"{str(item_id).replace('/', '__')}.npy"


def load_error_table(run_dir: Path, image_id) -> np.ndarray:
    """The (candidates x trials) error table of one image."""
    hits = list(Path(run_dir).glob(f"errors-rank*/{table_name(image_id)}"))
    if not hits:
        raise FileNotFoundError(f"no error table for image {image_id} in {run_dir}.")
    return np.load(hits[0], allow_pickle=False)


class RunStore:
    """One rank's writer of a run directory (see the module docstring). Use as a context manager::

        with RunStore(run_dir, settings, rank=0) as store:
            for item in work:
                if item.id in store.done: continue
                store.save_table(item.id, errors)      # optional
                store.append([{"id": item.id, ...}])

    Opening checks that the directory is writable, takes the rank's lock, writes or checks the manifest and
    repairs a torn last record line.
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
            if not (self.run_dir / "manifest.json").is_file():
                self._check_orphan_records()
            self.manifest = write_manifest(self.run_dir, self.settings, neutral=self.neutral)
            repair_torn_tail(self.records_path)
            self._set_aside_damaged_lines()
            self._out = open(self.records_path, "a")
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
        if not self.records_path.is_file():
            return
        lines = self.records_path.read_text(errors="replace").splitlines(keepends=True)
        bad = [ln for ln in lines if _parse(ln) is None]
        if not bad:
            return
        with open(self.run_dir / f"damaged-rank{self.rank}.jsonl", "a") as f:
            f.writelines(ln if ln.endswith("\n") else ln + "\n" for ln in bad)
        good = "".join(ln for ln in lines if _parse(ln) is not None)
        write_atomically(self.records_path, lambda f: f.write(good.encode()))
        print(f"{self.records_path.name}: {len(bad)} line(s) that are not records moved to damaged-rank{self.rank}.jsonl")

    def __exit__(self, *exc) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._release()

    def _take_lock(self) -> None:
        path = self.run_dir / f"lock-rank{self.rank}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
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
        self.table_dir.mkdir(exist_ok=True)
        write_atomically(self.table_dir / table_name(item_id), lambda f: np.save(f, array, allow_pickle=False))

    def append(self, records: list[dict]) -> None:
        """Write records, each one complete line, and have them on disk before returning."""
        for r in records:
            self._out.write(json.dumps({**r, "run": self.digest}) + "\n")
        self._out.flush()
        os.fsync(self._out.fileno())
