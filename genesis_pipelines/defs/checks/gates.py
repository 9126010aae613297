"""Gates on the synthetic twin: keys intact and no real PII (blocking), quality (warn), privacy (blocking).

Every gate judges exactly what it gates: the per-table checks load the run's model version (the run tag
`genesis/model_version` the synthetic assets honour, else the version the checked materialization recorded), and
the report gates judge the report their materialization computed (the report assets evaluate them in the same
step, through `quality_threshold` / `privacy_gates` below), never a report file another run may have rewritten.
"""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key, warehouse_schema
from genesis_pipelines.defs.lineage import checked_model
from genesis_pipelines.defs.metadata import gate_check_metadata, number
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine.core.spec import DatasetSpec, split_ref
from genesis_pipelines.engine.evaluation.catalog import number_text
from genesis_pipelines.engine.sources.io import read_table


def build_checks(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetChecksDefinition]:
    checks = []
    for table in tables:
        checks += [_keys_check(spec, table), _pii_leak_check(spec, table), _expectations_check(spec, table)]
    return checks  # the report gates are evaluated by the report assets themselves (check_specs)


def _keys_check(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=synthetic_key(spec.name, table), name="keys_valid", blocking=True,
                    description="Primary key unique and not null; every foreign key value (column tuple) exists in its "
                                "synthetic parent; keys deferred to close a cycle are checked with their parent.")
    def keys_valid(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.AssetCheckResult:
        from genesis_pipelines.engine.evaluation.integrity import checked_tables, key_integrity

        model, _ = checked_model(context, spec, storage.layout(spec.name), synthetic_key(spec.name, table))
        schema = model.db_schema
        with warehouse.read_connection()() as con:
            frames = {t: read_table(con, warehouse_schema("synthetic", spec.name), t) for t in checked_tables(schema, table)}
        result = key_integrity(frames, schema, table)
        return dg.AssetCheckResult(passed=result["passed"], metadata={**result["metadata"], "model_version": model.version})

    return keys_valid


def _pii_leak_check(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=synthetic_key(spec.name, table), name="no_pii_leak", blocking=True,
                    description="No real PII value (names, emails, phones, addresses...) and no 20-character snippet of real "
                                "free text appears in the synthetic table.")
    def no_pii_leak(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.AssetCheckResult:
        from genesis_pipelines.engine.privacy.pii import find_leaks, find_text_leaks, read_text_guard
        from genesis_pipelines.engine.synthesis.relational import load_pii_guard

        model, model_dir = checked_model(context, spec, storage.layout(spec.name), synthetic_key(spec.name, table))
        with warehouse.read_connection()() as con:
            df = read_table(con, warehouse_schema("synthetic", spec.name), table)
        exempt = spec.pii_leak_exempt
        leaks = find_leaks({table: df}, load_pii_guard(model, model_dir), exempt, model.pii).get(table, {})
        snippets = find_text_leaks({table: df}, read_text_guard(model_dir), model.pii_guard_salt, exempt).get(table, {})
        return dg.AssetCheckResult(passed=not leaks and not snippets, metadata={
            "leaked_values": sum(leaks.values()), "columns_with_leaks": ", ".join(sorted(leaks)) or "none",
            "text_snippet_leaks": sum(snippets.values()),
            "columns_with_text_snippet_leaks": ", ".join(sorted(snippets)) or "none",
            "exempt_columns": ", ".join(sorted(split_ref(r)[1] for r in exempt if split_ref(r)[0] == table)) or "none",
            "model_version": model.version,
        })

    return no_pii_leak


def _expectations_check(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    # WARN, not blocking: the suite's ranges and value sets come from the real training rows, and a good generator
    # may legitimately stray a little (a rare category, a tail value); the hard guarantees (keys, FKs, PII, copies)
    # are blocking checks of their own.
    @dg.asset_check(asset=synthetic_key(spec.name, table), name="expectations",
                    description="The Great Expectations suite derived from the real data (types, ranges, value sets, "
                                "nullability, key uniqueness, FK membership in the synthetic parent); warning only.")
    def expectations(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.AssetCheckResult:
        from genesis_pipelines.engine.evaluation.expectations import load_suites
        from genesis_pipelines.engine.evaluation.expectations import validate as validate_suite

        model, model_dir = checked_model(context, spec, storage.layout(spec.name), synthetic_key(spec.name, table))
        suites = load_suites(model_dir)
        if table not in suites:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                       metadata={"expectations_evaluated": 0, "note": "the model has no suite for this table",
                                                 "model_version": model.version})
        with warehouse.read_connection()() as con:
            out_schema = warehouse_schema("synthetic", spec.name)
            df = read_table(con, out_schema, table)
            parents = {p: read_table(con, out_schema, p) for p in model.db_schema.parents_of(table) if p != table}
        result = validate_suite(df, suites[table], parents={**parents, table: df})
        return dg.AssetCheckResult(passed=result["success"], severity=dg.AssetCheckSeverity.WARN, metadata={
            "expectations_evaluated": result["evaluated"], "expectations_failed": result["failed"],
            "failed_expectation_types": ", ".join(result["failed_types"]) or "none",
            "model_version": model.version,
        })

    return expectations


def quality_gate_spec(spec: DatasetSpec) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name="quality_threshold", asset=dataset_key(spec.name, "quality_report"),
                             description=f"Overall quality score at least {spec.thresholds.quality_min} (warning only).")


def quality_threshold(spec: DatasetSpec, report: dict) -> dg.AssetCheckResult:
    """The quality gate on the report the quality_report materialization computed."""
    score = report.get("overall_score")
    return dg.AssetCheckResult(
        check_name="quality_threshold",
        passed=score is not None and score >= spec.thresholds.quality_min,
        severity=dg.AssetCheckSeverity.WARN,
        # the threshold is a constant of the spec: text, so the UI does not plot it as a series
        metadata={"overall_score": number(score or 0.0),
                  "threshold": dg.MetadataValue.text(f"at least {number_text(spec.thresholds.quality_min)}"),
                  "grade": report.get("grade") or "n/a", "model_version": report.get("model_version") or "n/a"},
    )


def privacy_gate_spec(spec: DatasetSpec) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name="privacy_gates", asset=dataset_key(spec.name, "privacy_report"), blocking=True,
                             description="Unique real records copied, DCR share and membership-inference AUC within the "
                                         "spec's thresholds (singling-out and linkability risks too when the spec sets "
                                         "them), and no real PII value in the synthetic tables.")


def privacy_gates(spec: DatasetSpec, report: dict) -> dg.AssetCheckResult:
    """The privacy gates on the report the privacy_report materialization computed."""
    gates = report.get("passed", {})
    # aggregates only (a count, a share, an AUC, a risk); thresholds as text and in the gates table, not plotted
    metadata = {**gate_check_metadata(report), "model_version": report.get("model_version") or "n/a"}
    return dg.AssetCheckResult(check_name="privacy_gates", passed=bool(gates) and all(gates.values()), metadata=metadata)
