"""Schema inference: semantic types, primary keys and foreign-key inference (the FK graph itself: fk_graph)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.fk_graph import break_cycles, generation_order
from genesis_pipelines.engine.core.constraint_spec import check_columns as check_constraint_columns
from genesis_pipelines.engine.core.errors import SchemaError
from genesis_pipelines.engine.core.schema import (
    ColumnMeta,
    DatasetSchema,
    ForeignKey,
    TableMeta,
    child_keys,
    comparable_values,
    key_values,
    parent_keys,
)
from genesis_pipelines.engine.core.spec import DatasetSpec, split_ref
from genesis_pipelines.engine.sources.io import date_layout, majority_kind, parse_dates, parse_numbers

# ---------------------------------------------------------------- semantic types

_ID_NAME = re.compile(r"(^id$|_id$|Id$|ID$|^id_)")


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_id_like_name(name: str) -> bool:
    return bool(_ID_NAME.search(name))


def _datetime_format(values: pd.Series) -> str:
    parsed = values.dropna()
    if not pd.api.types.is_datetime64_any_dtype(parsed):
        parsed = parse_dates(parsed)[0].dropna()
    if parsed.empty:
        return "datetime"
    has_time = (parsed.dt.hour != 0) | (parsed.dt.minute != 0) | (parsed.dt.second != 0)
    return "datetime" if bool(has_time.any()) else "date"


_RUN = re.compile(r"[A-Z]+|[a-z]+|[0-9]+|\s+|.")
PROSE_MIN_WORDS = 8  # values this long on average are sentences whatever their casing
PROSE_LOWER_SHARE = 0.35  # prose: most words after the first start lowercase; titles and names are capitalised
CODE_MAX_TOKENS = 3


def _shape(value: str) -> str:
    """Character-class shape with run lengths: VCH-00001-alpha -> A3-95-a5 (letters A/a, digits 9, others as is)."""
    out = []
    for run in _RUN.findall(value):
        c = run[0]
        kind = "A" if "A" <= c <= "Z" else "a" if "a" <= c <= "z" else "9" if c.isdigit() else None
        out.append(f"{kind}{len(run)}" if kind else ("_" if run.isspace() else run))
    return "".join(out)


def string_kind(strings: pd.Series) -> str:
    """Prose (`text`), identifiers and codes (`code`) or entity names (`name`) among mostly-distinct strings.

    Prose: many words, or several words mostly lowercase after the first (sentences). Codes: at most a few tokens,
    mostly holding digits, or upper-case strings of a regular shape (one shape covers most values: JFK, LGA).
    Everything else (titles, product, city and company names) is a name.
    """
    sample = strings.iloc[:5000]
    words = sample.str.split()
    counts = words.str.len()
    later = pd.Series([w for ws in words for w in ws[1:] if w[:1].isalpha()], dtype=object)
    lower_share = float(later.str.match(r"^[a-z]").mean()) if len(later) else 0.0
    mean_words = float(counts.mean())
    if mean_words >= PROSE_MIN_WORDS or (mean_words >= 5 and lower_share >= PROSE_LOWER_SHARE) \
            or (mean_words >= 3 and lower_share >= 2 * PROSE_LOWER_SHARE):
        return "text"
    if counts.max() <= CODE_MAX_TOKENS and mean_words <= 2:
        digits = float(sample.str.contains(r"\d").mean())
        shapes = sample.map(_shape).value_counts(normalize=True)
        regular = float(shapes.iloc[0]) >= 0.5
        if digits >= 0.5 or (regular and not sample.str.contains(r"[a-z]").any()):
            return "code"
    return "name"


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
        finite = values[np.isfinite(values)]
        if np.all(np.isin(values, (0.0, 1.0))) and len(np.unique(values)) == 2 and series.name and not is_id_like_name(str(series.name)):
            return "boolean" if pd.api.types.is_bool_dtype(series) else "categorical"
        # floats beyond 2**53 are all whole: only smaller ones say the column counts things
        whole = len(finite) == len(values) and np.all(np.mod(values, 1) == 0) and np.abs(values).max() < 2.0**53
        if pd.api.types.is_integer_dtype(series) or whole:
            return "integer"
        return "numeric"
    if non_null.empty:
        return "categorical"
    strings = non_null.astype(str)
    kind, _ = majority_kind(strings)
    if kind is not None:
        return kind
    n_unique = strings.nunique()
    unique_ratio = n_unique / len(strings)
    mean_words = strings.str.count(" ").mean() + 1
    # Many distinct values, or long multi-word values: prose, codes or names rather than categories.
    if (n_unique > 20 and unique_ratio > 0.5) or (mean_words > 6 and unique_ratio > 0.2):
        return string_kind(strings)
    return "categorical"


def column_exceptions(series: pd.Series, sdtype: str) -> tuple[int, int]:
    """How many values fall outside a typed column's type, and how many of them are impossible dates."""
    values = series.dropna()
    if sdtype in ("numeric", "integer") and pd.api.types.is_numeric_dtype(values):
        return int((~np.isfinite(values.to_numpy(dtype="float64"))).sum()), 0
    if sdtype in ("numeric", "integer") and not pd.api.types.is_bool_dtype(values):
        return int(parse_numbers(values).isna().sum()), 0
    if sdtype == "datetime" and not pd.api.types.is_datetime64_any_dtype(values):
        parsed, _, impossible = parse_dates(values)
        return int(parsed.isna().sum()), impossible
    return 0, 0


def profile_table(name: str, df: pd.DataFrame, spec: DatasetSpec, entity_keys: frozenset[str] = frozenset(),
                  shared_columns: frozenset[str] = frozenset()) -> TableMeta:
    declared = spec.tables.get(name)
    overrides = {split_ref(ref)[1]: t for ref, t in spec.column_types.items() if split_ref(ref)[0] == name}
    for column in overrides:
        if column not in df.columns:
            raise SchemaError(f"column_types names column {name}.{column}, which table {name!r} does not have")
    columns: dict[str, ColumnMeta] = {}
    for column in df.columns:
        series = df[column]
        sdtype = overrides.get(column) or infer_sdtype(series)
        exceptions, impossible = column_exceptions(series, sdtype)
        columns[column] = ColumnMeta(
            name=column,
            sdtype=sdtype,
            dtype=str(series.dtype),
            null_rate=float(series.isna().mean()) if len(series) else 0.0,  # an empty table has no nulls
            cardinality=int(series.nunique(dropna=True)),
            datetime_format=_datetime_format(series) if sdtype == "datetime" else None,
            text_layout=date_layout(series) if sdtype == "datetime" and not pd.api.types.is_datetime64_any_dtype(series) else None,
            exceptions=exceptions,
            impossible_dates=impossible,
        )
    if declared and declared.primary_key_columns:
        pk, inferred, evidence = declared.primary_key_columns, False, "declared"
        for column in pk:
            if column not in df.columns:
                raise SchemaError(f"primary key of table {name!r} names column {column!r}, which the table does not have")
        if df[pk].isna().any().any():
            bad = [c for c in pk if df[c].isna().any()]
            raise SchemaError(f"primary key {name}.{'/'.join(bad)} has null values")
        if df.duplicated(subset=pk).any():
            raise SchemaError(f"primary key {name}.{'+'.join(pk)} is not unique ({int(df.duplicated(subset=pk).sum())} duplicate rows)")
    else:
        (pk, evidence), inferred = infer_primary_key(name, df, entity_keys, shared_columns), True
    for column in pk:
        columns[column].sdtype = "id"
    return TableMeta(name=name, row_count=len(df), primary_key=pk, primary_key_inferred=inferred,
                     primary_key_evidence=evidence if pk else "no unique key found", columns=columns)


MAX_COMPOSITE_KEY = 3  # leading columns tried together as a primary key


def entity_key_names(table_names) -> frozenset[str]:
    """Normalised names of the key each table is named for (`film` -> `filmid`): columns so named in another
    table point at that table."""
    return frozenset(_normalise(t) + "id" for t in table_names)


def _key_like(series: pd.Series) -> bool:
    """Integers or short codes without spaces: what a key column holds (not measurements, dates or prose)."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_integer_dtype(series):
        return True
    if pd.api.types.is_float_dtype(series):
        values = series.dropna()
        return bool(len(values)) and bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        text = series.dropna().astype(str)
        return bool(len(text)) and not text.str.contains(r"\s").any() and text.str.len().max() <= 24
    return False


def infer_primary_key(name: str, df: pd.DataFrame, entity_keys: frozenset[str] = frozenset(),
                      shared_columns: frozenset[str] = frozenset()) -> tuple[list[str], str]:
    """A unique, non-null key: the column named for the table, a junction's id columns that each name another
    table (`entity_keys`), another unique id-like column, a unique leading code column, a pair of id columns,
    else the shortest unique run of leading key-like columns that other tables also hold (`shared_columns`,
    normalised names: bakers: series + baker; a lone table's age + workclass is no key); never a timestamp,
    which the relational layer would have to regenerate as a key (weather per origin and hour stays keyless)."""
    def unique(cols: list[str]) -> bool:
        return not df[cols].isna().any().any() and not df.duplicated(subset=cols).any()

    own = [c for c in df.columns if _normalise(c) in ("id", _normalise(name) + "id")]
    for column in own:
        if unique([column]):
            return [column], "unique, not null, named for the table"
    pointers = [c for c in df.columns if _normalise(c) in entity_keys and _normalise(c) != _normalise(name) + "id"]
    if len(pointers) >= 2 and unique(pointers):
        return pointers, "unique together, each named for another table's key (a junction)"
    candidates = [c for c in df.columns if is_id_like_name(c) and c not in own]
    for column in candidates:
        if unique([column]):
            return [column], "unique, not null, id-like name"
    first = df.columns[0]
    first_series = df[first]
    is_code = pd.api.types.is_string_dtype(first_series) and not first_series.astype(str).str.contains(r"\s").any() \
        and first_series.astype(str).str.len().max() <= 24
    if unique([first]) and (pd.api.types.is_integer_dtype(first_series) or is_code):
        return [first], "unique, not null leading code column"
    id_columns = [c for c in df.columns if is_id_like_name(c)]
    if len(id_columns) == 2 and unique(id_columns):
        return id_columns, "the two id-like columns, unique together"
    leading = []
    for column in df.columns[:MAX_COMPOSITE_KEY]:
        if not _key_like(df[column]) or _normalise(column) not in shared_columns:
            break
        leading.append(column)
        if len(leading) >= 2 and unique(leading):
            return leading, "leading key columns, also held by other tables, unique together"
    return [], ""


# ---------------------------------------------------------------- foreign keys


def declared_foreign_keys(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame], metas: Mapping[str, TableMeta]) -> list[ForeignKey]:
    """The spec's FKs, checked against the data: columns exist, the parent tuple is a unique non-null key, every
    non-null child tuple has its parent (counts only in errors)."""
    fks = []
    for fk_spec in spec.foreign_keys or []:
        ct, pt = fk_spec.child_table, fk_spec.parent_table
        for table, columns, role in ((ct, fk_spec.child_columns, "child"), (pt, fk_spec.parent_columns, "parent")):
            if table not in tables:
                raise SchemaError(f"foreign key {fk_spec.label}: {role} table {table!r} is not a source table")
            for column in columns:
                if column not in tables[table].columns:
                    raise SchemaError(f"foreign key {fk_spec.label}: {role} column {table}.{column} does not exist")
        fk = ForeignKey(child_table=ct, child_columns=fk_spec.child_columns, parent_table=pt,
                        parent_columns=fk_spec.parent_columns)
        parent = tables[pt][fk.parent_columns]
        if parent.isna().any().any() or parent.duplicated().any():
            raise SchemaError(f"foreign key {fk.label}: parent columns {pt}.({', '.join(fk.parent_columns)}) are not a "
                              f"unique non-null key ({int(parent.duplicated().sum())} duplicate, "
                              f"{int(parent.isna().any(axis=1).sum())} null rows)")
        child_values = child_keys(fk, tables[ct]).dropna()
        orphans = int((~child_values.isin(set(parent_keys(fk, tables[pt])))).sum())
        if orphans:
            raise SchemaError(
                f"foreign key {fk.label}: {orphans} of {len(child_values)} values of "
                f"{ct}.({', '.join(fk.child_columns)}) have no matching parent row (broken key)"
            )
        fk.nullable = bool(tables[ct][fk.child_columns].isna().any().any())
        fks.append(fk)
    return fks


def _contained(child: pd.Series, parent: pd.Series) -> pd.Series:
    return comparable_values(child).isin(set(comparable_values(parent.dropna())))


MAX_HIERARCHY_DEPTH = 64  # a self reference deeper than this is taken for a coincidence of values


def _is_forest(df: pd.DataFrame, key: str, column: str) -> bool:
    """Following `column` to the row whose `key` it names ends at a null (a root) from every row: a hierarchy."""
    position = pd.Index(comparable_values(df[key])).get_indexer(comparable_values(df[column]))
    position[df[column].isna().to_numpy()] = -1
    if (position == np.arange(len(df))).any():
        return False
    current = position.copy()
    for _ in range(MAX_HIERARCHY_DEPTH):
        live = current >= 0
        if not live.any():
            return True
        current[live] = position[current[live]]
    return False


def _names_table(column: str, table: str) -> bool:
    """The table is named for the column's entity (episodes for episode, bakers for baker)."""
    return _normalise(column) in _normalise(table)


def _composite_foreign_keys(tables: Mapping[str, pd.DataFrame], metas: Mapping[str, TableMeta]) -> tuple[list[ForeignKey], list[str]]:
    """A child holding every column of a parent's composite key (same names), each tuple found among the parent's,
    with the parent named for one of those columns (results_raw.(series, episode) -> episodes); a table that only
    shares the key (ratings, keyed by episode too) is a sibling, not the parent."""
    fks: list[ForeignKey] = []
    unresolved: list[str] = []
    parents = {t: m.primary_key for t, m in metas.items() if len(m.primary_key) >= 2}
    for child, df in tables.items():
        by_name = {_normalise(c): c for c in df.columns}
        found: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}
        for parent, key in parents.items():
            if parent == child or not all(_normalise(c) in by_name for c in key):
                continue
            columns = [by_name[_normalise(c)] for c in key]
            if not any(_names_table(c, parent) for c in key):
                continue
            values = key_values(df, columns).dropna()
            if values.empty or not values.isin(set(key_values(tables[parent], key))).all():
                continue
            found.setdefault(tuple(columns), []).append((parent, key))
        for columns, candidates in found.items():
            if len(candidates) > 1:
                unresolved.append(f"{child}.({', '.join(columns)}): ambiguous between "
                                  + ", ".join(sorted(p for p, _ in candidates)))
                continue
            parent, key = candidates[0]
            fks.append(ForeignKey(child_table=child, child_columns=list(columns), parent_table=parent, parent_columns=key,
                                  nullable=bool(df[list(columns)].isna().any().any()), inferred=True,
                                  evidence=f"columns named as the key of {parent}, which is named for "
                                           f"{next(c for c in key if _names_table(c, parent))}; every tuple found there"))
    return fks, unresolved


def infer_foreign_keys(tables: Mapping[str, pd.DataFrame], metas: Mapping[str, TableMeta]) -> tuple[list[ForeignKey], list[str]]:
    """FKs from names, types and value containment; ambiguous candidates are reported, not guessed.

    A column is a candidate for a parent's one-column key when every value is found in it (a set lookup); the
    name decides: the parent key's own name (the table named for it wins a tie: film_id -> film, not film_text),
    a name that refers to the parent table (manager_staff_id -> staff), else distinct codes (dest -> airports.faa).
    A column pointing into its own table's key is a self reference when it forms a hierarchy (ReportsTo).
    Composite keys: see _composite_foreign_keys; a column inside one is not also given a one-column FK.
    """
    composite, unresolved = _composite_foreign_keys(tables, metas)
    in_composite = {(fk.child_table, c) for fk in composite for c in fk.child_columns}
    parents = {t: m.primary_key[0] for t, m in metas.items() if len(m.primary_key) == 1}
    parent_sets = {t: set(comparable_values(tables[t][k].dropna())) for t, k in parents.items()}
    fks: list[ForeignKey] = []
    for child, df in tables.items():
        child_pk = metas[child].primary_key
        for column in df.columns:
            if child_pk == [column] or (child, column) in in_composite:
                continue
            values = df[column].dropna()
            sdtype = metas[child].columns[column].sdtype
            if sdtype in ("datetime", "numeric", "boolean") and not values.empty:
                continue
            scored = []
            for parent, key in parents.items():
                parent_values = tables[parent][key]
                if not values.empty and pd.api.types.is_numeric_dtype(values) != pd.api.types.is_numeric_dtype(parent_values):
                    continue
                if not values.empty and not bool(comparable_values(values).isin(parent_sets[parent]).all()):
                    continue
                norm_col, norm_key, norm_parent = _normalise(column), _normalise(key), _normalise(parent)
                if norm_col == norm_key and (parent != child or column != key):
                    score, why = 3 + 0.5 * (norm_key == norm_parent + "id"), "same name as the parent key"
                elif norm_col in (norm_parent + norm_key, norm_parent + "id") or (norm_parent in norm_col and is_id_like_name(column)):
                    score, why = 2, "name refers to the parent table"
                elif values.empty:
                    continue
                elif parent == child and not is_id_like_name(column) and pd.api.types.is_numeric_dtype(values) == \
                        pd.api.types.is_numeric_dtype(parent_values) and df[column].isna().any() and _is_forest(df, key, column):
                    score, why = 1.5, "values are keys of the same table, nulls at the roots, no cycle (a hierarchy)"
                elif sdtype != "text" and pd.api.types.is_string_dtype(values) and values.nunique() >= 2 and not is_id_like_name(column):
                    score, why = 1, "values contained in the parent key"
                else:
                    continue
                if values.empty:
                    why += " (column empty: name only)"
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
    return fks + composite, unresolved


def analyse(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame]) -> DatasetSchema:
    """Profile every table, resolve keys and FKs, and order the tables for generation."""
    entity_keys = entity_key_names(tables)
    names = pd.Series([_normalise(c) for df in tables.values() for c in dict.fromkeys(df.columns)], dtype=object)
    shared = frozenset(names[names.duplicated()])
    metas = {name: profile_table(name, df, spec, entity_keys, shared) for name, df in tables.items()}
    if spec.foreign_keys is not None:
        fks, unresolved = declared_foreign_keys(spec, tables, metas), []
    else:
        fks, unresolved = infer_foreign_keys(tables, metas)
    for fk in fks:
        for column in fk.child_columns:
            metas[fk.child_table].columns[column].sdtype = "id"
    fks = break_cycles(list(tables), fks, {t: m.primary_key for t, m in metas.items()})
    order = generation_order(list(tables), fks)
    schema = DatasetSchema(dataset=spec.name, tables=metas, foreign_keys=fks, generation_order=order,
                           unresolved_fk_candidates=unresolved)
    check_constraint_columns(spec.constraints, schema)
    return schema
