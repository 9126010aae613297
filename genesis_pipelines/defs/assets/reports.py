"""`<dataset>/quality_report` and `<dataset>/privacy_report`: the evidence before release, as HTML + JSON.

Each report asset also judges its own report (the checks `quality_threshold` and `privacy_gates`, defined in
defs/checks/gates.py): the gate reads the report this materialization computed, never a file another run rewrote.
"""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, stage_tags, synthetic_key
from genesis_pipelines.defs.checks.gates import privacy_gate_spec, privacy_gates, quality_gate_spec, quality_threshold
from genesis_pipelines.defs.lineage import CODE_VERSION, model_failures, retrain_hint, run_model, run_seed
from genesis_pipelines.defs.metadata import number, numbers, report_metadata
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec


def build_report_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:
    deps = [synthetic_key(spec.name, t) for t in tables]

    @dg.asset(key=dataset_key(spec.name, "quality_report"), group_name=spec.name, tags=stage_tags("reports"), deps=deps, kinds={"html"},
              code_version=CODE_VERSION, check_specs=[quality_gate_spec(spec)],
              description="Fidelity of the synthetic twin: column shapes, pair trends, children per parent; 0-100.")
    def quality(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.evaluation.report import verdict, verdict_markdown

        layout = storage.layout(spec.name)
        model, _ = run_model(context, spec, layout)  # the run's model version, else the latest
        with model_failures():
            report = pipeline.quality_report(spec, layout, warehouse.read_connection(), model, retrain_hint=retrain_hint(spec),
                                             seed=run_seed(context, spec))
        path = pipeline.write_report(layout.reports, spec.name, "quality_report", report)
        utility = report.get("utility") or {}
        return dg.MaterializeResult(metadata={
            "overall_score": number(report["overall_score"] or 0.0),
            **numbers({k: report[k] for k in ("column_shapes", "pair_trends", "cardinality", "parent_child_trends")
                       if report.get(k) is not None}),
            "grade": report.get("grade") or "n/a",
            **({"utility_ratio": number(utility["utility_ratio"])} if utility.get("utility_ratio") is not None else {}),
            "model_version": model.version,
            **report_metadata(report, "quality", html_path=path, data_dir=storage.data_dir, quality_min=spec.thresholds.quality_min,
                              headline=verdict_markdown(report, "quality", quality_min=spec.thresholds.quality_min),
                              verdict=verdict(report, "quality", quality_min=spec.thresholds.quality_min)),
        }, check_results=[quality_threshold(spec, report)])

    @dg.asset(key=dataset_key(spec.name, "privacy_report"), group_name=spec.name, tags=stage_tags("reports"), deps=deps, kinds={"html"},
              code_version=CODE_VERSION, check_specs=[privacy_gate_spec(spec)],
              description="Privacy of the synthetic twin against the real holdout: exact copies, distance to closest record.")
    def privacy(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.evaluation.report import verdict, verdict_markdown

        layout = storage.layout(spec.name)
        model, model_dir = run_model(context, spec, layout)  # the run's model version, else the latest
        with model_failures():
            report = pipeline.privacy_report(spec, layout, warehouse.read_connection(), model, model_dir,
                                             retrain_hint=retrain_hint(spec), seed=run_seed(context, spec))
        path = pipeline.write_report(layout.reports, spec.name, "privacy_report", report)
        return dg.MaterializeResult(metadata={
            **numbers(report),  # counts as ints, shares and AUCs to 4 significant digits
            "gates_passed": all(report.get("passed", {}).values()),
            **_ledger_metadata(report.get("privacy_budget") or {}),
            "model_version": model.version,
            **report_metadata(report, "privacy", html_path=path, data_dir=storage.data_dir,
                              headline=verdict_markdown(report, "privacy"), verdict=verdict(report, "privacy")),
        }, check_results=[privacy_gates(spec, report)])

    return [quality, privacy]


def _ledger_metadata(ledger: dict) -> dict:
    """The dataset's cumulative DP spend over all its models (privacy_ledger.summary), when it has any."""
    total = ledger.get("cumulative") or {}
    if not ledger.get("entries"):
        return {}
    out = {"privacy_budget/epsilon_spent": number(total["epsilon"]), "privacy_budget/delta_spent": number(total["delta"]),
           "privacy_budget/composition": total.get("method", ""), "privacy_budget/dp_trainings": len(ledger["entries"])}
    if ledger.get("budget"):
        out["privacy_budget/epsilon_left"] = number(ledger["budget"]["epsilon_left"])
    return out
