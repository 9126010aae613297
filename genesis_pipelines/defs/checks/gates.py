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


def build_checks(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetChecksDefinition]:
    # the report gates are evaluated by the report assets themselves (check_specs)
    return [_table_gates(spec, table) for table in tables]


def _table_gates(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    """The three gates of one synthetic table, `keys_valid` and `no_pii_leak` (blocking) and `expectations` (warn),
    as one step: it loads the model and reads the table once for all three, and a code location of many tables
    builds one check op per table instead of three. Each gate stays its own check in the UI and runs alone when
    selected alone."""
    asset = synthetic_key(spec.name, table)
    specs = [
        dg.AssetCheckSpec("keys_valid", asset=asset, blocking=True,
                          description="Primary key unique and not null; every foreign key value (column tuple) exists in "
                                      "its synthetic parent; keys deferred to close a cycle are checked with their parent."),
        dg.AssetCheckSpec("no_pii_leak", asset=asset, blocking=True,
                          description="No real PII value (names, emails, phones, addresses...) and no 20-character snippet "
                                      "of real free text appears in the synthetic table."),
        # WARN, not blocking: the suite's ranges and value sets come from the real training rows, and a good generator
        # may legitimately stray a little (a rare category, a tail value); the hard guarantees (keys, FKs, PII,
        # copies) are blocking checks of their own.
        dg.AssetCheckSpec("expectations", asset=asset,
                          description="The Great Expectations suite derived from the real data (types, ranges, value "
                                      "sets, nullability, key uniqueness, FK membership in the synthetic parent); "
                                      "warning only."),
    ]

    @dg.multi_asset_check(specs=specs, can_subset=True, name=f"{asset.to_python_identifier()}_gates")
    def gates(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, storage: GenesisStorage):
        from genesis_pipelines.engine.evaluation.integrity import checked_tables
        from genesis_pipelines.engine.sources.io import read_table

        model, model_dir = checked_model(context, spec, storage.layout(spec.name), asset)
        selected = {key.name for key in context.selected_asset_check_keys}
        needed = {table}  # the checked table, plus what the selected gates compare it with
        if "keys_valid" in selected:
            needed |= checked_tables(model.db_schema, table)
        if "expectations" in selected:
            needed |= set(model.db_schema.parents_of(table))
        # read, then let the warehouse go: no read lock held while the gates run (other steps commit meanwhile)
        with warehouse.read_connection()() as con:
            frames = {t: read_table(con, warehouse_schema("synthetic", spec.name), t) for t in sorted(needed)}
        if "keys_valid" in selected:
            yield _keys_valid(model, table, frames)
        if "no_pii_leak" in selected:
            yield _no_pii_leak(spec, model, model_dir, table, frames[table])
        if "expectations" in selected:
            yield _expectations(model, model_dir, table, frames)

    return gates


def _keys_valid(model, table: str, frames: dict) -> dg.AssetCheckResult:
    from genesis_pipelines.engine.evaluation.integrity import checked_tables, key_integrity

    schema = model.db_schema
    result = key_integrity({t: frames[t] for t in checked_tables(schema, table)}, schema, table)
    return dg.AssetCheckResult(check_name="keys_valid", passed=result["passed"],
                               metadata={**result["metadata"], "model_version": model.version})


def _no_pii_leak(spec: DatasetSpec, model, model_dir, table: str, df) -> dg.AssetCheckResult:
    from genesis_pipelines.engine.privacy.pii import find_leaks, find_text_leaks, read_text_guard
    from genesis_pipelines.engine.synthesis.relational import load_pii_guard

    exempt = spec.pii_leak_exempt
    leaks = find_leaks({table: df}, load_pii_guard(model, model_dir), exempt, model.pii).get(table, {})
    snippets = find_text_leaks({table: df}, read_text_guard(model_dir), model.pii_guard_salt, exempt).get(table, {})
    return dg.AssetCheckResult(check_name="no_pii_leak", passed=not leaks and not snippets, metadata={
        "leaked_values": sum(leaks.values()), "columns_with_leaks": ", ".join(sorted(leaks)) or "none",
        "text_snippet_leaks": sum(snippets.values()),
        "columns_with_text_snippet_leaks": ", ".join(sorted(snippets)) or "none",
        "exempt_columns": ", ".join(sorted(split_ref(r)[1] for r in exempt if split_ref(r)[0] == table)) or "none",
        "model_version": model.version,
    })


def _expectations(model, model_dir, table: str, frames: dict) -> dg.AssetCheckResult:
    from genesis_pipelines.engine.evaluation.expectations import load_suites
    from genesis_pipelines.engine.evaluation.expectations import validate as validate_suite

    suites = load_suites(model_dir)
    if table not in suites:
        return dg.AssetCheckResult(check_name="expectations", passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"expectations_evaluated": 0, "note": "the model has no suite for this table",
                                             "model_version": model.version})
    parents = {p: frames[p] for p in model.db_schema.parents_of(table)}
    result = validate_suite(frames[table], suites[table], parents={**parents, table: frames[table]})
    return dg.AssetCheckResult(check_name="expectations", passed=result["success"], severity=dg.AssetCheckSeverity.WARN,
                               metadata={
        "expectations_evaluated": result["evaluated"], "expectations_failed": result["failed"],
        "failed_expectation_types": ", ".join(result["failed_types"]) or "none",
        "model_version": model.version,
    })


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
