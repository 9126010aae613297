"""The data's own rules: found in the real tables at fit time, kept by the synthetic rows at sample time.

A generator learns marginals and correlations, not logic: it ships orders before they are ordered, pairs a city
with another city's country and leaves orders without lines. This module finds, cheaply (vectorised, on a
subsample of big tables), the rules that hold on all or nearly all real rows:

- `order`: one column of a row is at most another (order_date <= shipped_date; birth_date + a minimum gap <= hire_date);
- `parent_order`: a child column is at least (or at most) a column of its parent row (payment after its rental);
- `parent_equal`: a child column repeats its parent's column in a share of rows (a line's price is its product's);
- `dependency`: a category column determined by another of its table (city -> country);
- `min_children`: every parent has at least so many children (no order without lines).

Rules hold aggregates only (shares, gap quantiles, counts); a dependency's value mapping lives in the table
model, as the generator's categories do. `enforce` repairs a synthetic chunk so that exact rules (share 1) have
no violation and approximate ones keep their real share, by redrawing the dependent value from the learned gaps
rather than clipping it to the bound; `violations` counts what a set of synthetic tables breaks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey, TableMeta, key_values
from genesis_pipelines.engine.core.spec import RulesSpec
from genesis_pipelines.engine.sources.io import date_layout, dates_as_text, parse_dates

ORDER_MIN_SHARE = 0.95  # an ordering that holds on this share of real rows ...
ORDER_MIN_LIFT = 0.05  # ... and on this much more than independent rows would is a rule (share 1.0: exact)
MAX_ORDER_RULES = 12  # per table and kind: the pairs whose ranges overlap most (the least trivial ones)
MAX_FIT_ROWS = 50_000  # rules are found on a seeded subsample of bigger tables
EQUAL_MIN_SHARE = 0.1  # a child column equal to its parent's in this share of rows, and ...
EQUAL_MIN_LIFT = 0.05  # ... this far above chance (two values drawn independently being equal) ...
EQUAL_MIN_Z = 4.0  # ... by this many standard errors of the chance share, is a rule
MIN_ROWS = 5  # rows with both sides present needed to call anything a rule
DEPENDENCY_MIN_PURITY = 0.95  # a category column this predictable from another one follows it
MAX_DEPENDENCY_VALUES = 20_000  # source categories a dependency mapping may hold
GAP_QUANTILES = 21
EQUAL_SWAP_ROUNDS = 24  # rounds of value exchanges that bring an approximate parent_equal share down
REPAIR_PASSES = 6  # orderings repaired in column order; repeated while an exact rule is still broken
_SORTABLE = {"datetime": "datetime", "numeric": "number", "integer": "number"}
_CATEGORY = ("categorical", "boolean")
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


# ---------------------------------------------------------------- values as numbers


def _numbers(series: pd.Series) -> np.ndarray:
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
    iso = pd.to_datetime(series, format="ISO8601", errors="coerce")
    if int(iso.notna().sum()) == int(series.notna().sum()):
        return iso
    return parse_dates(series)[0]


def _set_numbers(body: pd.DataFrame, column: str, rows: np.ndarray, values: np.ndarray) -> None:
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


def _step(series: pd.Series, sdtype: str) -> float:
    """The resolution of a column's real values: whole days, seconds, integers or its decimal places."""
    values = _numbers(series)
    values = values[~np.isnan(values)]
    if not len(values):
        return 0.0
    for step in ((86400.0, 1.0) if sdtype == "datetime" else (1.0, 0.1, 0.01, 0.001, 0.0001)):
        if np.allclose(np.round(values / step) * step, values, rtol=0, atol=step * 1e-6):
            return step
    return 0.0


def _sample(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Big tables: rules are found on a seeded subsample (a rule of all rows holds on the subsample too)."""
    return df.sample(MAX_FIT_ROWS, random_state=seed) if len(df) > MAX_FIT_ROWS else df


def _key(df: pd.DataFrame, name: str) -> pd.Series | None:
    """A key column, or a composite key named by its columns joined with '+' (ForeignKey.child_column), as one
    comparable value per row; None when the frame lacks it."""
    parts = [name] if name in df.columns else name.split("+")
    return key_values(df.reset_index(drop=True), parts) if all(p in df.columns for p in parts) else None


def _has_key(df: pd.DataFrame, name: str) -> bool:
    """The frame holds the key column `name`, or every part of a composite one (see _key)."""
    return name in df.columns or all(p in df.columns for p in name.split("+"))


def _positions(parent: pd.DataFrame, key: str, child: pd.DataFrame, fk_column: str) -> np.ndarray:
    """Row of the parent each child row points at (-1 where null or unresolved)."""
    theirs, ours = _key(parent, key), _key(child, fk_column)
    if theirs is None or ours is None:
        return np.full(len(child), -1)
    out = pd.Index(theirs.to_numpy()).get_indexer(ours.to_numpy())
    out[ours.isna().to_numpy()] = -1
    return out


_ENFORCING = threading.local()  # within one enforce call: the child's keys and the parents do not change


def _enforce_positions(parent: pd.DataFrame, key: str, body: pd.DataFrame, fk_column: str) -> np.ndarray:
    """_positions, computed once per parent and FK within an enforce call (building composite key codes and
    parsing text dates is most of a repair's cost when every rule and pass redoes it)."""
    cache = getattr(_ENFORCING, "cache", None)
    if cache is None:
        return _positions(parent, key, body, fk_column)
    found = cache.get(("positions", id(parent), key, fk_column))
    if found is None:
        found = cache[("positions", id(parent), key, fk_column)] = _positions(parent, key, body, fk_column)
    return found


def _parent_numbers(rule: Rule, parent: pd.DataFrame, body: pd.DataFrame) -> np.ndarray:
    """The parent value of each child row as a number (see _enforce_positions for the caching)."""
    cache = getattr(_ENFORCING, "cache", None)
    entry = ("numbers", id(parent), rule.parent_key, rule.parent_column, rule.fk_column)
    if cache is not None and entry in cache:
        return cache[entry]
    out = _numbers(_joined(parent, rule.parent_column, _enforce_positions(parent, rule.parent_key, body, rule.fk_column)))
    out.flags.writeable = False
    if cache is not None:
        cache[entry] = out
    return out


def _joined(parent: pd.DataFrame, column: str, positions: np.ndarray) -> pd.Series:
    values = parent[column].reset_index(drop=True)
    out = values.reindex(np.where(positions >= 0, positions, -1)).reset_index(drop=True)
    return out.where(pd.Series(positions >= 0))


# ---------------------------------------------------------------- finding rules


def _gap_stats(low: np.ndarray, high: np.ndarray) -> tuple[float, list[float]]:
    gap = high - low
    gap = gap[gap >= 0]
    return float(gap.min()), np.quantile(gap, np.linspace(0, 1, GAP_QUANTILES)).tolist()


def _chance_order(low: np.ndarray, high: np.ndarray) -> float:
    """Share of (low, high) pairs drawn independently from the two columns with low <= high."""
    return float(np.searchsorted(np.sort(low), high, side="right").mean() / len(low))


def _spread_like_gap(low: np.ndarray, high: np.ndarray) -> bool:
    """The columns' interquartile ranges: one at least a tenth of the typical gap between them, the other at
    least a hundredth (births over decades and hires over years, not creation stamps a second apart)."""
    gap = abs(float(np.median(high - low)))
    spreads = sorted(float(np.subtract(*np.quantile(v, [0.75, 0.25]))) for v in (low, high))
    return spreads[0] > 0 and spreads[0] >= 0.01 * gap and spreads[1] >= 0.1 * gap


def _likely_ordered(lows: dict[str, np.ndarray], highs: dict[str, np.ndarray], same: bool) -> np.ndarray:
    """Pairs (low i, high j) that can pass _order_candidates' share test: one comparison of a column against all
    the others at once (rows x columns per column, no per-pair Python), so only those pairs are scored in full. A
    pair ordered on ORDER_MIN_SHARE of its rows (either way round for `same`) is always kept (the bound has a
    row of slack), so the rules found are the same as scoring every pair."""
    if not lows or not highs:
        return np.zeros((len(lows), len(highs)), dtype=bool)
    low, high = np.column_stack(list(lows.values())), np.column_stack(list(highs.values()))
    present_high = ~np.isnan(high)
    both = (~np.isnan(low)).T.astype("float64") @ present_high.astype("float64")
    below, above = np.empty_like(both), np.empty_like(both)
    for i in range(low.shape[1]):
        column = low[:, i:i + 1]
        below[i] = (column <= high).sum(axis=0)  # NaN on either side compares False
        above[i] = (column >= high).sum(axis=0) if same else 0
    need = ORDER_MIN_SHARE * both - 1
    return (both >= MIN_ROWS) & ((below >= need) | ((above >= need) if same else False))


def _order_candidates(lows: dict[str, np.ndarray], highs: dict[str, np.ndarray], same: bool,
                      dates: bool = False) -> list[tuple]:
    """(share, strict, overlap, low name, high name) of every pair ordered on ORDER_MIN_SHARE of rows, well above
    chance, whose ranges overlap (or, for `dates`, that spread like their gap), most overlapping first."""
    found = []
    likely = _likely_ordered(lows, highs, same)
    for i, (a, x) in enumerate(lows.items()):
        for j, (b, y) in enumerate(highs.items()):
            if (same and a >= b) or not likely[i, j]:
                continue
            both = ~np.isnan(x) & ~np.isnan(y)
            if both.sum() < MIN_ROWS:
                continue
            xa, yb = x[both], y[both]
            span = max(xa.max(), yb.max()) - min(xa.min(), yb.min())
            overlap = min(xa.max(), yb.max()) - max(xa.min(), yb.min())
            if span <= 0 or (overlap <= 0 and not (dates and _spread_like_gap(xa, yb))):
                # disjoint ranges order the pair by range alone; only dates spread about as widely as the gap between
                # them (a birth and a hire date, not a record's creation stamp and a rental) keep it, for its minimum gap
                continue
            if (xa == yb).mean() > 0.5:
                continue
            for low, high, lo_name, hi_name in ((xa, yb, a, b), (yb, xa, b, a)) if same else ((xa, yb, a, b),):
                share = float((low <= high).mean())
                # an ordering that random pairs of rows would mostly keep too says nothing about a row (a plane's
                # seats below a flight's departure time): kept only well above that chance, or for its date gap
                if share >= ORDER_MIN_SHARE and (overlap <= 0 or share - _chance_order(low, high) >= ORDER_MIN_LIFT):
                    strict = bool((low < high).mean() == share)
                    found.append((share, strict, overlap / span, lo_name, hi_name))
    return sorted(found, key=lambda f: (-f[0], -f[2], f[3], f[4]))


def _sortable_columns(df: pd.DataFrame, meta: TableMeta, keys: set[str]) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {"datetime": {}, "number": {}}
    for column in df.columns:
        cmeta = meta.columns.get(column)
        if cmeta is None or column in keys or cmeta.sdtype not in _SORTABLE:
            continue
        values = _numbers(df[column])
        if np.unique(values[~np.isnan(values)]).size >= 2:
            groups[_SORTABLE[cmeta.sdtype]][column] = values
    return groups


def find_orders(name: str, df: pd.DataFrame, meta: TableMeta, keys: set[str], seed: int = 0) -> list[Rule]:
    """Orderings between columns of a row (datetimes with datetimes, numbers with numbers)."""
    df = _sample(df, seed).reset_index(drop=True)
    rules: list[Rule] = []
    for kind, group in _sortable_columns(df, meta, keys).items():
        for share, strict, _, low, high in _order_candidates(group, group, True, kind == "datetime")[:MAX_ORDER_RULES]:
            min_gap, gaps = _gap_stats(group[low], group[high])
            rules.append(Rule(id=f"order:{name}.{low}{'<' if strict else '<='}{name}.{high}", kind="order", table=name,
                              columns=[low, high], share=share, strict=strict, min_gap=min_gap, gaps=gaps,
                              step=_step(df[high], meta.columns[high].sdtype)))
    return rules


def find_parent_orders(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame, schema: DatasetSchema,
                       seed: int = 0) -> list[Rule]:
    """Orderings between a child's column and its parent's (a rental after its customer was created)."""
    if fk.is_self_reference or fk.deferred:
        return []
    child = _sample(child, seed).reset_index(drop=True)
    name, meta = fk.child_table, schema.tables[fk.child_table]
    positions = _positions(parent, fk.parent_column, child, fk.child_column)
    own = _sortable_columns(child, meta, schema.key_columns(name))
    theirs = _sortable_columns(parent, schema.tables[fk.parent_table], schema.key_columns(fk.parent_table))
    rules: list[Rule] = []
    for group, columns in own.items():
        joined = {c: np.where(positions >= 0, v[np.maximum(positions, 0)], np.nan) for c, v in theirs[group].items()}
        dates = group == "datetime"
        found = [(s, st, o, lo, hi, True) for s, st, o, lo, hi in _order_candidates(joined, columns, False, dates)]
        found += [(s, st, o, hi, lo, False) for s, st, o, lo, hi in _order_candidates(columns, joined, False, dates)]
        taken: set[tuple[str, bool]] = set()
        for share, strict, _, parent_column, child_column, parent_is_low in sorted(found, key=lambda f: (-f[0], -f[2]))[:MAX_ORDER_RULES]:
            if (child_column, parent_is_low) in taken:  # one bound per child column and side: the tightest kept
                continue
            taken.add((child_column, parent_is_low))
            sides = (joined[parent_column], columns[child_column])
            min_gap, gaps = _gap_stats(*(sides if parent_is_low else sides[::-1]))
            op = "<" if strict else "<="
            rid = (f"parent_order:{fk.parent_table}.{parent_column}{op}{name}.{child_column}" if parent_is_low
                   else f"parent_order:{name}.{child_column}{op}{fk.parent_table}.{parent_column}")
            rules.append(Rule(id=f"{rid} via {fk.child_column}", kind="parent_order", table=name, columns=[child_column],
                              share=share, parent_table=fk.parent_table, parent_column=parent_column,
                              parent_key=fk.parent_column, fk_column=fk.child_column, parent_is_low=parent_is_low,
                              strict=strict, min_gap=min_gap, gaps=gaps,
                              step=_step(child[child_column], meta.columns[child_column].sdtype),
                              child_nulls=bool(child[child_column].isna().any())))
    return rules


def _chance_equal(child: pd.Series, parent: pd.Series) -> float:
    """How often two values drawn independently from these two columns are equal."""
    a = child.astype(str).value_counts(normalize=True)
    b = parent.astype(str).value_counts(normalize=True)
    return float((a * b.reindex(a.index, fill_value=0)).sum())


def find_parent_equals(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame, schema: DatasetSchema,
                       seed: int = 0) -> list[Rule]:
    """Child columns that repeat a parent column in a share of rows clearly above chance (a line's unit price is
    its product's in 70% of lines)."""
    if fk.is_self_reference or fk.deferred:
        return []
    child = _sample(child, seed).reset_index(drop=True)
    name, meta, parent_meta = fk.child_table, schema.tables[fk.child_table], schema.tables[fk.parent_table]
    positions = _positions(parent, fk.parent_column, child, fk.child_column)
    child_keys, parent_keys = schema.key_columns(name), schema.key_columns(fk.parent_table)

    def group(sdtype: str) -> str:
        return _SORTABLE.get(sdtype, sdtype)

    # each column read once: its text, its numbers (sortable kinds) and, for the parent's, its value per child row
    joined: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for parent_column, pmeta in parent_meta.columns.items():
        if parent_column in parent_keys or parent_column not in parent:
            continue
        theirs = _joined(parent, parent_column, positions)
        joined[parent_column] = (theirs.notna().to_numpy(), theirs.astype(str).to_numpy(),
                                 _numbers(theirs) if group(pmeta.sdtype) in ("datetime", "number") else None)
    rules: list[Rule] = []
    for column in child.columns:
        cmeta = meta.columns.get(column)
        if cmeta is None or column in child_keys or cmeta.sdtype in ("id", "text") or child[column].nunique() < 2:
            continue
        sortable = group(cmeta.sdtype) in ("datetime", "number")
        present, text = child[column].notna().to_numpy(), child[column].astype(str).to_numpy()
        numbers = _numbers(child[column]) if sortable else None
        best = None
        for parent_column, pmeta in parent_meta.columns.items():
            if parent_column not in joined or group(pmeta.sdtype) != group(cmeta.sdtype):
                continue
            their_present, their_text, their_numbers = joined[parent_column]
            both = their_present & present
            if both.sum() < MIN_ROWS:
                continue
            if sortable:
                equal = float((numbers[both] == their_numbers[both]).mean())
            else:
                equal = float((text[both] == their_text[both]).mean())
            chance = _chance_equal(pd.Series(text[both]), pd.Series(their_text[both]))
            z = (equal - chance) / max(np.sqrt(chance * (1 - chance) / int(both.sum())), 1e-12)
            if (equal >= EQUAL_MIN_SHARE and equal - chance >= EQUAL_MIN_LIFT and z >= EQUAL_MIN_Z
                    and (best is None or equal > best[0])):
                best = (equal, parent_column)
        if best is not None:
            rules.append(Rule(id=f"parent_equal:{name}.{column}={fk.parent_table}.{best[1]} via {fk.child_column}",
                              kind="parent_equal", table=name, columns=[column], share=best[0],
                              parent_table=fk.parent_table, parent_column=best[1], parent_key=fk.parent_column,
                              fk_column=fk.child_column))
    return rules


def _purity_and_mode(source: np.ndarray, n_source: int, target: np.ndarray, n_target: int) -> tuple[float, float]:
    """Share of rows whose target code is the commonest one of their source code (purity), and the share of the
    commonest target code overall, from integer codes (a contingency table by np.bincount on combined codes)."""
    rows = len(source)
    if n_source * n_target <= max(4 * rows, 1 << 16):
        table = np.bincount(source * n_target + target, minlength=n_source * n_target).reshape(n_source, n_target)
        return float(table.max(axis=1).sum() / rows), float(table.sum(axis=0).max() / rows)
    pairs, counts = np.unique(source.astype(np.int64) * n_target + target, return_counts=True)
    starts = np.flatnonzero(np.r_[True, np.diff(pairs // n_target) != 0])  # pairs are sorted by source code
    return float(np.maximum.reduceat(counts, starts).sum() / rows), float(np.bincount(target).max() / rows)


def _scores_on(codes: CodeMatrix, index: np.ndarray | None, source: str, targets: list[str], sizes: dict[str, int],
               modes: bool = True) -> dict[str, tuple[float, float]]:
    """(purity, mode share) of each target against the source on the rows `index` of `codes` (None: all): the
    targets whose contingency table is small are counted together by one bincount over all of them (each in its
    own block of cells), the others pair by pair. `modes=False` leaves the mode shares out (NaN)."""
    rows = codes.length if index is None else len(index)
    source_codes = codes.rows(source, index).astype(np.int64)
    n_source = sizes[source]
    cap = max(4 * rows, 1 << 16)
    small = [t for t in targets if n_source * sizes[t] <= cap]
    out = {t: _purity_and_mode(source_codes, n_source, codes.rows(t, index), sizes[t])
           for t in targets if n_source * sizes[t] > cap}
    step = max(1, (1 << 24) // max(rows, n_source * max((sizes[t] for t in small), default=1)))
    for first in range(0, len(small), step):
        batch = small[first:first + step]
        width = np.asarray([sizes[t] for t in batch], dtype=np.int64)
        block = n_source * width
        offsets = np.concatenate([[0], np.cumsum(block)[:-1]])
        kind = np.int32 if int(block.sum()) < 2**31 else np.int64
        cells = codes.block(batch, index).astype(kind)  # (targets, rows): each target's cells in one run
        if modes:
            target_offsets = np.concatenate([[0], np.cumsum(width)[:-1]])
            marginal = np.bincount((cells + target_offsets[:, None].astype(kind)).ravel(), minlength=int(width.sum()))
            mode_share = np.maximum.reduceat(marginal, target_offsets) / rows
        else:
            mode_share = np.full(len(batch), np.nan)
        cells += offsets[:, None].astype(kind)
        cells += source_codes[None, :].astype(kind) * width[:, None].astype(kind)
        table = np.bincount(cells.ravel(), minlength=int(block.sum()))
        row_starts = (offsets[:, None] + np.arange(n_source)[None, :] * width[:, None]).ravel()
        row_max = np.maximum.reduceat(table, row_starts)
        purity = np.add.reduceat(row_max, np.arange(len(batch)) * n_source) / rows
        out.update({t: (float(purity[j]), float(mode_share[j])) for j, t in enumerate(batch)})
    return out


class CodeMatrix:
    """The integer codes of the category columns, one row of the matrix per column (int32 when the codes fit), so
    a source's targets on a subset of rows come out in one gather."""

    def __init__(self, codes: dict[str, np.ndarray], matrix: np.ndarray | None = None):
        self.position = {c: i for i, c in enumerate(codes)}
        if matrix is None:
            top = max((int(v.max()) for v in codes.values() if len(v)), default=0)
            length = len(next(iter(codes.values()))) if codes else 0
            matrix = np.empty((len(codes), length), dtype=np.int32 if top < 2**31 - 1 else np.int64)
            for c, v in codes.items():
                matrix[self.position[c]] = v
        self.matrix = matrix
        self.length = matrix.shape[1]

    def subset(self, index: np.ndarray) -> CodeMatrix:
        """The same columns on the rows `index` only."""
        out = CodeMatrix.__new__(CodeMatrix)
        out.position, out.matrix, out.length = self.position, np.ascontiguousarray(self.matrix[:, index]), len(index)
        return out

    def rows(self, column: str, index: np.ndarray | None) -> np.ndarray:
        values = self.matrix[self.position[column]]
        return values if index is None else values[index]

    def block(self, columns: list[str], index: np.ndarray | None) -> np.ndarray:
        picked = np.asarray([self.position[c] for c in columns], dtype=np.intp)
        return self.matrix[picked] if index is None else self.matrix[picked][:, index]


SCREEN_MIN_ROWS = 1000  # tables this long screen their pairs on a subsample of the rows first ...
SCREEN_SHARE = 4  # ... of one row in this many


def _source_scores(source: str, columns: list[str], codes: CodeMatrix, sizes: dict[str, int],
                   distinct: dict[str, int], present: dict[str, np.ndarray],
                   screen: tuple[np.ndarray, CodeMatrix] | None = None) -> dict[str, tuple[float, float]]:
    """(purity, mode share) of every target column against one source, on the rows where the source is present.

    With `screen` (a row subsample: its row numbers and its codes), each pair is first scored on the subsample,
    and only those that can still reach DEPENDENCY_MIN_PURITY are scored on every row. The bound is exact, not
    statistical: a pair erring on E rows of all N errs on at most E of the subsample's m rows (against the same
    source -> target mapping), so its purity there is at least 1 - E / m; one below
    1 - (1 - DEPENDENCY_MIN_PURITY) * N / m cannot pass."""
    both = present[source]
    rows = int(both.sum())
    targets = [t for t in columns if t != source and distinct[source] >= distinct[t]]
    if rows < 2 * MIN_ROWS or not targets:
        return {}
    if screen is not None:
        screen_rows, screen_codes = screen
        kept = both[screen_rows]
        sub = None if kept.all() else np.flatnonzero(kept)
        m = len(screen_rows) if sub is None else len(sub)
        floor = 1 - (1 - DEPENDENCY_MIN_PURITY) * rows / m - 1e-9 if m >= 2 * MIN_ROWS else 0.0
        if floor > 0:
            rough = _scores_on(screen_codes, sub, source, targets, sizes, modes=False)
            targets = [t for t in targets if rough[t][0] >= floor]
            if not targets:
                return {}
    return _scores_on(codes, None if rows == len(both) else np.flatnonzero(both), source, targets, sizes)


def _commonest_per_source(source: pd.Series, target: pd.Series) -> dict[str, str]:
    """Each source value's commonest target value (ties: the one seen first), keyed in sorted source order."""
    a_codes, a_values = pd.factorize(source)
    b_codes, b_values = pd.factorize(target)
    n_b = max(len(b_values), 1)
    pairs, first, counts = np.unique(a_codes.astype(np.int64) * n_b + b_codes, return_index=True, return_counts=True)
    a_of, b_of = pairs // n_b, pairs % n_b
    order = np.lexsort((first, -counts, a_of))
    top = order[np.r_[True, np.diff(a_of[order]) != 0]]
    mapping = dict(zip(np.asarray(a_values, dtype=object)[a_of[top]].tolist(), np.asarray(b_values, dtype=object)[b_of[top]].tolist()))
    return {a: mapping[a] for a in sorted(mapping)}


def find_dependencies(df: pd.DataFrame, meta: TableMeta, private: set[str], seed: int = 0) -> dict[str, Dependency]:
    """Category columns functionally determined by another (city -> state -> country; a lookup table's name ->
    its description): a generator mixes them up, so generation restores the learned mapping (or, when the
    dependent column came from the parent, draws a source value that fits it). A dependency counts when it is
    nearly exact (DEPENDENCY_MIN_PURITY) and errs at most half as often as guessing the commonest value.

    Every pair is scored on integer codes (one bincount per pair, no pandas group-by), so the cost is
    columns^2 x rows with a small constant; sources with fewer values than the target are skipped unscored, and on
    tables of SCREEN_MIN_ROWS or more the pairs that a quarter of the rows rules out are not scored on the rest."""
    df = _sample(df, seed).reset_index(drop=True)
    distinct = {c: int(df[c].nunique()) for c in df.columns if c not in private and c in meta.columns
                and meta.columns[c].sdtype in _CATEGORY}
    columns = [c for c, n in distinct.items() if 2 <= n <= MAX_DEPENDENCY_VALUES]
    # a missing target is a value too (a city without a state), a missing source determines nothing
    text = {c: df[c].astype(str).where(df[c].notna(), NULL_TOKEN) for c in columns}
    codes, sizes = {}, {}
    for c in columns:
        codes[c], uniques = pd.factorize(text[c])
        sizes[c] = len(uniques)
    present = {c: df[c].notna().to_numpy() for c in columns}
    matrix = CodeMatrix(codes) if columns else None
    screen = None
    if len(df) >= SCREEN_MIN_ROWS and columns:
        screen_rows = np.sort(np.random.default_rng(seed).permutation(len(df))[:len(df) // SCREEN_SHARE])
        screen = (screen_rows, matrix.subset(screen_rows))
    scored = {source: _source_scores(source, columns, matrix, sizes, distinct, present, screen) for source in columns}
    out: dict[str, Dependency] = {}
    for target in columns:
        best = None
        for source in columns:
            if target not in scored[source]:
                continue
            purity, mode_share = scored[source][target]
            if purity < DEPENDENCY_MIN_PURITY or 1 - purity > 0.5 * (1 - mode_share):
                continue
            both = present[source]
            score = (purity, float(both.mean()), distinct[source])
            if best is None or score > best[0]:
                best = (score, source, both)
        if best is None:
            continue
        source, both = best[1], best[2]
        pairs = pd.DataFrame({"a": text[source][both], "b": text[target][both]})
        mapping = _commonest_per_source(pairs["a"], pairs["b"])
        shares = pairs[pairs["b"] != NULL_TOKEN].groupby("b")["a"].value_counts(normalize=True)
        reverse = {b: {a: float(v) for (_, a), v in group.items()} for b, group in shares.groupby(level=0)}
        out[target] = Dependency(source=source, mapping={a: None if b == NULL_TOKEN else b for a, b in mapping.items()},
                                 reverse=reverse, purity=best[0][0])
    return out


def dependency_rules(table: str, dependencies: Mapping[str, Dependency]) -> list[Rule]:
    return [Rule(id=f"dependency:{table}.{d.source}->{table}.{target}", kind="dependency", table=table,
                 columns=[d.source, target], share=d.purity) for target, d in dependencies.items()]


def find_min_children(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame) -> list[Rule]:
    """Every real parent has at least one child (no order without lines): generation keeps that minimum."""
    if fk.is_self_reference or fk.deferred or parent.empty:
        return []
    positions = _positions(parent, fk.parent_column, child, fk.child_column)
    counts = np.bincount(positions[positions >= 0], minlength=len(parent))
    if counts.min() < 1:
        return []
    return [Rule(id=f"min_children:{fk.parent_table}->{fk.child_table}.{fk.child_column}", kind="min_children",
                 table=fk.child_table, columns=[fk.child_column], share=1.0, parent_table=fk.parent_table,
                 parent_column=fk.parent_column, min_count=int(counts.min()))]


def discover(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *, private: Mapping[str, set[str]] | None = None,
             seed: int = 0, dependencies: bool = True) -> list[Rule]:
    """Every rule of every table. `private`: per table, columns whose values are replaced at generation (PII);
    `dependencies=False` leaves those out (training finds them on the training split, with their mappings)."""
    private = private or {}
    rules: list[Rule] = []
    for name in schema.generation_order:
        df, meta = tables[name], schema.tables[name]
        rules += find_orders(name, df, meta, schema.key_columns(name), seed)
        if dependencies:
            learnable = df[[c for c in df.columns if c not in schema.key_columns(name)]]
            rules += dependency_rules(name, find_dependencies(learnable, meta, private.get(name, set()), seed))
    for fk in schema.foreign_keys:
        child, parent = tables[fk.child_table], tables[fk.parent_table]
        rules += find_parent_orders(fk, child, parent, schema, seed)
        rules += find_parent_equals(fk, child, parent, schema, seed)
        rules += find_min_children(fk, child, parent)
    return rules


def select(rules: Iterable[Rule], spec: RulesSpec) -> list[Rule]:
    """The rules the spec leaves on (none when switched off; else all but those disabled by id or kind)."""
    off = set(spec.disabled)
    return [r for r in rules if spec.enabled and r.id not in off and r.kind not in off]


# ---------------------------------------------------------------- keeping them


def _redraw(rule: Rule, anchor: np.ndarray, rng: np.random.Generator, upward: bool, apart: bool = False) -> np.ndarray:
    """A dependent value anchor +- a gap drawn from the real gaps, at the column's resolution, never closer than the
    smallest real gap (nor equal, for a strict rule, or when `apart`: equality is a parent_equal rule's share)."""
    gaps = np.interp(rng.random(len(anchor)), np.linspace(0, 1, len(rule.gaps)), rule.gaps) if rule.gaps else np.zeros(len(anchor))
    gaps = np.maximum(gaps, max(rule.min_gap, (rule.step or 1e-6) if apart else 0.0))
    values = anchor + gaps if upward else anchor - gaps
    if rule.step > 0:
        values = (np.ceil(values / rule.step - 1e-9) if upward else np.floor(values / rule.step + 1e-9)) * rule.step
    return values


def _holds(rule: Rule, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per row: the ordering holds, by at least the smallest real gap for an exact rule (hired no younger than the
    youngest real hire); True where a side is missing, as in SQL CHECK."""
    with np.errstate(invalid="ignore"):
        if rule.share >= 1 and rule.min_gap > 0:
            ok = high - low >= rule.min_gap - 1e-9 * max(1.0, abs(rule.min_gap))
        else:
            ok = low < high if rule.strict else low <= high
    return ok | np.isnan(low) | np.isnan(high)


def _sides(rule: Rule, body: pd.DataFrame, parents: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) values of an ordering rule on the rows of `body`."""
    if rule.kind == "order":
        if not set(rule.columns) <= set(body.columns):
            return None
        return _numbers(body[rule.columns[0]]), _numbers(body[rule.columns[1]])
    parent = parents.get(rule.parent_table)
    if parent is None or not _has_key(body, rule.fk_column) or rule.columns[0] not in body or rule.parent_column not in parent:
        return None
    theirs = _parent_numbers(rule, parent, body)
    mine = _numbers(body[rule.columns[0]])
    return (theirs, mine) if rule.parent_is_low else (mine, theirs)


def _order_sequence(rules: list[Rule]) -> list[Rule]:
    """Orderings sorted so a column is repaired after every column it must follow (low -> high)."""
    rank: dict[str, int] = {}
    edges = [(r.columns[0], r.columns[1]) for r in rules if r.kind == "order"]
    columns = sorted({c for e in edges for c in e})
    for _ in range(len(columns) + 1):
        changed = False
        for low, high in edges:
            if rank.get(high, 0) < rank.get(low, 0) + 1 and rank.get(low, 0) < len(columns):
                rank[high] = rank.get(low, 0) + 1
                changed = True
        if not changed:
            break
    return sorted(rules, key=lambda r: rank.get(r.columns[1] if r.kind == "order" else r.columns[0], 0))


def _repair_orders(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame],
                   rng: np.random.Generator) -> pd.DataFrame:
    equal = {(r.columns[0], r.fk_column, r.parent_column) for r in rules if r.kind == "parent_equal"}
    rules = _order_sequence([r for r in rules if r.kind in ("order", "parent_order")])
    # a redrawn value stays within the range the generator sampled the column in (itself within the real range)
    limits = {}
    for column in {c for r in rules for c in r.columns if c in body}:
        values = _numbers(body[column])
        limits[column] = (np.nanmin(values), np.nanmax(values)) if (~np.isnan(values)).any() else (-np.inf, np.inf)
    for pass_ in range(REPAIR_PASSES):
        broken_exact = False
        for rule in rules if pass_ % 2 == 0 else rules[::-1]:  # downward passes go from the latest column back
            sides = _sides(rule, body, parents)
            if sides is None:
                continue
            low, high = sides
            holds = _holds(rule, low, high)
            present = ~np.isnan(low) & ~np.isnan(high)
            allowed = int(np.floor((1 - rule.share) * present.sum() + 1e-9)) if pass_ == 0 else int((~holds).sum()) * (rule.share < 1)
            broken = np.flatnonzero(~holds)
            if len(broken) <= allowed:
                continue
            fix = rng.permutation(broken)[: len(broken) - allowed]
            # the dependent side is the row's own later column (its earlier one in odd passes: the later one may be
            # bounded by a parent too), or the child's column against its parent
            upward = (rule.kind == "order" and pass_ % 2 == 0) or (rule.kind == "parent_order" and rule.parent_is_low)
            column = rule.columns[1 if upward else 0] if rule.kind == "order" else rule.columns[0]
            anchor = low if upward else high
            apart = (column, rule.fk_column, rule.parent_column) in equal
            drawn = _redraw(rule, anchor[fix], rng, upward, apart)
            tight = _redraw(rule.model_copy(update={"gaps": []}), anchor[fix], rng, upward, apart)  # the smallest gap
            lowest, highest = limits[column]
            inside = (drawn >= lowest) & (drawn <= highest)
            drawn[~inside] = tight[~inside]
            # out of range even so: left to the other side in the next pass, forced through in the last one
            take = inside | ((tight >= lowest) & (tight <= highest)) | (pass_ == REPAIR_PASSES - 1)
            _set_numbers(body, column, fix[take], drawn[take])
            broken_exact |= rule.share >= 1
        if not broken_exact:
            break
    return _clamp_between_bounds(rules, body, parents, rng)


def _clamp_between_bounds(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame],
                          rng: np.random.Generator) -> pd.DataFrame:
    """Rows an exact ordering still breaks after the redraws (a column bounded from both sides, such as a bake's
    rank between its baker's best and worst): the column is clipped into the interval every exact rule allows,
    where that interval is not empty."""
    exact = [r for r in rules if r.share >= 1]
    for column in {r.columns[0] if r.kind == "parent_order" else c for r in exact for c in r.columns}:
        if column not in body:
            continue
        lower, upper = _bounds(column, exact, body, parents)
        values = _numbers(body[column])
        fixable = ~np.isnan(values) & (lower <= upper) & ((values < lower) | (values > upper))
        if fixable.any():
            rows = np.flatnonzero(fixable)
            step = max([r.step for r in exact if column in r.columns] + [0.0])
            _set_numbers(body, column, rows, _inside(values[rows], lower[rows], upper[rows], step, rng))
        if any(r.child_nulls for r in exact if r.kind == "parent_order" and r.columns[0] == column):
            _null_where_no_room(body, column, values, lower, upper, rng)
    return body


def _bounds(column: str, exact: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the interval the exact orderings allow a column (from the row's other columns and its parents)."""
    lower, upper = np.full(len(body), -np.inf), np.full(len(body), np.inf)
    for rule in exact:
        if rule.share < 1 or rule.kind not in ("order", "parent_order"):
            continue
        own_high = rule.columns[1] == column if rule.kind == "order" else (rule.columns[0] == column and rule.parent_is_low)
        own_low = rule.columns[0] == column if rule.kind == "order" else (rule.columns[0] == column and not rule.parent_is_low)
        sides = _sides(rule, body, parents) if own_high or own_low else None
        if sides is None:
            continue
        low, high = sides
        gap = max(rule.min_gap, (rule.step or 0.0) if rule.strict else 0.0)
        if own_high:
            lower = np.fmax(lower, low + gap)
        else:
            upper = np.fmin(upper, high - gap)
    return lower, upper


def _fits(values: pd.Series, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per row: the value lies in its interval (True where it is not a number or missing)."""
    numbers = _numbers(values) if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values) \
        else np.full(len(values), np.nan)
    with np.errstate(invalid="ignore"):
        return np.isnan(numbers) | ((numbers >= lower) & (numbers <= upper))


def _inside(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """Values brought between their bounds: drawn evenly between them (at the column's step) where both are finite,
    so repaired rows do not pile up on a parent's value (that would lift a parent_equal share); clipped elsewhere."""
    out = np.clip(values, lower, upper)
    both = np.isfinite(lower) & np.isfinite(upper)
    if step > 0:
        first, last = np.ceil(lower[both] / step - 1e-9), np.floor(upper[both] / step + 1e-9)
        ok = last >= first
        drawn = (first + np.floor(rng.random(int(both.sum())) * (last - first + 1))) * step
        out[np.flatnonzero(both)[ok]] = drawn[ok]
    else:
        out[both] = lower[both] + rng.random(int(both.sum())) * (upper[both] - lower[both])
    return out


def _null_where_no_room(body: pd.DataFrame, column: str, values: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        rng: np.random.Generator) -> None:
    """Rows whose parents leave no value between the bounds (a baker's best rank above the bakers left in an
    episode) are the rows the real data leaves empty (the baker was out): the column is made null there, and as
    many null rows that have room take a value (one of the column's, clipped into their bounds), so the column
    keeps its share of nulls."""
    with np.errstate(invalid="ignore"):
        crossed = lower > upper
    emptied = np.flatnonzero(crossed & ~np.isnan(values))
    if not len(emptied):
        return
    filled = rng.permutation(np.flatnonzero(~crossed & np.isnan(values)))[:len(emptied)]
    present = values[~np.isnan(values)]
    if len(filled):
        drawn = np.clip(rng.choice(present, size=len(filled)), lower[filled], upper[filled])
        _set_numbers(body, column, filled, drawn)
    merged = body[column].copy()
    if pd.api.types.is_integer_dtype(merged) and not pd.api.types.is_extension_array_dtype(merged):
        merged = merged.astype("Int64")
    merged.iloc[emptied] = None
    body[column] = merged


def _repair_equals(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame],
                   rng: np.random.Generator) -> pd.DataFrame:
    """A child column equal to its parent's in fewer rows than the real share gets the parent's value in more; in
    more rows (an approximate rule), some equal rows exchange their value with other rows, so the column keeps its
    values. Every change keeps the row inside the interval its exact orderings allow (so the ordering repair after
    it has nothing to move), and rows equal under another parent_equal rule of the column are touched last."""
    exact = [r for r in rules if r.share >= 1]
    for rule in rules:
        parent = parents.get(rule.parent_table)
        column = rule.columns[0]
        if rule.kind != "parent_equal" or parent is None or column not in body or not _has_key(body, rule.fk_column):
            continue
        theirs = _joined(parent, rule.parent_column, _enforce_positions(parent, rule.parent_key, body, rule.fk_column))
        equal, present = _equal(body[column], theirs)
        target = int(round(rule.share * present.sum()))
        need = target - int(equal.sum())
        if need == 0 or (need < 0 and rule.share >= 1):
            continue
        dtype = body[column].dtype
        lower, upper = _bounds(column, exact, body, parents)
        kept_equal = np.zeros(len(body), dtype=bool)  # rows another parent_equal rule of this column holds equal
        for other in rules:
            if other is not rule and other.kind == "parent_equal" and other.columns[0] == column and other.parent_table in parents:
                joined = _joined(parents[other.parent_table], other.parent_column,
                                 _enforce_positions(parents[other.parent_table], other.parent_key, body, other.fk_column))
                kept_equal |= _equal(body[column], joined)[0]

        def last_if(rows: np.ndarray, late: np.ndarray) -> np.ndarray:
            rows = rng.permutation(rows)
            return rows[np.argsort(late[rows], kind="stable")]

        merged = body[column].astype(object).to_numpy().copy()
        parent_values = theirs.reset_index(drop=True)
        if need > 0:
            fits = _fits(parent_values, lower, upper)
            take = last_if(np.flatnonzero(present & ~equal & fits), kept_equal)[:need]
            merged[take] = theirs.astype(object).to_numpy()[take]
        else:
            # an equal row exchanges its value with another row, where neither ends up equal to its parent (when most
            # parents hold one value, most partners would take the equality over): a few rounds of random pairs
            for _ in range(EQUAL_SWAP_ROUNDS):
                equal, _ = _equal(pd.Series(merged).astype(dtype), theirs)
                excess = int(equal.sum()) - target
                unequal = np.flatnonzero(present & ~equal)
                if excess <= 0:
                    break
                if len(unequal) >= excess:
                    rows, partners = last_if(np.flatnonzero(equal), kept_equal)[:excess], rng.permutation(unequal)[:excess]
                else:  # two equal rows of different parents exchanging become two unequal ones
                    pairs = rng.permutation(np.flatnonzero(equal))[: 2 * ((excess + 1) // 2)]
                    rows, partners = pairs[: len(pairs) // 2], pairs[len(pairs) // 2:]
                mine, yours = pd.Series(merged[rows]).astype(dtype), pd.Series(merged[partners]).astype(dtype)
                apart = (~_equal(yours, parent_values.iloc[rows])[0] & ~_equal(mine, parent_values.iloc[partners])[0]
                         & _fits(yours, lower[rows], upper[rows]) & _fits(mine, lower[partners], upper[partners]))
                rows, partners = rows[apart], partners[apart]
                merged[rows], merged[partners] = merged[partners], merged[rows].copy()
            _draw_apart(merged, parent_values, present, target, dtype, lower, upper, rng)
        body[column] = pd.Series(merged).astype(dtype).to_numpy()
    return body


def _draw_apart(merged: np.ndarray, parent_values: pd.Series, present: np.ndarray, target: int, dtype,
                lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator) -> None:
    """Equal rows beyond `target` that no exchange could part (most parents hold the value the rows repeat) take
    another value of the column, drawn from its values as they stand, one that differs from the row's parent and
    lies within the row's bounds."""
    equal, _ = _equal(pd.Series(merged).astype(dtype), parent_values)
    excess = int(equal.sum()) - target
    if excess <= 0:
        return
    left = rng.permutation(np.flatnonzero(equal))[:excess]
    pool = merged[present]
    for _ in range(EQUAL_SWAP_ROUNDS):
        if not len(left) or not len(pool):
            return
        drawn = pd.Series(pool[rng.integers(0, len(pool), len(left))]).astype(dtype)
        apart = ~_equal(drawn, parent_values.iloc[left])[0] & _fits(drawn, lower[left], upper[left])
        merged[left[apart]] = drawn.to_numpy(dtype=object)[apart]
        left = left[~apart]


def _equal(mine: pd.Series, theirs: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    present = (mine.reset_index(drop=True).notna() & theirs.reset_index(drop=True).notna()).to_numpy()
    if pd.api.types.is_numeric_dtype(mine) or pd.api.types.is_datetime64_any_dtype(mine):
        equal = _numbers(mine) == _numbers(theirs)
    else:
        equal = mine.astype(str).to_numpy() == theirs.astype(str).to_numpy()
    return equal & present, present


def enforce(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
    """One synthetic chunk with its keys assigned, repaired to keep the table's rules: parent values copied into the
    real share of rows, then orderings (a dependent value redrawn from the real gaps where broken, beyond the real
    share of broken rows). Dependencies are kept when rows are drawn, children counts when keys are assigned."""
    if not rules or body.empty:
        return body
    body = body.reset_index(drop=True).copy()
    _ENFORCING.cache = {}
    try:
        body = _repair_orders(rules, body, parents, rng)  # orderings first, so a copied parent value is not redrawn
        body = _repair_equals(rules, body, parents, rng)
        return _repair_orders(rules, body, parents, rng)
    finally:
        _ENFORCING.cache = None


ROOM_CANDIDATES = 256  # rows a row without room may exchange its parent with, drawn at random from its group


def _bound_gap(rule: Rule) -> float:
    """How far the child must stay from its parent's value: the smallest real gap, or a step for a strict rule."""
    return max(rule.min_gap, rule.step if rule.strict else 0.0)


class _BoundingParent:
    """One FK of a table as it bounds the table's columns: the parent row of each child row, and per bounded
    column the lower and upper bound each parent row sets (NaN: none)."""

    def __init__(self, fk: ForeignKey, fks: list[ForeignKey], parent: pd.DataFrame, frame: pd.DataFrame, key: str):
        self.fk, self.parent = fk, parent.reset_index(drop=True)
        self.positions = _positions(self.parent, key, frame, fk.child_column)
        self.lower: dict[str, np.ndarray] = {}
        self.upper: dict[str, np.ndarray] = {}
        # columns this FK shares with the table's other FKs (results' series): a new parent must agree on them
        self.shared = [c for c in fk.child_columns if any(c in o.child_columns for o in fks if o is not fk)]
        paired = [fk.parent_columns[fk.child_columns.index(c)] for c in self.shared]
        self.parent_group = (key_values(self.parent, paired).to_numpy(dtype=object) if paired
                             else np.zeros(len(self.parent), dtype=object))
        self.child_group = (key_values(frame, self.shared).to_numpy(dtype=object) if self.shared
                            else np.zeros(len(frame), dtype=object))
        self.codes = key_values(self.parent, fk.parent_columns).to_numpy(dtype=object)
        self.rows_of = pd.Series(np.arange(len(frame))).groupby(pd.Series(self.child_group, dtype=object)).indices
        self.parents_of = pd.Series(np.arange(len(self.parent))).groupby(pd.Series(self.parent_group, dtype=object)).indices

    def bounds(self, column: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        known = positions >= 0
        at = np.maximum(positions, 0)
        nothing = np.full(len(positions), np.nan)
        lower, upper = self.lower.get(column), self.upper.get(column)
        return (np.where(known, lower[at], np.nan) if lower is not None and len(lower) else nothing,
                np.where(known, upper[at], np.nan) if upper is not None and len(upper) else nothing)


def _bounding_parents(table_rules: list[Rule], fks: list[ForeignKey], frame: pd.DataFrame,
                      parents: Mapping[str, pd.DataFrame]) -> tuple[dict[str, _BoundingParent], list[str]]:
    """The FKs whose parents bound a child column by an exact ordering, and the columns bounded from both sides."""
    by_name = {fk.child_column: fk for fk in fks}
    sides: dict[str, _BoundingParent] = {}
    for rule in table_rules:
        parent, fk = parents.get(rule.parent_table), by_name.get(rule.fk_column)
        if rule.kind != "parent_order" or rule.share < 1 or parent is None or fk is None \
                or rule.parent_column not in parent or not _has_key(frame, rule.fk_column):
            continue
        side = sides.setdefault(rule.fk_column, _BoundingParent(fk, fks, parent, frame, rule.parent_key))
        theirs = _numbers(side.parent[rule.parent_column])
        column = rule.columns[0]
        if rule.parent_is_low:
            side.lower[column] = np.fmax(side.lower.get(column, np.full(len(theirs), np.nan)), theirs + _bound_gap(rule))
        else:
            side.upper[column] = np.fmin(side.upper.get(column, np.full(len(theirs), np.nan)), theirs - _bound_gap(rule))
    columns = sorted({c for s in sides.values() for c in s.lower} & {c for s in sides.values() for c in s.upper})
    return sides, columns


def _room(sides: dict[str, _BoundingParent], columns: list[str], rows: np.ndarray, moved: str | None = None,
          positions: np.ndarray | None = None) -> np.ndarray:
    """Per row: every bounded column keeps lower <= upper, with FK `moved` pointing at `positions` instead."""
    ok = np.ones(len(rows), dtype=bool)
    for column in columns:
        lower, upper = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        for name, side in sides.items():
            lo, hi = side.bounds(column, positions if name == moved else side.positions[rows])
            lower, upper = np.fmax(lower, lo), np.fmin(upper, hi)
        with np.errstate(invalid="ignore"):
            ok &= ~(lower > upper)
    return ok


def room_between_parents(table_rules: list[Rule], fks: list[ForeignKey], keys: dict[str, pd.Series],
                         parents: Mapping[str, pd.DataFrame], primary_key: list[str], rng: np.random.Generator) -> int:
    """Parent combinations that leave room for a child column bounded by two parents (a bake's technical rank at
    least its baker's best and at most the number of bakers in its episode), chosen from the planned keys before
    any child value exists. A row whose parents' bounds cross first exchanges one FK's parent with another row of
    its group (rows agreeing on the columns this FK shares with the table's other FKs) where both rows then have
    room: every parent keeps its number of children. Failing that, it takes another parent of its group that
    leaves room, from a parent above its fewest children (min_children). The primary key stays unique. `keys`
    (key column -> values) changes in place; returns the rows still without room (none where the parents allow)."""
    n = len(next(iter(keys.values()))) if keys else 0
    frame = pd.DataFrame({c: v.reset_index(drop=True) for c, v in keys.items()})
    sides, columns = _bounding_parents(table_rules, fks, frame, parents) if n else ({}, [])
    if not columns:
        return 0
    every = np.arange(n)
    bad = np.flatnonzero(~_room(sides, columns, every))
    if not len(bad):
        return 0
    minimum = {r.columns[0]: r.min_count for r in table_rules if r.kind == "min_children"}
    unique_key = [c for c in primary_key if c in frame] if primary_key and all(c in frame for c in primary_key) else []
    values = {c: frame[c].to_numpy(dtype=object).copy() for c in frame.columns}
    taken = {tuple(str(values[c][i]) for c in unique_key) for i in every} if unique_key else set()

    def key_of(row: int, changes: dict) -> tuple:
        return tuple(str(changes.get(c, values[c][row])) for c in unique_key)

    def claim(changes: dict[int, dict]) -> bool:
        """The rows' primary keys after `changes` (row -> column -> value) are unique: then they are taken."""
        if not unique_key:
            return True
        old = {key_of(r, {}) for r in changes}
        new = [key_of(r, c) for r, c in changes.items()]
        if len(set(new)) < len(new) or any(k in taken and k not in old for k in new):
            return False
        taken.difference_update(old)
        taken.update(new)
        return True

    def moved_columns(side: _BoundingParent) -> list[str]:
        return [c for c in dict.fromkeys([*side.fk.child_columns, side.fk.child_column]) if c in values]

    for row in rng.permutation(bad):
        done = False
        for name, side in sides.items():  # exchange parents with another row of the group
            candidates = side.rows_of.get(side.child_group[row], np.zeros(0, dtype=int))
            candidates = rng.permutation(candidates[candidates != row])[:ROOM_CANDIDATES]
            if not len(candidates):
                continue
            ok = _room(sides, columns, np.full(len(candidates), row), name, side.positions[candidates])
            ok &= _room(sides, columns, candidates, name, np.full(len(candidates), side.positions[row]))
            for other in candidates[ok]:
                columns_moved = moved_columns(side)
                if not claim({row: {c: values[c][other] for c in columns_moved},
                              other: {c: values[c][row] for c in columns_moved}}):
                    continue
                for column in columns_moved:
                    values[column][[row, other]] = values[column][[other, row]]
                side.positions[[row, other]] = side.positions[[other, row]]
                done = True
                break
            if done:
                break
        if done:
            continue
        for name, side in sides.items():  # another parent of the group
            counts = np.bincount(side.positions[side.positions >= 0], minlength=len(side.parent))
            if side.positions[row] >= 0 and counts[side.positions[row]] <= minimum.get(name, 0):
                continue
            pool = side.parents_of.get(side.child_group[row], np.zeros(0, dtype=int))
            pool = rng.permutation(pool[_room(sides, columns, np.full(len(pool), row), name, pool)])
            for position in pool:
                changes = {c: side.parent[side.fk.parent_columns[side.fk.child_columns.index(c)]].iloc[position]
                           for c in side.fk.child_columns if c in values}
                changes[side.fk.child_column] = side.codes[position]
                if not claim({row: changes}):
                    continue
                for column, value in changes.items():
                    if column in values:
                        values[column][row] = value
                side.positions[row] = position
                done = True
                break
            if done:
                break
    for column in {c for side in sides.values() for c in moved_columns(side)}:
        keys[column] = pd.Series(values[column], dtype=keys[column].dtype)
    return int((~_room(sides, columns, every)).sum())


def fill_min_children(table_rules: list[Rule], fks: list[ForeignKey], keys: dict[str, pd.Series],
                      parents: Mapping[str, pd.DataFrame], primary_key: list[str], rng: np.random.Generator) -> int:
    """Rows added for parents still short of their fewest children once the planned rows are spread (every baker
    has a result in each of their series' episodes, but the episodes asked for fewer rows than the series has
    bakers): a short parent takes a copy of the keys of a row of its group (rows agreeing on the columns its FK
    shares with the table's other FKs) whose rest of the primary key it has no row with yet. `keys` grows in
    place; returns the rows added."""
    n = len(next(iter(keys.values()))) if keys else 0
    by_name = {fk.child_column: fk for fk in fks}
    wanted = [r for r in table_rules if r.kind == "min_children" and r.min_count > 0 and r.columns[0] in by_name
              and r.parent_table in parents]
    if not n or not wanted:
        return 0
    frame = pd.DataFrame({c: v.reset_index(drop=True) for c, v in keys.items()})
    unique_key = list(primary_key) if primary_key and all(c in frame for c in primary_key) else []
    for rule in wanted:
        added: list[pd.DataFrame] = []
        fk = by_name[rule.columns[0]]
        side = _BoundingParent(fk, fks, parents[rule.parent_table], frame, rule.parent_column)
        counts = np.bincount(side.positions[side.positions >= 0], minlength=len(side.parent))
        rest = [c for c in unique_key if c not in fk.child_columns]
        rest_key = (key_values(frame, rest).to_numpy(dtype=object) if rest else np.arange(len(frame)).astype(object))
        moved = [c for c in dict.fromkeys([*fk.child_columns, fk.child_column]) if c in frame]
        children = pd.Series(np.arange(len(frame))).groupby(side.positions).indices
        for parent_row in rng.permutation(np.flatnonzero(counts < rule.min_count)):
            mine = children.get(parent_row, np.zeros(0, dtype=int))
            group = side.rows_of.get(side.parent_group[parent_row], np.zeros(0, dtype=int))
            group = group[side.positions[group] != parent_row]
            free = group[~pd.Index(rest_key[group]).isin(rest_key[mine])] if unique_key else group
            if not len(free):
                continue
            _, first = np.unique(rest_key[free].astype(str), return_index=True)  # one row per rest of the key
            take = rng.permutation(free[first])[: rule.min_count - counts[parent_row]]
            copies = frame.iloc[take].copy()
            for column in moved:
                if column == fk.child_column and fk.composite:
                    copies[column] = side.codes[parent_row]
                else:
                    copies[column] = side.parent[fk.parent_columns[fk.child_columns.index(column)]].iloc[parent_row]
            added.append(copies)
        if added:  # the next rule sees these rows
            frame = pd.concat([frame, *added], ignore_index=True)
    if len(frame) == n:
        return 0
    for column in keys:
        keys[column] = frame[column].astype(keys[column].dtype).reset_index(drop=True)
    return len(frame) - n


def at_least(counts: np.ndarray, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """Children per parent raised to `minimum` by moving children from the parents with the most (the total is
    kept; when it is too small for every parent to get the minimum, as many as it allows do)."""
    counts = np.asarray(counts, dtype=int).copy()
    if minimum <= 0 or not len(counts):
        return counts
    short = np.flatnonzero(counts < minimum)
    for parent in rng.permutation(short):
        while counts[parent] < minimum:
            donor = int(np.argmax(counts - minimum))
            if counts[donor] <= minimum:
                return counts
            counts[donor] -= 1
            counts[parent] += 1
    return counts


def enough_present(is_null: np.ndarray, needed: int, rng: np.random.Generator) -> np.ndarray:
    """Null FK draws turned back into children where the others are too few for every parent's minimum."""
    is_null = np.asarray(is_null, dtype=bool).copy()
    short = needed - int((~is_null).sum())
    if short > 0:
        is_null[rng.permutation(np.flatnonzero(is_null))[:short]] = False
    return is_null


def cover(groups: np.ndarray, picked: np.ndarray, n_parents: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """A junction's second parents (`picked`, distinct within each group of the first) raised to `minimum`
    children each: a short parent takes the row of a parent with more than the minimum, in a group it is not in yet
    (every film keeps its category when films are spread over categories)."""
    picked = np.asarray(picked, dtype=int).copy()
    if minimum <= 0 or not len(picked):
        return picked
    counts = np.bincount(picked, minlength=n_parents)
    for parent in rng.permutation(np.flatnonzero(counts < minimum)):
        while counts[parent] < minimum:
            free = (counts[picked] > minimum) & ~np.isin(groups, groups[picked == parent])
            rows = np.flatnonzero(free)
            if not len(rows):
                return picked
            row = rows[rng.integers(0, len(rows))]
            counts[picked[row]] -= 1
            counts[parent] += 1
            picked[row] = parent
    return picked


# ---------------------------------------------------------------- counting what is broken


def violations(rules: Iterable[Rule], tables: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Per rule, how the synthetic `tables` keep it: {rule, kind, table, real_share, synthetic_share, violations}.

    `violations` counts rows breaking an ordering or a dependency (a row whose target is not the commonest one for
    its source value), rows short of the parent value share, or parents with fewer children than the minimum.
    Rules whose tables or columns are absent are left out."""
    out = []
    for rule in rules:
        body = tables.get(rule.table)
        if body is None:
            continue
        body = body.reset_index(drop=True)
        if rule.kind in ("order", "parent_order"):
            sides = _sides(rule, body, tables)
            if sides is None:
                continue
            low, high = sides
            present = ~np.isnan(low) & ~np.isnan(high)
            broken = int((~_holds(rule, low, high)).sum())
            total = int(present.sum())
            share = 1 - broken / total if total else 1.0
            count = broken if rule.share >= 1 else max(0, broken - int(np.floor((1 - rule.share) * total + 1e-9)))
        elif rule.kind == "parent_equal":
            parent = tables.get(rule.parent_table)
            if parent is None or rule.columns[0] not in body or not _has_key(body, rule.fk_column):
                continue
            theirs = _joined(parent, rule.parent_column, _positions(parent, rule.parent_key, body, rule.fk_column))
            equal, present = _equal(body[rule.columns[0]], theirs)
            total = int(present.sum())
            share = float(equal.sum() / total) if total else 1.0
            count = max(0, int(round(rule.share * total)) - int(equal.sum()))
        elif rule.kind == "dependency":
            if not set(rule.columns) <= set(body.columns):
                continue
            source, target = body[rule.columns[0]], body[rule.columns[1]]
            pairs = pd.DataFrame({"a": source.astype(str), "b": target.astype(str).where(target.notna(), NULL_TOKEN)})[
                source.notna().to_numpy()]
            total = len(pairs)
            kept = int(pairs.value_counts().groupby(level=0).max().sum()) if total else 0
            share = kept / total if total else 1.0
            count = max(0, int(np.ceil(rule.share * total - 1e-9)) - kept)
        else:  # min_children
            parent = tables.get(rule.parent_table)
            if parent is None or not _has_key(body, rule.columns[0]):
                continue
            positions = _positions(parent, rule.parent_column, body, rule.columns[0])
            counts = np.bincount(positions[positions >= 0], minlength=len(parent))
            total = len(parent)
            count = int((counts < rule.min_count).sum())
            share = 1 - count / total if total else 1.0
        out.append({"rule": rule.id, "kind": rule.kind, "table": rule.table, "real_share": round(rule.share, 4),
                    "synthetic_share": round(float(share), 4), "violations": int(count)})
    return out
