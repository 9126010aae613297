"""The interface every generator implements, and the registry that finds one by name."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import pandas as pd

from genesis_pipelines.engine.core.errors import ModelError, SpecError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.sources.io import write_json

MANIFEST = "generator.json"


@runtime_checkable
class Generator(Protocol):
    name: ClassVar[str]

    def fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None: ...

    def sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Generator: ...

    def describe(self) -> dict: ...


def sample_columns(generator, n: int, columns: list[str], *, conditions: dict | pd.DataFrame | None = None,
                   seed: int | None = None) -> pd.DataFrame:
    """`columns` (those the generator has) of n sampled rows: drawn alone where the generator's class can (a
    `sample_columns` method, such as the copula's), else selected from whole sampled rows. Looked up on the class,
    so a wrapper that forwards attributes (a conditioned or constrained generator) samples whole rows its own way."""
    if callable(getattr(type(generator), "sample_columns", None)):
        return generator.sample_columns(n, list(columns), conditions=conditions, seed=seed)
    out = generator.sample(n, conditions=conditions, seed=seed)
    return out[[c for c in columns if c in out.columns]]


_REGISTRY: dict[str, type] = {}
PARENT_FEATURE_PREFIX = "__parent."  # relational.model.FEATURE_PREFIX: the columns a child's model gets from its parent
ENTRY_POINT_GROUP = "genesis_pipelines.generators"
_plugins_loaded = False
_plugin_errors: dict[str, str] = {}  # entry point name -> exception class (never a message)
# built-in methods by module, imported on first use: torch, sklearn and SDV load only when a step needs them
_BUILT_IN = {
    "gaussian_copula": "gaussian_copula", "dp_gaussian_copula": "dp_copula", "auto": "auto",
    "autoregressive": "autoregressive", "dp_autoregressive": "autoregressive", "ctgan": "ctgan", "tvae": "tvae",
    "dp_ctgan": "dp_neural", "dp_tvae": "dp_neural", "dp_marginals": "dp_marginals",
    "sdv_gaussian_copula": "sdv_backend", "sdv_ctgan": "sdv_backend", "sdv_tvae": "sdv_backend",
}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def register_generator(name: str):
    """Class decorator: make a third-party generator available as method `name` (spec, `auto`, model metadata).

    The class implements the Generator protocol (fit / sample / save / load / describe); a class attribute
    `auto_candidate = True` adds it to the methods `auto` compares. Another package exposes it through the
    entry-point group `genesis_pipelines.generators` (`name = "package.module:Class"`), loaded on first use.

    >>> from genesis_pipelines import register_generator
    >>> from genesis_pipelines.engine.synthesis.generators import GaussianCopulaGenerator, available_methods
    >>> @register_generator("my_copula")
    ... class MyCopula(GaussianCopulaGenerator):
    ...     pass
    >>> "my_copula" in available_methods()
    True
    """
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise SpecError(f"generator name {name!r} must be letters, digits and underscores")

    def decorate(cls: type) -> type:
        if name in _BUILT_IN or (_REGISTRY.get(name) not in (None, cls)
                                 and getattr(_REGISTRY[name], "__module__", "").startswith("genesis_pipelines.")):
            raise SpecError(f"generator {name!r} is built in: choose another name")
        cls.name = name
        return register(cls)

    return decorate


def load_plugins() -> dict[str, str]:
    """Import the generators other installed packages declare (entry-point group genesis_pipelines.generators),
    once; a plugin that fails to import is left out and named in the returned errors, never fatal."""
    global _plugins_loaded
    if _plugins_loaded:
        return dict(_plugin_errors)
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
        except Exception as exc:  # a broken plugin never stops the built-in methods
            _plugin_errors[point.name] = exc.__class__.__name__
            continue
        if isinstance(cls, type) and point.name not in _REGISTRY and point.name not in _BUILT_IN:
            if getattr(cls, "name", None) != point.name:
                cls.name = point.name
            register(cls)
    return dict(_plugin_errors)


def auto_candidates() -> list[str]:
    """Registered third-party methods that ask to be compared by `auto` (class attribute auto_candidate = True)."""
    load_plugins()
    return sorted(n for n, cls in _REGISTRY.items() if getattr(cls, "auto_candidate", False)
                  and not getattr(cls, "__module__", "").startswith("genesis_pipelines.engine."))


def registered_class(method: object) -> type | None:
    """The class of `method`: a built-in module is imported on first use, plugins are looked up once."""
    if method not in _REGISTRY and method in _BUILT_IN:
        importlib.import_module(f"genesis_pipelines.engine.synthesis.generators.{_BUILT_IN[method]}")
    if method not in _REGISTRY:
        load_plugins()
    return _REGISTRY.get(method)


def available_methods() -> list[str]:
    load_plugins()
    return sorted(set(_REGISTRY) | set(_BUILT_IN))


def check_methods(methods: dict[str, str]) -> None:
    """Refuse, before any work, a method neither built in nor registered by an installed plugin.

    `methods` maps where each name was given (a spec field such as `generator.tables.Track`) to the name, so the
    error names the field. Built-in modules are not imported: this runs at spec load, where torch must not load.
    """
    known = set(_BUILT_IN) | set(_REGISTRY)
    unknown = {field: name for field, name in methods.items() if name not in known}
    if unknown:
        load_plugins()
        unknown = {field: name for field, name in unknown.items() if name not in _REGISTRY}
    if unknown:
        field, name = next(iter(unknown.items()))
        raise SpecError(f"{field}: generator {name!r} is unknown; available: {', '.join(available_methods())}")


def create_generator(method: str, **settings) -> Generator:
    cls = registered_class(method)
    if cls is None:
        raise SpecError(f"generator {method!r} is unknown; available: {', '.join(available_methods())}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise SpecError(f"generator {method!r}: bad settings ({exc})") from None


def save_manifest(directory: Path, payload: dict) -> None:
    write_json(Path(directory) / MANIFEST, payload)


def load_manifest(directory: Path, expected_format: str | None = None, *, method: str | None = None) -> dict:
    """A saved generator's JSON manifest; the format check every generator's load makes, once: a missing or corrupt
    file, or (when given) another `expected_format` or `method`, is a ModelError asking for a retraining."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: retrain the model (materialize the model asset)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"model file {path} is corrupt: retrain the model (materialize the model asset)") from None
    if expected_format is not None and (data.get("format") != expected_format
                                        or (method is not None and data.get("method") != method)):
        raise ModelError(f"model in {directory} has format {data.get('format')!r}, expected {expected_format!r}: "
                         "retrain it")
    return data


def load_generator(directory: Path) -> Generator:
    manifest = load_manifest(directory)
    method = manifest.get("method")
    cls = registered_class(method)
    if cls is None:
        raise ModelError(f"model in {directory} uses generator {method!r}, which this version does not provide: retrain it")
    return cls.load(Path(directory))
