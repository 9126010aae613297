"""`order` and `parent_order` rules: one value at most another (in the row, or against the parent row), found from
the real gaps and kept by redrawing a broken dependent value from them (or clamping it between its bounds)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import core
from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey, TableMeta

ORDER_MIN_SHARE = 0.95  # an ordering that holds on this share of real rows ...
ORDER_MIN_LIFT = 0.05  # ... and on this much more than independent rows would is a rule (share 1.0: exact)
MAX_ORDER_RULES = 12  # per table and kind: the pairs whose ranges overlap most (the least trivial ones)
GAP_QUANTILES = 21
REPAIR_PASSES = 6  # orderings repaired in column order; repeated while an exact rule is still broken
SORTABLE = {"datetime": "datetime", "numeric": "number", "integer": "number"}


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
    return (both >= core.MIN_ROWS) & ((below >= need) | ((above >= need) if same else False))


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
            if both.sum() < core.MIN_ROWS:
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
        if cmeta is None or column in keys or cmeta.sdtype not in SORTABLE:
            continue
        values = core.numbers(df[column])
        if np.unique(values[~np.isnan(values)]).size >= 2:
            groups[SORTABLE[cmeta.sdtype]][column] = values
    return groups


def find_orders(name: str, df: pd.DataFrame, meta: TableMeta, keys: set[str], seed: int = 0) -> list[Rule]:
    """Orderings between columns of a row (datetimes with datetimes, numbers with numbers)."""
    df = core.sample(df, seed).reset_index(drop=True)
    rules: list[Rule] = []
    for kind, group in _sortable_columns(df, meta, keys).items():
        for share, strict, _, low, high in _order_candidates(group, group, True, kind == "datetime")[:MAX_ORDER_RULES]:
            min_gap, gaps = _gap_stats(group[low], group[high])
            rules.append(Rule(id=f"order:{name}.{low}{'<' if strict else '<='}{name}.{high}", kind="order", table=name,
                              columns=[low, high], share=share, strict=strict, min_gap=min_gap, gaps=gaps,
                              step=core.step(df[high], meta.columns[high].sdtype)))
    return rules


def find_parent_orders(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame, schema: DatasetSchema,
                       seed: int = 0) -> list[Rule]:
    """Orderings between a child's column and its parent's (a rental after its customer was created)."""
    if fk.is_self_reference or fk.deferred:
        return []
    child = core.sample(child, seed).reset_index(drop=True)
    name, meta = fk.child_table, schema.tables[fk.child_table]
    positions = core.positions(parent, fk.parent_column, child, fk.child_column)
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
                              step=core.step(child[child_column], meta.columns[child_column].sdtype),
                              child_nulls=bool(child[child_column].isna().any())))
    return rules


def _redraw(rule: Rule, anchor: np.ndarray, rng: np.random.Generator, upward: bool, apart: bool = False) -> np.ndarray:
    """A dependent value anchor +- a gap drawn from the real gaps, at the column's resolution, never closer than the
    smallest real gap (nor equal, for a strict rule, or when `apart`: equality is a parent_equal rule's share)."""
    gaps = np.interp(rng.random(len(anchor)), np.linspace(0, 1, len(rule.gaps)), rule.gaps) if rule.gaps else np.zeros(len(anchor))
    gaps = np.maximum(gaps, max(rule.min_gap, (rule.step or 1e-6) if apart else 0.0))
    values = anchor + gaps if upward else anchor - gaps
    if rule.step > 0:
        values = (np.ceil(values / rule.step - 1e-9) if upward else np.floor(values / rule.step + 1e-9)) * rule.step
    return values


def rule_holds(rule: Rule, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per row: the ordering holds, by at least the smallest real gap for an exact rule (hired no younger than the
    youngest real hire); True where a side is missing, as in SQL CHECK."""
    with np.errstate(invalid="ignore"):
        if rule.share >= 1 and rule.min_gap > 0:
            ok = high - low >= rule.min_gap - 1e-9 * max(1.0, abs(rule.min_gap))
        else:
            ok = low < high if rule.strict else low <= high
    return ok | np.isnan(low) | np.isnan(high)


def rule_sides(rule: Rule, body: pd.DataFrame, parents: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) values of an ordering rule on the rows of `body`."""
    if rule.kind == "order":
        if not set(rule.columns) <= set(body.columns):
            return None
        return core.numbers(body[rule.columns[0]]), core.numbers(body[rule.columns[1]])
    parent = parents.get(rule.parent_table)
    if parent is None or not core.has_key(body, rule.fk_column) or rule.columns[0] not in body or rule.parent_column not in parent:
        return None
    theirs = core.parent_numbers(rule, parent, body)
    mine = core.numbers(body[rule.columns[0]])
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


def repair_orders(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame],
                   rng: np.random.Generator) -> pd.DataFrame:
    equal = {(r.columns[0], r.fk_column, r.parent_column) for r in rules if r.kind == "parent_equal"}
    rules = _order_sequence([r for r in rules if r.kind in ("order", "parent_order")])
    # a redrawn value stays within the range the generator sampled the column in (itself within the real range)
    limits = {}
    for column in {c for r in rules for c in r.columns if c in body}:
        values = core.numbers(body[column])
        limits[column] = (np.nanmin(values), np.nanmax(values)) if (~np.isnan(values)).any() else (-np.inf, np.inf)
    for pass_ in range(REPAIR_PASSES):
        broken_exact = False
        for rule in rules if pass_ % 2 == 0 else rules[::-1]:  # downward passes go from the latest column back
            sides = rule_sides(rule, body, parents)
            if sides is None:
                continue
            low, high = sides
            holds = rule_holds(rule, low, high)
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
            core.set_numbers(body, column, fix[take], drawn[take])
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
        lower, upper = bounds(column, exact, body, parents)
        values = core.numbers(body[column])
        fixable = ~np.isnan(values) & (lower <= upper) & ((values < lower) | (values > upper))
        if fixable.any():
            rows = np.flatnonzero(fixable)
            step = max([r.step for r in exact if column in r.columns] + [0.0])
            core.set_numbers(body, column, rows, _inside(values[rows], lower[rows], upper[rows], step, rng))
        if any(r.child_nulls for r in exact if r.kind == "parent_order" and r.columns[0] == column):
            _null_where_no_room(body, column, values, lower, upper, rng)
    return body


def bounds(column: str, exact: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the interval the exact orderings allow a column (from the row's other columns and its parents)."""
    lower, upper = np.full(len(body), -np.inf), np.full(len(body), np.inf)
    for rule in exact:
        if rule.share < 1 or rule.kind not in ("order", "parent_order"):
            continue
        own_high = rule.columns[1] == column if rule.kind == "order" else (rule.columns[0] == column and rule.parent_is_low)
        own_low = rule.columns[0] == column if rule.kind == "order" else (rule.columns[0] == column and not rule.parent_is_low)
        sides = rule_sides(rule, body, parents) if own_high or own_low else None
        if sides is None:
            continue
        low, high = sides
        gap = max(rule.min_gap, (rule.step or 0.0) if rule.strict else 0.0)
        if own_high:
            lower = np.fmax(lower, low + gap)
        else:
            upper = np.fmin(upper, high - gap)
    return lower, upper


def fits(values: pd.Series, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per row: the value lies in its interval (True where it is not a number or missing)."""
    numbers = core.numbers(values) if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values) \
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
        core.set_numbers(body, column, filled, drawn)
    merged = body[column].copy()
    if pd.api.types.is_integer_dtype(merged) and not pd.api.types.is_extension_array_dtype(merged):
        merged = merged.astype("Int64")
    merged.iloc[emptied] = None
    body[column] = merged
