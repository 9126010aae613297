"""Drift between the current source and the model's training snapshot: per column and across tables.

Per column: PSI (numeric on quantile bins of the training data; categorical on category shares), KS for numeric
and datetime columns, chi-squared for categorical ones. Across tables: PSI of the children-per-parent distribution
now against the one the model learned (RelationStats). Only aggregates come out, so the result is safe as metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from genesis_pipelines.engine.core.schema import child_keys, parent_keys
from genesis_pipelines.engine.core.spec import STRING_KINDS
from genesis_pipelines.engine.synthesis.relational import RelationalModel, RelationStats

EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
MAX_CATEGORIES = 50  # rarer categories are pooled into one "other" bin
NUMERIC = ("numeric", "integer")


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype="float64"), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype="float64"), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _as_numbers(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dropna().astype("int64").to_numpy(dtype="float64")
    if pd.api.types.is_bool_dtype(series):
        return series.dropna().astype(int).to_numpy(dtype="float64")
    return pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype="float64")


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the training data's quantiles (ties collapse, so a constant column has one bin)."""
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if len(values) else np.array([])


def _binned_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def numeric_drift(train: pd.Series, current: pd.Series, bins: int = 10) -> dict:
    x, y = _as_numbers(train), _as_numbers(current)
    out = {"kind": "numeric", "null_share_delta": float(current.isna().mean() - train.isna().mean())}
    if len(x) == 0 or len(y) == 0:
        return {**out, "psi": 0.0 if len(x) == len(y) else float("inf"), "ks": None, "ks_pvalue": None}
    edges = quantile_edges(x, bins)
    ks = stats.ks_2samp(x, y)
    return {**out, "psi": psi(_binned_shares(x, edges), _binned_shares(y, edges)),
            "ks": float(ks.statistic), "ks_pvalue": float(ks.pvalue)}


def categorical_drift(train: pd.Series, current: pd.Series) -> dict:
    x = train.astype("string").fillna("<null>")
    y = current.astype("string").fillna("<null>")
    top = x.value_counts().index[:MAX_CATEGORIES]
    x = x.where(x.isin(top), "<other>")
    y = y.where(y.isin(top), "<other>")
    categories = sorted(set(x) | set(y))
    cx = x.value_counts().reindex(categories, fill_value=0).to_numpy()
    cy = y.value_counts().reindex(categories, fill_value=0).to_numpy()
    out = {"kind": "categorical", "psi": psi(cx / max(cx.sum(), 1), cy / max(cy.sum(), 1)),
           "new_category_share": float((~current.astype("string").isin(set(train.dropna().astype(str)))
                                        & current.notna()).mean())}
    if len(categories) < 2:
        return {**out, "chi2": 0.0, "chi2_pvalue": 1.0}
    chi2, pvalue, _, _ = stats.chi2_contingency(np.vstack([cx, cy]) + 0.5)
    return {**out, "chi2": float(chi2), "chi2_pvalue": float(pvalue)}


def table_drift(train: pd.DataFrame, current: pd.DataFrame, sdtypes: Mapping[str, str], bins: int = 10) -> dict:
    """Per-column scores for the columns the model learned as values (ids and free text are skipped)."""
    columns: dict[str, dict] = {}
    for column, sdtype in sdtypes.items():
        if sdtype in ("id", *STRING_KINDS) or column not in train.columns:
            continue
        if column not in current.columns:
            columns[column] = {"kind": "missing", "psi": float("inf")}
        elif sdtype in NUMERIC or sdtype == "datetime":
            columns[column] = numeric_drift(train[column], current[column], bins)
        else:
            columns[column] = categorical_drift(train[column], current[column])
    scores = [c["psi"] for c in columns.values()]
    return {"max_psi": max(scores, default=0.0), "columns": columns,
            "row_count_ratio": len(current) / max(len(train), 1),
            "new_columns": sorted(set(current.columns) - set(train.columns))}


def relation_drift(relation: RelationStats, tables: Mapping[str, pd.DataFrame], bins: int = 10) -> dict:
    """Children per parent now, binned at the learned distribution's quantiles, against the learned shares."""
    fk = relation.fk
    child, parent = tables.get(fk.child_table), tables.get(fk.parent_table)
    if (child is None or parent is None or not set(fk.child_columns) <= set(child.columns)
            or not set(fk.parent_columns) <= set(parent.columns)):
        return {"psi": float("inf"), "mean_trained": relation.mean, "mean_current": None}
    child_values = child_keys(fk, child)  # a composite key as one tuple code per row
    per_parent = child_values.dropna().value_counts()
    current = per_parent.reindex(parent_keys(fk, parent).dropna().unique(), fill_value=0).to_numpy(dtype="float64")
    counts, probs = np.asarray(relation.counts, dtype="float64"), np.asarray(relation.probs, dtype="float64")
    null_share_now = float(child_values.isna().mean()) if len(child) else 0.0
    if not len(counts):  # the parent was empty at training: still empty is no drift, rows since then are
        return {"psi": float("inf") if len(current) else 0.0, "mean_trained": 0.0,
                "mean_current": float(current.mean()) if len(current) else 0.0,
                "null_share_delta": null_share_now - relation.null_share}
    cumulative = np.cumsum(probs)
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(counts[np.minimum(np.searchsorted(cumulative, quantiles), len(counts) - 1)])
    trained = np.bincount(np.searchsorted(edges, counts, side="right"), weights=probs, minlength=len(edges) + 1)
    return {"psi": psi(trained, _binned_shares(current, edges)), "mean_trained": relation.mean,
            "mean_current": float(current.mean()) if len(current) else 0.0,
            "null_share_delta": null_share_now - relation.null_share}


def dataset_drift(model: RelationalModel, train: Mapping[str, pd.DataFrame], current: Mapping[str, pd.DataFrame],
                  *, threshold: float = 0.2, bins: int = 10) -> dict:
    """Every table and relation of the model; `max_psi` over all of them decides `drifted`."""
    tables = {}
    for name, meta in model.db_schema.tables.items():
        if name not in current:
            tables[name] = {"max_psi": float("inf"), "columns": {}, "missing": True}
            continue
        keys = model.db_schema.key_columns(name)
        sdtypes = {c: m.sdtype for c, m in meta.columns.items() if c not in keys}
        tables[name] = table_drift(train[name], current[name], sdtypes, bins)
    relations = {r.fk.label: relation_drift(r, current, bins) for r in model.relations if not r.fk.is_self_reference}
    max_column = max((t["max_psi"] for t in tables.values()), default=0.0)
    max_relation = max((r["psi"] for r in relations.values()), default=0.0)
    max_psi = max(max_column, max_relation)
    ks = [c["ks"] for t in tables.values() for c in t["columns"].values() if c.get("ks") is not None]
    drifted = sorted([f"{t}.{c}" for t, v in tables.items() for c, s in v["columns"].items() if s["psi"] > threshold]
                     + [label for label, r in relations.items() if r["psi"] > threshold])
    return {
        "model_version": model.version, "threshold": threshold, "max_psi": max_psi,
        "max_column_psi": max_column, "max_relation_psi": max_relation, "max_ks": max(ks, default=0.0),
        "drifted": max_psi > threshold, "drifted_items": drifted, "tables": tables, "relations": relations,
    }
