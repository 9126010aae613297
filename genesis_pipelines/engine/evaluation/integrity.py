"""Key integrity of a synthetic table: primary key unique and complete, every FK tuple resolves."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from genesis_pipelines.engine.core.schema import DatasetSchema, child_keys, parent_keys


def checked_tables(schema: DatasetSchema, table: str) -> set[str]:
    """The synthetic tables `key_integrity(..., table)` reads: the table, its parents, and the children whose
    deferred keys into it were filled when it was generated."""
    return {table} | {fk.parent_table for fk in schema.fks_of(table) if not fk.deferred} | {
        fk.child_table for fk in schema.foreign_keys if fk.deferred and fk.parent_table == table}


def key_integrity(frames: Mapping[str, pd.DataFrame], schema: DatasetSchema, table: str) -> dict:
    """Counts only: duplicate and null keys, and orphan FK values (whole column tuples) per relationship.

    A deferred FK (one that closes a cycle) is empty until its parent table is generated, so it is checked with
    the parent: `table`'s own deferred FKs are left out, the deferred FKs into `table` are checked on their child."""
    df = frames[table]
    pk = schema.tables[table].primary_key
    metadata: dict[str, float | int] = {"rows": len(df)}
    passed = True
    if pk:
        duplicates = int(df.duplicated(subset=pk).sum())
        nulls = int(df[pk].isna().any(axis=1).sum())
        metadata.update(duplicate_primary_keys=duplicates, null_primary_keys=nulls)
        passed &= duplicates == 0 and nulls == 0
    own = [fk for fk in schema.fks_of(table) if not fk.deferred]
    filled_here = [fk for fk in schema.foreign_keys if fk.deferred and fk.parent_table == table]
    for fk in own + filled_here:
        df = frames[fk.child_table]
        parent = frames.get(fk.parent_table)
        name = f"{fk.child_column}->{fk.parent_table}" if fk.child_table == table else \
            f"{fk.child_table}.{fk.child_column}->{fk.parent_table}"
        missing = [c for c in fk.child_columns if c not in df.columns]
        missing += [c for c in fk.parent_columns if parent is not None and c not in parent.columns]
        if missing:
            metadata[f"missing_key_columns[{name}]"] = len(missing)
            passed = False
            continue
        keys = child_keys(fk, df)
        values = keys.dropna()
        if parent is None:
            orphans = len(values)
        else:
            orphans = int((~values.isin(set(parent_keys(fk, parent).dropna()))).sum())
        metadata[f"orphans[{name}]"] = orphans
        metadata[f"integrity_pct[{name}]"] = round(100.0 * (1 - orphans / len(values)), 4) if len(values) else 100.0
        # a partly filled tuple matches no parent: it counts as a null key, which a required FK does not allow
        nulls = int(df[fk.child_columns].isna().any(axis=1).sum())
        if not fk.nullable and nulls:
            metadata[f"nulls_in_required_fk[{name}]"] = nulls
            passed = False
        passed &= orphans == 0
    return {"passed": bool(passed), "metadata": metadata}
