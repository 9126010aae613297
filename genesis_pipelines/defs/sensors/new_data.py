"""`<dataset>_new_data`: a run when a source file (or S3 object) changes by content and is completely written.

Stopped by default: turning it on is the user's decision to let file drops launch training runs.
"""


import json

import dagster as dg

from genesis_pipelines.defs.assets.common import source_key
from genesis_pipelines.defs.lineage import REQUESTS_TAG, TRIGGER_TAG
from genesis_pipelines.engine.core.spec import DatasetSpec


def build_new_data_sensor(spec: DatasetSpec, tables: list[str], job,
                          downstream: list[dg.AssetKey]) -> dg.SensorDefinition:
    """`downstream`: what a changed source refreshes besides itself (everything, or only the drift asset)."""

    @dg.sensor(
        name=f"{spec.name}_new_data",
        job=job,
        minimum_interval_seconds=spec.source.watch.interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Reloads changed source tables of {spec.name} (content hash / ETag, once completely written) "
                    f"and refreshes {'everything downstream' if spec.source.watch.on_change == 'all' else 'the drift asset'}: "
                    f"a run of only those assets of {job.name}, tagged {TRIGGER_TAG}=new_data, {REQUESTS_TAG}=refresh.",
    )
    def new_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        from genesis_pipelines.engine.sources.watch import load_cursor, poll

        result = poll(spec, tables, load_cursor(context.cursor))
        cursor = json.dumps(result.cursor, sort_keys=True)
        if result.waiting:
            context.log.info(f"{len(result.waiting)} source file(s) not yet stable: checking again next tick")
        if result.missing:
            context.log.warning(f"{len(result.missing)} watched source file(s) missing")
        if not result.changed_tables:
            return dg.SensorResult(skip_reason="no completed change in the source", cursor=cursor)
        selection = [source_key(spec.name, t) for t in result.changed_tables] + list(downstream)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=result.run_key, asset_selection=selection,
                tags={TRIGGER_TAG: "new_data", REQUESTS_TAG: "refresh", "genesis/changed_tables": ",".join(result.changed_tables)[:200]},
            )],
            cursor=cursor,
        )

    return new_data
