"""`<dataset>_drift_retrain`: retrain and regenerate when the latest drift measurement is above the threshold.

Reads the latest `<dataset>/drift` materialization's metadata from the instance; the cursor is its storage id, and
so is the run key, so one measurement launches at most one retraining run; while a retraining run is queued or
running, newer measurements (made before it retrained) launch none.
"""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key
from genesis_pipelines.defs.lineage import REQUESTS_TAG, TRIGGER_TAG
from genesis_pipelines.engine.core.spec import DatasetSpec

PENDING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
           dg.DagsterRunStatus.STARTED]


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def _budget_refusal(spec: DatasetSpec) -> str | None:
    """Why retraining would break the spec's privacy_budget (the model step would refuse it), else None."""
    if spec.privacy_budget is None:
        return None
    from genesis_pipelines import paths
    from genesis_pipelines.engine import pipeline

    return pipeline.retraining_refusal(spec, pipeline.DatasetLayout(paths.data_dir(), spec.name))


def build_drift_sensor(spec: DatasetSpec, job,
                       retrain: list[dg.AssetKey]) -> dg.SensorDefinition:
    drift_key, model_key = dataset_key(spec.name, "drift"), dataset_key(spec.name, "model")
    tags = {TRIGGER_TAG: "drift", "dataset": spec.name}  # what a pending retraining run is found by

    @dg.sensor(
        name=f"{spec.name}_drift_retrain",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Retrains {spec.name}/model and regenerates the synthetic tables and reports when "
                    f"{spec.name}/drift reports max PSI above {spec.drift.psi_threshold}: a run of schema, pii_scan, the "
                    f"training steps, model, synthetic tables and reports of {job.name}, tagged {TRIGGER_TAG}=drift, "
                    f"{REQUESTS_TAG}=retrain.",
    )
    def drift_retrain(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        event = _latest(context.instance, drift_key)
        last = int(context.cursor) if context.cursor else 0
        if event is None or event.storage_id <= last:
            return dg.SensorResult(skip_reason="no new drift measurement")
        cursor = str(event.storage_id)
        entry = event.asset_materialization.metadata.get("max_psi") if event.asset_materialization else None
        max_psi = float(entry.value) if entry is not None else 0.0
        if max_psi <= spec.drift.psi_threshold:
            return dg.SensorResult(skip_reason=f"max PSI {max_psi:.3f} within threshold", cursor=cursor)
        model_event = _latest(context.instance, model_key)
        if model_event is not None and model_event.storage_id > event.storage_id:
            return dg.SensorResult(skip_reason="the model was retrained after this drift measurement", cursor=cursor)
        budget = _budget_refusal(spec)
        if budget:  # cursor not advanced: once the budget is raised, the next tick retrains on this measurement
            return dg.SensorResult(skip_reason=dg.SkipReason(budget))
        if context.instance.get_run_records(dg.RunsFilter(tags=tags, statuses=PENDING), limit=1):
            # cursor not advanced: once that run has retrained, the model is newer than this measurement
            return dg.SensorResult(skip_reason="a retraining run is already queued or running")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{spec.name}-drift-{event.storage_id}", asset_selection=list(retrain),
                                        tags={**tags, REQUESTS_TAG: "retrain", "genesis/max_psi": f"{max_psi:.4f}"})],
            cursor=cursor,
        )

    return drift_retrain
