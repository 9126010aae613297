"""The code location: everything under genesis_pipelines/defs, loaded by Dagster's defs-folder convention."""

import os
from pathlib import Path

import dagster as dg

from genesis_pipelines.defs.executor import genesis_executor
from genesis_pipelines.paths import PROJECT_ROOT

# Set only in a multiprocess run's forkserver (genesis_pipelines.step_preload), before it forks any step: each step
# process rebuilds its job from the code pointer (`defs` below), and gets these instead of scanning the defs folder
# and building every dataset's graph again. Built at the run's first step, from the specs, environment and stored
# plans the run's own process loaded the job from when the run started; every other process builds afresh on each
# load (code reloads). With the inputs' fingerprint at build time: a step whose environment or spec files differ
# (a later run in a process that keeps its forkserver, after a spec was edited) builds afresh.
_preloaded: tuple[str, dg.Definitions] | None = None


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        # in-process locally (the warehouse's single writer); GENESIS_EXECUTOR=k8s|ecs|multiprocess in production
        dg.Definitions(executor=genesis_executor()),
    )


def _inputs_fingerprint() -> str:
    """The environment (GENESIS_*, DAGSTER_HOME) and the spec and defs-folder YAML files (path, size, mtime) the
    definitions are built from; cheap (a few stats), so a forked step can check it before reusing a build."""
    from genesis_pipelines.engine.core.layout import specs_dir
    from genesis_pipelines.engine.core.spec import discover_specs

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("GENESIS_") or k == "DAGSTER_HOME")
    files = [*sorted((PROJECT_ROOT / "genesis_pipelines" / "defs").rglob("*.yaml")), *discover_specs(specs_dir())]
    stats = []
    for path in files:
        try:
            stat = Path(path).stat()
            stats.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append((str(path), -1, -1))
    return repr((env, stats))


def preload_definitions() -> None:
    """Build the code location once, for the processes forked from this one (the forkserver's steps)."""
    global _preloaded
    fingerprint = _inputs_fingerprint()
    _preloaded = (fingerprint, build_definitions())


def code_location() -> dg.Definitions:
    """What `defs` loads: the preloaded definitions in a step forked from the forkserver (when its inputs are
    unchanged), else a fresh build."""
    if _preloaded is not None and _preloaded[0] == _inputs_fingerprint():
        return _preloaded[1]
    return build_definitions()


@dg.definitions
def defs() -> dg.Definitions:
    return code_location()
