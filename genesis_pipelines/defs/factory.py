"""One dataset spec -> its assets, checks, job and schedule."""


import dagster as dg

from genesis_pipelines.defs.assets.analysis import build_analysis_assets
from genesis_pipelines.defs.assets.model import build_model_asset
from genesis_pipelines.defs.assets.reports import build_report_assets
from genesis_pipelines.defs.assets.source import build_source_assets
from genesis_pipelines.defs.assets.synthetic import build_synthetic_assets
from genesis_pipelines.defs.checks.gates import build_checks
from genesis_pipelines.engine.io import read_source_table, source_table_names
from genesis_pipelines.engine.schema import plan_generation
from genesis_pipelines.engine.spec import DatasetSpec


def twin_job_name(dataset: str) -> str:
    return f"{dataset}_synthetic_twin"


def build_dataset_defs(spec: DatasetSpec) -> dg.Definitions:
    tables = source_table_names(spec)
    plan = plan_generation(spec, tables, read_table=lambda t: read_source_table(spec, t))
    assets = [
        *build_source_assets(spec),
        *build_analysis_assets(spec),
        build_model_asset(spec),
        *build_synthetic_assets(spec, plan),
        *build_report_assets(spec, list(plan)),
    ]
    job = dg.define_asset_job(
        twin_job_name(spec.name),
        selection=dg.AssetSelection.groups(spec.name),
        description=f"Source tables to synthetic twin and reports for {spec.name}.",
        # one process: the DuckDB file takes a single writer, and steps are short
        executor_def=dg.in_process_executor,
        tags={"dataset": spec.name},
    )
    schedules = []
    if spec.schedule:
        schedules.append(dg.ScheduleDefinition(
            name=f"{spec.name}_regeneration", job=job, cron_schedule=spec.schedule,
            default_status=dg.DefaultScheduleStatus.STOPPED,
        ))
    return dg.Definitions(assets=assets, asset_checks=build_checks(spec, list(plan)), jobs=[job], schedules=schedules)
