"""Run tags that steer a run (seed, model version), the code version of every asset, and clear model errors.

Nothing heavy (the relational engine, torch, evaluation) is imported at module level in the Dagster layer: loading
the definitions needs only specs and plans, the steps import what they run.
"""


import contextlib

import dagster as dg

from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.core.lineage import engine_code_version
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.pipeline import DatasetLayout

SEED_TAG = "genesis/seed"  # set by the regeneration schedule: a new seed each tick
MODEL_VERSION_TAG = "genesis/model_version"  # regenerate from an earlier model version
# on runs a sensor or the schedule requests of `<ds>_synthetic_twin`: which trigger (drift, new_data, regeneration) and
# what it requested (retrain, refresh, regenerate: a subset of the twin job), so the runs list tells them apart
TRIGGER_TAG = "genesis/trigger"
REQUESTS_TAG = "genesis/requests"
CODE_VERSION = engine_code_version()


def retrain_hint(spec: DatasetSpec) -> str:
    return f"retrain: materialize the asset {spec.name}/model"


def run_tags(context) -> dict:
    run = getattr(context, "run", None)
    return dict(run.tags) if run is not None else {}


def run_seed(context, spec: DatasetSpec) -> int:
    value = run_tags(context).get(SEED_TAG)
    if value is None:
        return spec.seed
    try:
        return int(value)
    except ValueError:
        raise dg.Failure(description=f"run tag {SEED_TAG} must be an integer") from None


@contextlib.contextmanager
def model_failures():
    """A missing, corrupt or stale model (ModelError, whose message names the way out) fails the step cleanly."""
    try:
        yield
    except ModelError as exc:
        raise dg.Failure(description=str(exc)) from None


def run_model(context, spec: DatasetSpec, layout: DatasetLayout) -> tuple:
    """The model named by the run tag, else the latest; a missing or corrupt one names the way out."""
    with model_failures():
        return pipeline.load_model(layout, run_tags(context).get(MODEL_VERSION_TAG) or None, retrain_hint=retrain_hint(spec))


def checked_model(context, spec: DatasetSpec, layout: DatasetLayout, asset_key: dg.AssetKey) -> tuple:
    """The model a check judges the checked asset against: the run's model version (the run tag the synthetic
    assets honour); in a run without the tag, the version recorded by the asset's latest materialization (a check
    re-run on its own judges what was made); else the latest model."""
    version = run_tags(context).get(MODEL_VERSION_TAG) or None
    if version is None:
        event = context.instance.get_latest_materialization_event(asset_key)
        recorded = event.asset_materialization.metadata.get("model_version") if event and event.asset_materialization else None
        version = str(recorded.value) if recorded is not None else None
    with model_failures():
        return pipeline.load_model(layout, version, retrain_hint=retrain_hint(spec))


def split_rows(spec: DatasetSpec, layout: DatasetLayout, connect, model) -> tuple[dict, dict]:
    """The model's training and holdout rows from the warehouse; a model whose split is gone names the way out."""
    with model_failures():
        return pipeline.read_splits(layout, connect, model, retrain_hint=retrain_hint(spec))
