"""The schema model: columns, tables, foreign keys and the dataset schema, and the key values rows are joined on.

Inferring a schema from data is analysis.schema_inference; this is only its shape (what models and reports store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, model_validator

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class ColumnMeta(BaseModel):
    name: str
    sdtype: str  # id, numeric, integer, categorical, boolean, datetime, text
    dtype: str  # storage dtype as read
    null_rate: float
    cardinality: int
    datetime_format: str | None = None  # "date" or "datetime" for datetime columns
    text_layout: str | None = None  # a datetime column stored as text: the strftime layout of its values
    exceptions: int = 0  # values outside the column's type (codes among numbers, +-inf, other date layouts)
    impossible_dates: int = 0  # date-shaped values naming no real day (2021-02-30): counted, kept as exceptions
    pii_kind: str | None = None  # filled by the PII scan
    pii_policy: str | None = None


class TableMeta(BaseModel):
    name: str
    row_count: int
    primary_key: list[str] = Field(default_factory=list)
    primary_key_inferred: bool = False
    primary_key_evidence: str = "declared"  # why an inferred key was chosen (shown by the schema asset)
    columns: dict[str, ColumnMeta]
    # rows that belong to one person on average (a customer's payments): marginals are smoothed over several people
    rows_per_person: float = 1.0

    def column(self, name: str) -> ColumnMeta:
        return self.columns[name]


class ForeignKey(BaseModel):
    """A child column tuple referencing a parent key tuple (one column each for a plain FK).

    `child_column` / `parent_column` name a one-column FK's columns; a composite FK's are its columns joined by
    '+', the name of its tuple-code key inside the relational layer (see `key_values`)."""

    child_table: str
    child_columns: list[str]
    parent_table: str
    parent_columns: list[str]
    nullable: bool = False
    inferred: bool = False
    evidence: str = "declared"
    deferred: bool = False  # closes a cycle: filled after its parent table is generated (fill_deferred_keys)

    @model_validator(mode="before")
    @classmethod
    def _one_column_form(cls, data):
        """`child_column=` / `parent_column=` (and models saved before composite keys) mean one-column lists."""
        if isinstance(data, dict):
            data = dict(data)
            for side in ("child", "parent"):
                if f"{side}_column" in data:
                    data.setdefault(f"{side}_columns", [data.pop(f"{side}_column")])
        return data

    @model_validator(mode="after")
    def _same_length(self) -> ForeignKey:
        if not self.child_columns or len(self.child_columns) != len(self.parent_columns):
            raise ValueError(f"foreign key {self.child_table} -> {self.parent_table}: {len(self.child_columns)} child "
                             f"columns against {len(self.parent_columns)} parent columns")
        return self

    @property
    def composite(self) -> bool:
        return len(self.child_columns) > 1

    @property
    def child_column(self) -> str:
        return "+".join(self.child_columns)

    @property
    def parent_column(self) -> str:
        return "+".join(self.parent_columns)

    @property
    def is_self_reference(self) -> bool:
        return self.child_table == self.parent_table

    @property
    def label(self) -> str:
        if not self.composite:
            return f"{self.child_table}.{self.child_column} -> {self.parent_table}.{self.parent_column}"
        return f"{self.child_table}.({', '.join(self.child_columns)}) -> {self.parent_table}.({', '.join(self.parent_columns)})"


KEY_SEPARATOR = "\x1f"


def key_values(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One comparable value per row for a key of one or more columns: a composite key becomes one tuple code
    (its parts joined), null where any part is null; dtypes are normalised so read and generated keys match."""
    import numpy as np

    if len(columns) == 1:
        return comparable_values(df[columns[0]]).where(df[columns[0]].notna().to_numpy())
    parts = [comparable_values(df[c]) for c in columns]
    null = np.zeros(len(df), dtype=bool)
    for column in columns:
        null |= df[column].isna().to_numpy()
    code = parts[0].astype(str).str.cat([p.astype(str) for p in parts[1:]], sep=KEY_SEPARATOR)
    return code.astype(object).where(~null, None)


def key_positions(parent: pd.Series, child: pd.Series) -> np.ndarray:
    """Each child key's row among the parent keys (-1: none), as pd.Index(parent).get_indexer(child) gives for keys
    of key_values / comparable_values; distinct non-null text keys are matched in Arrow (no Python string per row)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(parent.dtype, pd.StringDtype) and isinstance(child.dtype, pd.StringDtype) and not parent.isna().any():
        parents = pa.array(parent)
        if pc.count_distinct(parents).as_py() == len(parents):
            found = pc.index_in(pa.array(child), value_set=parents)
            return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return pd.Index(parent.to_numpy()).get_indexer(child.to_numpy())


def child_keys(fk: ForeignKey, df: pd.DataFrame) -> pd.Series:
    return key_values(df, fk.child_columns)


def parent_keys(fk: ForeignKey, df: pd.DataFrame) -> pd.Series:
    return key_values(df, fk.parent_columns)


class DatasetSchema(BaseModel):
    dataset: str
    tables: dict[str, TableMeta]
    foreign_keys: list[ForeignKey]
    generation_order: list[str]
    unresolved_fk_candidates: list[str] = Field(default_factory=list)

    def fks_of(self, table: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.child_table == table]

    def parents_of(self, table: str) -> list[str]:
        return sorted({fk.parent_table for fk in self.fks_of(table) if not fk.is_self_reference and not fk.deferred})

    def key_columns(self, table: str) -> set[str]:
        """Columns the relational layer owns: primary key and FK columns."""
        keys = set(self.tables[table].primary_key)
        keys.update(c for fk in self.fks_of(table) for c in fk.child_columns)
        return keys


def comparable_values(values: pd.Series) -> pd.Series:
    """Key values that compare equal whether read from a source or generated (numbers as float64, else text)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    return values.astype(str)


def nullable_key_dtype(values: pd.Series):
    """Keys read back from the warehouse come as numpy dtypes; FK columns need room for nulls."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(values):
        return "Int64"
    if pd.api.types.is_string_dtype(values):
        return "string"
    return values.dtype


def keys_at(parent_keys: pd.Series, position: np.ndarray) -> pd.Series:
    """The parent keys at `position` per row (-1: a null), in the FK's nullable dtype (nullable_key_dtype), taken
    from the parent's array in one step: no Python object per row."""
    import pandas as pd

    dtype = nullable_key_dtype(parent_keys)
    if pd.api.types.is_object_dtype(dtype):  # object keys keep pandas' own NA, as a row-wise assignment gives
        values = pd.Series([pd.NA] * len(position), dtype=dtype)
        values[position >= 0] = parent_keys.to_numpy()[position[position >= 0]]
        return values
    source = parent_keys.astype(dtype).array
    return pd.Series(pd.api.extensions.take(source, position, allow_fill=True), dtype=dtype)


class PlannedKey:
    """A single-column FK of a table's planned rows held as each row's parent position (int32; -1: a null) into
    the parent's key column, not as key text per row: the keys of a block of rows are taken when it is written
    (rows), the whole column only where a step needs it (series). keys_at(parent_keys, positions) is the column."""

    def __init__(self, positions: np.ndarray, parent_keys: pd.Series):
        import numpy as np
        import pandas as pd

        self.positions = positions.astype(np.int32, copy=False) if len(parent_keys) < 2**31 - 1 else positions
        self.parent_keys = parent_keys.reset_index(drop=True)
        self.dtype = pd.api.types.pandas_dtype(nullable_key_dtype(self.parent_keys))  # keys_at's, from every key

    def __len__(self) -> int:
        return len(self.positions)

    def rows(self, start: int, stop: int) -> pd.Series:
        return keys_at(self.parent_keys, self.positions[start:stop])

    def series(self) -> pd.Series:
        return keys_at(self.parent_keys, self.positions)

    def take(self, index: np.ndarray) -> PlannedKey:
        return PlannedKey(self.positions[index], self.parent_keys)


def key_series(values: pd.Series | PlannedKey) -> pd.Series:
    """A planned key column as a Series (indexed 0..n-1)."""
    return values.series() if isinstance(values, PlannedKey) else values.reset_index(drop=True)


def planned_rows(values: pd.Series | PlannedKey, start: int, stop: int) -> pd.Series:
    """Rows start..stop of a planned key column, indexed from 0."""
    return values.rows(start, stop) if isinstance(values, PlannedKey) else values.iloc[start:stop].reset_index(drop=True)
