"""Which executor runs the steps of a run: one process locally, one pod (or ECS task) per step in production.

Chosen by GENESIS_EXECUTOR so the same code runs on a laptop and in a cluster by configuration only:
  in_process (default)  every step in the run worker; the embedded DuckDB file has one writer at a time
  multiprocess          a process per step on the run worker's machine, forked from a forkserver that imported
                        the data stack, built the code location and opened the instance once (PRELOAD), so a
                        step starts in a fraction of a second instead of paying the imports and rebuilding the
                        definitions (max_concurrent: run config, default the CPU count)
  k8s                   dagster-k8s k8s_job_executor: a Kubernetes Job per step (image, env, resources from the
                        Helm chart's run launcher config, or per asset via the `dagster-k8s/config` tag)
  ecs                   dagster-aws ecs_executor: an ECS task per step
Independent steps run at once (each table's training, generation, the reports); only the "gpu" pool (limit 1 in
resources/deploy/dagster.yaml, held by a table training with torch on CUDA) serialises steps across pods.
"""

import os

import dagster as dg

EXECUTOR_ENV = "GENESIS_EXECUTOR"
CHOICES = ("in_process", "multiprocess", "k8s", "ecs")
PRELOAD = ["genesis_pipelines.step_preload"]  # what the steps import, once per run (see that module)


def _forkserver_config(config: dict) -> dict:
    return {"max_concurrent": config.get("max_concurrent", 0), "start_method": {"forkserver": {"preload_modules": PRELOAD}}}


multiprocess_forkserver = dg.multiprocess_executor.configured(
    _forkserver_config, name="multiprocess",
    config_schema={"max_concurrent": dg.Field(int, is_required=False, default_value=0,
                                              description="steps at once (0: the CPU count)")})


def genesis_executor() -> dg.ExecutorDefinition:
    choice = os.environ.get(EXECUTOR_ENV, "in_process").strip().lower() or "in_process"
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return multiprocess_forkserver
    if choice == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise dg.DagsterInvariantViolationError(
                f"{EXECUTOR_ENV}=k8s needs dagster-k8s in the code location image (pip install dagster-k8s)") from None
        return k8s_job_executor
    if choice == "ecs":
        try:
            from dagster_aws.ecs import ecs_executor
        except ImportError:
            raise dg.DagsterInvariantViolationError(
                f"{EXECUTOR_ENV}=ecs needs dagster-aws in the code location image (pip install dagster-aws)") from None
        return ecs_executor
    raise dg.DagsterInvariantViolationError(f"{EXECUTOR_ENV}={choice!r} is not one of {', '.join(CHOICES)}")
