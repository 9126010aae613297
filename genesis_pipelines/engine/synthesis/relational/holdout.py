"""The train / holdout split of every table (children follow their parents) and the fingerprint of the source."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import DatasetSchema, child_keys, parent_keys

MIN_ROWS_FOR_HOLDOUT = 20


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
    split followed from the data (`evaluation.privacy.grouping.holdout_group_column`) and compares those tables against
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


def fingerprint_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """Content hash of the source snapshot (row order independent is not needed: sources are read in order)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
