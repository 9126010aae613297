"""Which columns the metrics and the copy guard compare, and the conversions they share.

Real and synthetic tables rarely agree on storage dtypes (Int64 vs float64, datetime64[us] vs strings,
boolean vs bool), so every metric first maps a column to one comparable representation here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.sources.io import iso_timestamps

NUMERIC_LIKE = ("numeric", "integer", "datetime")
CATEGORY_LIKE = ("categorical", "boolean")
EVALUABLE = NUMERIC_LIKE + CATEGORY_LIKE
NULL_KEY = "\x00<null>"  # a category for missing values; never shown in a report


def to_float(series: pd.Series, sdtype: str) -> np.ndarray:
    """Float values with NaN for missing (and for infinities, which no distance or correlation survives)."""
    if sdtype == "datetime" or pd.api.types.is_datetime64_any_dtype(series):
        if not pd.api.types.is_datetime64_any_dtype(series):
            series = iso_timestamps(series)
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert(None)
        values = (series - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    values = np.array(values, dtype="float64", copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def category_keys(*frames: pd.Series) -> list[pd.Series]:
    """The same column from several tables as comparable category keys, nulls as their own key.

    Numbers stay numbers when every side is numeric (1 and 1.0 are one category); otherwise
    everything becomes text, so "True" in one table and True in another still meet.
    """
    all_numeric = all(
        (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)) and not pd.api.types.is_object_dtype(s)
        for s in frames
    )
    out = []
    for s in frames:
        if all_numeric:
            keys = pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
        else:
            missing = s.isna().to_numpy()
            keys = pd.Series(s.astype("string").to_numpy(dtype=object, na_value=NULL_KEY), dtype=object)
            keys[missing] = NULL_KEY
        out.append(keys)
    return out


def joint_codes(*frames: pd.Series) -> tuple[list[np.ndarray], int]:
    """Codes that mean the same category in every frame (nulls included), and how many there are."""
    keys = category_keys(*frames)
    lengths = [len(k) for k in keys]
    labels, uniques = pd.factorize(pd.concat(keys, ignore_index=True), use_na_sentinel=False)
    splits = np.cumsum(lengths)[:-1]
    return [part.astype(np.int64) for part in np.split(labels, splits)], len(uniques)


def codes(series: pd.Series, *, top: int = 50) -> np.ndarray:
    """Integer codes of the `top` most frequent categories, the rest pooled as one code; nulls a category."""
    (keys,) = category_keys(series)
    labels, uniques = pd.factorize(keys, use_na_sentinel=False)
    if len(uniques) <= top:
        return labels.astype(np.int64)
    counts = np.bincount(labels, minlength=len(uniques))
    keep = np.argsort(-counts, kind="stable")[:top]
    remap = np.full(len(uniques), top, dtype=np.int64)
    remap[keep] = np.arange(top)
    return remap[labels]


def sample_rows(df: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """A deterministic subsample, so repeated evaluations of the same data agree."""
    if len(df) <= limit:
        return df.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(df), size=limit, replace=False))
    return df.iloc[idx].reset_index(drop=True)


def num(value) -> float | None:
    """A JSON-safe float: reports are written with json.dumps and shown as Dagster metadata."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def mean_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def evaluable_columns(meta: TableMeta, exclude: set[str]) -> list[str]:
    """Keys are regenerated and PII is replaced, so comparing them to the real values says nothing."""
    return [name for name, col in meta.columns.items() if col.sdtype in EVALUABLE and name not in exclude]
