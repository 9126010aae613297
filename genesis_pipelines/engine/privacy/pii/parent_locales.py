"""The Faker locale of each synthetic row, read through its foreign keys when its own table has no country.

A customer's country often sits several tables away (sakila: customer -> address -> city -> country), so a fake
street, postcode or phone drawn from the default locale would not match it. Here each row follows its FKs, parents
first in schema order, to the nearest ancestor table with a country column (`pii.row_locales` decides what a
country column is), and takes that ancestor row's locale. Only generated (synthetic) tables are read: never a real
row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import DatasetSchema, child_keys, parent_keys
from genesis_pipelines.engine.privacy.pii.fakes import row_locales

MAX_DEPTH = 6  # FK hops followed from a table towards a country column


def _own_or_inherited(schema: DatasetSchema, table: str, frame: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                      default: str, depth: int, seen: frozenset[str], memo: dict) -> np.ndarray | None:
    """Per row of `frame` (a table of `schema`): its locale from its own country column, else from the nearest
    ancestor's; None where no path reaches one. Rows no path resolves get `default`."""
    own = row_locales(frame, default) if frame.shape[1] else None
    if own is not None or depth >= MAX_DEPTH:
        return own
    out = np.full(len(frame), None, dtype=object)
    found = False
    for fk in schema.fks_of(table):
        if fk.is_self_reference or fk.parent_table in seen or fk.parent_table not in tables:
            continue
        if not all(c in frame.columns for c in fk.child_columns):
            continue
        parent = tables[fk.parent_table].reset_index(drop=True)
        if fk.parent_table not in memo:  # one lookup per ancestor table and run of this function
            memo[fk.parent_table] = _own_or_inherited(schema, fk.parent_table, parent, tables, default, depth + 1,
                                                      seen | {fk.parent_table}, memo)
        theirs = memo[fk.parent_table]
        if theirs is None or not all(c in parent.columns for c in fk.parent_columns):
            continue
        found = True
        index = pd.Index(parent_keys(fk, parent).to_numpy())
        first = ~index.duplicated()
        positions = pd.Index(index[first]).get_indexer(child_keys(fk, frame).to_numpy())
        positions = np.where(positions >= 0, np.flatnonzero(first)[np.maximum(positions, 0)], -1)
        unset = pd.isna(out) & (positions >= 0)
        out[unset] = theirs[positions[unset]]
    if not found:
        return None
    out[pd.isna(out)] = default
    return out


def inherited_locales(schema: DatasetSchema, table: str, frame: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                      default: str) -> np.ndarray | None:
    """The locale of each row of `table` through its FKs (None when the table has its own country column, or no FK
    path reaches one: `pii.fill_synthetic` then reads the row itself or uses `default`)."""
    if row_locales(frame, default) is not None:
        return None
    return _own_or_inherited(schema, table, frame, tables, default, 0, frozenset({table}), {})


def ancestors_to_read(schema: DatasetSchema, table: str, has_fakes: bool) -> list[str]:
    """The tables beyond the direct parents that a table's fakes may take their locale from (its ancestors within
    MAX_DEPTH FK hops); none when the table has nothing to fake. Ancestors are always generated before it."""
    if not has_fakes:
        return []
    found: list[str] = []
    frontier = [table]
    for _ in range(MAX_DEPTH):
        frontier = [p for t in frontier for p in schema.parents_of(t) if p != table and p not in found]
        frontier = list(dict.fromkeys(frontier))
        found += frontier
    direct = set(schema.parents_of(table))
    return [t for t in found if t not in direct]
