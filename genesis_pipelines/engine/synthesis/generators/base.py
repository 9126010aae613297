"""The base class every generator subclasses, and the registry that finds one by name.

A generator's saved folder is its JSON manifest (`generator.json`: format, method, state) beside its weights
(safetensors) or other data files; never a pickle. `BaseGenerator` writes and checks that folder once: the
public fit / sample / save / load run the checks (zero rows, not fitted, missing or corrupt manifest, another
format or method, a missing or unreadable file) and call the subclass's private hooks.
"""

from __future__ import annotations

import importlib
import json
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from genesis_pipelines.engine.core.errors import GenesisError, ModelError, SpecError
from genesis_pipelines.engine.core.schema import TableMeta

if TYPE_CHECKING:  # the registry is read at spec load, where the data stack must not load
    import pandas as pd

MANIFEST = "generator.json"
RETRAIN = "retrain the model (materialize the model asset)"


class PluginWarning(UserWarning):
    """A generator plugin (entry point) was left out: it failed to import or is not a BaseGenerator."""


class BaseGenerator(ABC):
    """fit / sample / save / load / describe, with the checks written once; a subclass gives

    - `name` (the method, set by `register` / `register_generator`) and `format` ("genesis.<kind>/<version>":
      bump the version when the saved state changes, so an older folder is refused rather than misread);
    - `files`: the data files saved beside the manifest (weights), checked present before a load;
    - `_fit(table, meta, device=, seed=)`, `_sample(n, conditions=, seed=)`, `fitted` and `describe()`;
    - `_state(directory) -> dict`: the manifest's JSON, after writing `files` into `directory` (safetensors, with
      atomic_path); `_from_state(state, directory, **options)`: the generator rebuilt from them. A KeyError,
      TypeError, ValueError, RuntimeError, OSError or safetensors error there is reported as a corrupt model.
    """

    name: ClassVar[str]
    format: ClassVar[str]
    files: ClassVar[tuple[str, ...]] = ()

    # -------------------------------------------------------------- the subclass's part

    @abstractmethod
    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str, seed: int) -> None: ...

    @abstractmethod
    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None, seed: int | None) -> pd.DataFrame: ...

    @property
    @abstractmethod
    def fitted(self) -> bool: ...

    @abstractmethod
    def describe(self) -> dict: ...

    def _state(self, directory: Path) -> dict:
        raise NotImplementedError(f"generator {self.name!r} defines no saved state (_state / _from_state)")

    @classmethod
    def _from_state(cls, state: dict, directory: Path, **options) -> Self:
        raise NotImplementedError(f"generator {cls.name!r} defines no saved state (_state / _from_state)")

    # -------------------------------------------------------------- the checks, once

    def fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> Self:
        if len(table) == 0:
            raise GenesisError(f"table {meta.name!r}: cannot fit a generator on zero rows")
        self._fit(table, meta, device=device, seed=seed)
        return self

    def require_fitted(self) -> None:
        if not self.fitted:
            raise ModelError(f"the {self.name} generator has not been fitted")

    def sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        self.require_fitted()
        return self._sample(n, conditions=conditions, seed=seed)

    def save(self, directory: Path) -> None:
        self.require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_manifest(directory, {"format": self.format, "method": self.name, **self._state(directory)})

    @classmethod
    def load(cls, directory: Path, **options) -> Self:
        from safetensors import SafetensorError

        directory = Path(directory)
        state = load_manifest(directory, cls.format, method=cls.name)
        for file in cls.files:
            if not (directory / file).is_file():
                raise ModelError(f"model file {directory / file} is missing: {RETRAIN}")
        try:
            return cls._from_state(state, directory, **options)
        except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as exc:
            raise ModelError(f"model in {directory} is incomplete or corrupt ({type(exc).__name__}): retrain it") from None


def sample_columns(generator, n: int, columns: list[str], *, conditions: dict | pd.DataFrame | None = None,
                   seed: int | None = None) -> pd.DataFrame:
    """`columns` (those the generator has) of n sampled rows: drawn alone where the generator's class can (a
    `sample_columns` method, such as the copula's), else selected from whole sampled rows. Looked up on the class,
    so a wrapper that forwards attributes (a conditioned or constrained generator) samples whole rows its own way."""
    if callable(getattr(type(generator), "sample_columns", None)):
        return generator.sample_columns(n, list(columns), conditions=conditions, seed=seed)
    out = generator.sample(n, conditions=conditions, seed=seed)
    return out[[c for c in columns if c in out.columns]]


def sample_columns_stream(generator, n: int, columns: list[str], conditions_of, *, seed: int | None = None):
    """sample_columns of n rows whose conditions come piece by piece (`conditions_of(start, stop)`: the frame of
    rows start..stop, or None), as an iterator of consecutive pieces: the rows sample_columns gives for the whole
    frame. A class with its own `sample_columns_stream` (the copula) draws them piece by piece, memory bounded by a
    piece; any other generator gets the whole frame in one call (one piece)."""
    if callable(getattr(type(generator), "sample_columns_stream", None)):
        yield from generator.sample_columns_stream(n, list(columns), conditions_of, seed=seed)
        return
    yield sample_columns(generator, n, columns, conditions=conditions_of(0, n), seed=seed)


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

    The class subclasses BaseGenerator (or a built-in generator); a class attribute
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
        if not (isinstance(cls, type) and issubclass(cls, BaseGenerator)):
            raise SpecError(f"generator {name!r}: {getattr(cls, '__name__', cls)!r} must subclass BaseGenerator "
                            "(genesis_pipelines.plugins)")
        if name in _BUILT_IN or (_REGISTRY.get(name) not in (None, cls)
                                 and getattr(_REGISTRY[name], "__module__", "").startswith("genesis_pipelines.")):
            raise SpecError(f"generator {name!r} is built in: choose another name")
        cls.name = name
        return register(cls)

    return decorate


def _leave_out(point, error: str, why: str) -> None:
    """A plugin left out: recorded by entry point name and error type (never the message, which may quote data),
    and a PluginWarning naming both, so the CLI and the code location go on with the other methods."""
    _plugin_errors[point.name] = error
    warnings.warn(f"generator plugin {point.name!r} (entry point {point.value!r} in group {ENTRY_POINT_GROUP}) "
                  f"{why} ({error}): it is left out, the other generators are available", PluginWarning, stacklevel=3)


def load_plugins() -> dict[str, str]:
    """Import the generators other installed packages declare (entry-point group genesis_pipelines.generators),
    once. A plugin that fails to import, or is not a BaseGenerator subclass, is left out with a PluginWarning and
    named in the returned {entry point: error type}, never fatal; one whose name is built in is left out too."""
    global _plugins_loaded
    if _plugins_loaded:
        return dict(_plugin_errors)
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
        except (Exception, SystemExit) as exc:  # a broken plugin never stops the built-in methods
            _leave_out(point, type(exc).__name__, "failed to import")
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseGenerator)):
            _leave_out(point, "TypeError", "is not a subclass of genesis_pipelines.plugins.BaseGenerator")
        elif point.name in _BUILT_IN or (point.name in _REGISTRY and _REGISTRY[point.name] is not cls):
            _leave_out(point, "NameError", "takes the name of a generator already registered")
        else:
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


def create_generator(method: str, **settings) -> BaseGenerator:
    cls = registered_class(method)
    if cls is None:
        raise SpecError(f"generator {method!r} is unknown; available: {', '.join(available_methods())}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise SpecError(f"generator {method!r}: bad settings ({exc})") from None


def save_manifest(directory: Path, payload: dict) -> None:
    from genesis_pipelines.engine.sources.io import write_json

    write_json(Path(directory) / MANIFEST, payload)


def load_manifest(directory: Path, expected_format: str | None = None, *, method: str | None = None) -> dict:
    """A saved generator's JSON manifest; a missing or corrupt file, or (when given) another `expected_format` or
    `method`, is a ModelError asking for a retraining. BaseGenerator.load calls it; load_generator reads the method."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: {RETRAIN}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"model file {path} is corrupt: {RETRAIN}") from None
    if not isinstance(data, dict):
        raise ModelError(f"model file {path} is corrupt: {RETRAIN}")
    if expected_format is not None and data.get("format") != expected_format:
        raise ModelError(f"model in {directory} has format {data.get('format')!r}, expected {expected_format!r}: "
                         "retrain it")
    if method is not None and data.get("method") != method:
        raise ModelError(f"model in {directory} was saved by generator {data.get('method')!r}, not {method!r}: "
                         "load it with load_generator or retrain it")
    return data


def load_generator(directory: Path) -> BaseGenerator:
    manifest = load_manifest(directory)
    method = manifest.get("method")
    cls = registered_class(method)
    if cls is None:
        raise ModelError(f"model in {directory} uses generator {method!r}, which this version does not provide: retrain it")
    return cls.load(Path(directory))
