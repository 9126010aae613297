"""Key integrity of a synthetic table: primary key unique and complete, every FK value resolves."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from genesis_pipelines.engine.schema import DatasetSchema


def key_integrity(frames: Mapping[str, pd.DataFrame], schema: DatasetSchema, table: str) -> dict:
    """Counts only: duplicate and null keys, and orphan FK values per relationship."""
    df = frames[table]
    pk = schema.tables[table].primary_key
    metadata: dict[str, float | int] = {"rows": len(df)}
    passed = True
    if pk:
        duplicates = int(df.duplicated(subset=pk).sum())
        nulls = int(df[pk].isna().any(axis=1).sum())
        metadata.update(duplicate_primary_keys=duplicates, null_primary_keys=nulls)
        passed &= duplicates == 0 and nulls == 0
    for fk in schema.fks_of(table):
        parent = frames.get(fk.parent_table)
        values = df[fk.child_column].dropna()
        if parent is None:
            orphans = len(values)
        else:
            orphans = int((~values.isin(set(parent[fk.parent_column].dropna().tolist()))).sum())
        name = f"{fk.child_column}->{fk.parent_table}"
        metadata[f"orphans[{name}]"] = orphans
        metadata[f"integrity_pct[{name}]"] = round(100.0 * (1 - orphans / len(values)), 4) if len(values) else 100.0
        if not fk.nullable and df[fk.child_column].isna().any():
            metadata[f"nulls_in_required_fk[{name}]"] = int(df[fk.child_column].isna().sum())
            passed = False
        passed &= orphans == 0
    return {"passed": bool(passed), "metadata": metadata}
