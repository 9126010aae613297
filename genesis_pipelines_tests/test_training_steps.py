"""engine.training: the model trained as separate steps (plan, each table on its own, assembly) is the model
relational.train makes in one go, and gives the same synthetic tables for the same seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from genesis_pipelines.engine.analysis import schema_inference
from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.core.spec import load_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.sources.io import read_source_table
from genesis_pipelines.engine.sources.locations import source_table_names
from genesis_pipelines.engine.synthesis import relational
from genesis_pipelines.engine.synthesis.relational import training
from genesis_pipelines_tests.helpers import write_shop


def _inputs(spec_path: Path):
    spec = load_spec(spec_path)
    tables = {t: read_source_table(spec, t) for t in source_table_names(spec)}
    db_schema = schema_inference.analyse(spec, tables)
    return spec, tables, db_schema, pii.scan_tables(tables, db_schema, spec)


def _hashes(model, model_dir) -> dict[str, str]:
    frames = relational.generate_all(model, model_dir, seed=3)
    return {t: hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()
            for t, df in frames.items()}


def _contents(model) -> dict:
    record = model.model_dump(mode="json")
    for name in ("version", "created_at", "pii_guard_salt"):
        record.pop(name)
    record["metrics"].pop("training_seconds")
    for table in record["tables"].values():  # the generators' own clocks (fit_seconds, ...), not what they learned
        table["describe"] = {k: v for k, v in table["describe"].items() if not k.endswith("_seconds")}
    return record


@pytest.mark.parametrize("dataset", ["shop", pytest.param("chinook", marks=pytest.mark.slow)])
def test_steps_in_any_order_with_a_retried_table_make_the_same_model(dataset, tmp_path, request):
    if dataset == "shop":
        spec, tables, db_schema, findings = _inputs(write_shop(tmp_path / "shop"))
        whole, _ = relational.train(spec, db_schema, tables, findings, tmp_path / "whole")
        whole_dir = tmp_path / "whole" / whole.version
    else:  # the run's shared Chinook model is relational.train's in one go (trained once, maybe by another worker)
        trained = request.getfixturevalue("chinook_trained")
        spec, tables, db_schema, findings = trained.spec, trained.tables, trained.schema, trained.findings
        whole, whole_dir = trained.model, trained.model_dir

    root = tmp_path / "steps"
    plan = training.prepare_training(spec, db_schema, tables, findings, root)
    # what a step receives is data: the plan read back from its file, and only the tables it needs
    plan = training.load_plan(root, plan.version, spec)
    order = list(reversed(plan.db_schema.generation_order))  # children before parents: no table waits for another
    for table in order:
        needed = training.tables_needed(plan, findings, table)
        training.train_table(spec, plan, table, {t: tables[t] for t in needed}, findings, root)
    assert training.pending_tables(root, plan) == []
    retried = order[0]  # a table trained again (a retried step) replaces its earlier attempt
    training.train_table(spec, plan, retried, tables, findings, root)
    stepped = training.assemble(spec, plan, findings, root)
    stepped_dir = root / stepped.version

    assert _contents(stepped) == _contents(whole)
    files = [sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) for d in (whole_dir, stepped_dir)]
    assert files[0] == files[1] and "plan.json" not in files[1]
    assert relational.latest_version(root) == stepped.version
    assert _hashes(stepped, stepped_dir) == _hashes(whole, whole_dir)


def test_a_missing_table_or_another_spec_is_named(tmp_path):
    spec, tables, db_schema, findings = _inputs(write_shop(tmp_path / "shop"))
    plan = training.prepare_training(spec, db_schema, tables, findings, tmp_path / "models")
    first = plan.db_schema.generation_order[0]
    training.train_table(spec, plan, first, tables, findings, tmp_path / "models")
    with pytest.raises(ModelError, match="are not trained yet") as failed:
        training.assemble(spec, plan, findings, tmp_path / "models")
    assert plan.db_schema.generation_order[1] in str(failed.value) and first not in str(failed.value)
    changed = spec.model_copy(update={"seed": spec.seed + 1})
    with pytest.raises(ModelError, match="another version of the 'shop' spec"):
        training.load_plan(tmp_path / "models", plan.version, changed)
    # the plan holds row positions and aggregates, never a real value
    text = (training.staging_dir(tmp_path / "models", plan.version) / "plan.json").read_text()
    emails = tables["customers"]["email"].dropna().astype(str).tolist() if "email" in tables["customers"] else []
    assert emails and not any(e in text for e in emails[:20])
    assert json.loads(text)["format"] == training.PLAN_FORMAT
