"""Multi-table fit and sample: per-table generators plus the FK structure, generated parents first.

Keys are never learned as values: primary keys are regenerated, foreign keys are assigned to generated parents
following the learned children-per-parent distribution, so FK integrity holds by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine import pii as pii_engine
from genesis_pipelines.engine import constraints, parent_locales, record_guard, reference_tables, rules
from genesis_pipelines.engine.errors import GenesisError, ModelError
from genesis_pipelines.engine.generators import GaussianCopulaGenerator, create_generator, load_generator
from genesis_pipelines.engine.generators.free_text import excluded_words, redraw_forbidden
from genesis_pipelines.engine.io import dates_as_text, write_json
from genesis_pipelines.engine.lineage import engine_code_version
from genesis_pipelines.engine.rules import Dependency, Rule
from genesis_pipelines.engine.schema import ColumnMeta, DatasetSchema, ForeignKey, TableMeta, child_keys, key_values, parent_keys
from genesis_pipelines.engine.spec import DatasetSpec

FORMAT = "genesis.relational/1"
MIN_ROWS_FOR_HOLDOUT = 20
CHUNK_ROWS = 100_000  # rows sampled at once: bounds memory on big child tables
EMPTY_METHOD = "empty"  # a table with no real rows: nothing is fitted, it is generated empty with its columns
FEATURE_PREFIX = "__parent."
COUNT_COLUMN = "__children"
FEATURE_SDTYPES = ("numeric", "integer", "categorical", "boolean", "datetime")
MAX_PARENT_FEATURES = 8  # per relation (value columns first, then category indicators), plus the children count
MAX_INDICATORS = 6  # commonest categories of a parent column that get an indicator
COUNT_DRAWS = 8  # conditional draws of children per parent averaged to rank the parents
CONSTANT_MIN_SHARE = 0.95  # a child column with one value among a parent's children in this share of parents ...
CONSTANT_MIN_GROUPS = 5  # ... (counting parents with two children or more, at least this many) is drawn per parent
SWAP_ROUNDS = 10  # exchange attempts for rows that copy a unique real record, before any left are redrawn
MAX_UNIQUE_CATEGORIES = 1000  # a categorical column unique per row (a lookup table's names) is drawn without repeats


class KeyStats(BaseModel):
    """How to regenerate a primary-key column: integers from a start, or strings from character templates."""

    kind: str  # "integer" | "string"
    start: int = 1
    templates: list[str] = Field(default_factory=list)
    template_probs: list[float] = Field(default_factory=list)
    # numbered within the other columns of a composite key (an episode's number within its series): start, start+1, ..
    within: list[str] = Field(default_factory=list)


class ParentFeature(BaseModel):
    """One parent column (or derived value) joined onto child rows, so the child model learns cross-table trends."""

    name: str  # column name in the child's training frame
    column: str  # parent column; "" for the children count
    kind: str  # "value" | "onehot" | "count"
    category: str | None = None  # for onehot: the category indicated


class RelationStats(BaseModel):
    fk: ForeignKey
    null_share: float
    counts: list[int]  # children per parent: distinct values ...
    probs: list[float]  # ... and their shares, parents with zero children included
    unique: bool = False  # one-to-one: each parent has at most one child
    features: list[ParentFeature] = Field(default_factory=list)  # fed to the child model and the count model
    count_model: bool = False  # children per parent given the parent's features, saved under relations/<index>
    depth_probs: list[float] = Field(default_factory=list)  # self references: share of rows per depth, roots first
    inherited: dict[str, tuple[str, float]] = Field(default_factory=dict)  # child column -> (parent column, share equal)
    # a lookup parent (names unique per row, reproduced as such): children per name, e.g. tracks per media type
    count_by_value: dict[str, float] = Field(default_factory=dict)
    count_key: str = ""
    # child columns with one value per parent (an invoice's billing city is its customer's): drawn once per parent
    constant: list[str] = Field(default_factory=list)
    min_children: int = 0  # fewest children a real parent has (a min_children rule): no generated parent gets fewer

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
    unique_columns: list[str] = Field(default_factory=list)  # categories unique per row in the real table (names of genres)
    dependencies: dict[str, Dependency] = Field(default_factory=dict)  # column -> the column that determines it
    rules: list[Rule] = Field(default_factory=list)  # the table's rules kept at generation (rules.py)
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
    # lineage (optional, so models saved before these fields still load)
    code_version: str = ""
    settings: dict = Field(default_factory=dict)  # generator section, seed, scale, holdout fraction
    metrics: dict = Field(default_factory=dict)  # training seconds, rows per table

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


def split_tables(schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], fraction: float,
                 seed: int, *, follow_parents: bool = True,
                 people: set[str] | None = None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Train/holdout per table; a child follows its first parent (declared order) that holds people and whose split
    it can follow, so no person straddles the split (a customer's invoices and their lines land on the customer's side).

    `people`: the tables whose rows are people (`pii.person_tables`); a child that followed one holds people's rows
    too, so its children follow it in turn. None: every parent may be followed. A parent is followed when it has
    holdout rows and following it puts a sensible share of the child in the holdout (between half and 1.5 times
    `fraction`: three hub airports holding every flight would not); rows with a null key, and tables with no such
    parent, are split by row. `follow_parents=False` splits every table by row. The privacy report reads which key a
    split followed from the data (`evaluation.privacy.holdout_group_column`) and compares those tables against
    unseen people.
    """
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for index, name in enumerate(schema.generation_order):
        df = tables[name]
        splits[name] = split_holdout(df, fraction, seed + index)
        if not follow_parents or fraction <= 0 or len(df) < MIN_ROWS_FOR_HOLDOUT:
            continue
        for fk in schema.fks_of(name):
            if fk.is_self_reference or fk.deferred or splits[fk.parent_table][1].empty:
                continue
            if people is not None and fk.parent_table not in people:
                continue
            held_keys = set(parent_keys(fk, splits[fk.parent_table][1]))
            values = child_keys(fk, df)
            held = values.isin(held_keys).to_numpy().copy()
            nulls = values.isna().to_numpy()
            if nulls.any():
                held[nulls] = np.random.default_rng(seed + index).random(int(nulls.sum())) < fraction
            if 0.5 * fraction <= held.mean() <= 1.5 * fraction:
                splits[name] = (df[~held], df[held])
                if people is not None:
                    people = people | {name}
                break
    return splits


def _comparable(values: pd.Series) -> pd.Series:
    """Keys as read and keys as generated differ in dtype (Int64 vs int64, string vs object)."""
    return values.astype("float64") if pd.api.types.is_numeric_dtype(values) else values.astype(str)


def fingerprint_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """Content hash of the source snapshot (row order independent is not needed: sources are read in order)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- learning the structure


def _key_stats(series: pd.Series, df: pd.DataFrame | None = None, primary_key: list[str] | tuple = ()) -> KeyStats:
    if pd.api.types.is_integer_dtype(series) or pd.api.types.is_float_dtype(series):
        others = [c for c in primary_key if c != series.name]
        start = _numbered_within(df, str(series.name), others) if df is not None and others else None
        return KeyStats(kind="integer", start=1 if start is None else start, within=others if start is not None else [])
    shapes = series.astype(str).str.replace(r"[A-Z]", "U", regex=True).str.replace(r"[a-z]", "L", regex=True).str.replace(r"[0-9]", "D", regex=True)
    freq = shapes.value_counts(normalize=True)
    return KeyStats(kind="string", templates=freq.index.tolist(), template_probs=freq.to_numpy().tolist())


def _numbered_within(df: pd.DataFrame, column: str, others: list[str]) -> int | None:
    """The common start when `column` numbers the rows of every group of `others` consecutively (1, 2, .. k in each
    series), else None: regenerated the same way, synthetic episodes are numbered within their series, not 1..94."""
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any() or len(df) < 2 or df[others].isna().any().any():
        return None
    groups = values.groupby([df[c] for c in others], sort=False)
    low, high, size = groups.transform("min"), groups.transform("max"), groups.transform("size")
    starts = low.unique()
    if len(starts) != 1 or groups.ngroups == len(df) or not bool(((high - low + 1) == size).all()):
        return None
    if int(pd.DataFrame({"g": groups.ngroup(), "v": values}).duplicated().sum()):
        return None
    return int(starts[0])


def _children_counts(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame) -> pd.Series:
    """Children per parent row (0 for childless parents), indexed like `parent`."""
    per_parent = child_keys(fk, child).dropna().value_counts()
    return pd.Series(per_parent.reindex(parent_keys(fk, parent).to_numpy(), fill_value=0).to_numpy(),
                     index=parent.index)


def _depths(fk: ForeignKey, df: pd.DataFrame) -> np.ndarray:
    """Depth of each row in a self-referencing hierarchy (roots 0); a real cycle counts as a root."""
    keys = parent_keys(fk, df).to_numpy()
    position = {k: i for i, k in enumerate(keys)}
    parents = np.array([position.get(v, -1) if not pd.isna(v) else -1 for v in child_keys(fk, df)])
    depth = np.zeros(len(df), dtype=int)
    current = parents.copy()
    for _ in range(len(df)):
        live = current >= 0
        if not live.any():
            break
        depth[live] += 1
        current[live] = parents[current[live]]
    return np.minimum(depth, len(df))


def learn_relation(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame,
                   features: list[ParentFeature] | None = None) -> RelationStats:
    values = child_keys(fk, child)
    counts = _children_counts(fk, child, parent).to_numpy()
    distinct, freq = np.unique(counts, return_counts=True)
    depth_probs: list[float] = []
    if fk.is_self_reference:
        depth_hist = np.bincount(_depths(fk, child))
        depth_probs = (depth_hist / depth_hist.sum()).tolist()
    # an empty child has no nulls to learn (its share would be 0/0); an empty parent leaves every child key null
    return RelationStats(fk=fk, null_share=float(values.isna().mean()) if len(values) else 0.0, counts=distinct.astype(int).tolist(),
                         probs=(freq / freq.sum()).tolist(), unique=bool(len(counts) and counts.max() <= 1 and values.notna().any()),
                         features=features or [], depth_probs=depth_probs)


def select_parent_features(fk: ForeignKey, parent: pd.DataFrame, schema: DatasetSchema,
                           findings: list[pii_engine.PiiFinding], child: pd.DataFrame | None = None) -> list[ParentFeature]:
    """A few parent columns the child model is conditioned on: not keys, not PII (unless kept), not free text.

    Categories come as the value (the copula orders them by frequency, so a child column with the same
    categories, e.g. billing country vs country, follows them) and as indicators of the commonest ones (so a
    child column can depend on one category, e.g. track length on the TV-show genre). The parent's children
    count comes too (invoice total vs number of lines).
    """
    if fk.is_self_reference or fk.deferred:
        return []
    meta = schema.tables[fk.parent_table]
    private = {f.column for f in findings if f.table == fk.parent_table and f.policy != "keep"}
    keys = schema.key_columns(fk.parent_table)
    prefix = f"__parent.{fk.child_column}."
    features: list[ParentFeature] = []
    indicators: list[ParentFeature] = []
    # indicators for the categories commonest among the children (the genres most tracks have), not among parents
    weights = _children_counts(fk, child, parent) if child is not None else pd.Series(1, index=parent.index)
    if weights.sum() <= 0:
        weights = pd.Series(1, index=parent.index)
    for column, cmeta in meta.columns.items():
        if column in keys or column in private or cmeta.sdtype not in FEATURE_SDTYPES or column not in parent.columns:
            continue
        values = parent[column].dropna()
        if values.nunique() < 2:
            continue
        features.append(ParentFeature(name=prefix + column, column=column, kind="value"))
        if cmeta.sdtype == "categorical" and values.nunique() > 2:
            shares = weights[values.index].groupby(values.astype(str)).sum().sort_values(ascending=False, kind="stable")
            shares = shares / shares.sum()
            for category in shares.index[:MAX_INDICATORS][shares.to_numpy()[:MAX_INDICATORS] >= 0.02]:
                indicators.append(ParentFeature(name=f"{prefix}{column}={category}", column=column, kind="onehot",
                                                category=str(category)))
    chosen = features[:MAX_PARENT_FEATURES]
    chosen += indicators[:max(0, MAX_PARENT_FEATURES - len(chosen))]
    return [*chosen, ParentFeature(name=prefix + "__children", column="", kind="count")]


def parent_feature_frame(features: list[ParentFeature], parent: pd.DataFrame, counts: np.ndarray | None) -> pd.DataFrame:
    """The features of every parent row, indexed 0..n-1 in `parent` order."""
    out: dict[str, pd.Series] = {}
    for feature in features:
        if feature.kind == "value":
            out[feature.name] = parent[feature.column].reset_index(drop=True)
        elif feature.kind == "onehot":
            out[feature.name] = pd.Series((parent[feature.column].astype(str) == feature.category).to_numpy().astype("int64"))
        elif counts is not None:
            out[feature.name] = pd.Series(np.asarray(counts, dtype="int64"))
    return pd.DataFrame(out, index=pd.RangeIndex(len(parent)))


def _feature_meta(features: list[ParentFeature], parent_meta: TableMeta, frame: pd.DataFrame) -> dict[str, ColumnMeta]:
    metas = {}
    for feature in features:
        if feature.name not in frame.columns:
            continue
        if feature.kind == "value":
            base = parent_meta.columns[feature.column]
            metas[feature.name] = base.model_copy(update={"name": feature.name, "null_rate": float(frame[feature.name].isna().mean()),
                                                         "pii_kind": None, "pii_policy": None})
        else:
            metas[feature.name] = ColumnMeta(name=feature.name, sdtype="integer", dtype="int64", null_rate=0.0,
                                             cardinality=int(frame[feature.name].nunique()))
    return metas


def _join_parent_features(relation: RelationStats, child_fk_values: pd.Series, parent: pd.DataFrame,
                          counts: np.ndarray | None) -> pd.DataFrame:
    """Each child row gets its parent's features (nulls where the FK is null or unresolved)."""
    frame = parent_feature_frame(relation.features, parent, counts)
    position = pd.Index(parent_keys(relation.fk, parent).to_numpy()).get_indexer(_comparable(child_fk_values).to_numpy())
    joined = frame.reindex(np.where(position >= 0, position, -1)).reset_index(drop=True)
    if (position < 0).any():
        joined.loc[position < 0] = None
    return joined


def _apply_dependencies(dependencies: dict[str, Dependency], body: pd.DataFrame, inherited: set[str],
                        rng: np.random.Generator, fixed: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """Columns copied from the parent keep their value and pull a fitting source value; the others follow
    their source. `fixed` columns (given as conditions, e.g. drawn once per parent) are never changed."""
    def assign(column: str, values: np.ndarray, rows: np.ndarray) -> None:
        merged = body[column].astype(object).to_numpy().copy()
        merged[rows] = values[rows]
        body[column] = pd.Series(merged).astype(body[column].dtype)

    for target, dep in dependencies.items():
        if target in inherited and dep.source not in fixed and dep.source in body.columns and target in body.columns:
            drawn = _draw_shares(body[target].astype(str).to_numpy(), dep.reverse, rng)
            assign(dep.source, drawn, np.flatnonzero(pd.notna(drawn) & body[target].notna().to_numpy()))
    for target, dep in dependencies.items():
        if target not in inherited and target not in fixed and dep.source in body.columns and target in body.columns:
            known = body[dep.source].astype(str).isin(dep.mapping.keys()).to_numpy() & body[dep.source].notna().to_numpy()
            mapped = body[dep.source].astype(str).map(dep.mapping).to_numpy(dtype=object)
            assign(target, mapped, np.flatnonzero(known))
    return body


def _draw_shares(keys: np.ndarray, reverse: dict[str, dict[str, float]], rng: np.random.Generator) -> np.ndarray:
    """Per row, a value drawn from the shares of its key; systematically within each key (the rows of one
    country get its cities in their learned shares, not a multinomial draw of them), in random row order."""
    out = np.full(len(keys), None, dtype=object)
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    for code, key in enumerate(uniques):
        shares = reverse.get(key)
        if not shares:
            continue
        rows = np.flatnonzero(codes == code)
        values = list(shares)
        cumulative = np.cumsum(np.asarray([shares[v] for v in values], dtype="float64"))
        positions = (np.arange(len(rows)) + rng.random()) / len(rows) * cumulative[-1]
        picked = np.minimum(np.searchsorted(cumulative, positions, side="right"), len(values) - 1)
        out[rows[rng.permutation(len(rows))]] = np.asarray(values, dtype=object)[picked]
    return out


def _is_lookup(df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding], column: str) -> bool:
    """A category column unique per row of a small table: the names of a lookup table (genres, media types)."""
    return (meta.columns[column].sdtype == "categorical" and 2 <= len(df) <= MAX_UNIQUE_CATEGORIES
            and not any(f.table == meta.name and f.column == column for f in findings)
            and bool(df[column].notna().all()) and bool(df[column].is_unique))


def _lookup_column(df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> str:
    keys = set(meta.primary_key)
    return next((c for c in df.columns if c not in keys and c in meta.columns and _is_lookup(df, meta, findings, c)), "")


def _inherited_columns(relation: RelationStats, table_rules: list[Rule], taken: set[str]) -> dict[str, tuple[str, float]]:
    """Child columns that repeat a parent column in a share of rows (parent_equal rules: billing country = the
    customer's country; a line's unit price = the track's in 70% of lines) whose parent column the child model is
    conditioned on: a generator only approximates equality, so generation copies the parent value into that share."""
    features = {f.column: f.name for f in relation.features if f.kind == "value"}
    return {r.columns[0]: (features[r.parent_column], r.share) for r in table_rules
            if r.kind == "parent_equal" and r.fk_column == relation.fk.child_column and r.parent_column in features
            and r.columns[0] not in taken}


def _constant_columns(fk: ForeignKey, train: pd.DataFrame, learnable: pd.DataFrame, meta: TableMeta,
                      taken: set[str]) -> list[str]:
    """Child columns that hold one value among all children of a parent (billing address columns of a customer's
    invoices): drawn row by row they would differ between a parent's children, so they are drawn once per parent."""
    groups = child_keys(fk, train).reset_index(drop=True)
    sizes = groups.value_counts()
    multi = groups.isin(set(sizes.index[sizes.to_numpy() >= 2])).to_numpy()
    if int((sizes >= 2).sum()) < CONSTANT_MIN_GROUPS:
        return []
    out = []
    for column in learnable.columns:
        if column in taken or meta.columns[column].sdtype not in FEATURE_SDTYPES or learnable[column].nunique() < 2:
            continue
        values = learnable[column].reset_index(drop=True)[multi]
        text = values.astype(str).where(values.notna(), "\x00null")
        distinct = text.groupby(groups[multi].to_numpy()).nunique()
        if float((distinct == 1).mean()) >= CONSTANT_MIN_SHARE:
            out.append(column)
    return out


def rows_per_person(schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], people: set[str]) -> dict[str, float]:
    """Rows per person, for tables of people (1) and tables that hang off them through their first FK to one
    (a customer's payments: 27); tables unrelated to people are absent. Generators smooth over several people."""
    out: dict[str, float] = {t: 1.0 for t in people if t in tables}
    for name in schema.generation_order:
        if name in out:
            continue
        for fk in schema.fks_of(name):
            if fk.is_self_reference or fk.deferred or fk.parent_table not in out:
                continue
            values = child_keys(fk, tables[name]).dropna()
            if len(values):
                out[name] = out[fk.parent_table] * len(values) / values.nunique()
                break
    return out


def _training_meta(meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> TableMeta:
    """Hashed and masked PII columns are learned as tokens (categories), not as free text."""
    meta = meta.model_copy(deep=True)
    for finding in findings:
        if finding.table == meta.name and (finding.policy in ("hash", "mask") or finding.consistent) and finding.column in meta.columns:
            meta.columns[finding.column].sdtype = "categorical"
    return meta


def _fit_count_model(relation: RelationStats, parent_train: pd.DataFrame, counts: np.ndarray, parent_meta: TableMeta,
                     directory: Path, seed: int) -> bool:
    """Children per parent given the parent's features: a small copula, so counts follow the parent's columns."""
    features = [f for f in relation.features if f.kind != "count"]
    if not features or len(parent_train) < 2:
        return False
    frame = parent_feature_frame(features, parent_train, None)
    frame[COUNT_COLUMN] = np.asarray(counts, dtype="int64")
    metas = _feature_meta(features, parent_meta, frame)
    metas[COUNT_COLUMN] = ColumnMeta(name=COUNT_COLUMN, sdtype="integer", dtype="int64", null_rate=0.0,
                                     cardinality=int(frame[COUNT_COLUMN].nunique()))
    model = GaussianCopulaGenerator()
    model.fit(frame, TableMeta(name=f"{relation.fk.label} (children per parent)", row_count=len(frame), columns=metas), seed=seed)
    model.save(directory)
    return True


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
    publish: bool = True,
) -> tuple[RelationalModel, dict[str, tuple[pd.DataFrame, pd.DataFrame]]]:
    """Fit every table's generator on its training split and learn the FK structure; save atomically. The three
    steps of engine/training.py in one process (plan, each table, assemble): the same model as when a scheduler
    runs them as separate steps.

    `publish=False` saves the version folder but leaves LATEST alone: the pipeline moves it (set_latest) only
    once the model's split is committed to the warehouse.

    A child's generator also sees its parents' features (see select_parent_features), so at generation it is
    sampled conditioned on the parents its rows were assigned to. Returns the model and each table's (train,
    holdout) split, so the caller can keep the holdout for evaluation.
    """
    from genesis_pipelines.engine import training

    plan = training.prepare_training(spec, schema, tables, findings, model_root, log=log)
    try:
        for name in plan.db_schema.generation_order:
            training.train_table(spec, plan, name, tables, findings, model_root, device=device, hash_key=hash_key, log=log)
        model = training.assemble(spec, plan, findings, model_root, publish=publish)
    except BaseException:
        shutil.rmtree(training.staging_dir(model_root, plan.version), ignore_errors=True)
        raise
    return model, training.splits_from_plan(plan, tables)


def _with_reference_labels(schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], reference: Mapping[str, str]) -> DatasetSchema:
    """A reference table's text columns are categories (genre names), whatever their count: children are conditioned
    on them and the quality report compares them as categories."""
    if not reference:
        return schema
    schema = schema.model_copy(deep=True)
    for name in reference:
        keys = schema.key_columns(name)
        for column, cmeta in schema.tables[name].columns.items():
            if column not in keys and cmeta.sdtype in ("name", "code", "text") and column in tables[name].columns:
                cmeta.sdtype = "categorical"
    return schema


def _empty_table_model(name: str, df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> TableModel:
    dropped = {f.column for f in findings if f.table == name and f.policy == "drop"}
    return TableModel(table=name, method=EMPTY_METHOD, row_count=0, train_rows=0, holdout_rows=0,
                      columns=[c for c in df.columns if c not in dropped], key_stats={},
                      describe={"method": EMPTY_METHOD, "rows": 0, "columns_modelled": 0})


# ---------------------------------------------------------------- loading


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


class _Parents:
    """A generated parent table as the relational layer needs it: keys, and per relation the count model."""

    def __init__(self, model: RelationalModel, model_dir: Path, relation: RelationStats, parent: pd.DataFrame):
        self.relation, self.frame = relation, parent.reset_index(drop=True)
        # a composite key as its tuple codes (see schema.key_values); one column as generated, keeping its dtype
        self.keys = (parent_keys(relation.fk, self.frame) if relation.fk.composite
                     else self.frame[relation.fk.parent_column])
        self.model_dir = Path(model_dir) / "relations" / str(model.relations.index(relation))

    def weights(self, rng: np.random.Generator) -> np.ndarray:
        """Children per parent: the learned distribution, systematically sampled, handed out to parents in the
        order the count model ranks them given their own columns (the marginal stays exact, the dependence on
        the parent's columns comes from the model)."""
        n = len(self.frame)
        if self.relation.count_by_value and self.relation.count_key in self.frame.columns:
            known = self.frame[self.relation.count_key].astype(str).map(self.relation.count_by_value)
            if known.notna().any():
                return known.fillna(known.mean()).to_numpy(dtype="float64")
        for _ in range(3):
            counts = _sample_counts(self.relation, n, rng).astype("float64")
            if counts.sum() > 0:
                break
        else:
            return np.ones(n)
        if not self.relation.count_model or n < 2:
            return counts
        features = [f for f in self.relation.features if f.kind != "count"]
        conditions = parent_feature_frame(features, self.frame, None)
        # the mean of a few conditional draws ranks the parents (one draw is too noisy on small lookup tables)
        count_model = load_generator(self.model_dir)
        repeated = conditions.iloc[np.tile(np.arange(n), COUNT_DRAWS)].reset_index(drop=True)
        predicted = count_model.sample(n * COUNT_DRAWS, conditions=repeated, seed=int(rng.integers(0, 2**31 - 1)))
        draws = pd.to_numeric(predicted[COUNT_COLUMN], errors="coerce").fillna(0).to_numpy(dtype="float64")
        score = draws.reshape(COUNT_DRAWS, n).mean(axis=0)
        ranks = np.lexsort((rng.random(n), score))  # ascending score, random among ties
        out = np.empty(n)
        out[ranks] = np.sort(counts)
        return out


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


def _weighted_distinct(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Efraimidis-Spirakis: k distinct indices, weighted, without replacement."""
    if k >= len(weights):
        return np.arange(len(weights))
    priority = np.log(rng.random(len(weights))) / np.maximum(weights, 1e-12)
    return np.argpartition(-priority, k - 1)[:k]


def _assign(parents: _Parents, n: int, rng: np.random.Generator, shuffle: bool) -> tuple[pd.Series, np.ndarray]:
    """FK values for n child rows (nulls at the learned share, the rest spread over parents like the real data)
    and the number of children each parent got."""
    relation, parent_keys = parents.relation, parents.keys
    fk = relation.fk
    is_null = rng.random(n) < relation.null_share if relation.null_share > 0 else np.zeros(n, dtype=bool)
    present = int((~is_null).sum())
    if len(parent_keys) == 0:
        if present:
            raise GenesisError(f"table {fk.child_table!r}: parent table {fk.parent_table!r} has no generated rows for {fk.child_column}")
        return pd.Series([None] * n, dtype=_nullable_dtype(parent_keys)), np.zeros(0, dtype=int)  # None: NaN for float keys
    weights = parents.weights(rng)
    is_null = rules.enough_present(is_null, relation.min_children * len(parent_keys), rng)
    present = int((~is_null).sum())
    if relation.unique:
        # one-to-one: distinct parents; rows beyond the number of parents get a null key, or where the key is
        # required a parent again (rows whose primary key is this FK then repeat and are dropped at output)
        counts = np.zeros(len(parent_keys), dtype=int)
        counts[_weighted_distinct(weights + 1e-9, present, rng)] = 1
        if present > len(parent_keys):
            extra = np.flatnonzero(~is_null)[len(parent_keys):]
            if fk.nullable:
                is_null[extra] = True
            else:
                counts += apportion(weights + 1e-9, len(extra), rng)
    else:
        counts = rules.at_least(apportion(weights, present, rng), relation.min_children, rng)
    assigned = np.repeat(parent_keys.to_numpy(), counts)
    if shuffle:
        assigned = assigned[rng.permutation(len(assigned))]
    values = pd.Series([pd.NA] * n, dtype=_nullable_dtype(parent_keys))
    values[~is_null] = assigned
    return values, counts


def _unique_within_groups(groups: np.ndarray, parents: _Parents, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second key of a junction table: distinct parents within each group, weighted by popularity."""
    weights = parents.weights(rng) + 1e-3
    keep, chosen = [], []
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, boundaries):
        k = min(len(rows), len(weights))
        keep.append(rows[:k])
        chosen.append(_weighted_distinct(weights, k, rng))
    rows = np.concatenate(keep) if keep else np.array([], dtype=int)
    picked = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    picked = rules.cover(groups[rows], picked, len(weights), parents.relation.min_children, rng)
    return rows, parents.keys.to_numpy()[picked], np.bincount(picked, minlength=len(weights))


def _self_reference(relation: RelationStats, keys: pd.Series, rng: np.random.Generator) -> pd.Series:
    """A forest generated level by level: the learned share of rows per depth, each row pointing to a row one
    level up (weighted by the learned children-per-parent distribution); never a cycle."""
    n = len(keys)
    if n == 0:
        return pd.Series([], dtype=keys.dtype)
    depth_probs = np.asarray(relation.depth_probs or [relation.null_share, 1 - relation.null_share], dtype="float64")
    per_level = apportion(depth_probs, n, rng)
    if per_level[0] == 0:  # a hierarchy needs a root
        per_level[int(np.argmax(per_level))] -= 1
        per_level[0] += 1
    per_level = per_level[: max(1, int(np.flatnonzero(per_level).max()) + 1)]
    values = pd.Series([pd.NA] * n, dtype=keys.dtype)
    key_values = keys.to_numpy()
    bounds = np.concatenate([[0], np.cumsum(per_level)])
    for level in range(1, len(per_level)):
        above = np.arange(bounds[level - 1], bounds[level])
        rows = np.arange(bounds[level], bounds[level + 1])
        if not len(rows):
            continue
        weights = _sample_counts(relation, len(above), rng).astype("float64") + 1e-3
        counts = apportion(weights, len(rows), rng)
        values[rows] = key_values[np.repeat(above, counts)][rng.permutation(len(rows))]
    return values


def table_size(model: RelationalModel, table: str, scale: float) -> int:
    """At least one row at any scale, except for a table that had none; reference data keeps its size."""
    rows = model.tables[table].row_count
    if model.tables[table].method == reference_tables.REFERENCE_METHOD:
        return rows
    return max(1, int(round(rows * scale))) if rows else 0


def empty_table(model: RelationalModel, table: str) -> pd.DataFrame:
    """The table with no rows: its output columns, each with the real column's dtype."""
    columns = model.db_schema.tables[table].columns
    return pd.DataFrame({c: pd.Series(dtype=columns[c].dtype) for c in model.tables[table].columns})


def _swap_copies(body: pd.DataFrame, columns: list[str], meta: TableMeta, salt: str, digests: set[str],
                 swappable: list[str], rng: np.random.Generator, rounds: int = SWAP_ROUNDS) -> pd.DataFrame:
    """Rows that reproduce a unique real record exchange one column's value with another row, when that leaves
    neither row a copy: every column keeps its sampled values, so the batch's marginals stay as drawn (a redraw
    would pull rare values towards common ones: 59 customers lose most of their one-customer countries)."""
    swappable = [c for c in swappable if c in body.columns and body[c].nunique(dropna=False) > 1]
    if not swappable or len(body) < 2:
        return body
    body = body.reset_index(drop=True)
    values = {c: body[c].to_numpy(dtype=object, copy=True) for c in swappable}

    def copies(rows: np.ndarray) -> np.ndarray:
        frame = body.iloc[rows].copy()
        for column in swappable:
            frame[column] = pd.Series(values[column][rows], index=frame.index, dtype=object).astype(body[column].dtype)
        return record_guard.copies(record_guard.row_keys(frame, columns, meta), salt, digests)

    every = np.arange(len(body))
    hit = every[copies(every)]
    for _ in range(rounds):
        if not len(hit):
            break
        free = np.setdiff1d(every, hit)
        if not len(free):
            break
        hit = rng.permutation(hit)[: len(free)]
        partners = rng.choice(free, size=len(hit), replace=False)
        chosen = np.asarray(swappable, dtype=object)[rng.integers(0, len(swappable), len(hit))]
        for column in swappable:
            sel = chosen == column
            a, b = hit[sel], partners[sel]
            values[column][a], values[column][b] = values[column][b], values[column][a].copy()
        after = copies(np.concatenate([hit, partners]))
        spoiled = after[len(hit):]  # the partner became a copy: undo that exchange
        for column in swappable:
            sel = (chosen == column) & spoiled
            a, b = hit[sel], partners[sel]
            values[column][a], values[column][b] = values[column][b], values[column][a].copy()
        hit = every[copies(every)]
    for column in swappable:
        body[column] = pd.Series(values[column], dtype=object).astype(body[column].dtype)
    return body


def _resample_copies(draw: Callable[[int, pd.DataFrame | None, int], pd.DataFrame], body: pd.DataFrame,
                     conditions: pd.DataFrame | None, columns: list[str], meta: TableMeta, salt: str, digests: set[str],
                     seed: int, swappable: list[str] | None = None) -> pd.DataFrame:
    """Rows that reproduce a unique real record: first exchanged values between rows (see _swap_copies), then any
    left redrawn, each with its own parent conditions."""
    if not digests or not columns or body.empty:
        return body
    for round_ in range(record_guard.MAX_RESAMPLE_ROUNDS):
        keys = record_guard.row_keys(body, columns, meta)
        hits = np.flatnonzero(record_guard.copies(keys, salt, digests))
        if len(hits) and round_ == 0 and swappable:
            body = _swap_copies(body, columns, meta, salt, digests, swappable, np.random.default_rng(seed))
            keys = record_guard.row_keys(body, columns, meta)
            hits = np.flatnonzero(record_guard.copies(keys, salt, digests))
        if not len(hits):
            break
        cond = conditions.iloc[hits].reset_index(drop=True) if conditions is not None else None
        fresh = draw(len(hits), cond, seed + round_ + 1)[list(body.columns)].set_axis(hits)
        body = pd.concat([body.drop(index=hits), fresh]).sort_index()
    return body


def _storage_types(body: pd.DataFrame, meta: TableMeta) -> pd.DataFrame:
    """Numbers modelled as categories (a 0/1 flag, a code like 20 / 40 / 50) come back as numbers, as stored in
    the real table, whenever every value parses; dates stored as text come back in the real column's layout:
    output reads like input, and compares equal to it."""
    for column in body.columns:
        cmeta = meta.columns.get(column)
        real = cmeta.dtype.lower() if cmeta else ""
        if cmeta is not None and cmeta.sdtype == "datetime" and cmeta.text_layout:  # "June 22, 2018" stays so
            body[column] = dates_as_text(body[column], cmeta.text_layout)
            continue
        if not real.startswith(("int", "uint", "float")) or pd.api.types.is_numeric_dtype(body[column]):
            continue
        parsed = pd.to_numeric(body[column], errors="coerce")
        if int(parsed.isna().sum()) == int(body[column].isna().sum()):
            body[column] = parsed.astype("Int64" if real.startswith(("int", "uint")) and (parsed.dropna() % 1 == 0).all()
                                          else "float64")
    return body


def _copies_after_rules(out: pd.DataFrame, table_rules: list, parents: Mapping[str, pd.DataFrame], columns: list[str],
                        meta: TableMeta, salt: str, digests: set[str], swappable: list[str],
                        rng: np.random.Generator) -> pd.DataFrame:
    """Rows the rule repair turned into copies of unique real records: exchange a value no rule reads; else any
    value, then repair again (a few rounds: the repair keeps the rules, the exchange breaks the copy)."""
    ruled = {c for r in table_rules for c in r.columns}
    out = _swap_copies(out, columns, meta, salt, digests, [c for c in swappable if c not in ruled], rng)
    for _ in range(3):
        if not record_guard.copies(record_guard.row_keys(out, columns, meta), salt, digests).any():
            break
        out = rules.enforce(table_rules, _swap_copies(out, columns, meta, salt, digests, swappable, rng), parents, rng)
    return out


def _inherit(relations: list[RelationStats], body: pd.DataFrame, conditions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    for relation in relations:
        for column, (feature, share) in relation.inherited.items():
            if column not in body.columns or feature not in conditions.columns:
                continue
            values = conditions[feature]
            take = (rng.random(len(body)) < share) & values.notna().to_numpy()
            if take.any():
                merged = body[column].astype(object).to_numpy().copy()
                merged[take] = values.to_numpy()[take]
                body[column] = pd.Series(merged).astype(body[column].dtype)
    return body


def _distinct_values(generator, body: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """A lookup table's names stay distinct, as in the real table (25 genres, not 25 draws with repeats)."""
    columns = [c for c in columns if c in body.columns and body[c].duplicated().any()]
    if not columns:
        return body
    pool = generator.sample(min(50 * len(body), 50_000), seed=int(rng.integers(0, 2**31 - 1)))
    for column in columns:
        distinct = np.asarray(pd.unique(pool[column].dropna()), dtype=object)
        if len(distinct) == 0:
            continue
        # every learned value once before any repeats (the training split may hold fewer names than rows)
        extra = rng.choice(distinct, max(0, len(body) - len(distinct)))
        values = np.concatenate([rng.permutation(distinct)[: len(body)], extra])
        body[column] = pd.Series(values[rng.permutation(len(values))]).astype(body[column].dtype)
    return body


def _predicted_category(predicted: pd.DataFrame, relation: RelationStats, feature: ParentFeature) -> np.ndarray:
    """The parent category a sampled child row asks for: its one set indicator if exactly one is, else the value."""
    values = predicted[feature.name].astype(object).where(predicted[feature.name].notna(), None)
    values = np.asarray([None if v is None else str(v) for v in values], dtype=object)
    indicators = [f for f in relation.features if f.kind == "onehot" and f.column == feature.column and f.name in predicted]
    if indicators:
        flags = np.column_stack([pd.to_numeric(predicted[f.name], errors="coerce").fillna(0).to_numpy() >= 0.5
                                 for f in indicators])
        one = flags.sum(axis=1) == 1
        values[one] = np.asarray([f.category for f in indicators], dtype=object)[flags[one].argmax(axis=1)]
    return values


def _match_categories(want: np.ndarray, have: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """take[i]: which of the assigned parents (categories `have`) row i gets, as many rows as possible getting
    the category they ask for (`want`); the rest are paired at random."""
    take = np.full(len(want), -1)
    # a null category (a parent with no value) is a slot like any other: every assigned parent is handed out once
    codes, uniques = pd.factorize(pd.Series(have, dtype=object), use_na_sentinel=False)
    slots = {code: list(rng.permutation(np.flatnonzero(codes == code))) for code in range(len(uniques))}
    code_of = {category: code for code, category in enumerate(uniques) if not pd.isna(category)}
    for category in pd.unique(want[pd.notna(want)]):
        code = code_of.get(category)
        pool = slots.get(code) if code is not None else None
        if not pool:
            continue
        rows = rng.permutation(np.flatnonzero(want == category))[: len(pool)]
        take[rows] = pool[: len(rows)]
        slots[code] = pool[len(rows):]
    left = np.asarray([i for pool in slots.values() for i in pool], dtype=int)
    open_rows = np.flatnonzero(take < 0)
    take[open_rows] = rng.permutation(left)[: len(open_rows)]
    return take


def _match_numbers(want: np.ndarray, have: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank matching: the row asking for the k-th smallest score gets the parent with the k-th smallest score."""
    jitter = rng.random(len(want)) * 1e-9
    take = np.empty(len(want), dtype=int)
    rows = np.lexsort((jitter, np.where(np.isnan(want), rng.standard_normal(len(want)), want)))
    take[rows] = np.lexsort((rng.random(len(have)), np.nan_to_num(have)))
    return take


def _joint_parents(generator, relations: list[RelationStats], keys: dict[str, pd.Series], placed: dict,
                   per_parent: dict[int, np.ndarray], rng: np.random.Generator) -> None:
    """A child with several parents gets a plausible combination of them, not independent ones (a track's genre
    goes with its media type; an invoice line's track with its invoice): the child model is sampled given the
    first parent only, and each further parent's assigned keys (children per parent unchanged) are permuted over
    the rows so each row gets a parent like the one it asks for: the lookup name it asks for, else the closest
    rank of the parent's numeric features, else its first category."""
    rest = [r for r in relations[1:] if any(f.kind == "value" for f in r.features)]
    if not relations or not rest or generator is None:
        return
    anchor = relations[0]
    n = len(keys[anchor.fk.child_column])
    if n < 2:
        return
    cond = (_join_parent_features(anchor, keys[anchor.fk.child_column], placed[id(anchor)].frame, per_parent[id(anchor)])
            if anchor.features else None)
    wanted = [f.name for r in rest for f in r.features if f.kind != "count"]
    seed = int(rng.integers(0, 2**31 - 1))
    parts = []
    try:  # in chunks, keeping only the parent features asked for: memory stays bounded on big child tables
        for start in range(0, n, CHUNK_ROWS):
            part_cond = cond.iloc[start:start + CHUNK_ROWS].reset_index(drop=True) if cond is not None else None
            part = generator.sample(min(CHUNK_ROWS, n - start), conditions=part_cond, seed=seed + start)
            parts.append(part[[c for c in wanted if c in part.columns]].reset_index(drop=True))
    except GenesisError:  # a model that cannot condition this way keeps the independent choice
        return
    predicted = pd.concat(parts, ignore_index=True)
    for relation in rest:
        column = keys[relation.fk.child_column]
        present = column.notna().to_numpy()
        frame = placed[id(relation)].frame
        position = pd.Index(parent_keys(relation.fk, frame).to_numpy()).get_indexer(
            _comparable(column[present]).to_numpy())
        if present.sum() < 2 or (position < 0).any():
            continue
        values = [f for f in relation.features if f.kind == "value" and f.name in predicted.columns]
        lookup = [f for f in values if f.column == relation.count_key]
        numeric = [f for f in values if pd.api.types.is_numeric_dtype(frame[f.column])
                   and not pd.api.types.is_bool_dtype(frame[f.column])]
        categorical = [f for f in values if f not in numeric]
        if lookup or (categorical and not numeric):
            feature = (lookup or categorical)[0]
            have = frame[feature.column].astype(str).to_numpy(dtype=object)[position]
            take = _match_categories(_predicted_category(predicted, relation, feature)[present], have, rng)
        elif numeric:
            want, have = np.zeros(int(present.sum())), np.zeros(int(present.sum()))
            for feature in numeric:
                parent_values = pd.to_numeric(frame[feature.column], errors="coerce").to_numpy(dtype="float64")[position]
                mean, sd = np.nanmean(parent_values), np.nanstd(parent_values) or 1.0
                asked = pd.to_numeric(predicted[feature.name], errors="coerce").to_numpy(dtype="float64")[present]
                want += np.nan_to_num((asked - mean) / sd)
                have += np.nan_to_num((parent_values - mean) / sd)
            take = _match_numbers(want, have, rng)
        else:
            continue
        matched = column.copy()
        matched[present] = column[present].to_numpy()[take]
        keys[relation.fk.child_column] = matched


def _plan_keys(model: RelationalModel, model_dir: Path, table: str, parents: Mapping[str, pd.DataFrame], n: int,
               rng: np.random.Generator, generator=None) -> tuple[dict[str, pd.Series], pd.DataFrame | None, int]:
    """Every key column of the table's n rows, and the parent features each row is conditioned on.

    `keys` holds each FK's values under `fk.child_column` (a composite FK's tuple codes under its joined name)
    and every real key column; an FK that shares columns with one assigned before it (results_raw's
    (series, baker) after its (series, episode)) picks among the parents that agree on them (_assign_within)."""
    tm, meta = model.tables[table], model.db_schema.tables[table]
    relations = [r for r in model.relations_of(table) if not r.fk.is_self_reference and not r.fk.deferred]
    keys: dict[str, pd.Series] = {}
    per_parent: dict[int, np.ndarray] = {}  # children each parent got, by relation index
    pk = meta.primary_key
    pk_fks = [r for r in relations if r.fk.child_column in pk]
    placed: dict[int, _Parents] = {id(r): _Parents(model, model_dir, r, parents[r.fk.parent_table]) for r in relations}
    rows = None
    if len(pk) >= 2 and len(pk_fks) == len(pk) == 2:
        # junction: group by the parent with fewer rows, then pick distinct partners within each group
        first, second = sorted(pk_fks, key=lambda r: len(parents[r.fk.parent_table]))
        first_values, _ = _assign(placed[id(first)], n, rng, shuffle=False)
        rows, partners, per_parent[id(second)] = _unique_within_groups(pd.factorize(first_values)[0], placed[id(second)], rng)
        keys[first.fk.child_column] = first_values.iloc[rows].reset_index(drop=True)
        per_parent[id(first)] = _children_counts(first.fk, pd.DataFrame({first.fk.child_column: keys[first.fk.child_column]}),
                                                 placed[id(first)].frame).to_numpy()
        keys[second.fk.child_column] = pd.Series(partners, dtype=_nullable_dtype(placed[id(second)].keys))
        n = len(rows)
        relations = [r for r in relations if r not in (first, second)]
    keep = np.ones(n, dtype=bool)
    within: list[RelationStats] = []  # assigned among parents agreeing with earlier keys: not permuted afterwards
    for index, relation in enumerate(relations):
        columns = relation.fk.child_columns
        shared = [c for c in columns if c in keys]
        new = set(columns) - set(shared)
        # the FK completes the primary key: rows agreeing on the rest of it need distinct parents
        distinct = set(pk) <= set(keys) | new and bool(set(pk) & new) and bool(set(pk) - new)
        distinct_by = [c for c in pk if c not in new and c not in shared] if distinct else None
        if shared or distinct:
            keys[relation.fk.child_column], per_parent[id(relation)] = _assign_within(
                placed[id(relation)], keys, shared, distinct_by, keep, rng)
            within.append(relation)
        else:
            keys[relation.fk.child_column], per_parent[id(relation)] = _assign(placed[id(relation)], n, rng, shuffle=index > 0)
        _expand_key(relation, keys, placed[id(relation)].frame)
    if not keep.all():  # rows no parent combination could take (more rows of an episode than bakers of its series)
        keys = {c: v[keep].reset_index(drop=True) for c, v in keys.items()}
        n = int(keep.sum())
        for relation in relations:
            per_parent[id(relation)] = _key_counts(relation.fk, keys[relation.fk.child_column], placed[id(relation)].frame)
    _joint_parents(generator, [r for r in relations if r not in within], keys, placed, per_parent, rng)
    for relation in relations:
        _expand_key(relation, keys, placed[id(relation)].frame)
    if rules.fill_min_children(tm.rules, [r.fk for r in relations], keys, parents, pk, rng):
        n = len(keys[relations[0].fk.child_column])
        for relation in relations:
            per_parent[id(relation)] = _key_counts(relation.fk, keys[relation.fk.child_column], placed[id(relation)].frame)
    rules.room_between_parents(tm.rules, [r.fk for r in relations], keys, parents, pk, rng)
    for column, stats in tm.key_stats.items():
        if stats.within and all(c in keys for c in stats.within):
            groups = pd.DataFrame({c: keys[c].reset_index(drop=True) for c in stats.within})
            keys[column] = pd.Series(groups.groupby(stats.within, dropna=False, sort=False).cumcount().to_numpy()
                                     + stats.start, dtype="Int64")
        else:
            keys[column] = _generate_keys(stats, n, rng)
    for relation in model.relations_of(table):
        if relation.fk.deferred:  # filled once its parent table exists (fill_deferred_keys)
            for child_column, parent_column in zip(relation.fk.child_columns, relation.fk.parent_columns):
                if child_column not in keys:
                    parent_dtype = model.db_schema.tables[relation.fk.parent_table].columns[parent_column].dtype
                    keys[child_column] = pd.Series([pd.NA] * n, dtype="Int64" if "int" in parent_dtype.lower() else "string")
        elif relation.fk.is_self_reference:
            keys[relation.fk.child_column] = _self_reference(relation, keys[relation.fk.parent_column], rng)
    frames = [_join_parent_features(r, keys[r.fk.child_column], placed[id(r)].frame, per_parent[id(r)])
              for r in model.relations_of(table) if id(r) in placed and r.features]
    conditions = pd.concat(frames, axis=1) if frames else None
    return keys, conditions, n


def _key_counts(fk: ForeignKey, values: pd.Series, parent: pd.DataFrame) -> np.ndarray:
    """Children per parent row of assigned FK values (tuple codes for a composite FK)."""
    per_parent = _comparable(values.dropna()).value_counts()
    return per_parent.reindex(parent_keys(fk, parent).to_numpy(), fill_value=0).to_numpy()


def _expand_key(relation: RelationStats, keys: dict[str, pd.Series], parent: pd.DataFrame) -> None:
    """A composite FK's tuple codes into its child columns: each row takes the parent row's key values."""
    fk = relation.fk
    if not fk.composite:
        return
    position = pd.Index(parent_keys(fk, parent).to_numpy()).get_indexer(_comparable(keys[fk.child_column]).to_numpy())
    for child_column, parent_column in zip(fk.child_columns, fk.parent_columns):
        values = parent[parent_column].reset_index(drop=True)
        expanded = values.reindex(np.where(position >= 0, position, -1)).reset_index(drop=True)
        expanded[position < 0] = pd.NA
        keys[child_column] = expanded.astype(_nullable_dtype(values))


def _assign_within(parents: _Parents, keys: dict[str, pd.Series], shared: list[str], distinct_by: list[str] | None,
                   keep: np.ndarray, rng: np.random.Generator) -> tuple[pd.Series, np.ndarray]:
    """FK values for rows whose `shared` key columns are already set: each row's parent is drawn, weighted by the
    learned popularity, among the parent rows whose paired columns hold the same values, and distinct among rows
    that agree on `distinct_by` (the rest of a primary key this FK completes). Rows with no parent left to take
    are cleared from `keep` (dropped), or get a null key where the FK is nullable."""
    relation, frame = parents.relation, parents.frame
    fk = relation.fk
    n = len(keep)
    weights = parents.weights(rng) + 1e-3
    paired = [fk.parent_columns[fk.child_columns.index(c)] for c in shared]
    parent_group = key_values(frame, paired).to_numpy() if paired else np.zeros(len(frame), dtype=object)
    rows_frame = pd.DataFrame({c: keys[c].reset_index(drop=True) for c in shared + (distinct_by or [])}, index=range(n))
    child_group = key_values(rows_frame, shared) if shared else pd.Series(np.zeros(n, dtype=object))
    wanted = keep & child_group.notna().to_numpy()
    if relation.null_share > 0:
        wanted &= rng.random(n) >= relation.null_share
    candidates = pd.Series(np.arange(len(frame))).groupby(pd.Series(parent_group, dtype=object)).indices \
        if len(frame) else {}
    if distinct_by is None:
        subgroup = None
    else:
        subgroup = key_values(rows_frame, distinct_by).to_numpy() if distinct_by else np.zeros(n, dtype=object)
    position = np.full(n, -1)
    wanted_rows = np.flatnonzero(wanted)
    for group, rows in pd.Series(wanted_rows).groupby(child_group.to_numpy()[wanted_rows]).groups.items():
        rows = wanted_rows[np.asarray(rows)]
        pool = candidates.get(group)
        if pool is None or not len(pool):
            continue
        if subgroup is None:
            p = weights[pool] / weights[pool].sum()
            picked = rng.choice(len(pool), size=len(rows), p=p)
            # rows may share a parent here: any row can move to a parent short of its fewest children
            picked = rules.cover(np.arange(len(rows)), picked, len(pool), relation.min_children, rng)
            position[rows] = pool[picked]
            continue
        for _, members in pd.Series(rows).groupby(subgroup[rows]).groups.items():
            members = rng.permutation(rows[np.asarray(members)])
            take = min(len(members), len(pool))
            position[members[:take]] = pool[_weighted_distinct(weights[pool], take, rng)]
        placed_rows = rows[position[rows] >= 0]
        if relation.min_children > 0 and len(placed_rows):
            # every parent of the group keeps its fewest children (each baker of a series has results), taking rows
            # from parents above it in subgroups it is not in yet
            local = pd.Index(pool).get_indexer(position[placed_rows])
            labels = pd.factorize(pd.Series(subgroup[placed_rows], dtype=object))[0]
            position[placed_rows] = pool[rules.cover(labels, local, len(pool), relation.min_children, rng)]
    missing = wanted & (position < 0)
    if not fk.nullable:
        keep &= ~missing
    values = pd.Series([pd.NA] * n, dtype=_nullable_dtype(parents.keys))
    present = position >= 0
    values[present] = parents.keys.to_numpy()[position[present]]
    return values, np.bincount(position[present], minlength=len(frame))


def _per_parent_columns(relations: list[RelationStats], keys: dict[str, pd.Series], conditions: pd.DataFrame,
                        draw: Callable[[int, pd.DataFrame | None, int], pd.DataFrame], fixed: set[str],
                        columns: set[str], seed: int) -> pd.DataFrame:
    """Columns constant among a parent's children: one row is drawn per parent (given that parent's features, so
    the batch over parents follows the learned shares), and its values become conditions of all the children."""
    conditions = conditions.copy()
    for relation in relations:
        wanted = [c for c in relation.constant if c in columns and c not in fixed]
        if not wanted or relation.fk.child_column not in keys:
            continue
        values = keys[relation.fk.child_column]
        codes, _ = pd.factorize(_comparable(values).where(values.notna().to_numpy()))
        present = codes >= 0
        if not present.any():
            continue
        first = pd.Series(np.flatnonzero(present)).groupby(codes[present]).first().to_numpy()
        batch = draw(len(first), conditions.iloc[first].reset_index(drop=True), seed)
        for column in wanted:
            values = np.full(len(codes), None, dtype=object)
            values[present] = batch[column].astype(object).to_numpy()[codes[present]]
            conditions[column] = pd.Series(values).astype(batch[column].dtype)
            fixed.add(column)
    return conditions


def _check_condition_columns(model: RelationalModel, table: str, columns) -> None:
    """A column the table's generator does not model (unknown, a key, PII that is replaced) cannot be a condition:
    the error names table and column."""
    replaced = {f.column for f in model.pii if f.table == table and f.policy != "keep"}
    keys = model.db_schema.key_columns(table)
    for column in columns:
        if column not in model.tables[table].columns:
            raise GenesisError(f"table {table!r} has no column {column!r} to condition on")
        if column in keys or column in replaced:
            raise GenesisError(f"table {table!r}: column {column!r} is a key or a replaced PII column; it cannot be a condition")


def generate_table_chunks(
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
    chunk_rows: int = CHUNK_ROWS,
    rows: int | None = None,
    conditions: pd.DataFrame | Mapping | None = None,
) -> Iterator[pd.DataFrame]:
    """One synthetic table, given its already generated parents, as chunks of at most `chunk_rows` rows.

    `rows` replaces the table's size at `scale`; `conditions` (column -> value, or a frame such as conditions.plan
    makes, cycled to the rows) gives each row values of some of its columns, on top of its parent's features (the
    rows are then drawn through conditions.ConditionedGenerator).

    Keys for all rows are planned first (small integer arrays); the row bodies, the expensive part, are sampled
    and yielded chunk by chunk, so memory stays bounded on big child tables (stream them into DuckDB with
    io.write_table). `forbidden` holds real PII values that fake values must avoid; `copy_guard` the digests of
    unique real records that sampled rows must not reproduce (see record_guard).
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
    if tm.method == EMPTY_METHOD:
        yield empty_table(model, table)
        return
    if tm.method == reference_tables.REFERENCE_METHOD:  # reference data: the real rows, at any scale
        yield reference_tables.load_rows(Path(model_dir) / "tables" / table)[tm.columns]
        return
    raw_generator = load_generator(Path(model_dir) / "tables" / table)
    given = conditions
    size = table_size(model, table, scale) if rows is None else max(0, int(rows))
    keys, conditions, n = _plan_keys(model, model_dir, table, parents, size, rng, raw_generator)
    if given is not None and not isinstance(given, pd.DataFrame):  # values: the same for every row
        given = pd.DataFrame({c: [v] * n for c, v in dict(given).items()})
    if given is not None and len(given) and len(given.columns):
        _check_condition_columns(model, table, given.columns)
        from genesis_pipelines.engine.conditions import ConditionedGenerator

        given = given.iloc[np.arange(n) % len(given)].reset_index(drop=True)  # n may differ (a junction's pairs)
        conditions = given if conditions is None else pd.concat([conditions.reset_index(drop=True), given], axis=1)
        raw_generator = ConditionedGenerator(raw_generator, list(given.columns), table)
    # constrained: the body and any row resampled below obey the spec's constraints
    generator = constraints.constrain(raw_generator, Path(model_dir) / "tables" / table)
    guard_columns = record_guard.record_columns(meta, comparison_exclusions(model)[table]) if copy_guard is not None else []
    null_rates = {c.name: c.null_rate for c in meta.columns.values()}
    pii_columns = {f.column for f in model.pii if f.table == table}
    token_columns = [c for c, m in meta.columns.items() if m.sdtype in ("code", "name") and c not in pii_columns]
    pk = meta.primary_key
    chunk_rows = max(1, int(chunk_rows))
    inherited = {c for r in model.relations_of(table) for c in r.inherited} if conditions is not None else set()
    fixed: set[str] = set()  # columns drawn once per parent, then given to every row as conditions

    def draw(k: int, cond: pd.DataFrame | None, draw_seed: int) -> pd.DataFrame:
        """Rows from the generator, then parent values copied in and dependent columns restored."""
        body = _storage_types(generator.sample(k, conditions=cond, seed=draw_seed).reset_index(drop=True), meta)
        post = np.random.default_rng(draw_seed)
        if cond is not None:
            body = _inherit(model.relations_of(table), body, cond, post)
        return _apply_dependencies(tm.dependencies, body, inherited, post, fixed) if tm.dependencies else body

    if conditions is not None:
        conditions = _per_parent_columns(model.relations_of(table), keys, conditions, draw, fixed, set(tm.columns),
                                         int(rng.integers(0, 2**31 - 1)))
    # columns a copy may exchange with another row: none that must agree with the row's parent or other columns
    tied = inherited | fixed | {c for t, d in tm.dependencies.items() for c in (t, d.source)}
    swappable = [c for c in guard_columns if c not in tied]

    for start in range(0, max(n, 1), chunk_rows):
        stop = min(n, start + chunk_rows)
        cond = conditions.iloc[start:stop].reset_index(drop=True) if conditions is not None else None
        body = draw(stop - start, cond, int(rng.integers(0, 2**31 - 1)))
        body = _resample_copies(draw, body, cond, guard_columns, meta, model.pii_guard_salt, copy_guard or set(),
                                int(rng.integers(0, 2**31 - 1)), swappable=swappable)
        if n <= chunk_rows:
            body = _distinct_values(generator, body, tm.unique_columns, rng)
        body = constraints.settle(generator, body, cond, lambda rows, c: rows if c is None else _inherit(
            model.relations_of(table), rows.reset_index(drop=True), c, rng), int(rng.integers(0, 2**31 - 1)))
        body = body[[c for c in body.columns if not c.startswith(FEATURE_PREFIX)]]
        for column, values in keys.items():
            if column in meta.columns:  # not a composite FK's tuple codes
                body[column] = values.iloc[start:stop].reset_index(drop=True)
        inherited = (parent_locales.inherited_locales(schema, table, body, parents, locale)
                     if any(f.table == table and f.policy == "fake" for f in model.pii) else None)
        out = pii_engine.fill_synthetic(table, body, model.pii, n_rows=stop - start, column_order=tm.columns, locale=locale,
                                        seed=int(rng.integers(0, 2**31 - 1)), forbidden=forbidden, null_rates=null_rates,
                                        parents=parents, inherited_locales=inherited)
        out = redraw_forbidden(out, token_columns, forbidden,
                               lambda k: raw_generator.sample(k, seed=int(rng.integers(0, 2**31 - 1))))
        out = rules.enforce(tm.rules, out, parents, rng)
        if copy_guard:  # a repaired value can complete a copy of a unique real record
            out = _copies_after_rules(out, tm.rules, parents, guard_columns, meta, model.pii_guard_salt, copy_guard,
                                      swappable, rng)
        if pk and out.duplicated(subset=pk).any():
            out = out.drop_duplicates(subset=pk).reset_index(drop=True)
        yield out


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
    chunk_rows: int = CHUNK_ROWS,
    rows: int | None = None,
    conditions: pd.DataFrame | Mapping | None = None,
) -> pd.DataFrame:
    """One synthetic table, given its already generated parents (see generate_table_chunks)."""
    chunks = list(generate_table_chunks(model, model_dir, table, parents, scale=scale, seed=seed, locale=locale,
                                        forbidden=forbidden, copy_guard=copy_guard, chunk_rows=chunk_rows, rows=rows,
                                        conditions=conditions))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def deferred_relations(model: RelationalModel, parent_table: str) -> list[RelationStats]:
    """FKs that close a cycle and point at `parent_table`: filled once it is generated."""
    return [r for r in model.relations if r.fk.deferred and r.fk.parent_table == parent_table]


def fill_deferred_keys(model: RelationalModel, model_dir: Path, relation: RelationStats, child: pd.DataFrame,
                       parent: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The post-pass of a cycle broken at a nullable FK: its values, drawn from the now generated parent table
    with the learned null share and children-per-parent distribution."""
    rng = np.random.default_rng([seed, len(model.db_schema.generation_order) + model.relations.index(relation)])
    placed = _Parents(model, model_dir, relation, parent)
    values, _ = _assign(placed, len(child), rng, shuffle=True)
    keys = {relation.fk.child_column: values.reset_index(drop=True)}
    _expand_key(relation, keys, placed.frame)
    out = child.copy()
    for child_column, parent_column in zip(relation.fk.child_columns, relation.fk.parent_columns):
        out[child_column] = keys[child_column].to_numpy()
        out[child_column] = out[child_column].astype(_nullable_dtype(parent[parent_column]))
    return out


def generate_all(model: RelationalModel, model_dir: Path, *, scale: float = 1.0, seed: int = 0, locale: str = "en_US",
                 chunk_rows: int = CHUNK_ROWS, conditions: Mapping[str, pd.DataFrame | Mapping] | None = None,
                 ) -> dict[str, pd.DataFrame]:
    """Every table in generation order: the library entry point outside Dagster (`conditions`: table -> its
    conditions, see generate_table_chunks)."""
    guard = load_pii_guard(model, model_dir)
    out: dict[str, pd.DataFrame] = {}
    for table in model.db_schema.generation_order:
        out[table] = generate_table(model, model_dir, table, out, scale=scale, seed=seed, locale=locale, forbidden=guard,
                                    copy_guard=load_copy_guard(model, model_dir, table), chunk_rows=chunk_rows,
                                    conditions=(conditions or {}).get(table))
        for relation in deferred_relations(model, table):
            out[relation.fk.child_table] = fill_deferred_keys(model, model_dir, relation, out[relation.fk.child_table],
                                                              out[table], seed=seed)
    return out
