"""Run tags that steer a run (seed, model version), the code version of every asset, and clear model errors."""


from pathlib import Path

import dagster as dg

from genesis_pipelines.engine.errors import ModelError
from genesis_pipelines.engine.lineage import engine_code_version
from genesis_pipelines.engine.relational import RelationalModel, load_model
from genesis_pipelines.engine.spec import DatasetSpec
from genesis_pipelines.engine.splits import read_splits

SEED_TAG = "genesis/seed"  # set by the regeneration schedule: a new seed each tick
MODEL_VERSION_TAG = "genesis/model_version"  # regenerate from an earlier model version
CODE_VERSION = engine_code_version()


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


def run_model(context, spec: DatasetSpec, model_root: Path) -> tuple[RelationalModel, Path]:
    """The model named by the run tag, else the latest; a missing or corrupt one names the way out."""
    version = run_tags(context).get(MODEL_VERSION_TAG) or None
    try:
        return load_model(model_root, version)
    except ModelError as exc:
        raise dg.Failure(description=f"{exc} (retrain: materialize the asset {spec.name}/model)") from None


def split_rows(con, spec: DatasetSpec, model: RelationalModel) -> tuple[dict, dict]:
    """The model's training and holdout rows from the warehouse; a model whose split is gone names the way out."""
    try:
        return read_splits(con, spec.name, model, model.tables, retrain_hint=f"retrain: materialize the asset {spec.name}/model")
    except ModelError as exc:
        raise dg.Failure(description=str(exc)) from None
