"""Gates on the synthetic twin: keys intact and no real PII (blocking), quality (warn), privacy (blocking)."""


import json

import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key, warehouse_schema
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine.evaluation.integrity import key_integrity
from genesis_pipelines.engine.io import read_table
from genesis_pipelines.engine.pii import find_leaks
from genesis_pipelines.engine.relational import load_model, load_pii_guard
from genesis_pipelines.engine.spec import DatasetSpec


def build_checks(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetChecksDefinition]:
    checks = []
    for table in tables:
        checks += [_keys_check(spec, table), _pii_leak_check(spec, table)]
    return checks + [_quality_check(spec), _privacy_check(spec)]


def _keys_check(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=synthetic_key(spec.name, table), name="keys_valid", blocking=True,
                    description="Primary key unique and not null; every foreign key value exists in its synthetic parent.")
    def keys_valid(warehouse: Warehouse, storage: GenesisStorage) -> dg.AssetCheckResult:
        model, _ = load_model(storage.model_root(spec.name))
        schema = model.db_schema
        with warehouse.get_connection() as con:
            related = {table} | set(schema.parents_of(table))
            frames = {t: read_table(con, warehouse_schema("synthetic", spec.name), t) for t in related}
        result = key_integrity(frames, schema, table)
        return dg.AssetCheckResult(passed=result["passed"], metadata=result["metadata"])

    return keys_valid


def _pii_leak_check(spec: DatasetSpec, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=synthetic_key(spec.name, table), name="no_pii_leak", blocking=True,
                    description="No real PII value (names, emails, phones, addresses...) appears in the synthetic table.")
    def no_pii_leak(warehouse: Warehouse, storage: GenesisStorage) -> dg.AssetCheckResult:
        model, model_dir = load_model(storage.model_root(spec.name))
        with warehouse.get_connection() as con:
            df = read_table(con, warehouse_schema("synthetic", spec.name), table)
        leaks = find_leaks({table: df}, load_pii_guard(model, model_dir)).get(table, {})
        return dg.AssetCheckResult(passed=not leaks, metadata={
            "leaked_values": sum(leaks.values()), "columns_with_leaks": ", ".join(sorted(leaks)) or "none",
        })

    return no_pii_leak


def _report(storage: GenesisStorage, dataset: str, kind: str) -> dict:
    path = storage.reports_dir(dataset) / f"{kind}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _quality_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dataset_key(spec.name, "quality_report"), name="quality_threshold",
                    description=f"Overall quality score at least {spec.thresholds.quality_min} (warning only).")
    def quality_threshold(storage: GenesisStorage) -> dg.AssetCheckResult:
        score = _report(storage, spec.name, "quality_report").get("overall_score")
        return dg.AssetCheckResult(
            passed=score is not None and score >= spec.thresholds.quality_min,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"overall_score": float(score or 0.0), "threshold": spec.thresholds.quality_min},
        )

    return quality_threshold


def _privacy_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dataset_key(spec.name, "privacy_report"), name="privacy_gates", blocking=True,
                    description="Unique real records copied and DCR share within the spec's thresholds.")
    def privacy_gates(storage: GenesisStorage) -> dg.AssetCheckResult:
        gates = _report(storage, spec.name, "privacy_report").get("passed", {})
        return dg.AssetCheckResult(passed=bool(gates) and all(gates.values()),
                                   metadata={f"gate_{k}": bool(v) for k, v in gates.items()})

    return privacy_gates
