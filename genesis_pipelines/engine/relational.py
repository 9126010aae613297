"""Multi-table fit and sample: per-table generators plus the FK structure, generated parents first.

Keys are never learned as values: primary keys are regenerated, foreign keys are assigned to generated parents
following the learned children-per-parent distribution, so FK integrity holds by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine import pii as pii_engine
from genesis_pipelines.engine import record_guard
from genesis_pipelines.engine.errors import GenesisError, ModelError
from genesis_pipelines.engine.generators import create_generator, load_generator
from genesis_pipelines.engine.io import write_json
from genesis_pipelines.engine.schema import DatasetSchema, ForeignKey, TableMeta
from genesis_pipelines.engine.spec import DatasetSpec

FORMAT = "genesis.relational/1"
MIN_ROWS_FOR_HOLDOUT = 20


class KeyStats(BaseModel):
    """How to regenerate a primary-key column: integers from a start, or strings from character templates."""

    kind: str  # "integer" | "string"
    start: int = 1
    templates: list[str] = Field(default_factory=list)
    template_probs: list[float] = Field(default_factory=list)


class RelationStats(BaseModel):
    fk: ForeignKey
    null_share: float
    counts: list[int]  # children per parent: distinct values ...
    probs: list[float]  # ... and their shares, parents with zero children included

    @property
    def mean(self) -> float:
        return float(np.dot(self.counts, self.probs))


class TableModel(BaseModel):
    table: str
    method: str
    row_count: int
    train_rows: int
    holdout_rows: int
    columns: list[str]  # output column order (dropped PII columns removed)
    key_stats: dict[str, KeyStats]
    describe: dict = Field(default_factory=dict)


class RelationalModel(BaseModel):
    format: str = FORMAT
    dataset: str
    version: str
    created_at: str
    source_fingerprint: str
    seed: int
    db_schema: DatasetSchema
    tables: dict[str, TableModel]
    relations: list[RelationStats]
    pii: list[pii_engine.PiiFinding]
    pii_guard_salt: str

    def relations_of(self, table: str) -> list[RelationStats]:
        return [r for r in self.relations if r.fk.child_table == table]


# ---------------------------------------------------------------- splitting and fingerprints


def split_holdout(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded row split; tables too small to spare rows train on everything."""
    if fraction <= 0 or len(df) < MIN_ROWS_FOR_HOLDOUT:
        return df, df.iloc[0:0]
    order = np.random.default_rng(seed).permutation(len(df))
    cut = int(round(len(df) * fraction))
    return df.iloc[np.sort(order[cut:])], df.iloc[np.sort(order[:cut])]


def fingerprint_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """Content hash of the source snapshot (row order independent is not needed: sources are read in order)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- learning the structure


def _key_stats(series: pd.Series) -> KeyStats:
    if pd.api.types.is_integer_dtype(series) or pd.api.types.is_float_dtype(series):
        return KeyStats(kind="integer", start=1)
    shapes = series.astype(str).str.replace(r"[A-Z]", "U", regex=True).str.replace(r"[a-z]", "L", regex=True).str.replace(r"[0-9]", "D", regex=True)
    freq = shapes.value_counts(normalize=True)
    return KeyStats(kind="string", templates=freq.index.tolist(), template_probs=freq.to_numpy().tolist())


def learn_relation(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame) -> RelationStats:
    values = child[fk.child_column]
    per_parent = values.dropna().value_counts()
    counts = per_parent.reindex(parent[fk.parent_column].dropna().unique(), fill_value=0).to_numpy()
    distinct, freq = np.unique(counts, return_counts=True)
    return RelationStats(fk=fk, null_share=float(values.isna().mean()), counts=distinct.astype(int).tolist(),
                         probs=(freq / freq.sum()).tolist())


def _training_meta(meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> TableMeta:
    """Hashed and masked PII columns are learned as tokens (categories), not as free text."""
    meta = meta.model_copy(deep=True)
    for finding in findings:
        if finding.table == meta.name and finding.policy in ("hash", "mask") and finding.column in meta.columns:
            meta.columns[finding.column].sdtype = "categorical"
    return meta


def train(
    spec: DatasetSpec,
    schema: DatasetSchema,
    tables: Mapping[str, pd.DataFrame],
    findings: list[pii_engine.PiiFinding],
    model_root: Path,
    *,
    device: str = "cpu",
    hash_key: bytes | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[RelationalModel, dict[str, tuple[pd.DataFrame, pd.DataFrame]]]:
    """Fit every table's generator on its training split and learn the FK structure; save atomically.

    Returns the model and each table's (train, holdout) split, so the caller can keep the holdout for evaluation.
    """
    fingerprint = fingerprint_tables(tables)
    created = datetime.now(timezone.utc)
    version = created.strftime("v%Y%m%dT%H%M%S%fZ") + "-" + fingerprint[:8]
    model_root = Path(model_root)
    staging = model_root / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    salt = os.urandom(16).hex()
    exclusions = record_guard.comparison_exclusions(schema, findings)
    copy_guard: dict[str, list[str]] = {}
    table_models: dict[str, TableModel] = {}
    try:
        for index, name in enumerate(schema.generation_order):
            df, meta = tables[name], schema.tables[name]
            train_df, holdout_df = split_holdout(df, spec.holdout_fraction, spec.seed + index)
            splits[name] = (train_df, holdout_df)
            keys = schema.key_columns(name)
            learnable = pii_engine.prepare_for_training(name, train_df, findings, hash_key=hash_key)
            learnable = learnable[[c for c in learnable.columns if c not in keys]]
            method = spec.generator.method_for(name)
            generator = create_generator(method, **spec.generator.settings.get(method, {}))
            log(f"fitting {method} on table {name}: {len(learnable)} rows x {learnable.shape[1]} columns")
            generator.fit(learnable, _training_meta(meta, findings), device=device, seed=spec.seed + index)
            generator.save(staging / "tables" / name)
            copy_guard[name] = record_guard.unique_record_digests(
                train_df, record_guard.record_columns(meta, exclusions[name]), meta, salt)
            dropped = {f.column for f in findings if f.table == name and f.policy == "drop"}
            table_models[name] = TableModel(
                table=name, method=method, row_count=len(df), train_rows=len(train_df), holdout_rows=len(holdout_df),
                columns=[c for c in df.columns if c not in dropped],
                key_stats={c: _key_stats(df[c]) for c in meta.primary_key
                           if not any(fk.child_column == c for fk in schema.fks_of(name))},
                describe=generator.describe(),
            )
        relations = [learn_relation(fk, tables[fk.child_table], tables[fk.parent_table]) for fk in schema.foreign_keys]
        model = RelationalModel(
            dataset=spec.name, version=version, created_at=created.isoformat(), source_fingerprint=fingerprint,
            seed=spec.seed, db_schema=schema, tables=table_models, relations=relations, pii=findings, pii_guard_salt=salt,
        )
        write_json(staging / "pii_guard.json", record_guard.pii_guard(tables, findings, salt))
        write_json(staging / "record_guard.json", copy_guard)
        write_json(staging / "model.json", model.model_dump(mode="json"))
        final = model_root / version
        os.replace(staging, final)
        write_json(model_root / "LATEST.json", {"version": version})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model, splits


# ---------------------------------------------------------------- loading


def latest_version(model_root: Path) -> str:
    pointer = Path(model_root) / "LATEST.json"
    if not pointer.is_file():
        raise ModelError(f"no trained model under {model_root}: materialize the model asset first")
    try:
        return json.loads(pointer.read_text())["version"]
    except (json.JSONDecodeError, KeyError):
        raise ModelError(f"model pointer {pointer} is corrupt: retrain the model") from None


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


def load_copy_guard(model: RelationalModel, directory: Path, table: str) -> set[str]:
    return set(_load_guard_file(model, directory, "record_guard.json").get(table, []))


def comparison_exclusions(model: RelationalModel) -> dict[str, set[str]]:
    return record_guard.comparison_exclusions(model.db_schema, model.pii)


# ---------------------------------------------------------------- generation


def _sample_counts(relation: RelationStats, n_parents: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling of the children-per-parent distribution: at scale 1 it is reproduced exactly
    (3 hub airports stay 3), where independent draws could give 1 or 0 hubs."""
    cumulative = np.cumsum(np.asarray(relation.probs))
    u = (np.arange(n_parents) + rng.random()) / max(n_parents, 1)
    counts = np.asarray(relation.counts)[np.minimum(np.searchsorted(cumulative, u, side="right"), len(cumulative) - 1)]
    return counts[rng.permutation(n_parents)]


def apportion(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights` (largest remainder, random tie-break)."""
    weights = np.asarray(weights, dtype="float64")
    if len(weights) == 0:
        return weights.astype(int)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    remainder = int(total - counts.sum())
    if remainder > 0:
        order = np.argsort(-(exact - counts) - rng.random(len(exact)) * 1e-9)
        counts[order[:remainder]] += 1
    return counts


def _parent_weights(relation: RelationStats, n_parents: int, rng: np.random.Generator) -> np.ndarray:
    for _ in range(3):
        weights = _sample_counts(relation, n_parents, rng).astype("float64")
        if weights.sum() > 0:
            return weights
    return np.ones(n_parents)


def _generate_keys(stats: KeyStats, n: int, rng: np.random.Generator) -> pd.Series:
    if stats.kind == "integer":
        return pd.Series(np.arange(stats.start, stats.start + n), dtype="Int64")
    alphabet = {"U": np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")), "L": np.array(list("abcdefghijklmnopqrstuvwxyz")),
                "D": np.array(list("0123456789"))}
    out: set[str] = set()
    keys: list[str] = []
    attempts = 0
    while len(keys) < n:
        attempts += 1
        if attempts > 50:
            # the learned shapes cannot hold n distinct keys: widen with a counter suffix
            keys += [f"K{i}" for i in range(len(keys), n)]
            break
        need = n - len(keys)
        templates = rng.choice(np.asarray(stats.templates, dtype=object), size=need * 2, p=np.asarray(stats.template_probs))
        for template in templates:
            key = "".join(alphabet[c][rng.integers(0, len(alphabet[c]))] if c in alphabet else c for c in template)
            if key not in out:
                out.add(key)
                keys.append(key)
                if len(keys) == n:
                    break
    return pd.Series(keys, dtype="string")


def _nullable_dtype(values: pd.Series):
    """Keys read back from the warehouse come as numpy dtypes; FK columns need room for nulls."""
    if pd.api.types.is_integer_dtype(values):
        return "Int64"
    if pd.api.types.is_string_dtype(values):
        return "string"
    return values.dtype


def _assign(relation: RelationStats, parent_keys: pd.Series, n: int, rng: np.random.Generator, shuffle: bool) -> pd.Series:
    """FK values for n child rows: nulls at the learned share, the rest spread over parents like the real data."""
    fk = relation.fk
    is_null = rng.random(n) < relation.null_share if relation.null_share > 0 else np.zeros(n, dtype=bool)
    present = int((~is_null).sum())
    if len(parent_keys) == 0:
        if present:
            raise GenesisError(f"table {fk.child_table!r}: parent table {fk.parent_table!r} has no generated rows for {fk.child_column}")
        return pd.Series([pd.NA] * n, dtype=_nullable_dtype(parent_keys))
    counts = apportion(_parent_weights(relation, len(parent_keys), rng), present, rng)
    assigned = np.repeat(parent_keys.to_numpy(), counts)
    if shuffle:
        assigned = assigned[rng.permutation(len(assigned))]
    values = pd.Series([pd.NA] * n, dtype=_nullable_dtype(parent_keys))
    values[~is_null] = assigned
    return values


def _unique_within_groups(groups: np.ndarray, relation: RelationStats, parent_keys: pd.Series, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Second key of a junction table: distinct parents within each group, weighted by popularity."""
    weights = _parent_weights(relation, len(parent_keys), rng) + 1e-3
    keep, chosen = [], []
    keys = parent_keys.to_numpy()
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, boundaries):
        k = min(len(rows), len(keys))
        # Efraimidis-Spirakis: weighted sampling without replacement
        priority = np.log(rng.random(len(keys))) / weights
        picked = np.argpartition(-priority, k - 1)[:k] if k < len(keys) else np.arange(len(keys))
        keep.append(rows[:k])
        chosen.append(keys[picked])
    return np.concatenate(keep) if keep else np.array([], dtype=int), np.concatenate(chosen) if chosen else np.array([])


def _self_reference(relation: RelationStats, keys: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Each non-root row points to an earlier row: a forest, never a cycle, with the learned share of roots."""
    n = len(keys)
    roots = max(1, int(round(relation.null_share * n))) if n else 0
    weights = _sample_counts(relation, n, rng).astype("float64") + 1e-3
    cumulative = np.cumsum(weights)
    positions = np.arange(n)
    targets = rng.random(n) * cumulative[np.maximum(positions - 1, 0)]
    parents = np.minimum(np.searchsorted(cumulative, targets, side="right"), np.maximum(positions - 1, 0))
    values = pd.Series(keys.to_numpy()[parents], dtype=keys.dtype)
    values[positions < roots] = pd.NA
    return values


def table_size(model: RelationalModel, table: str, scale: float) -> int:
    return max(1, int(round(model.tables[table].row_count * scale)))


def generate_table(
    model: RelationalModel,
    model_dir: Path,
    table: str,
    parents: Mapping[str, pd.DataFrame],
    *,
    scale: float = 1.0,
    seed: int = 0,
    locale: str = "en_US",
    forbidden=frozenset(),
    copy_guard: set[str] | None = None,
) -> pd.DataFrame:
    """One synthetic table, given its already generated parents.

    `forbidden` holds real PII values that fake values must avoid; `copy_guard` the digests of unique real
    records that sampled rows must not reproduce (see record_guard).
    """
    if table not in model.tables:
        raise ModelError(f"model version {model.version} has no table {table!r}: retrain the model")
    tm = model.tables[table]
    schema = model.db_schema
    meta = schema.tables[table]
    rng = np.random.default_rng([seed, schema.generation_order.index(table)])
    for parent in schema.parents_of(table):
        if parent not in parents:
            raise GenesisError(f"table {table!r} needs its parent table {parent!r} generated first")
    relations = [r for r in model.relations_of(table) if not r.fk.is_self_reference]
    n = table_size(model, table, scale)
    keys: dict[str, pd.Series] = {}
    pk = meta.primary_key
    pk_fks = [r for r in relations if r.fk.child_column in pk]
    junction = len(pk) >= 2 and len(pk_fks) == len(pk) == 2
    if junction:
        # group by the parent with fewer rows, then pick distinct partners within each group
        first, second = sorted(pk_fks, key=lambda r: len(parents[r.fk.parent_table]))
        first_values = _assign(first, parents[first.fk.parent_table][first.fk.parent_column], n, rng, shuffle=False)
        group_codes = pd.factorize(first_values)[0]
        rows, partners = _unique_within_groups(group_codes, second, parents[second.fk.parent_table][second.fk.parent_column], rng)
        keys[first.fk.child_column] = first_values.iloc[rows].reset_index(drop=True)
        keys[second.fk.child_column] = pd.Series(partners, dtype=_nullable_dtype(parents[second.fk.parent_table][second.fk.parent_column]))
        n = len(rows)
        relations = [r for r in relations if r not in (first, second)]
    for column, stats in tm.key_stats.items():
        keys[column] = _generate_keys(stats, n, rng)
    for index, relation in enumerate(relations):
        keys[relation.fk.child_column] = _assign(relation, parents[relation.fk.parent_table][relation.fk.parent_column], n, rng, shuffle=index > 0)
    for relation in model.relations_of(table):
        if relation.fk.is_self_reference:
            keys[relation.fk.child_column] = _self_reference(relation, keys[relation.fk.parent_column], rng)
    generator = load_generator(Path(model_dir) / "tables" / table)
    body = generator.sample(n, seed=int(rng.integers(0, 2**31 - 1)))
    if copy_guard is not None:
        body, _ = record_guard.resample_copies(
            body, record_guard.record_columns(meta, comparison_exclusions(model)[table]), meta, model.pii_guard_salt,
            copy_guard, lambda k, s: generator.sample(k, seed=s), seed=int(rng.integers(0, 2**31 - 1)))
    for column, values in keys.items():
        body[column] = values.reset_index(drop=True)
    null_rates = {c.name: c.null_rate for c in meta.columns.values()}
    out = pii_engine.fill_synthetic(table, body, model.pii, n_rows=n, column_order=tm.columns, locale=locale,
                                    seed=int(rng.integers(0, 2**31 - 1)), forbidden=forbidden, null_rates=null_rates)
    if pk and out.duplicated(subset=pk).any():
        out = out.drop_duplicates(subset=pk).reset_index(drop=True)
    return out


def generate_all(model: RelationalModel, model_dir: Path, *, scale: float = 1.0, seed: int = 0, locale: str = "en_US") -> dict[str, pd.DataFrame]:
    """Every table in generation order: the library entry point outside Dagster."""
    guard = load_pii_guard(model, model_dir)
    out: dict[str, pd.DataFrame] = {}
    for table in model.db_schema.generation_order:
        out[table] = generate_table(model, model_dir, table, out, scale=scale, seed=seed, locale=locale, forbidden=guard,
                                    copy_guard=load_copy_guard(model, model_dir, table))
    return out
