"""Learning the structure: key statistics, children per parent, the parent features a child's generator sees,
columns inherited or constant per parent, and the count models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.schema import (
    ColumnMeta,
    DatasetSchema,
    ForeignKey,
    PlannedKey,
    TableMeta,
    child_keys,
    comparable_values,
    key_positions,
    parent_keys,
)
from genesis_pipelines.engine.privacy import pii as pii_engine
from genesis_pipelines.engine.synthesis.generators import GaussianCopulaGenerator
from genesis_pipelines.engine.synthesis.relational.model import (
    COUNT_COLUMN,
    KeyStats,
    ParentFeature,
    RelationStats,
)

FEATURE_SDTYPES = ("numeric", "integer", "categorical", "boolean", "datetime")


MAX_PARENT_FEATURES = 8  # per relation (value columns first, then category indicators), plus the children count


MAX_INDICATORS = 6  # commonest categories of a parent column that get an indicator


CONSTANT_MIN_SHARE = 0.95  # a child column with one value among a parent's children in this share of parents ...


CONSTANT_MIN_GROUPS = 5  # ... (counting parents with two children or more, at least this many) is drawn per parent


MAX_UNIQUE_CATEGORIES = 1000  # a categorical column unique per row (a lookup table's names) is drawn without repeats


def key_stats(series: pd.Series, df: pd.DataFrame | None = None, primary_key: list[str] | tuple = ()) -> KeyStats:
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


def children_counts(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame) -> pd.Series:
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
    counts = children_counts(fk, child, parent).to_numpy()
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
    weights = children_counts(fk, child, parent) if child is not None else pd.Series(1, index=parent.index)
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


def feature_meta(features: list[ParentFeature], parent_meta: TableMeta, frame: pd.DataFrame) -> dict[str, ColumnMeta]:
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


def join_parent_features(relation: RelationStats, child_fk_values: pd.Series, parent: pd.DataFrame,
                          counts: np.ndarray | None, *, with_null_dtypes: bool = False) -> pd.DataFrame:
    """Each child row gets its parent's features (nulls where the FK is null or unresolved). `with_null_dtypes`:
    the dtypes a join with some null row has (a slice of rows then matches the whole table's join)."""
    return _join(parent_feature_frame(relation.features, parent, counts), pd.Index(parent_keys(relation.fk, parent).to_numpy()),
                 child_fk_values, with_null_dtypes)


def _join(frame: pd.DataFrame, parent_index: pd.Index, child_fk_values: pd.Series, with_null_dtypes: bool) -> pd.DataFrame:
    """join_parent_features given the parent feature frame and the index of the parent keys (built once by a caller
    that joins many slices of rows)."""
    return _join_at(frame, parent_index.get_indexer(comparable_values(child_fk_values).to_numpy()), with_null_dtypes)


def _join_at(frame: pd.DataFrame, position: np.ndarray, with_null_dtypes: bool) -> pd.DataFrame:
    """_join given each child row's parent position (-1: none)."""
    position = np.asarray(position, dtype=np.int64)
    if with_null_dtypes:
        position = np.append(position, -1)
    joined = frame.reindex(np.where(position >= 0, position, -1)).reset_index(drop=True)
    if (position < 0).any():
        joined.loc[position < 0] = None
    return joined.iloc[:-1] if with_null_dtypes else joined


class RowConditions:
    """What each row of a table is conditioned on, built for the rows asked for (a block at a time), never for the
    whole table at once: its parents' features (joined from its planned keys), the caller's given values, and the
    columns drawn once per parent (_per_parent_columns). Rows built in pieces equal the rows of one whole frame."""

    def __init__(self, joins: list[tuple[RelationStats, pd.Series, pd.DataFrame, np.ndarray]], n: int):
        self.n = n
        self.joins = []
        for relation, values, parent, counts in joins:
            # the parent's features and each row's parent position, once: every block of rows takes from them (a
            # position per row is smaller than the key text, and no block looks keys up again); a planned key
            # holds its positions already (the same array, not a copy)
            if isinstance(values, PlannedKey):
                position = values.positions
            else:
                position = key_positions(parent_keys(relation.fk, parent), comparable_values(values))
                position = position.astype(np.int32) if len(parent) < 2**31 - 1 else position
            self.joins.append((position, parent_feature_frame(relation.features, parent, counts), bool((position < 0).any())))
        self.given: pd.DataFrame | None = None
        self.per_parent: dict[str, tuple[np.ndarray, pd.Series]] = {}  # column -> (parent code per row, value per code)

    def take(self, index: np.ndarray) -> pd.DataFrame:
        index = np.asarray(index, dtype=int)
        frames = [_join_at(frame, position[index], nulls) for position, frame, nulls in self.joins]
        if self.given is not None:
            frames.append(self.given.iloc[index].reset_index(drop=True))
        out = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=pd.RangeIndex(len(index)))
        for column, (codes, drawn) in self.per_parent.items():
            picked = codes[index]
            values = np.full(len(index), None, dtype=object)
            values[picked >= 0] = drawn.astype(object).to_numpy()[picked[picked >= 0]]
            out[column] = pd.Series(values).astype(drawn.dtype)
        return out

    def rows(self, start: int, stop: int) -> pd.DataFrame:
        return self.take(np.arange(start, min(stop, self.n)))


def is_lookup(df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding], column: str) -> bool:
    """A category column unique per row of a small table: the names of a lookup table (genres, media types)."""
    return (meta.columns[column].sdtype == "categorical" and 2 <= len(df) <= MAX_UNIQUE_CATEGORIES
            and not any(f.table == meta.name and f.column == column for f in findings)
            and bool(df[column].notna().all()) and bool(df[column].is_unique))


def lookup_column(df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> str:
    keys = set(meta.primary_key)
    return next((c for c in df.columns if c not in keys and c in meta.columns and is_lookup(df, meta, findings, c)), "")


def inherited_columns(relation: RelationStats, table_rules: list[Rule], taken: set[str]) -> dict[str, tuple[str, float]]:
    """Child columns that repeat a parent column in a share of rows (parent_equal rules: billing country = the
    customer's country; a line's unit price = the track's in 70% of lines) whose parent column the child model is
    conditioned on: a generator only approximates equality, so generation copies the parent value into that share."""
    features = {f.column: f.name for f in relation.features if f.kind == "value"}
    return {r.columns[0]: (features[r.parent_column], r.share) for r in table_rules
            if r.kind == "parent_equal" and r.fk_column == relation.fk.child_column and r.parent_column in features
            and r.columns[0] not in taken}


def constant_columns(fk: ForeignKey, train: pd.DataFrame, learnable: pd.DataFrame, meta: TableMeta,
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


def training_meta(meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> TableMeta:
    """Hashed and masked PII columns are learned as tokens (categories), not as free text."""
    meta = meta.model_copy(deep=True)
    for finding in findings:
        if finding.table == meta.name and (finding.policy in ("hash", "mask") or finding.consistent) and finding.column in meta.columns:
            meta.columns[finding.column].sdtype = "categorical"
    return meta


def fit_count_model(relation: RelationStats, parent_train: pd.DataFrame, counts: np.ndarray, parent_meta: TableMeta,
                     directory: Path, seed: int) -> bool:
    """Children per parent given the parent's features: a small copula, so counts follow the parent's columns."""
    features = [f for f in relation.features if f.kind != "count"]
    if not features or len(parent_train) < 2:
        return False
    frame = parent_feature_frame(features, parent_train, None)
    frame[COUNT_COLUMN] = np.asarray(counts, dtype="int64")
    metas = feature_meta(features, parent_meta, frame)
    metas[COUNT_COLUMN] = ColumnMeta(name=COUNT_COLUMN, sdtype="integer", dtype="int64", null_rate=0.0,
                                     cardinality=int(frame[COUNT_COLUMN].nunique()))
    model = GaussianCopulaGenerator()
    model.fit(frame, TableMeta(name=f"{relation.fk.label} (children per parent)", row_count=len(frame), columns=metas), seed=seed)
    model.save(directory)
    return True
