"""Metadata a person reads in the Dagster UI: rounded numbers, tables instead of markdown, column schemas with tags
and lineage, report links and headlines. Builders only: the numbers come from the engine (engine.catalog)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from genesis_pipelines.engine.evaluation import catalog
from genesis_pipelines.engine.evaluation.catalog import number_text, percent, readable
from genesis_pipelines.engine.privacy.pii.findings import DECLARED_KIND

if TYPE_CHECKING:
    import pandas as pd

REPORTS_URL_ENV = "GENESIS_REPORTS_URL"  # e.g. http://127.0.0.1:8001: a static server over GENESIS_DATA_DIR


# ---------------------------------------------------------------- numbers and tables


def number(value, digits: int = 4) -> dg.MetadataValue:
    """A float as Dagster metadata with `digits` significant digits and numerical noise as 0."""
    return dg.MetadataValue.float(float(readable(float(value), digits)))


def numbers(values: Mapping[str, object], digits: int = 4) -> dict[str, dg.MetadataValue]:
    """Every int or float of a mapping (bools excluded) as readable metadata: ints stay ints."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = dg.MetadataValue.int(value) if isinstance(value, int) else number(value, digits)
    return out


def _cell(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return readable(value)
    return str(value)


def table(rows: list[dict], columns: list[tuple[str, str]] | None = None) -> dg.MetadataValue:
    """Records as a `TableMetadataValue`; `columns` gives (name, type) in order, else the first row's keys as text."""
    names = [c for c, _ in columns] if columns else list(rows[0]) if rows else ["none"]
    types = dict(columns) if columns else {}
    schema = dg.TableSchema(columns=[dg.TableColumn(name=n, type=types.get(n, "string")) for n in names])
    return dg.MetadataValue.table(records=[dg.TableRecord({n: _cell(r.get(n)) for n in names}) for r in rows],
                                  schema=schema)


# ---------------------------------------------------------------- columns


def _tags(entry: dict) -> dict[str, str]:
    tags = {"semantic_type": entry.get("semantic_type") or "unknown"}
    if entry.get("pii_kind"):
        tags["pii"] = "declared in spec" if entry["pii_kind"] == DECLARED_KIND else entry["pii_kind"]
        tags["pii_policy"] = entry.get("pii_policy") or "fake"
    if entry.get("role"):
        tags["role"] = entry["role"].split(" ->")[0].replace(", foreign key", "+foreign key")
    return tags


def column_schema(entries: list[dict], dtypes: Mapping[str, object]) -> dg.TableSchema:
    """Column name, storage type, description and tags (semantic type, PII kind and policy, key role)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(name=str(e["name"]), type=str(dtypes.get(e["name"], e.get("dtype", "unknown"))),
                       description=e.get("description"), tags=_tags(e)) for e in entries])


def column_table(entries: list[dict]) -> dg.MetadataValue:
    """The same profile as a table a person scans: semantic type, null rate, cardinality, PII per column."""
    rows = [{"column": e["name"], "semantic type": e.get("semantic_type"), "role": e.get("role") or "",
             "null rate": percent(e.get("null_rate")) if e.get("null_rate") is not None else "n/a",
             "distinct": e.get("cardinality"), "PII": e.get("pii_kind") or "", "policy": e.get("pii_policy") or ""}
            for e in entries]
    return table(rows, [("column", "string"), ("semantic type", "string"), ("role", "string"), ("null rate", "string"),
                        ("distinct", "int"), ("PII", "string"), ("policy", "string")])


def source_table_metadata(spec, table_name: str, df: pd.DataFrame) -> dict:
    """Row count, column schema with descriptions and tags, for a real table as loaded."""
    entries = catalog.source_columns(spec, table_name, df)
    return {"dagster/row_count": dg.MetadataValue.int(len(df)),
            "dagster/column_schema": column_schema(entries, dict(df.dtypes.items())),
            "columns": column_table(entries)}


def synthetic_table_metadata(model, table_name: str, head: pd.DataFrame, rows: int, *, source_key, synthetic_key,
                             exports: Iterable[str]) -> dict:
    """Row count, column schema (what each column was learned from), column lineage to the real columns and the
    generated parent keys, and the Parquet export's URI."""
    entries = catalog.synthetic_columns(model.db_schema, model.pii, table_name, head.columns)
    lineage = {}
    for column, sources in catalog.column_sources(model.db_schema, table_name, head.columns).items():
        deps = [dg.TableColumnDep(asset_key=(source_key if kind == "source" else synthetic_key)(t), column_name=c)
                for kind, t, c in sources]
        if deps:
            lineage[str(column)] = deps
    exports = list(exports)
    parquet = next((p for p in exports if str(p).endswith(".parquet")), exports[0] if exports else None)
    out = {"dagster/row_count": dg.MetadataValue.int(rows),
           "dagster/column_schema": column_schema(entries, dict(head.dtypes.items())),
           "dagster/column_lineage": dg.TableColumnLineage(deps_by_column=lineage)}
    if parquet is not None:
        out["dagster/uri"] = dg.MetadataValue.text(_uri(parquet))
    return out


def _uri(path) -> str:
    text = str(path)
    return text if "://" in text else Path(text).resolve().as_uri()


# ---------------------------------------------------------------- analysis and model


def pii_findings(findings) -> dict:
    """Findings as a table, counts by kind (a column the spec declares is `declared_in_spec`) and by policy."""
    rows = [{"column": f"{f.table}.{f.column}", "kind": "declared in spec" if f.kind == DECLARED_KIND else f.kind,
             "detected by": f.method, "confidence": readable(f.confidence, 2), "policy": f.policy} for f in findings]
    return {
        "pii_columns": len(rows),
        "by_kind": dict(Counter("declared_in_spec" if f.kind == DECLARED_KIND else f.kind for f in findings)),
        "by_policy": dict(Counter(f.policy for f in findings)),
        "findings": table(rows, [("column", "string"), ("kind", "string"), ("detected by", "string"),
                                 ("confidence", "float"), ("policy", "string")]),
    }


def schema_columns(db_schema) -> dg.MetadataValue:
    """Per column of every table: semantic type, null rate and cardinality (what the README promises)."""
    rows = []
    for t, meta in db_schema.tables.items():
        keys = set(meta.primary_key)
        fk_columns = {c for fk in db_schema.fks_of(t) for c in fk.child_columns}
        for c, m in meta.columns.items():
            role = "primary key" if c in keys else "foreign key" if c in fk_columns else ""
            rows.append({"column": f"{t}.{c}", "semantic type": m.sdtype, "role": role,
                         "null rate": percent(m.null_rate), "distinct": m.cardinality})
    return table(rows, [("column", "string"), ("semantic type", "string"), ("role", "string"),
                        ("null rate", "string"), ("distinct", "int")])


def generators(describes: Mapping[str, dict]) -> dg.MetadataValue:
    """Each table's generator summary without one real value (category names in feature names are numbered)."""
    return dg.MetadataValue.json({t: catalog.value_free(d) for t, d in describes.items()})


def model_kinds(spec) -> set[str]:
    """The model asset's kinds: python plus what trains the spec's generators (torch, scipy, sdv)."""
    methods = {spec.generator.default, *spec.generator.tables.values()}
    return {"python", *catalog.generator_families(methods)}


# ---------------------------------------------------------------- reports


def report_url(path: str | Path, data_dir: str | Path) -> str:
    """Where the HTML opens: under GENESIS_REPORTS_URL when set (a server over the data dir), else a file:// URL."""
    path = Path(path).resolve()
    base = os.environ.get(REPORTS_URL_ENV, "").strip()
    if base:
        try:
            relative = path.relative_to(Path(data_dir).resolve())
        except ValueError:
            return path.as_uri()
        return base.rstrip("/") + "/" + relative.as_posix()
    return path.as_uri()


def gate_rows(report: dict, kind: str, quality_min: float | None = None) -> list[dict]:
    """Gates as value / threshold / result rows: the quality score against quality_min, or the privacy gates."""
    if kind.startswith("quality"):
        score = report.get("overall_score")
        passed = score is not None and quality_min is not None and score >= quality_min
        return [{"gate": "quality_min", "value": number_text(score), "threshold": number_text(quality_min),
                 "rule": "at least", "result": "passed" if passed else "below"}]
    rows = []
    for name, gate in (report.get("gates") or {}).items():
        rule = "at most"
        result = "n/a" if gate.get("passed") is None else "passed" if gate["passed"] else "FAILED"
        rows.append({"gate": name, "value": number_text(gate.get("value")), "threshold": number_text(gate.get("threshold")),
                     "rule": rule, "result": result})
    for name, why in (report.get("skipped_gates") or {}).items():
        rows.append({"gate": name, "value": "n/a", "threshold": number_text((report.get("thresholds") or {}).get(name)),
                     "rule": "at most", "result": f"skipped: {why}"})
    return rows


def gates_table(rows: list[dict]) -> dg.MetadataValue:
    return table(rows, [("gate", "string"), ("value", "string"), ("rule", "string"), ("threshold", "string"),
                        ("result", "string")])


def table_rows(report: dict, kind: str) -> dg.MetadataValue:
    """One row per table: rows and scores (quality) or copies and closeness to train, gated or not (privacy)."""
    rows = []
    for name, t in (report.get("tables") or {}).items():
        if kind.startswith("quality"):
            rows.append({"table": name, "rows real": t.get("row_count_real"), "rows synthetic": t.get("row_count_synthetic"),
                         "column shapes": readable(t.get("column_shapes")), "pair trends": readable(t.get("pair_trends")),
                         "note": t.get("skipped") or ""})
            continue
        ec, dcr = t.get("exact_copies") or {}, t.get("dcr") or {}
        rows.append({"table": name, "columns compared": t.get("columns_compared"), "copies": ec.get("copies"),
                     "unique-record copies": ec.get("unique_record_copies"),
                     "in copies gate": bool(t.get("in_copy_gate", False)),
                     "share closer to train": readable(dcr.get("share_closer_to_train")),
                     "share gated": bool(dcr.get("gated", False)) if dcr.get("share_closer_to_train") is not None else False,
                     "note": ec.get("skipped") or dcr.get("skipped") or ""})
    if kind.startswith("quality"):
        columns = [("table", "string"), ("rows real", "int"), ("rows synthetic", "int"), ("column shapes", "float"),
                   ("pair trends", "float"), ("note", "string")]
    else:
        columns = [("table", "string"), ("columns compared", "int"), ("copies", "int"), ("unique-record copies", "int"),
                   ("in copies gate", "bool"), ("share closer to train", "float"), ("share gated", "bool"), ("note", "string")]
    return table(rows, columns)


def report_metadata(report: dict, kind: str, *, html_path: str, data_dir, quality_min: float | None = None,
                    headline: str, verdict: dict) -> dict:
    """The link to the HTML report (a clickable URL and the path), its verdict as one line of text, the headline
    as markdown (what passed, what to look at, top recommendations), its gates and one row per table."""
    rows = gate_rows(report, kind, quality_min)
    return {
        "report": dg.MetadataValue.url(report_url(html_path, data_dir)),
        "report_path": dg.MetadataValue.path(html_path),
        "verdict": dg.MetadataValue.text(verdict["headline"]),
        "look_at": dg.MetadataValue.text("; ".join(verdict["look"] + verdict["advice"]) or "nothing"),
        # e.g. why copies are expected in a table with one or two columns, next to `copies`
        "notes": dg.MetadataValue.text(" ".join(verdict["notes"]) or "none"),
        "headline": dg.MetadataValue.md(headline),
        "gates": gates_table(rows),
        "tables": table_rows(report, kind),
    }


def gate_check_metadata(report: dict) -> dict:
    """Privacy gate check metadata: each gate's value (a series worth plotting) and, as one text and one table,
    the thresholds, which are constants of the spec and so are not numbers to plot."""
    metadata: dict = {f"gate_{k}": bool(v) for k, v in (report.get("passed") or {}).items()}
    for name, gate in (report.get("gates") or {}).items():
        if gate.get("value") is not None:
            metadata[f"{name}_value"] = number(gate["value"])
    rows = gate_rows(report, "privacy")
    metadata["thresholds"] = dg.MetadataValue.text(
        ", ".join(f"{r['gate']} {r['rule']} {r['threshold']}" for r in rows) or "none")
    metadata["gates"] = gates_table(rows)
    metadata["skipped_gates"] = ", ".join(sorted(report.get("skipped_gates") or {})) or "none"
    return metadata
