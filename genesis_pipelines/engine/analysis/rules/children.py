"""`min_children` rules and rules across two parents: every parent with at least so many children, and a row's
column bounded by both of its parents, kept when the keys are assigned (relational.keys)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import core
from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.schema import ForeignKey, PlannedKey, key_series, key_values


def find_min_children(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame) -> list[Rule]:
    """Every real parent has at least one child (no order without lines): generation keeps that minimum."""
    if fk.is_self_reference or fk.deferred or parent.empty:
        return []
    positions = core.positions(parent, fk.parent_column, child, fk.child_column)
    counts = np.bincount(positions[positions >= 0], minlength=len(parent))
    if counts.min() < 1:
        return []
    return [Rule(id=f"min_children:{fk.parent_table}->{fk.child_table}.{fk.child_column}", kind="min_children",
                 table=fk.child_table, columns=[fk.child_column], share=1.0, parent_table=fk.parent_table,
                 parent_column=fk.parent_column, min_count=int(counts.min()))]


ROOM_CANDIDATES = 256  # rows a row without room may exchange its parent with, drawn at random from its group


def _bound_gap(rule: Rule) -> float:
    """How far the child must stay from its parent's value: the smallest real gap, or a step for a strict rule."""
    return max(rule.min_gap, rule.step if rule.strict else 0.0)


class _BoundingParent:
    """One FK of a table as it bounds the table's columns: the parent row of each child row, and per bounded
    column the lower and upper bound each parent row sets (NaN: none)."""

    def __init__(self, fk: ForeignKey, fks: list[ForeignKey], parent: pd.DataFrame, frame: pd.DataFrame, key: str):
        self.fk, self.parent = fk, parent.reset_index(drop=True)
        self.positions = core.positions(self.parent, key, frame, fk.child_column)
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
                or rule.parent_column not in parent or not core.has_key(frame, rule.fk_column):
            continue
        side = sides.setdefault(rule.fk_column, _BoundingParent(fk, fks, parent, frame, rule.parent_key))
        theirs = core.numbers(side.parent[rule.parent_column])
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
    if not any(r.kind == "parent_order" for r in table_rules):
        return 0  # no column bounded by a parent: nothing to keep room for (and no frame of every key)
    frame = pd.DataFrame({c: key_series(v) for c, v in keys.items()})
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
    if not any(_short_parents(rule, by_name[rule.columns[0]], keys, parents[rule.parent_table]) for rule in wanted):
        return 0  # no parent short of its fewest children: no row to add (and no random draw), without a frame of every key
    frame = pd.DataFrame({c: key_series(v) for c, v in keys.items()})
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


def _short_parents(rule: Rule, fk: ForeignKey, keys: dict[str, pd.Series], parent: pd.DataFrame) -> bool:
    """Some parent row has fewer children than the rule's minimum among the planned keys: the counts
    fill_min_children starts from (the FK's own key columns alone looked up, as _BoundingParent looks them up)."""
    planned = keys.get(fk.child_column)
    if isinstance(planned, PlannedKey) and planned.parent_keys.equals(parent[rule.parent_column].reset_index(drop=True)):
        positions = planned.positions  # the parent rows are known
        return bool((np.bincount(positions[positions >= 0], minlength=len(parent)) < rule.min_count).any())
    columns = [c for c in dict.fromkeys([fk.child_column, *fk.child_columns]) if c in keys]
    positions = core.positions(parent, rule.parent_column, pd.DataFrame({c: key_series(keys[c]) for c in columns}),
                               fk.child_column)
    return bool((np.bincount(positions[positions >= 0], minlength=len(parent)) < rule.min_count).any())


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
