"""The train/holdout split kept in the warehouse, and which model versions it belongs to.

One split per dataset is stored: the latest training's (`train_<ds>` and `holdout_<ds>`, with a marker table naming
the model version that wrote it). An earlier model version can be evaluated against it when it was trained on the
same source snapshot with the same split settings (the split is seeded, so it is that model's split too). When the
snapshot or the settings differ, that model's training rows are no longer stored, and its privacy and utility
figures would be measured against rows it never trained on: a clear error says so and names the way out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import duckdb
import pandas as pd

from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.core.layout import warehouse_schema
from genesis_pipelines.engine.sources.io import quote, read_table, table_exists, write_table

MARKER = "_genesis_split"  # in the train schema: one row, the model version and split key of the stored split


def split_schemas(dataset: str) -> tuple[str, str]:
    return warehouse_schema("train", dataset), warehouse_schema("holdout", dataset)


def split_key(model) -> str:
    """What decides a model's split: the source snapshot and the split settings."""
    settings = model.settings or {}
    return json.dumps({"source_fingerprint": model.source_fingerprint, "seed": settings.get("seed"),
                       "holdout_fraction": settings.get("holdout_fraction"),
                       "holdout_by_parent": settings.get("holdout_by_parent")}, sort_keys=True)


def write_splits(con: duckdb.DuckDBPyConnection, dataset: str, model,
                 splits: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]) -> None:
    """Each table swaps in atomically; the marker goes first and comes back last, so a split half rewritten
    by a failed run has no marker and is not trusted."""
    train_schema, holdout_schema = split_schemas(dataset)
    con.execute(f"create schema if not exists {quote(train_schema)}")
    con.execute(f"drop table if exists {quote(train_schema)}.{quote(MARKER)}")
    for table, (train_rows, holdout_rows) in splits.items():
        write_table(con, train_schema, table, train_rows)
        write_table(con, holdout_schema, table, holdout_rows)
    write_table(con, train_schema, MARKER, pd.DataFrame({"model_version": [model.version], "split_key": [split_key(model)]}))


def stored_split_version(con: duckdb.DuckDBPyConnection, dataset: str) -> tuple[str, str] | None:
    train_schema, _ = split_schemas(dataset)
    if not table_exists(con, train_schema, MARKER):
        return None
    row = read_table(con, train_schema, MARKER).iloc[0]
    return str(row["model_version"]), str(row["split_key"])


def check_split(con: duckdb.DuckDBPyConnection, dataset: str, model, *, retrain_hint: str) -> None:
    stored = stored_split_version(con, dataset)
    if stored is None:
        raise ModelError(f"dataset {dataset!r}: no complete train/holdout split in the warehouse ({retrain_hint})")
    version, key = stored
    if version != model.version and key != split_key(model):
        raise ModelError(
            f"dataset {dataset!r}: model version {model.version} was trained on another source snapshot or split "
            f"than the stored train/holdout split (model version {version}); its training rows are no longer kept, "
            f"so it cannot be evaluated against them. Evaluate model version {version}, or {retrain_hint}")


def read_splits(con: duckdb.DuckDBPyConnection, dataset: str, model, tables: Iterable[str], *,
                retrain_hint: str) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The model's training and holdout rows per table, after `check_split`."""
    check_split(con, dataset, model, retrain_hint=retrain_hint)
    train_schema, holdout_schema = split_schemas(dataset)
    tables = list(tables)
    return ({t: read_table(con, train_schema, t) for t in tables}, {t: read_table(con, holdout_schema, t) for t in tables})
