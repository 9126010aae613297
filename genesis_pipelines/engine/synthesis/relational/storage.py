"""Model versions on disk: LATEST, loading model.json, and the guards stored beside it."""

from __future__ import annotations

import json
from pathlib import Path

from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.privacy import record_guard
from genesis_pipelines.engine.sources.io import write_json
from genesis_pipelines.engine.synthesis.relational.model import FORMAT, RelationalModel


def latest_version(model_root: Path) -> str:
    pointer = Path(model_root) / "LATEST.json"
    if not pointer.is_file():
        raise ModelError(f"no trained model under {model_root}: train or retrain the model (materialize the model asset)")
    try:
        return json.loads(pointer.read_text())["version"]
    except (json.JSONDecodeError, KeyError):
        raise ModelError(f"model pointer {pointer} is corrupt: retrain the model") from None


def set_latest(model_root: Path, version: str) -> None:
    """Make `version` the latest model: one atomic write of LATEST.json."""
    write_json(Path(model_root) / "LATEST.json", {"version": version})


def load_model(model_root: Path, version: str | None = None) -> tuple[RelationalModel, Path]:
    version = version or latest_version(model_root)
    directory = Path(model_root) / version
    path = directory / "model.json"
    if not path.is_file():
        raise ModelError(f"model version {version} is missing from {model_root}: retrain the model")
    try:
        model = RelationalModel.model_validate_json(path.read_text(encoding="utf-8"))
    except Exception:
        raise ModelError(f"model version {version} in {model_root} is corrupt or from an incompatible release: retrain it") from None
    if model.format != FORMAT:
        raise ModelError(f"model version {version} has format {model.format!r}, expected {FORMAT!r}: retrain it")
    return model, directory


def _load_guard_file(model: RelationalModel, directory: Path, name: str):
    try:
        return json.loads((Path(directory) / name).read_text())
    except (OSError, json.JSONDecodeError):
        raise ModelError(f"model version {model.version}: {name} is missing or corrupt: retrain the model") from None


def load_pii_guard(model: RelationalModel, directory: Path) -> record_guard.HashedValueSet:
    return record_guard.HashedValueSet(model.pii_guard_salt, set(_load_guard_file(model, directory, "pii_guard.json")))


def load_copy_guard(model: RelationalModel, directory: Path, table: str) -> record_guard.RecordDigests:
    return record_guard.RecordDigests(_load_guard_file(model, directory, "record_guard.json").get(table, []))


def comparison_exclusions(model: RelationalModel) -> dict[str, set[str]]:
    return record_guard.comparison_exclusions(model.db_schema, model.pii)
