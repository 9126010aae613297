"""The code location: everything under genesis_pipelines/defs, loaded by Dagster's defs-folder convention."""

import dagster as dg

from genesis_pipelines.paths import PROJECT_ROOT


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        # ad-hoc materializations from the UI share the warehouse's single-writer constraint
        dg.Definitions(executor=dg.in_process_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
