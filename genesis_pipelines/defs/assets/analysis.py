"""`<dataset>/schema` and `<dataset>/pii_scan`: what the tables are, and which columns identify people."""


from collections import Counter

import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, markdown_table, source_key, stage_tags
from genesis_pipelines.defs.lineage import CODE_VERSION
from genesis_pipelines.defs.metadata import pii_findings, schema_columns
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.evaluation.catalog import percent


def build_analysis_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:

    @dg.asset(
        key=dataset_key(spec.name, "schema"),
        tags=stage_tags("analysis"),
        group_name=spec.name,
        deps=[source_key(spec.name, t) for t in tables],
        kinds={"python"},
        # reads open the warehouse read-only (waiting out a writer's commit): no pool, other reads run beside it
        code_version=CODE_VERSION,
        description="Semantic types, keys, the foreign-key graph (declared or inferred) and the generation order.",
    )
    def schema(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        layout = storage.layout(spec.name)
        analysis = pipeline.analyse(spec, layout, pipeline.read_sources(spec, layout, warehouse.read_connection()))
        # the data's own rules (aggregates: kind, columns, share), before PII policies; the model keeps them
        result, found = analysis.schema, [r.describe() for r in analysis.rules]
        fk_rows = [[fk.label, "inferred" if fk.inferred else "declared", fk.evidence, fk.nullable] for fk in result.foreign_keys]
        type_rows = [[t, m.row_count, "+".join(m.primary_key) + (f" (inferred: {m.primary_key_evidence})" if m.primary_key_inferred else "")
                      or "-", ", ".join(f"{c}:{v.sdtype}" for c, v in m.columns.items())]
                     for t, m in result.tables.items()]
        exception_rows = [[f"{t}.{c}", v.sdtype, v.exceptions, v.impossible_dates] for t, m in result.tables.items()
                          for c, v in m.columns.items() if v.exceptions]
        return dg.MaterializeResult(metadata={
            "tables": len(result.tables),
            "foreign_keys": len(result.foreign_keys),
            "inferred_foreign_keys": sum(fk.inferred for fk in result.foreign_keys),
            "generation_order": " -> ".join(result.generation_order),
            "foreign_key_graph": dg.MetadataValue.md(markdown_table(["foreign key", "source", "evidence", "nullable"], fk_rows)),
            "column_types": dg.MetadataValue.md(markdown_table(["table", "rows", "primary key", "columns"], type_rows)),
            "columns": schema_columns(result),  # semantic type, null rate, cardinality per column
            # values outside a column's type (codes among numbers, +-inf, other date layouts): counts only
            "column_exceptions": dg.MetadataValue.md(markdown_table(
                ["column", "type", "exceptions", "impossible dates"], exception_rows) if exception_rows else "none"),
            "impossible_dates": sum(row[3] for row in exception_rows),
            "unresolved_fk_candidates": dg.MetadataValue.md("\n".join(f"- {u}" for u in result.unresolved_fk_candidates) or "none"),
            "data_rules": len(found),
            "data_rules_by_kind": dict(Counter(r["kind"] for r in found)),
            "data_rule_list": dg.MetadataValue.md(markdown_table(
                ["rule", "kind", "columns", "share of real rows"],
                [[r["id"], r["kind"], ", ".join(r["columns"]), percent(r["share"])] for r in found]) if found else "none"),
        })

    @dg.asset(
        key=dataset_key(spec.name, "pii_scan"),
        tags=stage_tags("analysis"),
        group_name=spec.name,
        deps=[schema],
        kinds={"python"},
        # reads open the warehouse read-only (waiting out a writer's commit): no pool, other reads run beside it
        code_version=CODE_VERSION,
        description="Columns holding personal data (by name and by value patterns) and the policy applied to each.",
    )
    def pii_scan(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        layout = storage.layout(spec.name)
        findings = pipeline.scan(spec, layout, pipeline.read_sources(spec, layout, warehouse.read_connection()),
                                 pipeline.load_schema(layout))
        return dg.MaterializeResult(metadata=pii_findings(findings))

    return [schema, pii_scan]
