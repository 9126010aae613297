"""`<dataset>/quality_report` and `<dataset>/privacy_report`: the evidence before release, as HTML + JSON.

Each report asset also judges its own report (the checks `quality_threshold` and `privacy_gates`, defined in
defs/checks/gates.py): the gate reads the report this materialization computed, never a file another run rewrote.
"""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key
from genesis_pipelines.defs.checks.gates import privacy_gate_spec, privacy_gates, quality_gate_spec, quality_threshold
from genesis_pipelines.defs.lineage import CODE_VERSION, model_failures, retrain_hint, run_model
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.spec import DatasetSpec


def build_report_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:
    deps = [synthetic_key(spec.name, t) for t in tables]

    @dg.asset(key=dataset_key(spec.name, "quality_report"), group_name=spec.name, deps=deps, kinds={"html"}, pool="duckdb",
              code_version=CODE_VERSION, check_specs=[quality_gate_spec(spec)],
              description="Fidelity of the synthetic twin: column shapes, pair trends, children per parent; 0-100.")
    def quality(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.evaluation import summary_markdown

        layout = storage.layout(spec.name)
        model, _ = run_model(context, spec, layout)  # the run's model version, else the latest
        with model_failures():
            report = pipeline.quality_report(spec, layout, warehouse.get_connection, model, retrain_hint=retrain_hint(spec))
        path = pipeline.write_report(layout.reports, spec.name, "quality_report", report)
        utility = report.get("utility") or {}
        return dg.MaterializeResult(metadata={
            "overall_score": dg.MetadataValue.float(float(report["overall_score"] or 0.0)),
            **{k: dg.MetadataValue.float(float(report[k])) for k in ("column_shapes", "pair_trends", "cardinality", "parent_child_trends")
               if report.get(k) is not None},
            "grade": report.get("grade") or "n/a",
            **({"utility_ratio": dg.MetadataValue.float(float(utility["utility_ratio"]))} if utility.get("utility_ratio") is not None else {}),
            "model_version": model.version,
            "summary": dg.MetadataValue.md(summary_markdown(report, "quality")),
            "report_path": dg.MetadataValue.path(str(path)),
        }, check_results=[quality_threshold(spec, report)])

    @dg.asset(key=dataset_key(spec.name, "privacy_report"), group_name=spec.name, deps=deps, kinds={"html"}, pool="duckdb",
              code_version=CODE_VERSION, check_specs=[privacy_gate_spec(spec)],
              description="Privacy of the synthetic twin against the real holdout: exact copies, distance to closest record.")
    def privacy(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.evaluation import summary_markdown

        layout = storage.layout(spec.name)
        model, model_dir = run_model(context, spec, layout)  # the run's model version, else the latest
        with model_failures():
            report = pipeline.privacy_report(spec, layout, warehouse.get_connection, model, model_dir,
                                             retrain_hint=retrain_hint(spec))
        path = pipeline.write_report(layout.reports, spec.name, "privacy_report", report)
        numeric = {k: dg.MetadataValue.float(float(v)) for k, v in report.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return dg.MaterializeResult(metadata={
            **numeric,
            "gates_passed": all(report.get("passed", {}).values()),
            "model_version": model.version,
            "summary": dg.MetadataValue.md(summary_markdown(report, "privacy")),
            "report_path": dg.MetadataValue.path(str(path)),
        }, check_results=[privacy_gates(spec, report)])

    return [quality, privacy]
