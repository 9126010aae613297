"""The interface every generator implements, and the registry that finds one by name."""

from __future__ import annotations

import importlib

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
# built-in methods by module, imported on first use: torch, sklearn and SDV load only when a step needs them
_BUILT_IN = {
    "gaussian_copula": "gaussian_copula", "dp_gaussian_copula": "dp_copula", "auto": "auto",
    "autoregressive": "autoregressive", "dp_autoregressive": "autoregressive", "ctgan": "ctgan", "tvae": "tvae",
    "dp_ctgan": "dp_neural", "dp_tvae": "dp_neural",
    "sdv_gaussian_copula": "sdv_backend", "sdv_ctgan": "sdv_backend", "sdv_tvae": "sdv_backend",
}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def _registered(method: object) -> type | None:
    if method not in _REGISTRY and method in _BUILT_IN:
        importlib.import_module(f"genesis_pipelines.engine.generators.{_BUILT_IN[method]}")
    return _REGISTRY.get(method)


def available_methods() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILT_IN))


def create_generator(method: str, **settings) -> Generator:
    cls = _registered(method)
    if cls is None:
        raise SpecError(f"generator {method!r} is unknown; available: {', '.join(available_methods())}")
    try:
        return cls(**settings)
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
    cls = _registered(method)
    if cls is None:
        raise ModelError(f"model in {directory} uses generator {method!r}, which this version does not provide: retrain it")
    return cls.load(Path(directory))
