"""What every rule family shares: the Rule and Dependency records, values as numbers, keys joined to parents."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine.core.schema import key_positions, key_values
from genesis_pipelines.engine.sources.io import date_layout, dates_as_text, iso_timestamps, parse_dates

MAX_FIT_ROWS = 50_000  # rules are found on a seeded subsample of bigger tables
MIN_ROWS = 5  # rows with both sides present needed to call anything a rule
NULL_TOKEN = "\x00null"


class Rule(BaseModel):
    """One rule of a table, with the share of real rows it holds for (aggregates only, never a value)."""

    id: str
    kind: str
    table: str
    columns: list[str]  # order: [low, high]; parent_*: [child column]; dependency: [source, target]; min_children: [FK column]
    share: float  # of real rows (rows with both sides present; for min_children, of parents)
    parent_table: str = ""
    parent_column: str = ""  # the parent's value column (parent_order, parent_equal) or key (min_children)
    fk_column: str = ""  # the child's FK column joining the parent (parent_order, parent_equal) ...
    parent_key: str = ""  # ... and the parent's key column it points at
    parent_is_low: bool = True  # parent_order: parent value <= child value (else child <= parent)
    strict: bool = False  # orderings: < rather than <=
    min_gap: float = 0.0  # orderings: smallest real gap high - low (seconds for datetimes)
    gaps: list[float] = Field(default_factory=list)  # orderings: quantiles of the real gap, to redraw from
    step: float = 0.0  # orderings: resolution of the dependent column (86400 for dates, 1 for integers)
    min_count: int = 0  # min_children: fewest children a real parent has
    child_nulls: bool = False  # parent_order: the child column is null in some real rows (where no value could fit)

    def describe(self) -> dict:
        """What the schema metadata shows: kind, columns, share."""
        columns = [f"{self.table}.{c}" for c in self.columns]
        if self.parent_column and self.kind != "min_children":
            columns.append(f"{self.parent_table}.{self.parent_column}")
        if self.kind == "min_children":
            columns = [f"{self.parent_table} -> {self.table}.{self.columns[0]}"]
        return {"id": self.id, "kind": self.kind, "columns": columns, "share": round(self.share, 4),
                **({"min_children": self.min_count} if self.kind == "min_children" else {})}


class Dependency(BaseModel):
    """A category column (nearly) determined by another one of its table: billing city -> billing country."""

    source: str
    mapping: dict[str, str | None]  # source value -> this column's value (None: missing)
    reverse: dict[str, dict[str, float]] = Field(default_factory=dict)  # this column's value -> source value shares
    purity: float = 1.0  # share of real rows whose value is the mapped one


def numbers(series: pd.Series) -> np.ndarray:
    """Sortable values as float64 (datetimes in seconds), NaN where missing or unparseable."""
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        # text dates in the layout most of them are written in ("June 22, 2018"), not guessed value by value
        parsed = series if pd.api.types.is_datetime64_any_dtype(series) else _text_dates(series)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        out = parsed.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64") / 1e9
        out[parsed.isna().to_numpy()] = np.nan
        return out
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)


LAYOUT_SAMPLE = 2000  # values a repaired text date column's layout is read from (each repair reads it again)


def _text_dates(series: pd.Series) -> pd.Series:
    """ISO text at once (the common case, as generators write it); another layout through io.parse_dates."""
    iso = iso_timestamps(series)
    if int(iso.notna().sum()) == int(series.notna().sum()):
        return iso
    return parse_dates(series)[0]


def set_numbers(body: pd.DataFrame, column: str, rows: np.ndarray, values: np.ndarray) -> None:
    """Numbers written into some rows of a column, in its dtype (seconds back into datetimes, to the microsecond:
    exact in float64); the other rows keep their values untouched."""
    like = body[column]
    if pd.api.types.is_datetime64_any_dtype(like):
        fresh = pd.Series(pd.to_datetime(np.round(values * 1e6).astype("int64"), unit="us"))
        fresh = fresh.dt.tz_localize(like.dt.tz) if like.dt.tz is not None else fresh.astype(like.dtype)
    elif pd.api.types.is_integer_dtype(like):
        fresh = pd.Series(np.round(values)).astype(like.dtype)
    elif pd.api.types.is_object_dtype(like) or pd.api.types.is_string_dtype(like):  # dates written as text
        stamps = pd.Series(pd.to_datetime(np.round(np.nan_to_num(values) * 1e6).astype("int64"), unit="us"))
        fresh = dates_as_text(stamps.where(~np.isnan(values)), date_layout(like.dropna().iloc[:LAYOUT_SAMPLE])).astype(like.dtype)
    else:
        fresh = pd.Series(values).astype(like.dtype)
    merged = like.copy()
    merged.iloc[rows] = fresh.to_numpy()
    body[column] = merged


def step(series: pd.Series, sdtype: str) -> float:
    """The resolution of a column's real values: whole days, seconds, integers or its decimal places."""
    values = numbers(series)
    values = values[~np.isnan(values)]
    if not len(values):
        return 0.0
    for step in ((86400.0, 1.0) if sdtype == "datetime" else (1.0, 0.1, 0.01, 0.001, 0.0001)):
        if np.allclose(np.round(values / step) * step, values, rtol=0, atol=step * 1e-6):
            return step
    return 0.0


def sample(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Big tables: rules are found on a seeded subsample (a rule of all rows holds on the subsample too)."""
    return df.sample(MAX_FIT_ROWS, random_state=seed) if len(df) > MAX_FIT_ROWS else df


def _key(df: pd.DataFrame, name: str) -> pd.Series | None:
    """A key column, or a composite key named by its columns joined with '+' (ForeignKey.child_column), as one
    comparable value per row; None when the frame lacks it."""
    parts = [name] if name in df.columns else name.split("+")
    return key_values(df.reset_index(drop=True), parts) if all(p in df.columns for p in parts) else None


def has_key(df: pd.DataFrame, name: str) -> bool:
    """The frame holds the key column `name`, or every part of a composite one (see _key)."""
    return name in df.columns or all(p in df.columns for p in name.split("+"))


def positions(parent: pd.DataFrame, key: str, child: pd.DataFrame, fk_column: str) -> np.ndarray:
    """Row of the parent each child row points at (-1 where null or unresolved)."""
    theirs, ours = _key(parent, key), _key(child, fk_column)
    if theirs is None or ours is None:
        return np.full(len(child), -1)
    out = key_positions(theirs, ours)  # text keys matched in Arrow: no Python string per child row
    out[ours.isna().to_numpy()] = -1
    return out


ENFORCING = threading.local()  # within one enforce call: the child's keys and the parents do not change


def enforce_positions(parent: pd.DataFrame, key: str, body: pd.DataFrame, fk_column: str) -> np.ndarray:
    """_positions, computed once per parent and FK within an enforce call (building composite key codes and
    parsing text dates is most of a repair's cost when every rule and pass redoes it)."""
    cache = getattr(ENFORCING, "cache", None)
    if cache is None:
        return positions(parent, key, body, fk_column)
    found = cache.get(("positions", id(parent), key, fk_column))
    if found is None:
        found = cache[("positions", id(parent), key, fk_column)] = positions(parent, key, body, fk_column)
    return found


def parent_numbers(rule: Rule, parent: pd.DataFrame, body: pd.DataFrame) -> np.ndarray:
    """The parent value of each child row as a number (see _enforce_positions for the caching)."""
    cache = getattr(ENFORCING, "cache", None)
    entry = ("numbers", id(parent), rule.parent_key, rule.parent_column, rule.fk_column)
    if cache is not None and entry in cache:
        return cache[entry]
    out = numbers(joined(parent, rule.parent_column, enforce_positions(parent, rule.parent_key, body, rule.fk_column)))
    out.flags.writeable = False
    if cache is not None:
        cache[entry] = out
    return out


def joined(parent: pd.DataFrame, column: str, positions: np.ndarray) -> pd.Series:
    values = parent[column].reset_index(drop=True)
    out = values.reindex(np.where(positions >= 0, positions, -1)).reset_index(drop=True)
    return out.where(pd.Series(positions >= 0))
