"""Versions and lineage: the code version of the engine, and score deltas between two model versions' reports."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import genesis_pipelines

ENGINE_DIR = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def engine_code_version() -> str:
    """`<package version>+<hash of the engine's .py files>`: any change to the engine makes outputs stale."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        digest.update(path.relative_to(ENGINE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{genesis_pipelines.__version__}+{digest.hexdigest()[:10]}"


def _numeric_leaves(report: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = float(value)
        elif isinstance(value, dict):
            out.update(_numeric_leaves(value, f"{name}."))
    return out


def compare_reports(a: dict, b: dict) -> dict:
    """Score deltas (b - a) for every numeric field two reports share, plus the fields only one of them has.

    Reports carry aggregates only, so the comparison does too; `model_version` names both sides.
    """
    left, right = _numeric_leaves(a), _numeric_leaves(b)
    shared = sorted(set(left) & set(right))
    return {
        "model_versions": [a.get("model_version"), b.get("model_version")],
        "deltas": {k: right[k] - left[k] for k in shared},
        "values": {k: [left[k], right[k]] for k in shared},
        "only_in_a": sorted(set(left) - set(right)),
        "only_in_b": sorted(set(right) - set(left)),
    }
