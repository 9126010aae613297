"""Grouped holdouts: the parent key a train/holdout split followed, and the columns that describe the parent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import DatasetSchema

# A column is an attribute of the parent (the billing city of a customer's invoices) when it is constant within
# the parent's group for at least this share of the child's rows in groups of two or more.
PARENT_LEVEL_SHARE = 0.95
# A split that followed a parent key leaves at most this share of the holdout rows with a key also in the training
# rows (a split by row leaves nearly all of them: each parent's several rows fall on both sides).
MAX_STRADDLING_SHARE = 0.05


def holdout_group_column(train: pd.DataFrame, holdout: pd.DataFrame | None, schema: DatasetSchema, table: str) -> str | None:
    """The foreign key the train/holdout split followed (see relational.split_tables), read from the data.

    A child split by its parent has (almost) no key value on both sides, and its keys repeat (several rows per
    parent); a row split shares parents between the sides. A child that followed a one-to-one parent (a payment
    its rental, the rental its customer) is grouped by the key above it that repeats: its parents' own split left a
    few of those on both sides (rows of the one-to-one parent whose key is null, or that follow another parent), so
    up to MAX_STRADDLING_SHARE of the holdout rows may share their key with training rows. The key straddling least
    is taken; None when the split was by row.
    """
    if holdout is None or not len(holdout) or not len(train):
        return None
    best, best_share = None, float("inf")
    for fk in schema.fks_of(table):
        column = fk.child_column
        if fk.is_self_reference or fk.composite or column not in train.columns or column not in holdout.columns:
            continue
        train_keys, holdout_keys = train[column].dropna().astype(str), holdout[column].dropna().astype(str)
        if not len(train_keys) or not len(holdout_keys) or not train_keys.duplicated().any():
            continue
        straddling = float(holdout_keys.isin(set(train_keys.unique())).mean())
        if straddling <= MAX_STRADDLING_SHARE and straddling < best_share:
            best, best_share = column, straddling
    return best


def parent_level_columns(train: pd.DataFrame, group_column: str, columns: list[str]) -> list[str]:
    """Columns that describe the parent rather than the row: constant within (almost) every parent's group.

    Under a grouped holdout these carry the held-out parents' own values (their cities), which no generator
    trained without those parents can produce; they are judged with the parent table, not the child's rows.
    """
    keyed = train[train[group_column].notna()]
    sizes = keyed.groupby(group_column, sort=False).size()
    multi = sizes[sizes >= 2]
    if multi.empty:
        return []
    keyed = keyed[keyed[group_column].isin(multi.index)]
    out = []
    for column in columns:
        distinct = keyed.groupby(group_column, sort=False)[column].nunique(dropna=False).reindex(multi.index)
        if multi[distinct == 1].sum() >= PARENT_LEVEL_SHARE * multi.sum():
            out.append(column)
    return out


def group_labels(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    labels, _ = pd.factorize(frame[column].astype(str), use_na_sentinel=False)
    # Rows without a parent were split one by one: each is a group of its own.
    missing = frame[column].isna().to_numpy()
    labels = labels.astype(np.int64)
    labels[missing] = labels.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return labels
