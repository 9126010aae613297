"""The foreign-key graph: generation order, cycles and which FK of a cycle is deferred, and the plan of the asset
graph. Pure graph work on declared or inferred FKs (no pandas), so the code location plans a dataset from its spec
without loading the data stack."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping

from genesis_pipelines.engine.core.errors import SchemaError
from genesis_pipelines.engine.core.schema import ForeignKey
from genesis_pipelines.engine.core.spec import DatasetSpec


def generation_order(table_names: list[str], fks: list[ForeignKey]) -> list[str]:
    """Parents before children, with self references allowed and the FKs `break_cycles` deferred left out."""
    sorter = graphlib.TopologicalSorter({t: set() for t in sorted(table_names)})
    for fk in fks:
        if not fk.is_self_reference and not fk.deferred:
            sorter.add(fk.child_table, fk.parent_table)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise SchemaError(f"foreign keys form a cycle: {' -> '.join(cycle)}; run break_cycles first") from None


def break_cycles(table_names: list[str], fks: list[ForeignKey],
                 primary_keys: Mapping[str, list[str]] | None = None) -> list[ForeignKey]:
    """Mark one FK of each cycle deferred, so the rest orders: its child rows are generated with the key empty
    and the key is assigned once the parent table exists (relational.keys.fill_deferred_keys). Preferred: a nullable
    FK (its real data already lives with empty keys), and never one inside its table's primary key (rows with an
    empty key would collide); among equals the cycle's last FK, a choice that needs no data, so the asset graph
    planned from the spec and the model agree."""
    fks = [fk.model_copy() for fk in fks]
    primary_keys = primary_keys or {}
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
            on_cycle = [fk for fk in fks if not fk.deferred and not fk.is_self_reference
                        and (fk.child_table, fk.parent_table) in edges]
            outside_pk = [fk for fk in on_cycle if not set(fk.child_columns) & set(primary_keys.get(fk.child_table, []))]
            if not outside_pk:
                raise SchemaError(f"foreign keys form a cycle: {' -> '.join(cycle)} "
                                  f"({'; '.join(fk.label for fk in on_cycle)}), each inside its table's primary key; "
                                  "remove one FK") from None
            nullable = [fk for fk in outside_pk if fk.nullable]
            (nullable or outside_pk)[-1].deferred = True
    return fks


def on_cycles(fks: list[ForeignKey]) -> set[int]:
    """Indices of the FKs that lie on a cycle of tables (their parent table reaches their child table)."""
    edges: dict[str, set[str]] = {}
    for fk in fks:
        if not fk.is_self_reference:
            edges.setdefault(fk.child_table, set()).add(fk.parent_table)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            table = stack.pop()
            if table == goal:
                return True
            if table not in seen:
                seen.add(table)
                stack.extend(edges.get(table, ()))
        return False

    return {i for i, fk in enumerate(fks) if not fk.is_self_reference and reaches(fk.parent_table, fk.child_table)}


def plan_generation(spec: DatasetSpec, table_names: list[str], read_table=None,
                    inferred_fks: list[ForeignKey] | None = None) -> dict[str, list[str]]:
    """Table -> parent tables, in generation order, without profiling: the shape of the asset graph.

    Declared FKs need no data; when `read_table(name)` is given and the FKs form a cycle, the cycle's child tables
    are read for which keys hold nulls, so the FK deferred is the one `analyse` defers. A spec that declares no FKs
    is planned from `inferred_fks`, the FKs `schema_inference.analyse` found in the sources.
    """
    if spec.foreign_keys is not None:
        fks = []
        for fk in spec.foreign_keys:
            for table in (fk.child_table, fk.parent_table):
                if table not in table_names:
                    raise SchemaError(f"foreign key {fk.label}: table {table!r} is not a source table")
            fks.append(ForeignKey(child_table=fk.child_table, child_columns=fk.child_columns,
                                  parent_table=fk.parent_table, parent_columns=fk.parent_columns))
        cyclic = on_cycles(fks)
        if read_table is not None and cyclic:
            fks = [fk.model_copy(update={"nullable": bool(read_table(fk.child_table)[fk.child_columns].isna().any().any())})
                   if index in cyclic else fk for index, fk in enumerate(fks)]
        fks = break_cycles(table_names, fks, {t: spec.tables[t].primary_key_columns for t in spec.tables})
    elif inferred_fks is not None:
        fks = inferred_fks
    else:
        raise SchemaError(f"dataset {spec.name!r} declares no foreign keys, so planning needs the source tables")
    order = generation_order(table_names, fks)
    return {t: sorted({fk.parent_table for fk in fks if fk.child_table == t and not fk.is_self_reference and not fk.deferred})
            for t in order}
