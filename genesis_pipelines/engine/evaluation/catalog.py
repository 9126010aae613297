"""What a person reads about a dataset: numbers rounded for reading, column profiles, value-free model summaries.

Plain data in, plain data out (no Dagster here): the Dagster layer turns these into metadata, the report renderer
into HTML. Everything is an aggregate: a column's type, null rate, distinct count, PII kind and policy, never one of
its values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta
from genesis_pipelines.engine.core.spec import DatasetSpec, split_ref
from genesis_pipelines.engine.privacy.pii.findings import DECLARED_KIND, PiiFinding

if TYPE_CHECKING:
    import pandas as pd

NOISE = 1e-9  # below this a score, distance or PSI is numerical noise: shown as 0


def readable(value, digits: int = 4):
    """A float rounded to `digits` significant digits, numerical noise as 0; ints, bools, None and text unchanged."""
    if isinstance(value, bool) or value is None or isinstance(value, int) or not isinstance(value, float):
        return value
    if not math.isfinite(value):
        return value
    if abs(value) < NOISE:
        return 0.0
    return float(f"{value:.{digits}g}")


def number_text(value, digits: int = 4) -> str:
    """`readable` as text: 0.1496, 81.65, 2335, "n/a" for None; whole floats without a trailing .0."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    value = readable(value, digits)
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def percent(rate, digits: int = 3) -> str:
    """A share 0-1 as a percentage with about `digits` significant digits: 0.1496 -> "15.0%", 0.0007 -> "0.07%"."""
    if rate is None:
        return "n/a"
    pct = float(rate) * 100
    if abs(pct) < NOISE * 100:
        return "0%"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(pct))))) if abs(pct) < 100 else 0
    return f"{pct:.{decimals}f}%"


# ---------------------------------------------------------------- model summaries without values

# generator feature names built from a category (`__parent.GenreId.Name=Rock`, a one-hot of a parent's column):
# everything after the first "=" is a real value
_FEATURE_VALUE = re.compile(r"^(?P<feature>[^=]+)=(?P<value>.+)$", re.S)


def value_free(describe: Mapping) -> dict:
    """A generator's `describe()` with every `feature=category` name replaced by `feature=#n`.

    Numbering follows the order of first appearance per feature, the same in keys and values, so the structure
    (which indicator columns exist and how they are tokenised) stays readable while no category is shown.
    """
    numbering: dict[str, dict[str, int]] = {}

    def name(text: str) -> str:
        match = _FEATURE_VALUE.match(text)
        if not match:
            return text
        per_feature = numbering.setdefault(match["feature"], {})
        index = per_feature.setdefault(match["value"], len(per_feature) + 1)
        return f"{match['feature']}=#{index}"

    def walk(value):
        if isinstance(value, Mapping):
            return {name(str(k)): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return name(value)
        return readable(value) if isinstance(value, float) else value

    return walk(describe)


# ---------------------------------------------------------------- column profiles

def _roles(schema_or_none: DatasetSchema | None, meta: TableMeta, table: str, spec: DatasetSpec | None) -> dict[str, str]:
    roles = {c: "primary key" for c in meta.primary_key}
    if schema_or_none is not None:
        fks = [(fk.child_columns, f"{fk.parent_table}.{'+'.join(fk.parent_columns)}") for fk in schema_or_none.fks_of(table)]
    else:  # before the schema asset: the spec's declared FKs
        fks = []
        for fk in (spec.foreign_keys or []) if spec is not None else []:
            if fk.child_table == table:
                fks.append(([c for _, c in fk.child_refs], f"{fk.parent_table}.{'+'.join(c for _, c in fk.parent_refs)}"))
    for columns, parent in fks:
        for column in columns:
            roles[column] = (roles[column] + ", " if column in roles else "") + f"foreign key -> {parent}"
    return roles


def _description(entry: dict, *, synthetic: bool, table: str) -> str:
    parts = []
    if synthetic:
        parts.append(f"synthetic, learned from {table}.{entry['name']}")
    parts.append(entry["semantic_type"])
    if entry.get("role"):
        parts.append(entry["role"])
    if entry.get("null_rate") is not None:
        parts.append(f"{percent(entry['null_rate'])} null" + (" (real)" if synthetic else ""))
    if entry.get("cardinality") is not None:
        parts.append(f"{entry['cardinality']} distinct" + (" (real)" if synthetic else ""))
    if entry.get("pii_kind"):
        policy = entry.get("pii_policy") or "fake"
        meaning = {"fake": "values are generated fakes", "drop": "column dropped", "hash": "values are keyed hashes",
                   "mask": "values are masked", "keep": "values kept as they are"}.get(policy, policy)
        kind = "set in the spec" if entry["pii_kind"] == DECLARED_KIND else entry["pii_kind"]
        parts.append(f"PII: {kind}, policy {policy}" + (f" ({meaning})" if synthetic else ""))
    return "; ".join(parts)


def _entry(meta: TableMeta, column: str, roles: dict[str, str], finding) -> dict:
    c = meta.columns[column]
    return {
        "name": column, "dtype": c.dtype, "semantic_type": c.sdtype, "role": roles.get(column, ""),
        "null_rate": readable(c.null_rate), "cardinality": c.cardinality,
        "pii_kind": finding.kind if finding is not None else None,
        "pii_policy": finding.policy if finding is not None else None,
    }


def source_columns(spec: DatasetSpec, table: str, df: pd.DataFrame) -> list[dict]:
    """Per column of a real table, as loaded: semantic type, role, null rate, distinct count, PII found by the
    column's header and values (the scan's first pass; the `pii_scan` asset adds what needs the other tables).

    A table the schema step will reject (a declared key that is missing, null or repeated) is described by its
    storage types only, so loading it still works and the schema step reports the error where it always has."""
    from genesis_pipelines.engine.analysis.schema_inference import profile_table
    from genesis_pipelines.engine.privacy.pii.detection import detect_column

    try:
        meta = profile_table(table, df, spec)
    except GenesisError as exc:
        return [{"name": str(c), "dtype": str(t), "semantic_type": "unknown", "description": f"not profiled: {exc}"}
                for c, t in df.dtypes.items()]
    roles = _roles(None, meta, table, spec)
    declared = {split_ref(ref)[1]: policy for ref, policy in spec.pii.items() if split_ref(ref)[0] == table}
    out = []
    for column in df.columns:
        finding = None
        if column not in roles:
            finding = detect_column(table, column, df[column], meta.columns[column].sdtype)
            if column in declared:
                finding = (finding.model_copy(update={"policy": declared[column]}) if finding is not None else
                           PiiFinding(table=table, column=column, kind=DECLARED_KIND, method="spec",
                                      confidence=1.0, policy=declared[column], policy_from_spec=True))
        entry = _entry(meta, column, roles, finding)
        if column in roles:
            entry["semantic_type"] = "id"
        entry["description"] = _description(entry, synthetic=False, table=table)
        out.append(entry)
    return out


def synthetic_columns(schema: DatasetSchema, findings: Iterable, table: str, columns: Iterable[str]) -> list[dict]:
    """Per column of a synthetic table: what the model learned it from (the real column's profile and PII policy)."""
    meta = schema.tables[table]
    roles = _roles(schema, meta, table, None)
    by_column = {f.column: f for f in findings if f.table == table}
    out = []
    for column in columns:
        if column not in meta.columns:
            out.append({"name": column, "semantic_type": "unknown", "description": "not in the real table"})
            continue
        entry = _entry(meta, column, roles, by_column.get(column))
        entry["description"] = _description(entry, synthetic=True, table=table)
        out.append(entry)
    return out


def column_sources(schema: DatasetSchema, table: str, columns: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Where each synthetic column comes from, as (kind, table, column) pairs per column: the real column it was
    learned from ("source", table, column), and for a foreign key the generated parent key it takes its values
    from ("synthetic", parent table, parent column)."""
    meta = schema.tables[table]
    parents: dict[str, list[tuple[str, str, str]]] = {}
    for fk in schema.fks_of(table):
        for child, parent in zip(fk.child_columns, fk.parent_columns):
            parents.setdefault(child, []).append(("synthetic", fk.parent_table, parent))
    return {c: ([("source", table, c)] if c in meta.columns else []) + parents.get(c, []) for c in columns}


def generator_families(methods: Iterable[str]) -> set[str]:
    """What trains, as Dagster kinds: torch for the neural generators, scipy for the copulas."""
    torch_methods = {"autoregressive", "dp_autoregressive", "ctgan", "tvae", "dp_ctgan", "dp_tvae"}
    kinds = set()
    for method in methods:
        if method in torch_methods:
            kinds.add("torch")
        elif method.startswith("sdv_"):
            kinds.add("sdv")
        elif method == "auto":  # picks among copula and the networks at fit time
            kinds.update({"scipy", "torch"})
        else:
            kinds.add("scipy")
    return kinds
