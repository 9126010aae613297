"""Reference tables: the categories other tables point at (genres, media types, languages, countries, airlines).

Such a table describes no person, and each of its rows is shared by many rows of other tables, so its rows are the
vocabulary of the database rather than records: a twin with invented genres or airline names ("Rock Listening")
is wrong, and one that keeps them reveals nothing about anyone. A reference table is therefore kept as it is
(its rows, with their keys) and its children are generated against it.

Found when every condition holds (or declared with `tables.<t>.reference` in the spec, which also switches it off):
the table has 1 to REFERENCE_MAX_ROWS rows, no column with a PII finding, no self reference, no FK to a table that
is not itself reference data, and some FK into it has at least REFERENCE_MIN_CHILDREN children per row on average.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.schema import DatasetSchema, key_values

REFERENCE_METHOD = "reference"
REFERENCE_MAX_ROWS = 1000
REFERENCE_MIN_CHILDREN = 5.0
ROWS_FILE = "reference_rows.json"


def find_reference_tables(schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], findings, declared: Mapping[str, bool | None]) -> dict[str, str]:
    """Reference table -> the evidence (or "declared in the spec"), in generation order."""
    private = {f.table: f.column for f in findings if f.policy != "keep"}
    out: dict[str, str] = {}
    for name in schema.generation_order:
        df, choice = tables[name], declared.get(name)
        if choice is False:
            continue
        fks = schema.fks_of(name)
        outside = [fk.parent_table for fk in fks if fk.is_self_reference or fk.parent_table not in out]
        if choice:
            if name in private:
                raise SpecError(f"table {name!r} is declared reference data, but its column {private[name]!r} holds "
                                f"personal data: reference tables are kept as they are (set tables.{name}.reference: false)")
            if outside:
                raise SpecError(f"table {name!r} is declared reference data, but it refers to table {outside[0]!r}, "
                                f"which is not: a reference table may only point at other reference tables")
            out[name] = "declared in the spec"
            continue
        if not 1 <= len(df) <= REFERENCE_MAX_ROWS or name in private or outside:
            continue
        best = None
        for fk in schema.foreign_keys:
            if fk.parent_table != name or fk.is_self_reference or fk.child_table not in tables:
                continue
            children = int(key_values(tables[fk.child_table], fk.child_columns).notna().sum())
            per_row = children / len(df)
            if per_row >= REFERENCE_MIN_CHILDREN and (best is None or per_row > best[0]):
                best = (per_row, fk.label)
        if best is not None:
            out[name] = (f"{len(df):,} rows, no personal data, {best[0]:.1f} rows of {best[1]} per row")
    return out


def save_rows(df: pd.DataFrame, directory: Path) -> None:
    """The rows as JSON with their table schema (models are JSON and weights: nothing is unpickled on load)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ROWS_FILE).write_text(df.reset_index(drop=True).to_json(orient="table", index=False, date_format="iso"),
                                       encoding="utf-8")


def load_rows(directory: Path) -> pd.DataFrame:
    return pd.read_json(io.StringIO((Path(directory) / ROWS_FILE).read_text(encoding="utf-8")), orient="table")
