"""The code location: everything under genesis_pipelines/defs, loaded by Dagster's defs-folder convention."""

import dagster as dg

from genesis_pipelines.defs.executor import genesis_executor
from genesis_pipelines.paths import PROJECT_ROOT


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        # in-process locally (the warehouse's single writer); GENESIS_EXECUTOR=k8s|ecs|multiprocess in production
        dg.Definitions(executor=genesis_executor()),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
