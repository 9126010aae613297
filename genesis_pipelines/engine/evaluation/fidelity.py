"""How closely synthetic tables follow the real ones: column shapes, pair trends, children per parent.

Every metric is a plain function registered by name, returning a dict of aggregates with a `score` in
0..1 (1 = indistinguishable). New metrics are added with `@column_metric(...)` / `@pair_metric(...)`
and picked per semantic type in `COLUMN_METRIC_FOR` / `PAIR_METRIC_FOR`. Nothing here returns a real
value or category label: reports built from these dicts are safe to publish as metadata.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from genesis_pipelines.engine.evaluation._prep import (
    CATEGORY_LIKE,
    EVALUABLE,
    NUMERIC_LIKE,
    codes,
    joint_codes,
    mean_or_none,
    num,
    sample_rows,
    to_float,
)
from genesis_pipelines.engine.schema import ColumnMeta, DatasetSchema, TableMeta

MAX_PAIR_ROWS = 50_000
PAIR_CATEGORY_TOP = 50  # rarer categories are pooled so contingency tables stay small

ColumnMetric = Callable[[pd.Series, pd.Series, ColumnMeta], dict]
PairMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict]

COLUMN_METRICS: dict[str, ColumnMetric] = {}
PAIR_METRICS: dict[str, PairMetric] = {}
COLUMN_METRIC_FOR = {"numeric": "ks_complement", "integer": "ks_complement", "datetime": "ks_complement",
                     "categorical": "tv_complement", "boolean": "tv_complement"}
PAIR_METRIC_FOR = {("num", "num"): "correlation_similarity", ("cat", "cat"): "contingency_similarity",
                   ("num", "cat"): "correlation_ratio_similarity"}


def column_metric(name: str) -> Callable[[ColumnMetric], ColumnMetric]:
    def register(fn: ColumnMetric) -> ColumnMetric:
        COLUMN_METRICS[name] = fn
        return fn
    return register


def pair_metric(name: str) -> Callable[[PairMetric], PairMetric]:
    def register(fn: PairMetric) -> PairMetric:
        PAIR_METRICS[name] = fn
        return fn
    return register


def evaluable_columns(meta: TableMeta, exclude: set[str]) -> list[str]:
    """Keys are regenerated and PII is replaced, so comparing them to the real values says nothing."""
    return [name for name, col in meta.columns.items() if col.sdtype in EVALUABLE and name not in exclude]


# ---------------------------------------------------------------- column shapes


def _null_fallback(real_null: float, synth_null: float) -> float:
    # When one side has no values at all, only the missing-value rates can be compared.
    return 1.0 - abs(real_null - synth_null)


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    # Only the statistic is used; the p-value part warns on tiny samples, which are legitimate here.
    with np.errstate(all="ignore"):
        return float(stats.ks_2samp(a, b, method="asymp").statistic)


@column_metric("ks_complement")
def ks_complement(real: pd.Series, synth: pd.Series, meta: ColumnMeta) -> dict:
    r, s = to_float(real, meta.sdtype), to_float(synth, meta.sdtype)
    r_null, s_null = float(np.isnan(r).mean()), float(np.isnan(s).mean())
    r, s = r[~np.isnan(r)], s[~np.isnan(s)]
    if len(r) == 0 or len(s) == 0:
        return {"score": _null_fallback(r_null, s_null), "note": "no non-null values on one side"}
    return {"score": 1.0 - _ks_statistic(r, s)}


@column_metric("tv_complement")
def tv_complement(real: pd.Series, synth: pd.Series, meta: ColumnMeta) -> dict:
    (r, s), k = joint_codes(real, synth)
    p = np.bincount(r, minlength=k) / len(r)
    q = np.bincount(s, minlength=k) / len(s)
    return {"score": 1.0 - 0.5 * float(np.abs(p - q).sum())}


def column_shape_scores(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, columns: list[str]) -> dict[str, dict]:
    """One score per column; an empty synthetic table or a missing column scores 0 rather than failing."""
    out: dict[str, dict] = {}
    for column in columns:
        col_meta = meta.columns[column]
        metric = COLUMN_METRIC_FOR[col_meta.sdtype]
        entry = {"metric": metric, "real_null_rate": num(real[column].isna().mean()) if len(real) else None,
                 "synthetic_null_rate": None}
        if column not in synth.columns:
            entry.update(score=0.0, note="column missing from the synthetic table")
        elif len(synth) == 0 or len(real) == 0:
            entry.update(score=0.0, note="no synthetic rows" if len(synth) == 0 else "no real rows")
        else:
            entry["synthetic_null_rate"] = num(synth[column].isna().mean())
            result = COLUMN_METRICS[metric](real[column], synth[column], col_meta)
            result["score"] = float(np.clip(result["score"], 0.0, 1.0))
            entry.update(result)
        out[column] = entry
    return out


# ---------------------------------------------------------------- pair trends


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    # A constant column has no correlation to speak of; 0 keeps the score defined.
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0)) if denom > 0 else 0.0


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 0.0
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    if min(ka, kb) < 2:
        return 0.0
    observed = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(float)
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return float(np.clip(np.sqrt(chi2 / n / (min(ka, kb) - 1)), 0.0, 1.0))


def _correlation_ratio(x: np.ndarray, groups: np.ndarray) -> float:
    ok = ~np.isnan(x)
    x, groups = x[ok], groups[ok]
    if len(x) < 2:
        return 0.0
    _, groups = np.unique(groups, return_inverse=True)
    counts = np.bincount(groups)
    means = np.bincount(groups, weights=x) / np.maximum(counts, 1)
    total = float(((x - x.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    between = float((counts * (means - x.mean()) ** 2).sum())
    return float(np.sqrt(np.clip(between / total, 0.0, 1.0)))


@pair_metric("correlation_similarity")
def correlation_similarity(real_a, real_b, synth_a, synth_b) -> dict:
    r, s = _pearson(real_a, real_b), _pearson(synth_a, synth_b)
    return {"score": 1.0 - abs(r - s) / 2.0, "real": r, "synthetic": s}


@pair_metric("contingency_similarity")
def contingency_similarity(real_a, real_b, synth_a, synth_b) -> dict:
    r, s = _cramers_v(real_a, real_b), _cramers_v(synth_a, synth_b)
    return {"score": 1.0 - abs(r - s), "real": r, "synthetic": s}


@pair_metric("correlation_ratio_similarity")
def correlation_ratio_similarity(real_num, real_cat, synth_num, synth_cat) -> dict:
    r, s = _correlation_ratio(real_num, real_cat), _correlation_ratio(synth_num, synth_cat)
    return {"score": 1.0 - abs(r - s), "real": r, "synthetic": s}


def _kind(meta: TableMeta, column: str) -> str:
    return "num" if meta.columns[column].sdtype in NUMERIC_LIKE else "cat"


def _encoded(df: pd.DataFrame, meta: TableMeta, column: str) -> np.ndarray:
    if _kind(meta, column) == "num":
        return to_float(df[column], meta.columns[column].sdtype)
    return codes(df[column], top=PAIR_CATEGORY_TOP)


def select_pairs(columns: list[str], *, max_pairs: int, seed: int) -> list[tuple[str, str]]:
    """All pairs, or a seeded sample of them: wide tables would otherwise cost O(columns²)."""
    pairs = list(itertools.combinations(columns, 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))]
    return pairs


def pair_trend_scores(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, columns: list[str], *,
                      max_pairs: int = 200, seed: int = 0) -> dict[str, dict]:
    """Whether relations between columns survive: correlation, Cramér's V or correlation ratio per pair."""
    columns = [c for c in columns if c in synth.columns and meta.columns[c].sdtype in EVALUABLE]
    pairs = select_pairs(columns, max_pairs=max_pairs, seed=seed)
    if not pairs:
        return {}
    used = sorted({c for pair in pairs for c in pair}, key=columns.index)
    real_rows = sample_rows(real[used], MAX_PAIR_ROWS, seed)
    synth_rows = sample_rows(synth[used], MAX_PAIR_ROWS, seed + 1)
    empty = len(synth_rows) == 0 or len(real_rows) == 0
    real_enc = {} if empty else {c: _encoded(real_rows, meta, c) for c in used}
    synth_enc = {} if empty else {c: _encoded(synth_rows, meta, c) for c in used}
    out: dict[str, dict] = {}
    for a, b in pairs:
        if _kind(meta, a) == "cat" and _kind(meta, b) == "num":
            a, b = b, a  # the metric takes (numeric, categorical)
        metric = PAIR_METRIC_FOR[(_kind(meta, a), _kind(meta, b))]
        key = "|".join(sorted((a, b), key=columns.index))
        if empty:
            out[key] = {"metric": metric, "score": 0.0, "note": "no synthetic rows" if len(synth_rows) == 0 else "no real rows"}
            continue
        result = PAIR_METRICS[metric](real_enc[a], real_enc[b], synth_enc[a], synth_enc[b])
        out[key] = {"metric": metric, **{k: num(v) if isinstance(v, float) else v for k, v in result.items()}}
        out[key]["score"] = float(np.clip(out[key]["score"] or 0.0, 0.0, 1.0))
    return out


# ---------------------------------------------------------------- cardinality


def _children_per_parent(child: pd.DataFrame, parent: pd.DataFrame, fk) -> tuple[np.ndarray, dict]:
    if fk.child_column not in child.columns or fk.parent_column not in parent.columns:
        raise KeyError("key column missing")
    (parent_codes, child_codes), k = joint_codes(parent[fk.parent_column], child[fk.child_column])
    child_null = child[fk.child_column].isna().to_numpy()
    parent_ok = ~parent[fk.parent_column].isna().to_numpy()
    parent_codes = parent_codes[parent_ok]
    linked = ~child_null & np.isin(child_codes, parent_codes)
    per_code = np.bincount(child_codes[linked], minlength=k)
    counts = per_code[parent_codes]
    non_null = int((~child_null).sum())
    extra = {"null_rate": num(child_null.mean()) if len(child) else None,
             "orphan_rate": num((non_null - int(linked.sum())) / non_null) if non_null else 0.0}
    return counts, extra


def _count_summary(counts: np.ndarray) -> dict:
    if len(counts) == 0:
        return {"parents": 0, "mean_children": None, "max_children": None, "share_childless": None}
    return {"parents": int(len(counts)), "mean_children": num(counts.mean()), "max_children": int(counts.max()),
            "share_childless": num((counts == 0).mean())}


def cardinality_scores(real_tables: Mapping[str, pd.DataFrame], synth_tables: Mapping[str, pd.DataFrame],
                       schema: DatasetSchema) -> dict[str, dict]:
    """Children-per-parent distributions: per-table scores cannot see a parent that hoards every child."""
    out: dict[str, dict] = {}
    for fk in schema.foreign_keys:
        entry: dict = {"metric": "children_per_parent_ks_complement"}
        needed = (fk.child_table, fk.parent_table)
        if any(t not in real_tables for t in needed):
            out[fk.label] = {**entry, "score": None, "note": "real table missing"}
            continue
        try:
            real_counts, real_extra = _children_per_parent(real_tables[fk.child_table], real_tables[fk.parent_table], fk)
        except KeyError:
            out[fk.label] = {**entry, "score": None, "note": "key column missing from the real tables"}
            continue
        entry["real"] = {**_count_summary(real_counts), **real_extra}
        try:
            if any(t not in synth_tables for t in needed):
                raise KeyError("synthetic table missing")
            synth_counts, synth_extra = _children_per_parent(synth_tables[fk.child_table], synth_tables[fk.parent_table], fk)
        except KeyError:
            out[fk.label] = {**entry, "score": 0.0, "note": "synthetic table or key column missing"}
            continue
        entry["synthetic"] = {**_count_summary(synth_counts), **synth_extra}
        if len(real_counts) == 0:
            entry.update(score=None, note="no real parents")
        elif len(synth_counts) == 0:
            entry.update(score=0.0, note="no synthetic parents")
        else:
            entry["score"] = 1.0 - _ks_statistic(real_counts, synth_counts)
            # Seen from the children (each child carries its family size): where most parents are childless,
            # the per-parent score barely notices one parent hoarding every child; this one does.
            real_sizes, synth_sizes = np.repeat(real_counts, real_counts), np.repeat(synth_counts, synth_counts)
            if len(real_sizes) and len(synth_sizes):
                entry["child_weighted_score"] = 1.0 - _ks_statistic(real_sizes, synth_sizes)
            else:
                entry["child_weighted_score"] = float(len(real_sizes) == len(synth_sizes))
        out[fk.label] = entry
    return out


# ---------------------------------------------------------------- the report


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def table_quality(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, exclude: set[str], *,
                  max_pairs: int = 200, seed: int = 0) -> dict:
    columns = evaluable_columns(meta, exclude)
    entry: dict = {"row_count_real": int(len(real)), "row_count_synthetic": int(len(synth))}
    columns = [c for c in columns if c in real.columns]
    if not columns:
        return {**entry, "skipped": "no evaluable columns", "column_shapes": None, "pair_trends": None,
                "columns": {}, "pairs": {}}
    if len(real) == 0:
        return {**entry, "skipped": "no real rows", "column_shapes": None, "pair_trends": None, "columns": {}, "pairs": {}}
    shapes = column_shape_scores(real, synth, meta, columns)
    pairs = pair_trend_scores(real, synth, meta, columns, max_pairs=max_pairs, seed=seed)
    entry.update(
        column_shapes=_pct(mean_or_none(c["score"] for c in shapes.values())),
        pair_trends=_pct(mean_or_none(p["score"] for p in pairs.values())),
        columns=shapes,
        pairs=pairs,
    )
    return entry


def quality_report(real_tables: Mapping[str, pd.DataFrame], synth_tables: Mapping[str, pd.DataFrame],
                   schema: DatasetSchema, *, exclude: Mapping[str, set[str]], max_pairs: int = 200,
                   seed: int = 0) -> dict:
    """Scores 0..100 per table and for the dataset; the overall score feeds the quality gate.

    Component scores are means over tables (each table counts once, however wide); a synthetic
    table that is missing counts as empty and scores 0. `overall_score` is None only when nothing
    at all could be evaluated.
    """
    tables: dict[str, dict] = {}
    for name, meta in schema.tables.items():
        if name not in real_tables:
            continue
        skip = set(exclude.get(name, set())) | schema.key_columns(name)
        synth = synth_tables.get(name)
        if synth is None:
            synth = pd.DataFrame(columns=real_tables[name].columns)
        tables[name] = table_quality(real_tables[name], synth, meta, skip, max_pairs=max_pairs, seed=seed)
    relationships = cardinality_scores(real_tables, synth_tables, schema)
    components = {
        "column_shapes": _pct(mean_or_none(t["column_shapes"] / 100 if t["column_shapes"] is not None else None
                                           for t in tables.values())),
        "pair_trends": _pct(mean_or_none(t["pair_trends"] / 100 if t["pair_trends"] is not None else None
                                         for t in tables.values())),
        "cardinality": _pct(mean_or_none(r["score"] for r in relationships.values())),
    }
    overall = mean_or_none(components.values())
    return {
        "overall_score": None if overall is None else round(overall, 2),
        **components,
        "tables": tables,
        "relationships": relationships,
    }
