"""`<dataset>_regeneration`: the spec's cron regenerates the synthetic tables and reports with a new seed.

The seed is the scheduled time (epoch seconds), passed as the run tag `genesis/seed` that the synthetic assets read,
so every tick gives a fresh, yet reproducible, twin from the latest model. Stopped by default.
"""


import time

import dagster as dg

from genesis_pipelines.defs.lineage import REQUESTS_TAG, SEED_TAG, TRIGGER_TAG
from genesis_pipelines.engine.core.spec import DatasetSpec


def build_regeneration_schedule(spec: DatasetSpec, job,
                                regenerate: list[dg.AssetKey]) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{spec.name}_regeneration",
        job=job,
        cron_schedule=spec.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Regenerates the synthetic twin of {spec.name} and its reports from the latest model, new seed each tick "
                    f"(no retraining): a run of only the synthetic tables and reports of {job.name}, tagged "
                    f"{TRIGGER_TAG}=regeneration, {REQUESTS_TAG}=regenerate.",
    )
    def regeneration(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time
        seed = int(when.timestamp()) if when is not None else int(time.time())
        return dg.RunRequest(run_key=f"{spec.name}-regeneration-{seed}", asset_selection=list(regenerate),
                             tags={SEED_TAG: str(seed), TRIGGER_TAG: "regeneration", REQUESTS_TAG: "regenerate"})

    return regeneration
