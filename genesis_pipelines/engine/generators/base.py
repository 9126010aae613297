"""The interface every generator implements, and the registry that finds one by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import pandas as pd

from genesis_pipelines.engine.errors import ModelError, SpecError
from genesis_pipelines.engine.io import write_json
from genesis_pipelines.engine.schema import TableMeta

MANIFEST = "generator.json"


@runtime_checkable
class Generator(Protocol):
    name: ClassVar[str]

    def fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None: ...

    def sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> "Generator": ...

    def describe(self) -> dict: ...


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def create_generator(method: str, **settings) -> Generator:
    if method not in _REGISTRY:
        raise SpecError(f"generator {method!r} is unknown; available: {', '.join(available_methods())}")
    try:
        return _REGISTRY[method](**settings)
    except TypeError as exc:
        raise SpecError(f"generator {method!r}: bad settings ({exc})") from None


def save_manifest(directory: Path, payload: dict) -> None:
    write_json(Path(directory) / MANIFEST, payload)


def load_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: retrain the model (materialize the model asset)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"model file {path} is corrupt: retrain the model (materialize the model asset)") from None


def load_generator(directory: Path) -> Generator:
    manifest = load_manifest(directory)
    method = manifest.get("method")
    if method not in _REGISTRY:
        raise ModelError(f"model in {directory} uses generator {method!r}, which this version does not provide: retrain it")
    return _REGISTRY[method].load(Path(directory))
