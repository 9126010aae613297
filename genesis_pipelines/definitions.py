"""The code location: everything under genesis_pipelines/defs, loaded by Dagster's defs-folder convention."""

import dagster as dg

from genesis_pipelines.defs.executor import genesis_executor
from genesis_pipelines.paths import PROJECT_ROOT

# Set only in a multiprocess run's forkserver (genesis_pipelines.step_preload), before it forks any step: each step
# process rebuilds its job from the code pointer (`defs` below), and gets these instead of scanning the defs folder
# and building every dataset's graph again. Built from the same specs, environment and stored plans the run's own
# process loaded the job from when the run started; every other process builds afresh on each load (code reloads).
_preloaded: dg.Definitions | None = None


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        # in-process locally (the warehouse's single writer); GENESIS_EXECUTOR=k8s|ecs|multiprocess in production
        dg.Definitions(executor=genesis_executor()),
    )


def preload_definitions() -> None:
    """Build the code location once, for the processes forked from this one (the forkserver's steps)."""
    global _preloaded
    _preloaded = build_definitions()


def code_location() -> dg.Definitions:
    """What `defs` loads: the preloaded definitions in a step forked from the forkserver, else a fresh build."""
    return _preloaded if _preloaded is not None else build_definitions()


@dg.definitions
def defs() -> dg.Definitions:
    return code_location()
