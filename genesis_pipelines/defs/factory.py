"""One dataset spec -> its assets, checks, job, sensors and schedule."""


import logging

import dagster as dg

from genesis_pipelines import paths
from genesis_pipelines.defs.assets.analysis import build_analysis_assets
from genesis_pipelines.defs.assets.augmented import augmented_keys, build_augmented_assets
from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key
from genesis_pipelines.defs.assets.drift import build_drift_asset
from genesis_pipelines.defs.assets.model import build_model_assets, training_keys
from genesis_pipelines.defs.assets.reports import build_report_assets
from genesis_pipelines.defs.assets.s3_export import build_s3_export_assets, s3_export_keys
from genesis_pipelines.defs.assets.source import build_source_assets
from genesis_pipelines.defs.assets.synthetic import build_synthetic_assets, synthetic_files_key
from genesis_pipelines.defs.checks.gates import build_checks
from genesis_pipelines.defs.executor import genesis_executor
from genesis_pipelines.defs.schedules.regeneration import build_regeneration_schedule
from genesis_pipelines.defs.sensors.drift import build_drift_sensor
from genesis_pipelines.defs.sensors.new_data import build_new_data_sensor
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec

log = logging.getLogger(__name__)


def twin_job_name(dataset: str) -> str:
    return f"{dataset}_synthetic_twin"


def build_dataset_defs(spec: DatasetSpec) -> dg.Definitions:
    layout = pipeline.DatasetLayout(paths.data_dir(), spec.name)
    # from the declared keys, or the plan the schema step stored: no source data (nor S3) is read at load once it exists
    tables = pipeline.table_names(spec, layout)
    plan = pipeline.generation_plan(spec, layout, tables, log=log.info)
    assets = [
        *build_source_assets(spec, tables),
        *build_analysis_assets(spec, tables),
        *build_model_assets(spec, list(plan)),  # training_plan, model/<table> per table, model
        *build_synthetic_assets(spec, plan),
        *build_report_assets(spec, list(plan)),
        build_drift_asset(spec, tables),
        *build_s3_export_assets(spec, list(plan)),  # only with GENESIS_EXPORT_S3_URI
        *build_augmented_assets(spec, plan),  # on request, with run config: not in the twin's jobs
    ]
    job = dg.define_asset_job(
        twin_job_name(spec.name),
        selection=dg.AssetSelection.groups(spec.name) - dg.AssetSelection.assets(*augmented_keys(spec, plan)),
        description=f"Source tables to synthetic twin and reports for {spec.name}.",
        # in process by default; multiprocess / k8s run independent steps (tables' training, reads) at once
        executor_def=genesis_executor(),  # in-process unless GENESIS_EXECUTOR says otherwise
        tags={"dataset": spec.name},
    )
    # what each trigger requests of the twin job (a run of a subset of it: one job per dataset, so the code location
    # resolves and snapshots one job per dataset): generation = synthetic tables + reports; retraining adds schema,
    # pii_scan and the training steps (training_plan, model/<table>, model). The sensors' and schedule's descriptions
    # and their runs' `genesis/trigger` tag say what they request.
    drift = dataset_key(spec.name, "drift")
    generation = [synthetic_key(spec.name, t) for t in plan] + [synthetic_files_key(spec.name)]
    generation += [dataset_key(spec.name, k) for k in ("quality_report", "privacy_report")]
    generation += s3_export_keys(spec, plan)
    retrain = [dataset_key(spec.name, k) for k in ("schema", "pii_scan")] + training_keys(spec.name, list(plan)) + generation
    sensors = [build_drift_sensor(spec, job, retrain)]
    if spec.source.watch.enabled:
        downstream = retrain + [drift] if spec.source.watch.on_change == "all" else [drift]
        sensors.append(build_new_data_sensor(spec, tables, job, downstream))
    schedules = [build_regeneration_schedule(spec, job, generation)] if spec.schedule else []
    return dg.Definitions(assets=assets, asset_checks=build_checks(spec, list(plan)), jobs=[job], schedules=schedules,
                          sensors=sensors)
