"""Change detection for the new-data sensor: which source files changed, by content, once they are complete.

Pure functions over a JSON cursor, so the Dagster sensor stays thin and the logic is testable without Dagster.
A file counts as complete when its size and modification time are unchanged since the previous poll, or when
the source's marker file (`_SUCCESS`) is at least as new as it. A complete file is compared by content: the
sha256 of its bytes (hashed in chunks), or the ETag of an S3 object; a touched file with the same bytes is no change.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.sources.locations import list_s3_objects, s3_key, s3_prefix, source_file

CURSOR_FORMAT = 1
CHUNK_BYTES = 1 << 20
RACY_NS = 2_000_000_000  # a file modified this close to its hashing is hashed again (git's "racy clean" rule)


@dataclass(frozen=True)
class Observation:
    key: str  # local path or S3 key
    tables: tuple[str, ...]
    size: int
    stamp: int  # modification time, nanoseconds
    token: str | None = None  # S3 ETag; local files are hashed only when needed


@dataclass
class Poll:
    changed_tables: list[str]
    run_key: str | None
    cursor: dict
    waiting: list[str] = field(default_factory=list)  # files still being written (or not yet seen twice)
    missing: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def watched_keys(spec: DatasetSpec, tables: list[str]) -> dict[str, tuple[str, ...]]:
    """File (or S3 key) -> the tables it holds: one DuckDB file holds them all."""
    if spec.source.kind == "duckdb":
        return {str(spec.source_path): tuple(tables)}
    if spec.source.is_s3:
        return {s3_key(spec, t): (t,) for t in tables}
    return {str(source_file(spec, t)): (t,) for t in tables}


def observe(spec: DatasetSpec, tables: list[str]) -> tuple[dict[str, Observation], int | None]:
    """Cheap look at every watched file (stat / one S3 listing) and the marker's time, if there is a marker."""
    keys = watched_keys(spec, tables)
    seen: dict[str, Observation] = {}
    if spec.source.is_s3:
        listing = list_s3_objects(spec)
        for key, tabs in keys.items():
            if key in listing:
                obj = listing[key]
                seen[key] = Observation(key, tabs, obj["size"], _ns(obj["modified"]), obj["etag"])
        marker = listing.get(s3_prefix(spec) + spec.source.watch.marker)
        return seen, _ns(marker["modified"]) if marker else None
    for key, tabs in keys.items():
        path = Path(key)
        if path.is_file():
            st = path.stat()
            seen[key] = Observation(key, tabs, st.st_size, st.st_mtime_ns)
    folder = spec.source_path.parent if spec.source.kind == "duckdb" else spec.source_path
    marker_path = folder / spec.source.watch.marker
    return seen, marker_path.stat().st_mtime_ns if marker_path.is_file() else None


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000_000)


def load_cursor(text: str | None) -> dict:
    """A cursor from another format (or none) starts afresh: every file is then new once."""
    try:
        cursor = json.loads(text) if text else {}
    except json.JSONDecodeError:
        cursor = {}
    if cursor.get("format") != CURSOR_FORMAT:
        cursor = {"format": CURSOR_FORMAT, "files": {}, "seen": {}}
    return cursor


def poll(spec: DatasetSpec, tables: list[str], cursor: dict) -> Poll:
    """Compare what is there now with the cursor; returns the changed tables and the next cursor."""
    observed, marker_stamp = observe(spec, tables)
    files = dict(cursor.get("files", {}))
    previous_seen = cursor.get("seen", {})
    seen: dict[str, dict] = {}
    changed: dict[str, str] = {}
    waiting: list[str] = []
    for key, obs in observed.items():
        now = {"size": obs.size, "stamp": obs.stamp}
        seen[key] = now
        stable = previous_seen.get(key) == now or (marker_stamp is not None and marker_stamp >= obs.stamp)
        if not stable:
            waiting.append(key)
            continue
        committed = files.get(key)
        if (obs.token is None and committed and committed["size"] == obs.size and committed["stamp"] == obs.stamp
                and committed.get("hashed_at", 0) - obs.stamp > RACY_NS):
            continue  # untouched since it was hashed (and not rewritten within the clock's resolution of that)
        token = obs.token or file_sha256(Path(key))
        files[key] = {"hash": token, **now, "hashed_at": time.time_ns()}
        if not committed or committed["hash"] != token:
            changed[key] = token
    changed_tables = sorted({t for key in changed for t in observed[key].tables})
    run_key = None
    if changed:
        digest = hashlib.sha256(json.dumps(sorted(changed.items())).encode()).hexdigest()[:16]
        run_key = f"{spec.name}-new-data-{digest}"
    return Poll(
        changed_tables=changed_tables, run_key=run_key,
        cursor={"format": CURSOR_FORMAT, "files": files, "seen": seen},
        waiting=sorted(waiting), missing=sorted(set(watched_keys(spec, tables)) - set(observed)),
    )
