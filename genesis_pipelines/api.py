"""The Python SDK: synthetic data from DataFrames, without a spec file, a warehouse or Dagster.

Built on the pipeline's own engine functions (engine/pipeline.py, schema, pii, relational, evaluation): a model
fitted here is the model the pipeline would train on the same tables, saved in the same format (JSON +
safetensors weights, never pickle), and the reports are the pipeline's reports.

>>> import pandas as pd
>>> from genesis_pipelines import SyntheticGenerator
>>> df = pd.DataFrame({"age": [23, 35, 47, 51, 62] * 20, "city": ["Oslo", "Rome", "Lima", "Oslo", "Rome"] * 20})
>>> synthetic = SyntheticGenerator(method="gaussian_copula", seed=0).fit(df).generate(n_samples=50)
>>> len(synthetic), sorted(synthetic.columns)
(50, ['age', 'city'])
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from genesis_pipelines.engine.core.errors import ModelError, SpecError
from genesis_pipelines.engine.core.spec import column_ref, split_ref

__all__ = [
    "Constraint", "MultiTableSynthesizer", "PrivacyConfig", "PrivacyEvaluator", "PrivacyReport", "QualityEvaluator",
    "QualityReport", "SyntheticGenerator", "auto_synthesize", "check_k_anonymity", "KAnonymityResult",
]

DATASET = "sdk"  # the dataset name of an in-memory model (warehouse-free, so it names nothing on disk)
DEFAULT_TABLE = "data"
SAVED_FORMAT = "genesis.sdk/1"
DP_VARIANTS = {"gaussian_copula": "dp_gaussian_copula", "ctgan": "dp_ctgan", "tvae": "dp_tvae",
               "autoregressive": "dp_autoregressive"}


# ---------------------------------------------------------------- configuration helpers


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential privacy for a generator: `enable_differential_privacy=True` trains the method's DP variant
    (gaussian_copula -> dp_gaussian_copula, ctgan -> dp_ctgan, tvae -> dp_tvae, autoregressive ->
    dp_autoregressive) with this `epsilon` and `delta` (None: the method's default).

    >>> from genesis_pipelines import PrivacyConfig
    >>> PrivacyConfig(enable_differential_privacy=True, epsilon=1.0).method_and_settings("ctgan", {})
    ('dp_ctgan', {'epsilon': 1.0})
    """

    enable_differential_privacy: bool = False
    epsilon: float = 1.0
    delta: float | None = None

    def method_and_settings(self, method: str, settings: Mapping[str, Any]) -> tuple[str, dict]:
        settings = dict(settings)
        if not self.enable_differential_privacy:
            return method, settings
        if not self.epsilon or self.epsilon <= 0:
            raise SpecError(f"PrivacyConfig: epsilon must be positive, got {self.epsilon}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise SpecError(f"PrivacyConfig: delta must be in (0, 1), got {self.delta}")
        dp_method = method if method in DP_VARIANTS.values() else DP_VARIANTS.get(method)
        if dp_method is None:
            raise SpecError(f"PrivacyConfig: method {method!r} has no differentially private variant; one of "
                            f"{', '.join(sorted(DP_VARIANTS))}")
        settings["epsilon"] = float(self.epsilon)
        if self.delta is not None:
            settings["delta"] = float(self.delta)
        return dp_method, settings


@dataclass(frozen=True)
class Constraint:
    """A rule every generated row obeys, as one entry of a spec's `constraints:` list (engine/core/constraint_spec.py).
    `table` may be left out for a single-table generator.

    >>> from genesis_pipelines import Constraint
    >>> Constraint.range("age", low=18, high=90).to_spec("people")
    {'kind': 'range', 'low': 18, 'high': 90, 'column': 'age', 'table': 'people'}
    """

    kind: str
    fields: tuple = ()
    table: str | None = None

    @classmethod
    def _make(cls, kind: str, table: str | None, **values) -> Constraint:
        return cls(kind, tuple((k, v) for k, v in values.items()), table)

    @classmethod
    def positive(cls, column: str, *, strict: bool = True, table: str | None = None) -> Constraint:
        """column > 0 (strict=False: >= 0)."""
        return cls._make("positive", table, column=column, strict=strict)

    @classmethod
    def range(cls, column: str, low: float | None = None, high: float | None = None, *, strict: bool = False,
              table: str | None = None) -> Constraint:
        """low <= column <= high (either bound may be None)."""
        values = {k: v for k, v in (("low", low), ("high", high)) if v is not None}
        return cls._make("range", table, **values, column=column, **({"strict": True} if strict else {}))

    @classmethod
    def unique(cls, *columns: str, table: str | None = None) -> Constraint:
        """No two rows share these columns' values."""
        return cls._make("unique", table, columns=list(columns))

    @classmethod
    def fixed_combinations(cls, *columns: str, table: str | None = None) -> Constraint:
        """Only combinations of these columns seen in the real rows."""
        return cls._make("fixed_combinations", table, columns=list(columns))

    @classmethod
    def inequality(cls, low_column: str, high_column: str, *, strict: bool = False, table: str | None = None) -> Constraint:
        """low_column <= high_column (strict: <)."""
        return cls._make("inequality", table, low_column=low_column, high_column=high_column, strict=strict)

    @classmethod
    def predicate(cls, expression: str, *, table: str | None = None) -> Constraint:
        """A row predicate in pandas' expression syntax, e.g. "(discount <= price) | (price == 0)"."""
        return cls._make("predicate", table, expression=expression)

    def to_spec(self, table: str | None = None) -> dict:
        target = self.table or table
        if target is None:
            raise SpecError(f"constraint {self.kind}: name its table (table=...) for a multi-table synthesizer")
        return {"kind": self.kind, **dict(self.fields), "table": target}


# ---------------------------------------------------------------- the model behind both synthesizers


def _as_frame(df, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    return df


def _build_spec(tables: Mapping[str, pd.DataFrame], *, method: str, seed: int, settings: Mapping[str, Any],
                privacy: PrivacyConfig | None, constraints, pii: Mapping[str, str] | None,
                primary_keys: Mapping[str, Any] | None = None, foreign_keys=None, methods: Mapping[str, str] | None = None,
                holdout_fraction: float = 0.2, single: str | None = None):
    """The dataset spec the pipeline would read for these tables: keys declared or left to inference, the
    generator, constraints and PII policies (default `fake`, as in the pipeline)."""
    from genesis_pipelines.engine.core.spec import parse_spec

    method, settings = (privacy or PrivacyConfig()).method_and_settings(method, settings)
    data: dict[str, Any] = {
        "name": DATASET, "seed": int(seed), "holdout_fraction": holdout_fraction,
        "tables": {t: ({"primary_key": primary_keys[t]} if primary_keys and t in primary_keys else {}) for t in tables},
        "generator": {"default": method, "tables": dict(methods or {}), "settings": {method: settings} if settings else {}},
        "constraints": [c.to_spec(single) if isinstance(c, Constraint) else dict(c) for c in (constraints or [])],
        "pii": {(f"{single}.{ref}" if single and "." not in ref else ref): p for ref, p in (pii or {}).items()},
    }
    for table in primary_keys or {}:
        if table not in tables:
            raise SpecError(f"primary_keys names table {table!r}, which is not among the tables given")
    if foreign_keys is not None:
        data["foreign_keys"] = [fk if isinstance(fk, dict) else {"child": fk[0], "parent": fk[1]} for fk in foreign_keys]
    return parse_spec(data, origin="genesis_pipelines.api")


class _Fitted:
    """A trained model in a folder of its own: a temporary one (removed with the object) until saved."""

    def __init__(self, model, model_dir: Path, root: Path, temporary: bool, locale: str = "en_US"):
        self.model, self.model_dir, self.root, self.locale = model, Path(model_dir), Path(root), locale
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(root), True) if temporary else None

    @classmethod
    def train(cls, spec, tables: Mapping[str, pd.DataFrame], *, device: str | None = None, log=None) -> _Fitted:
        from genesis_pipelines.engine import pipeline
        from genesis_pipelines.engine.core.device import resolve_device
        from genesis_pipelines.engine.privacy import pii

        root = Path(tempfile.mkdtemp(prefix="genesis-sdk-"))
        try:
            model, model_dir, _ = pipeline.train_frames(
                spec, tables, root, device=resolve_device(device or os.environ.get("GENESIS_DEVICE", "auto")),
                hash_key=pii.hash_key_from_env(), log=log or (lambda message: None))
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(model, model_dir, root, temporary=True, locale=spec.pii_locale)

    def save(self, directory: str | Path, extra: Mapping[str, Any]) -> Path:
        """The model root (LATEST.json + the version folder) copied to a staging folder, then renamed into place."""
        from genesis_pipelines.engine.sources.io import staged_folder, write_json

        with staged_folder(Path(directory)) as staging:
            shutil.copytree(self.root, staging, dirs_exist_ok=True)
            write_json(staging / "sdk.json", {"format": SAVED_FORMAT, "version": self.model.version,
                                              "locale": self.locale, **extra})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> tuple[_Fitted, dict]:
        from genesis_pipelines.engine.synthesis import relational

        directory = Path(directory)
        manifest_path = directory / "sdk.json"
        if not manifest_path.is_file():
            raise ModelError(f"{directory} holds no saved generator (sdk.json is missing)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelError(f"{manifest_path} is corrupt: save the generator again") from None
        if manifest.get("format") != SAVED_FORMAT:
            raise ModelError(f"{manifest_path} has format {manifest.get('format')!r}, expected {SAVED_FORMAT!r}")
        model, model_dir = relational.load_model(directory, manifest.get("version"))
        return cls(model, model_dir, directory, temporary=False, locale=manifest.get("locale", "en_US")), manifest

    def sample(self, *, scale: float, seed: int, conditions: Mapping | None = None) -> dict[str, pd.DataFrame]:
        from genesis_pipelines.engine.synthesis import relational

        return relational.generate_all(self.model, self.model_dir, scale=scale, seed=seed, locale=self.locale,
                                       conditions=conditions)

    def describe(self) -> dict:
        """Aggregates only: per table its method, rows and the generator's own description."""
        return {t: {"method": m.method, "rows": m.row_count, "generator": m.describe} for t, m in self.model.tables.items()}


# ---------------------------------------------------------------- single table


class SyntheticGenerator:
    """One table: `fit(df)` infers types, keys, PII (default policy `fake`) and trains `method`; `generate(n)`.

    Methods are those of the spec's `generator:` (gaussian_copula, autoregressive, ctgan, tvae, dp_*, auto, and any
    registered plugin); `settings` are the method's settings. `privacy` turns on differential privacy
    (PrivacyConfig), `constraints` lists Constraint rules, `pii` overrides policies per column
    ({"email": "drop"}). As in the pipeline, the model trains on an 80/20 split (`holdout_fraction`).

    >>> import pandas as pd
    >>> from genesis_pipelines import Constraint, SyntheticGenerator
    >>> df = pd.DataFrame({"amount": [12.5, 30.0, 7.25, 99.0] * 25, "kind": ["a", "b", "a", "c"] * 25})
    >>> gen = SyntheticGenerator(constraints=[Constraint.positive("amount")], seed=1).fit(df)
    >>> rows = gen.generate(20, conditions={"kind": "a"})
    >>> bool((rows["kind"] == "a").all()), bool((rows["amount"] > 0).all())
    (True, True)
    """

    def __init__(self, method: str = "gaussian_copula", seed: int = 0, *, privacy: PrivacyConfig | None = None,
                 constraints=None, pii: Mapping[str, str] | None = None, table_name: str = DEFAULT_TABLE,
                 holdout_fraction: float = 0.2, device: str | None = None, **settings):
        from genesis_pipelines.engine.synthesis.generators.base import check_methods

        check_methods({"SyntheticGenerator(method=...)": method})  # a typo fails here, not after profiling the data
        self.method, self.seed, self.settings = method, int(seed), dict(settings)
        self.privacy, self.constraints, self.pii = privacy, list(constraints or []), dict(pii or {})
        self.table_name, self.holdout_fraction, self.device = table_name, holdout_fraction, device
        self._fitted: _Fitted | None = None

    def fit(self, df: pd.DataFrame) -> SyntheticGenerator:
        df = _as_frame(df, "fit(df)")
        tables = {self.table_name: df}
        spec = _build_spec(tables, method=self.method, seed=self.seed, settings=self.settings, privacy=self.privacy,
                           constraints=self.constraints, pii=self.pii, holdout_fraction=self.holdout_fraction,
                           single=self.table_name, foreign_keys=[])
        self._fitted = _Fitted.train(spec, tables, device=self.device)
        return self

    def _require(self) -> _Fitted:
        if self._fitted is None:
            raise ModelError("this generator is not fitted: call fit(df) or load(directory) first")
        return self._fitted

    def generate(self, n_samples: int | None = None, conditions: Mapping[str, Any] | pd.DataFrame | None = None,
                 seed: int | None = None) -> pd.DataFrame:
        """`n_samples` rows (default: as many as the real table; a conditions frame: one row per condition row)."""
        fitted = self._require()
        rows = fitted.model.tables[self.table_name].row_count
        if isinstance(conditions, pd.DataFrame):
            if n_samples is not None and n_samples != len(conditions):
                raise SpecError(f"n_samples={n_samples} but the conditions frame has {len(conditions)} rows")
            n_samples = len(conditions)
        n_samples = rows if n_samples is None else int(n_samples)
        if n_samples < 1:
            raise SpecError(f"n_samples must be at least 1, got {n_samples}")
        if not rows:
            raise SpecError(f"table {self.table_name!r} had no rows to learn from")
        cond = {self.table_name: conditions} if conditions is not None and len(conditions) else None
        out = fitted.sample(scale=n_samples / rows, seed=self.seed if seed is None else int(seed), conditions=cond)
        return out[self.table_name].reset_index(drop=True)

    sample = generate  # SDV's spelling

    def fit_generate(self, df: pd.DataFrame, n_samples: int | None = None, conditions=None,
                     seed: int | None = None) -> pd.DataFrame:
        return self.fit(df).generate(n_samples, conditions=conditions, seed=seed)

    def save(self, directory: str | Path) -> Path:
        """A folder of JSON + safetensors weights (the pipeline's model format); never pickle."""
        return self._require().save(directory, {"kind": "single", "table": self.table_name, "method": self.method,
                                                "seed": self.seed})

    @classmethod
    def load(cls, directory: str | Path) -> SyntheticGenerator:
        fitted, manifest = _Fitted.load(directory)
        if manifest.get("kind") != "single":
            raise ModelError(f"{directory} holds a multi-table model: load it with MultiTableSynthesizer.load")
        gen = cls(method=manifest.get("method", "gaussian_copula"), seed=manifest.get("seed", 0),
                  table_name=manifest["table"])
        gen._fitted = fitted
        return gen

    def describe(self) -> dict:
        """What was learned, as aggregates (safe to log): method, rows, the generator's description."""
        return self._require().describe()[self.table_name]

    @property
    def metadata(self) -> dict:
        """The inferred column types and keys (the schema step's output for this table)."""
        return self._require().model.db_schema.tables[self.table_name].model_dump(mode="json")


def auto_synthesize(df: pd.DataFrame, n_samples: int | None = None, *, seed: int = 0, **settings) -> pd.DataFrame:
    """Synthetic rows with the method `auto` picks for this table (a quick holdout comparison of the candidates).

    >>> import pandas as pd
    >>> from genesis_pipelines import auto_synthesize
    >>> df = pd.DataFrame({"x": list(range(60)), "y": ["u", "v", "w"] * 20})
    >>> len(auto_synthesize(df, n_samples=30))
    30
    """
    return SyntheticGenerator("auto", seed=seed, **settings).fit_generate(df, n_samples)


# ---------------------------------------------------------------- several tables


class MultiTableSynthesizer:
    """Several tables with their keys: primary keys ({table: column or [columns]}) and foreign keys
    ([("Child.col", "Parent.col"), ...] or spec entries {child:, parent:}) are inferred when not given.

    >>> import pandas as pd
    >>> from genesis_pipelines import MultiTableSynthesizer
    >>> users = pd.DataFrame({"user_id": range(1, 41), "plan": ["free", "pro"] * 20})
    >>> orders = pd.DataFrame({"order_id": range(1, 121), "user_id": [1 + i % 40 for i in range(120)],
    ...                        "total": [5.0 + i % 17 for i in range(120)]})
    >>> synth = MultiTableSynthesizer({"users": users, "orders": orders},
    ...                               foreign_keys=[("orders.user_id", "users.user_id")]).fit()
    >>> out = synth.sample(scale=0.5)
    >>> len(out["users"]), bool(out["orders"]["user_id"].isin(out["users"]["user_id"]).all())
    (20, True)
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame], primary_keys: Mapping[str, Any] | None = None,
                 foreign_keys=None, *, method: str = "gaussian_copula", methods: Mapping[str, str] | None = None,
                 seed: int = 0, privacy: PrivacyConfig | None = None, constraints=None,
                 pii: Mapping[str, str] | None = None, device: str | None = None, **settings):
        if not isinstance(tables, Mapping) or not tables:
            raise SpecError("tables must be a non-empty dict of table name -> DataFrame")
        self.tables = {str(t): _as_frame(df, f"table {t!r}") for t, df in tables.items()}
        self.primary_keys, self.foreign_keys = dict(primary_keys or {}), foreign_keys
        from genesis_pipelines.engine.synthesis.generators.base import check_methods

        check_methods({"MultiTableSynthesizer(method=...)": method,
                       **{f"MultiTableSynthesizer(methods={{{t!r}: ...}})": m for t, m in (methods or {}).items()}})
        self.method, self.methods, self.seed, self.settings = method, dict(methods or {}), int(seed), dict(settings)
        self.privacy, self.constraints, self.pii, self.device = privacy, list(constraints or []), dict(pii or {}), device
        self._fitted: _Fitted | None = None

    def fit(self) -> MultiTableSynthesizer:
        spec = _build_spec(self.tables, method=self.method, seed=self.seed, settings=self.settings, privacy=self.privacy,
                           constraints=self.constraints, pii=self.pii, primary_keys=self.primary_keys,
                           foreign_keys=self.foreign_keys, methods=self.methods)
        self._fitted = _Fitted.train(spec, self.tables, device=self.device)
        return self

    def _require(self) -> _Fitted:
        if self._fitted is None:
            raise ModelError("this synthesizer is not fitted: call fit() or load(directory) first")
        return self._fitted

    def sample(self, scale: float = 1.0, seed: int | None = None,
               conditions: Mapping[str, Mapping | pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
        """Every table, parents first, keys consistent; `scale` rows relative to the real tables."""
        from genesis_pipelines.engine.core.spec import MAX_SCALE

        if not 0 < scale <= MAX_SCALE:
            raise SpecError(f"scale must be in (0, {MAX_SCALE}], got {scale}")
        return self._require().sample(scale=scale, seed=self.seed if seed is None else int(seed), conditions=conditions)

    @property
    def keys(self) -> dict:
        """The primary keys and foreign keys used (declared or inferred)."""
        schema = self._require().model.db_schema
        return {"primary_keys": {t: list(m.primary_key) for t, m in schema.tables.items()},
                "foreign_keys": [f"{fk.child_table}.{fk.child_column} -> {fk.parent_table}.{fk.parent_column}"
                                 for fk in schema.foreign_keys]}

    def save(self, directory: str | Path) -> Path:
        return self._require().save(directory, {"kind": "multi", "tables": list(self.tables), "seed": self.seed})

    @classmethod
    def load(cls, directory: str | Path) -> MultiTableSynthesizer:
        fitted, manifest = _Fitted.load(directory)
        synth = cls.__new__(cls)
        synth.tables, synth.primary_keys, synth.foreign_keys = {}, {}, None
        synth.method, synth.methods, synth.seed, synth.settings = "gaussian_copula", {}, manifest.get("seed", 0), {}
        synth.privacy, synth.constraints, synth.pii, synth.device = None, [], {}, None
        synth._fitted = fitted
        return synth

    def describe(self) -> dict:
        return self._require().describe()


# ---------------------------------------------------------------- evaluation


def _as_tables(data, what: str, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        return {(names[0] if names and len(names) == 1 else DEFAULT_TABLE): data}
    if isinstance(data, Mapping) and data and all(isinstance(v, pd.DataFrame) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    raise SpecError(f"{what} must be a DataFrame or a non-empty dict of DataFrames")


@dataclass
class _Inputs:
    spec: Any
    real: dict
    synthetic: dict
    holdout: dict | None
    schema: Any
    findings: list
    exclude: dict


def _inputs(real, synthetic, holdout=None, *, seed: int = 0, primary_keys=None, foreign_keys=None,
            quasi_identifiers=None, sensitive=None) -> _Inputs:
    """The schema and PII findings of the real tables (the pipeline's schema and PII steps), with the synthetic
    and holdout tables aligned to them."""
    from genesis_pipelines.engine import pipeline
    from genesis_pipelines.engine.analysis import schema_inference
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.privacy import pii, record_guard

    real_t = _as_tables(real, "real")
    names = list(real_t)
    synth_t = _as_tables(synthetic, "synthetic", names)
    hold_t = _as_tables(holdout, "holdout", names) if holdout is not None else None
    for label, frames in (("synthetic", synth_t), ("holdout", hold_t or {})):
        for table, df in frames.items():
            if table not in real_t:
                raise SpecError(f"{label} table {table!r} has no real counterpart (real tables: {', '.join(names)})")
            extra = [c for c in df.columns if c not in real_t[table].columns]
            if extra:
                raise SpecError(f"{label} table {table!r}: column {extra[0]!r} is not in the real table")
    data: dict[str, Any] = {"name": DATASET, "seed": int(seed),
                            "tables": {t: ({"primary_key": primary_keys[t]} if primary_keys and t in primary_keys else {})
                                       for t in names}}
    if foreign_keys is not None:
        data["foreign_keys"] = [fk if isinstance(fk, dict) else {"child": fk[0], "parent": fk[1]} for fk in foreign_keys]
    elif len(names) == 1:
        data["foreign_keys"] = []
    for field_name, given in (("quasi_identifiers", quasi_identifiers), ("sensitive_columns", sensitive)):
        if given:
            data[field_name] = dict(given) if isinstance(given, Mapping) else {names[0]: list(given)}
            for table, columns in data[field_name].items():
                for column in columns:
                    if table in real_t and column not in real_t[table].columns:
                        raise SpecError(f"{field_name}: table {table!r} has no column {column!r}")
    spec = parse_spec(data, origin="genesis_pipelines.api")
    real_t = pipeline.normalise_frames(real_t)
    synth_t = pipeline.normalise_frames(synth_t)
    hold_t = pipeline.normalise_frames(hold_t) if hold_t is not None else None
    analysed = schema_inference.analyse(spec, real_t)
    findings = pii.scan_tables(real_t, analysed, spec)
    return _Inputs(spec, real_t, synth_t, hold_t, analysed, findings,
                   record_guard.comparison_exclusions(analysed, findings))


def _pct(value) -> float | None:
    return None if value is None else round(float(value), 2)


def privacy_score(report: Mapping) -> float | None:
    """0..100 from the privacy report's own measurements, judged by the weakest: the DCR share closer to train
    (0.5 ideal -> 100, a copier's 1.0 -> 0), the largest membership-inference AUC (0.5 -> 100, 1.0 -> 0) and the
    share of synthetic rows that copy a real row (none -> 100)."""
    parts = []
    if report.get("max_share_closer_to_train") is not None:
        parts.append(1 - 2 * max(0.0, float(report["max_share_closer_to_train"]) - 0.5))
    if report.get("max_mia_auc") is not None:
        parts.append(1 - 2 * max(0.0, float(report["max_mia_auc"]) - 0.5))
    if report.get("synthetic_rows"):
        parts.append(1 - float(report.get("copy_rate", 0.0)))
    return round(100 * max(0.0, min(parts)), 2) if parts else None


@dataclass
class _Report:
    """Scores 0..100 (None where not measured) and the engine's full report (aggregates only)."""

    fidelity_score: float | None = None
    utility_score: float | None = None
    privacy_score: float | None = None
    details: dict = field(default_factory=dict, repr=False)
    kind: str = "quality_report"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON (written to `path` too when given)."""
        from genesis_pipelines.engine.sources.io import write_json

        text = json.dumps(self.to_dict(), indent=2, default=str, allow_nan=False)
        if path is not None:
            write_json(Path(path), self.to_dict())
        return text

    def to_html(self, path: str | Path) -> Path:
        """The pipeline's self-contained HTML report, written atomically."""
        from genesis_pipelines.engine.evaluation import render_html
        from genesis_pipelines.engine.sources.io import atomic_path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        html = render_html(self.details, title=self.kind.replace("_", " "), kind=self.kind)
        with atomic_path(path) as tmp:
            tmp.write_text(html, encoding="utf-8")
        return path

    def summary(self) -> str:
        def show(value):
            return "n/a" if value is None else f"{value:.1f}"
        lines = [f"fidelity {show(self.fidelity_score)} / utility {show(self.utility_score)} / "
                 f"privacy {show(self.privacy_score)} (0-100)"]
        lines += self._lines()
        return "\n".join(lines)

    def _lines(self) -> list[str]:
        return []


@dataclass
class QualityReport(_Report):
    """fidelity_score: the quality report's overall score; utility_score: 100 x the TSTR/TRTR ratio (mean over
    model families); privacy_score: see privacy_score(); grade A-F; `details` the pipeline's quality report and
    `privacy` its privacy report."""

    grade: str | None = None
    privacy: dict = field(default_factory=dict, repr=False)

    def _lines(self) -> list[str]:
        out = [f"grade {self.grade}"] if self.grade else []
        for name in ("column_shapes", "pair_trends", "cardinality", "parent_child_trends"):
            if self.details.get(name) is not None:
                out.append(f"{name.replace('_', ' ')}: {self.details[name]:.1f}")
        utility = self.details.get("utility") or {}
        if utility.get("skipped"):
            out.append(f"utility: skipped ({utility['skipped']})")
        elif utility:
            out.append(f"utility: target {utility['target']} ({utility['task']}, {utility['primary_metric']})")
        for rec in (self.details.get("recommendations") or [])[:5]:
            out.append(f"- {rec.get('text', rec) if isinstance(rec, dict) else rec}")
        return out


@dataclass
class PrivacyReport(_Report):
    """privacy_score (see privacy_score()), the gates {gate: {value, threshold, passed}}, `passed` when all pass;
    `details` the pipeline's privacy report."""

    gates: dict = field(default_factory=dict)
    passed: bool = True
    kind: str = "privacy_report"

    def _lines(self) -> list[str]:
        out = [f"gate {g}: {'passed' if v['passed'] else 'FAILED'} (value {v['value']}, threshold {v['threshold']})"
               for g, v in self.gates.items()]
        for gate, why in (self.details.get("skipped_gates") or {}).items():
            out.append(f"gate {gate}: not evaluated ({why})")
        for key in ("pii_leaks",):
            leaks = self.details.get(key) or {}
            if leaks:
                out.append(f"real PII values found in the synthetic rows: {sum(leaks.values())}")
        return out


def _privacy(inputs: _Inputs, seed: int, thresholds=None) -> dict:
    from genesis_pipelines.engine import evaluation
    from genesis_pipelines.engine.core.spec import ThresholdSpec
    from genesis_pipelines.engine.privacy import pii, record_guard

    spec = inputs.spec
    holdout = inputs.holdout or {}
    report = evaluation.privacy_report(inputs.real, holdout, inputs.synthetic, inputs.schema, exclude=inputs.exclude,
                                       thresholds=thresholds or ThresholdSpec(), quasi_identifiers=spec.quasi_identifiers,
                                       sensitive_columns=spec.sensitive_columns, seed=seed)
    salt = os.urandom(16).hex()  # the guard lives for this call only
    guard = record_guard.HashedValueSet(salt, set(record_guard.pii_guard(inputs.real, inputs.findings, salt)))
    leaks = pii.find_leaks(inputs.synthetic, guard, (), inputs.findings)
    report["pii_leaks"] = {t: sum(leaks.get(t, {}).values()) for t in inputs.synthetic}  # counts only
    report.setdefault("passed", {})["no_pii_leak"] = not any(report["pii_leaks"].values())
    report["all_passed"] = all(report["passed"].values())
    if not inputs.holdout:
        report["note"] = "no holdout given: distance and membership attacks need unseen real rows, so they are skipped"
    return report


class QualityEvaluator:
    """Quality of any synthetic data against the real data (one DataFrame or a dict of them): fidelity (column
    shapes, pair trends, children per parent), utility (TSTR on `target_column`) and the privacy report.

    Utility trains on the real rows and scores on `holdout` (real rows the generator never saw); without one, 20%
    of the real rows are held out for the TSTR test.

    >>> import pandas as pd
    >>> from genesis_pipelines import QualityEvaluator
    >>> real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 30, "y": ["a", "b", "b", "a"] * 30})
    >>> report = QualityEvaluator(real, real.sample(frac=1.0, random_state=0)).evaluate()
    >>> report.fidelity_score > 90
    True
    """

    def __init__(self, real, synthetic, holdout=None, *, seed: int = 0, primary_keys=None, foreign_keys=None):
        self.real, self.synthetic, self.holdout, self.seed = real, synthetic, holdout, int(seed)
        self.primary_keys, self.foreign_keys = primary_keys, foreign_keys

    def evaluate(self, target_column: str | None = None, *, privacy: bool = True) -> QualityReport:
        from genesis_pipelines.engine import evaluation
        from genesis_pipelines.engine.synthesis import relational

        inputs = _inputs(self.real, self.synthetic, self.holdout, seed=self.seed, primary_keys=self.primary_keys,
                         foreign_keys=self.foreign_keys)
        target = None
        if target_column is not None:
            try:
                table, column = (split_ref(target_column, "target_column") if len(inputs.real) > 1
                                 else (next(iter(inputs.real)), target_column))
            except ValueError as exc:
                raise SpecError(str(exc)) from None
            if table not in inputs.real or column not in inputs.real[table].columns:
                raise SpecError(f"target column {target_column!r} is not a column of the real table {table!r}")
            target = column_ref(table, column)
        if inputs.holdout is not None:
            train, holdout = inputs.real, inputs.holdout
        else:
            splits = relational.split_tables(inputs.schema, inputs.real, 0.2, self.seed)
            train, holdout = {t: s[0] for t, s in splits.items()}, {t: s[1] for t, s in splits.items()}
        report = evaluation.quality_report(inputs.real, inputs.synthetic, inputs.schema, exclude=inputs.exclude,
                                           seed=self.seed, train_tables=train, holdout_tables=holdout,
                                           utility_target=target)
        utility = (report.get("utility") or {}).get("utility_ratio")
        priv = _privacy(inputs, self.seed) if privacy else {}
        return QualityReport(fidelity_score=_pct(report.get("overall_score")),
                             utility_score=None if utility is None else round(100 * float(utility), 2),
                             privacy_score=privacy_score(priv) if priv else None, details=report,
                             grade=report.get("grade"), privacy=priv)


class PrivacyEvaluator:
    """Privacy of any synthetic data (yours or another tool's) against the real rows it was trained on: exact
    copies, real PII values in the output, k-anonymity / l-diversity of the quasi-identifiers, attribute
    inference on `sensitive` columns, and, with a `holdout` of real rows the generator never saw, distance to
    closest record, membership inference, singling-out and linkability, with the pipeline's gates.

    >>> import pandas as pd
    >>> from genesis_pipelines import PrivacyEvaluator
    >>> real = pd.DataFrame({"age": list(range(20, 80)) * 2, "income": [float(i % 7) for i in range(120)]})
    >>> report = PrivacyEvaluator(real, real.head(30)).evaluate()
    >>> report.details["copies"], report.privacy_score
    (30, 0.0)
    """

    def __init__(self, real, synthetic, holdout=None, sensitive=None, *, quasi_identifiers=None, seed: int = 0,
                 thresholds: Mapping[str, float] | None = None, primary_keys=None, foreign_keys=None):
        self.real, self.synthetic, self.holdout, self.sensitive = real, synthetic, holdout, sensitive
        self.quasi_identifiers, self.seed, self.thresholds = quasi_identifiers, int(seed), dict(thresholds or {})
        self.primary_keys, self.foreign_keys = primary_keys, foreign_keys

    def evaluate(self) -> PrivacyReport:
        from genesis_pipelines.engine.core.spec import ThresholdSpec

        try:
            thresholds = ThresholdSpec(**self.thresholds)
        except Exception as exc:
            raise SpecError(f"thresholds: {exc.__class__.__name__}: one of {', '.join(ThresholdSpec.model_fields)}") from None
        inputs = _inputs(self.real, self.synthetic, self.holdout, seed=self.seed, primary_keys=self.primary_keys,
                         foreign_keys=self.foreign_keys, quasi_identifiers=self.quasi_identifiers,
                         sensitive=self.sensitive)
        report = _privacy(inputs, self.seed, thresholds)
        return PrivacyReport(privacy_score=privacy_score(report), details=report, gates=report.get("gates", {}),
                             passed=bool(report.get("all_passed", True)))


@dataclass
class KAnonymityResult:
    """k: the smallest group of rows sharing the quasi-identifiers; satisfied: k >= the k asked for."""

    k: int
    k_required: int
    satisfied: bool
    classes: int
    share_rows_below_k: float | None
    share_unique_rows: float | None
    l_diversity: dict = field(default_factory=dict)


def check_k_anonymity(df: pd.DataFrame, quasi_identifiers: list[str], k: int = 5,
                      sensitive: list[str] | None = None) -> KAnonymityResult:
    """k-anonymity (and l-diversity of `sensitive`) of one table, as the privacy report measures it: categories as
    they are, numbers generalised into deciles.

    >>> import pandas as pd
    >>> from genesis_pipelines import check_k_anonymity
    >>> df = pd.DataFrame({"zip": ["0150", "0150", "0151", "0151", "0151"], "sex": ["f", "f", "m", "m", "m"]})
    >>> result = check_k_anonymity(df, quasi_identifiers=["zip", "sex"], k=2)
    >>> result.k, result.satisfied
    (2, True)
    """
    from genesis_pipelines.engine import pipeline
    from genesis_pipelines.engine.analysis import schema_inference
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.evaluation.privacy.disclosure import table_k_anonymity

    df = _as_frame(df, "df")
    if not quasi_identifiers:
        raise SpecError("check_k_anonymity needs at least one quasi-identifier column")
    for column in list(quasi_identifiers) + list(sensitive or []):
        if column not in df.columns:
            raise SpecError(f"check_k_anonymity: the table has no column {column!r}")
    if int(k) < 1:
        raise SpecError(f"k must be at least 1, got {k}")
    frame = pipeline.normalise_frames({DEFAULT_TABLE: df})[DEFAULT_TABLE]
    spec = parse_spec({"name": DATASET, "tables": {DEFAULT_TABLE: {}}, "foreign_keys": []}, origin="check_k_anonymity")
    meta = schema_inference.analyse(spec, {DEFAULT_TABLE: frame}).tables[DEFAULT_TABLE]
    out = table_k_anonymity(frame, meta, list(quasi_identifiers), list(sensitive or []), k_target=int(k))
    return KAnonymityResult(k=out["k"], k_required=int(k), satisfied=out["k"] >= int(k), classes=out["classes"],
                            share_rows_below_k=out["share_rows_below_k_target"],
                            share_unique_rows=out["share_unique_rows"], l_diversity=out["l_diversity"])
