"""Semantic types, keys, foreign-key inference, the FK graph and the generation order."""

from __future__ import annotations

import graphlib
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine.constraints import check_columns as check_constraint_columns
from genesis_pipelines.engine.errors import SchemaError
from genesis_pipelines.engine.spec import DatasetSpec


class ColumnMeta(BaseModel):
    name: str
    sdtype: str  # id, numeric, integer, categorical, boolean, datetime, text
    dtype: str  # storage dtype as read
    null_rate: float
    cardinality: int
    datetime_format: str | None = None  # "date" or "datetime" for datetime columns
    pii_kind: str | None = None  # filled by the PII scan
    pii_policy: str | None = None


class TableMeta(BaseModel):
    name: str
    row_count: int
    primary_key: list[str] = Field(default_factory=list)
    primary_key_inferred: bool = False
    columns: dict[str, ColumnMeta]

    def column(self, name: str) -> ColumnMeta:
        return self.columns[name]


class ForeignKey(BaseModel):
    child_table: str
    child_column: str
    parent_table: str
    parent_column: str
    nullable: bool = False
    inferred: bool = False
    evidence: str = "declared"
    deferred: bool = False  # a nullable FK that closes a cycle: filled after its parent table is generated

    @property
    def is_self_reference(self) -> bool:
        return self.child_table == self.parent_table

    @property
    def label(self) -> str:
        return f"{self.child_table}.{self.child_column} -> {self.parent_table}.{self.parent_column}"


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
        keys.update(fk.child_column for fk in self.fks_of(table))
        return keys


# ---------------------------------------------------------------- semantic types

_ID_NAME = re.compile(r"(^id$|_id$|Id$|ID$|^id_)")


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_id_like_name(name: str) -> bool:
    return bool(_ID_NAME.search(name))


def _datetime_format(values: pd.Series) -> str:
    parsed = values.dropna()
    if parsed.empty:
        return "datetime"
    has_time = (parsed.dt.hour != 0) | (parsed.dt.minute != 0) | (parsed.dt.second != 0)
    return "datetime" if bool(has_time.any()) else "date"


def infer_sdtype(series: pd.Series) -> str:
    """A column's semantic type from its values (keys are marked `id` later, from the key analysis)."""
    non_null = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        if non_null.empty:
            return "numeric"
        values = non_null.to_numpy(dtype=float)
        if np.all(np.isin(values, (0.0, 1.0))) and len(np.unique(values)) == 2 and series.name and not is_id_like_name(str(series.name)):
            return "boolean" if pd.api.types.is_bool_dtype(series) else "categorical"
        if pd.api.types.is_integer_dtype(series) or np.all(np.mod(values, 1) == 0):
            return "integer"
        return "numeric"
    if non_null.empty:
        return "categorical"
    strings = non_null.astype(str)
    n_unique = strings.nunique()
    unique_ratio = n_unique / len(strings)
    mean_words = strings.str.count(" ").mean() + 1
    # Many distinct values, or long multi-word values: free text rather than categories.
    if (n_unique > 20 and unique_ratio > 0.5) or (mean_words > 6 and unique_ratio > 0.2):
        return "text"
    return "categorical"


def profile_table(name: str, df: pd.DataFrame, spec: DatasetSpec) -> TableMeta:
    declared = spec.tables.get(name)
    overrides = {ref.split(".", 1)[1]: t for ref, t in spec.column_types.items() if ref.split(".", 1)[0] == name}
    for column in overrides:
        if column not in df.columns:
            raise SchemaError(f"column_types names column {name}.{column}, which table {name!r} does not have")
    columns: dict[str, ColumnMeta] = {}
    for column in df.columns:
        series = df[column]
        sdtype = overrides.get(column) or infer_sdtype(series)
        columns[column] = ColumnMeta(
            name=column,
            sdtype=sdtype,
            dtype=str(series.dtype),
            null_rate=float(series.isna().mean()) if len(series) else 0.0,  # an empty table has no nulls
            cardinality=int(series.nunique(dropna=True)),
            datetime_format=_datetime_format(series) if sdtype == "datetime" and pd.api.types.is_datetime64_any_dtype(series) else None,
        )
    if declared and declared.primary_key_columns:
        pk, inferred = declared.primary_key_columns, False
        for column in pk:
            if column not in df.columns:
                raise SchemaError(f"primary key of table {name!r} names column {column!r}, which the table does not have")
        if df[pk].isna().any().any():
            bad = [c for c in pk if df[c].isna().any()]
            raise SchemaError(f"primary key {name}.{'/'.join(bad)} has null values")
        if df.duplicated(subset=pk).any():
            raise SchemaError(f"primary key {name}.{'+'.join(pk)} is not unique ({int(df.duplicated(subset=pk).sum())} duplicate rows)")
    else:
        pk, inferred = infer_primary_key(name, df), True
    for column in pk:
        columns[column].sdtype = "id"
    return TableMeta(name=name, row_count=len(df), primary_key=pk, primary_key_inferred=inferred, columns=columns)


def infer_primary_key(name: str, df: pd.DataFrame) -> list[str]:
    """A unique, non-null key: an id-like column, else a unique leading code column, else a pair of id columns."""
    def unique(cols: list[str]) -> bool:
        return not df[cols].isna().any().any() and not df.duplicated(subset=cols).any()

    candidates = [c for c in df.columns if _normalise(c) in ("id", _normalise(name) + "id")]
    candidates += [c for c in df.columns if is_id_like_name(c) and c not in candidates]
    for column in candidates:
        if unique([column]):
            return [column]
    first = df.columns[0]
    first_series = df[first]
    is_code = pd.api.types.is_string_dtype(first_series) and not first_series.astype(str).str.contains(r"\s").any() \
        and first_series.astype(str).str.len().max() <= 24
    if unique([first]) and (pd.api.types.is_integer_dtype(first_series) or is_code):
        return [first]
    id_columns = [c for c in df.columns if is_id_like_name(c)]
    if len(id_columns) == 2 and unique(id_columns):
        return id_columns
    return []


# ---------------------------------------------------------------- foreign keys


def declared_foreign_keys(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame], metas: Mapping[str, TableMeta]) -> list[ForeignKey]:
    fks = []
    for fk_spec in spec.foreign_keys or []:
        (ct, cc), (pt, pc) = fk_spec.child_ref, fk_spec.parent_ref
        for table, column, role in ((ct, cc, "child"), (pt, pc, "parent")):
            if table not in tables:
                raise SchemaError(f"foreign key {fk_spec.child} -> {fk_spec.parent}: {role} table {table!r} is not a source table")
            if column not in tables[table].columns:
                raise SchemaError(f"foreign key {fk_spec.child} -> {fk_spec.parent}: {role} column {table}.{column} does not exist")
        parent_values = tables[pt][pc]
        if parent_values.isna().any() or parent_values.duplicated().any():
            raise SchemaError(f"foreign key {fk_spec.child} -> {fk_spec.parent}: parent column {pt}.{pc} is not a unique non-null key")
        child_values = tables[ct][cc].dropna()
        orphans = int((~_contained(child_values, parent_values)).sum())
        if orphans:
            raise SchemaError(
                f"foreign key {fk_spec.child} -> {fk_spec.parent}: {orphans} of {len(child_values)} values of "
                f"{ct}.{cc} have no matching {pt}.{pc} (broken key)"
            )
        fks.append(ForeignKey(child_table=ct, child_column=cc, parent_table=pt, parent_column=pc,
                              nullable=bool(tables[ct][cc].isna().any())))
    return fks


def _comparable(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    return values.astype(str)


def _contained(child: pd.Series, parent: pd.Series) -> pd.Series:
    return _comparable(child).isin(set(_comparable(parent.dropna())))


def infer_foreign_keys(tables: Mapping[str, pd.DataFrame], metas: Mapping[str, TableMeta]) -> tuple[list[ForeignKey], list[str]]:
    """FKs from names, types and value containment; ambiguous candidates are reported, not guessed."""
    parents = {t: m.primary_key[0] for t, m in metas.items() if len(m.primary_key) == 1}
    fks: list[ForeignKey] = []
    unresolved: list[str] = []
    for child, df in tables.items():
        child_pk = metas[child].primary_key
        for column in df.columns:
            if child_pk == [column]:
                continue
            values = df[column].dropna()
            sdtype = metas[child].columns[column].sdtype
            if values.empty or sdtype in ("datetime", "numeric", "boolean"):
                continue
            scored = []
            for parent, key in parents.items():
                parent_values = tables[parent][key]
                if pd.api.types.is_numeric_dtype(values) != pd.api.types.is_numeric_dtype(parent_values):
                    continue
                if not bool(_contained(values, parent_values).all()):
                    continue
                norm_col, norm_key, norm_parent = _normalise(column), _normalise(key), _normalise(parent)
                if norm_col == norm_key and (parent != child or column != key):
                    score, why = 3, "same name as the parent key"
                elif norm_col in (norm_parent + norm_key, norm_parent + "id") or (norm_parent in norm_col and is_id_like_name(column)):
                    score, why = 2, "name refers to the parent table"
                elif sdtype != "text" and pd.api.types.is_string_dtype(values) and values.nunique() >= 2 and not is_id_like_name(column):
                    score, why = 1, "values contained in the parent key"
                else:
                    continue
                scored.append((score, parent, key, why))
            if not scored:
                if is_id_like_name(column) and pd.api.types.is_numeric_dtype(values):
                    unresolved.append(f"{child}.{column}: id-like column with no parent matching its name")
                continue
            scored.sort(key=lambda s: -s[0])
            best = [s for s in scored if s[0] == scored[0][0]]
            if len(best) > 1:
                names = ", ".join(f"{p}.{k}" for _, p, k, _ in best)
                unresolved.append(f"{child}.{column}: ambiguous between {names}")
                continue
            _, parent, key, why = best[0]
            fks.append(ForeignKey(child_table=child, child_column=column, parent_table=parent, parent_column=key,
                                  nullable=bool(df[column].isna().any()), inferred=True, evidence=why))
    return fks, unresolved


def generation_order(table_names: list[str], fks: list[ForeignKey]) -> list[str]:
    """Parents before children; self references are allowed, and so are cycles through a nullable FK, which
    `break_cycles` marks deferred; any other cycle is an error naming its tables."""
    sorter = graphlib.TopologicalSorter({t: set() for t in sorted(table_names)})
    for fk in fks:
        if not fk.is_self_reference and not fk.deferred:
            sorter.add(fk.child_table, fk.parent_table)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise SchemaError(f"foreign keys form a cycle: {' -> '.join(cycle)}; break it with a nullable key or remove one FK") from None


def break_cycles(table_names: list[str], fks: list[ForeignKey]) -> list[ForeignKey]:
    """Mark deferred one nullable FK in each cycle, so the rest orders; a cycle with no nullable FK is an error."""
    fks = [fk.model_copy() for fk in fks]
    for _ in range(len(fks) + 1):
        sorter = graphlib.TopologicalSorter({t: set() for t in sorted(table_names)})
        for fk in fks:
            if not fk.is_self_reference and not fk.deferred:
                sorter.add(fk.child_table, fk.parent_table)
        try:
            sorter.prepare()
            return fks
        except graphlib.CycleError as exc:
            cycle = exc.args[1]  # [a, b, ..., a]: each table depends on the next one
            edges = list(zip(cycle, cycle[1:]))
            candidates = [fk for fk in fks if not fk.deferred and not fk.is_self_reference and fk.nullable
                          and (fk.child_table, fk.parent_table) in edges]
            if not candidates:
                labels = [fk.label for fk in fks if (fk.child_table, fk.parent_table) in edges]
                raise SchemaError(f"foreign keys form a cycle: {' -> '.join(cycle)} ({'; '.join(labels)}), none of them "
                                  "nullable; break it with a nullable key or remove one FK") from None
            candidates[-1].deferred = True
    return fks


def analyse(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame]) -> DatasetSchema:
    """Profile every table, resolve keys and FKs, and order the tables for generation."""
    metas = {name: profile_table(name, df, spec) for name, df in tables.items()}
    if spec.foreign_keys is not None:
        fks, unresolved = declared_foreign_keys(spec, tables, metas), []
    else:
        fks, unresolved = infer_foreign_keys(tables, metas)
    for fk in fks:
        metas[fk.child_table].columns[fk.child_column].sdtype = "id"
    fks = break_cycles(list(tables), fks)
    order = generation_order(list(tables), fks)
    schema = DatasetSchema(dataset=spec.name, tables=metas, foreign_keys=fks, generation_order=order,
                           unresolved_fk_candidates=unresolved)
    check_constraint_columns(spec, schema)
    return schema


def plan_generation(spec: DatasetSpec, table_names: list[str], read_table=None) -> dict[str, list[str]]:
    """Table -> parent tables, in generation order, without profiling: the shape of the asset graph.

    Declared FKs need no data; inferred ones are analysed from the sources (`read_table(name)`).
    """
    if spec.foreign_keys is not None:
        fks = []
        for fk in spec.foreign_keys:
            (ct, cc), (pt, pc) = fk.child_ref, fk.parent_ref
            for table in (ct, pt):
                if table not in table_names:
                    raise SchemaError(f"foreign key {fk.child} -> {fk.parent}: table {table!r} is not a source table")
            fks.append(ForeignKey(child_table=ct, child_column=cc, parent_table=pt, parent_column=pc))
        try:
            fks = break_cycles(table_names, fks)
        except SchemaError:
            if read_table is None:
                raise
            # a cycle may still close through a nullable FK: only the data says which columns hold nulls
            fks = break_cycles(table_names, [fk.model_copy(update={"nullable": bool(read_table(fk.child_table)[fk.child_column].isna().any())})
                                             for fk in fks])
    else:
        if read_table is None:
            raise SchemaError(f"dataset {spec.name!r} declares no foreign keys, so planning needs the source tables")
        fks = analyse(spec, {t: read_table(t) for t in table_names}).foreign_keys
    order = generation_order(table_names, fks)
    return {t: sorted({fk.parent_table for fk in fks if fk.child_table == t and not fk.is_self_reference and not fk.deferred})
            for t in order}
