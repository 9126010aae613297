"""`<dataset>/quality_report` and `<dataset>/privacy_report`: the evidence before release, as HTML + JSON."""


import dagster as dg

from genesis_pipelines.defs.assets.analysis import read_source_tables
from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key, warehouse_schema
from genesis_pipelines.defs.lineage import CODE_VERSION, run_model, run_seed, split_rows
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.defs.metadata import number, numbers, report_metadata
from genesis_pipelines.engine.evaluation import privacy_report, quality_report, render_html
from genesis_pipelines.engine.evaluation.report import report_context, verdict, verdict_markdown
from genesis_pipelines.engine.io import atomic_path, read_table, write_json
from genesis_pipelines.engine.relational import RelationalModel, comparison_exclusions
from genesis_pipelines.engine.spec import DatasetSpec


def _write_report(storage: GenesisStorage, dataset: str, kind: str, report: dict) -> str:
    """The latest report, and a copy under reports/<model version>/ so two versions can be compared later."""
    latest = storage.reports_dir(dataset)
    html = render_html(report, title=f"{dataset}: {kind.replace('_', ' ')}", kind=kind)
    for directory in ([latest / report["model_version"]] if report.get("model_version") else []) + [latest]:
        write_json(directory / f"{kind}.json", report)
        with atomic_path(directory / f"{kind}.html") as tmp:
            tmp.write_text(html, encoding="utf-8")
    return str(latest / f"{kind}.html")


def _context(spec: DatasetSpec, model: RelationalModel, seed: int) -> dict:
    """The report header: date, model version, seed, source fingerprint, and the quality minimum of the verdict."""
    return report_context(dataset=spec.name, model_version=model.version, seed=seed,
                          source_fingerprint=model.source_fingerprint, quality_min=spec.thresholds.quality_min)


def _evaluation_tables(spec: DatasetSpec, model: RelationalModel, warehouse: Warehouse) -> tuple[dict, dict, dict]:
    """Synthetic tables, and the model's own training and holdout rows (an error if the warehouse no longer has them)."""
    with warehouse.get_connection() as con:
        synthetic = {t: read_table(con, warehouse_schema("synthetic", spec.name), t) for t in model.tables}
        train, holdout = split_rows(con, spec, model)
    return synthetic, train, holdout


def build_report_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:
    deps = [synthetic_key(spec.name, t) for t in tables]

    @dg.asset(key=dataset_key(spec.name, "quality_report"), group_name=spec.name, deps=deps, kinds={"html"}, pool="duckdb",
              code_version=CODE_VERSION,
              description="Fidelity of the synthetic twin: column shapes, pair trends, children per parent; 0-100.")
    def quality(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        model, _ = run_model(context, spec, storage.model_root(spec.name))  # the run's model version, else the latest
        # fidelity against the real source; utility trains on the real train split and scores on the holdout
        synthetic, train, holdout = _evaluation_tables(spec, model, warehouse)
        public: dict[str, set[str]] = {}
        for ref in spec.utility.public_columns:
            public.setdefault(ref.split(".", 1)[0], set()).add(ref.split(".", 1)[1])
        report = quality_report(read_source_tables(spec, warehouse), synthetic, model.db_schema,
                                exclude=comparison_exclusions(model), seed=spec.seed, public=public,
                                train_tables=train, holdout_tables=holdout, utility_target=spec.utility.target)
        report["model_version"], report["context"] = model.version, _context(spec, model, run_seed(context, spec))
        path = _write_report(storage, spec.name, "quality_report", report)
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
        })

    @dg.asset(key=dataset_key(spec.name, "privacy_report"), group_name=spec.name, deps=deps, kinds={"html"}, pool="duckdb",
              code_version=CODE_VERSION,
              description="Privacy of the synthetic twin against the real holdout: exact copies, distance to closest record.")
    def privacy(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        model, _ = run_model(context, spec, storage.model_root(spec.name))  # the run's model version, else the latest
        synthetic, train, holdout = _evaluation_tables(spec, model, warehouse)
        report = privacy_report(train, holdout, synthetic, model.db_schema, exclude=comparison_exclusions(model),
                                thresholds=spec.thresholds, quasi_identifiers=spec.quasi_identifiers,
                                sensitive_columns=spec.sensitive_columns, seed=spec.seed,
                                model_describe={t: m.describe for t, m in model.tables.items()})
        report["model_version"], report["context"] = model.version, _context(spec, model, run_seed(context, spec))
        path = _write_report(storage, spec.name, "privacy_report", report)
        return dg.MaterializeResult(metadata={
            **numbers(report),  # counts as ints, shares and AUCs to 4 significant digits
            "gates_passed": all(report.get("passed", {}).values()),
            "model_version": model.version,
            **report_metadata(report, "privacy", html_path=path, data_dir=storage.data_dir,
                              headline=verdict_markdown(report, "privacy"), verdict=verdict(report, "privacy")),
        })

    return [quality, privacy]
