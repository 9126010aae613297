"""engine.pipeline: one pipeline for both front ends; checks judge what they gate; the CLI's writer lock and its
killed exports. (The engine-only parts, atomic publication and the lock itself, are tested in test_export and
test_pipeline_engine, so the unit tier never imports this module: it loads Dagster and the CLI.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from genesis_pipelines.cli import main
from genesis_pipelines.defs.lineage import MODEL_VERSION_TAG, SEED_TAG
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.pipeline import DatasetLayout
from genesis_pipelines.engine.sources.export import versions_dir
from genesis_pipelines_tests.helpers import PROJECT_ROOT, dataset_defs, write_shop

pytestmark = pytest.mark.dagster  # every test here runs Dagster or the CLI (those marked cli too)

MODEL = dg.AssetKey(["shop", "model"])
SYNTHETIC = [dg.AssetKey(["shop", "synthetic", "customers"]), dg.AssetKey(["shop", "synthetic", "orders"])]
FILES = dg.AssetKey(["shop", "synthetic_files"])
REPORTS = [dg.AssetKey(["shop", "quality_report"]), dg.AssetKey(["shop", "privacy_report"])]
# what differs between two trainings of the same data by design: the version name, the clock, the guards' salt
VOLATILE_MODEL_FIELDS = ("version", "created_at", "pii_guard_salt")


def _env(mp: pytest.MonkeyPatch, data: Path) -> None:
    mp.setenv("GENESIS_DATA_DIR", str(data))
    mp.delenv("GENESIS_WAREHOUSE", raising=False)


def _run(defs, instance, selection, **tags) -> dg.ExecuteInJobResult:
    return dg.materialize(assets=[*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance,
                          selection=selection, tags=tags, raise_on_error=False)


def _model_contents(layout: DatasetLayout) -> tuple[dict, dict[str, str], dict]:
    """model.json without the volatile fields, a digest of every generator/relation file, and the suites."""
    model, directory = pipeline.load_model(layout)
    record = json.loads((directory / "model.json").read_text())
    for name in VOLATILE_MODEL_FIELDS:
        record.pop(name)
    record["metrics"].pop("training_seconds")
    files = {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
             for folder in ("tables", "relations") for p in sorted((directory / folder).rglob("*")) if p.is_file()}
    guards = {name: len(json.loads((directory / name).read_text())) for name in ("pii_guard.json", "record_guard.json")}
    suites = json.loads((directory / "expectations.json").read_text())
    return record, files, {"guards": guards, "suites": suites}


def _strip(report: dict) -> dict:
    """The report as JSON, without the minute it was written at (the header's `generated_at`)."""
    report = json.loads(json.dumps(report, sort_keys=True, default=str))
    assert report["context"].pop("generated_at")
    return report


@pytest.fixture(scope="module")
def both_front_ends(tmp_path_factory):
    """The shop trained by the CLI (data dir `cli`) and by the Dagster assets (data dir `dagster`)."""
    root = tmp_path_factory.mktemp("front_ends")
    spec = write_shop(root / "shop")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root / "cli")
        assert main(["generate", "--spec", str(spec)]) == 0
        assert main(["evaluate", "--spec", str(spec)]) == 0
        assert main(["privacy-audit", "--spec", str(spec)]) == 0
        _env(mp, root / "dagster")
        defs = dataset_defs(spec)
        instance = dg.DagsterInstance.ephemeral()
        assert _run(defs, instance, dg.AssetSelection.assets(MODEL).upstream()).success
        yield spec, root, mp


@pytest.mark.dagster
def test_a_model_trained_by_the_cli_and_by_the_assets_holds_the_same_things(both_front_ends):
    _, root, _ = both_front_ends
    cli, dagster = (_model_contents(DatasetLayout(root / name, "shop")) for name in ("cli", "dagster"))
    assert cli[0] == dagster[0], "model.json differs beyond version, clock and salt"
    assert cli[1] and cli[1] == dagster[1], "the generators' saved state differs"
    assert cli[2] == dagster[2], "the expectation suites (or the guards' sizes) differ"
    assert set(cli[2]["suites"]["suites"]) == {"customers", "orders"}


@pytest.mark.dagster
def test_both_front_ends_give_the_same_reports_and_files_for_the_same_model_and_seed(both_front_ends):
    spec, root, mp = both_front_ends
    layout = DatasetLayout(root / "cli", "shop")
    by_cli = {k: json.loads((layout.reports / f"{k}.json").read_text()) for k in ("quality_report", "privacy_report")}
    files_by_cli = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(layout.synthetic.iterdir())}
    version = by_cli["quality_report"]["model_version"]
    # the Dagster front end on the CLI's data dir, model and seed (the CLI's reports are overwritten)
    _env(mp, root / "cli")
    defs = dataset_defs(spec)
    result = _run(defs, dg.DagsterInstance.ephemeral(), [*SYNTHETIC, FILES, *REPORTS],
                  **{MODEL_VERSION_TAG: version, SEED_TAG: str(spec_seed(spec))})
    assert result.success
    by_dagster = {k: json.loads((layout.reports / f"{k}.json").read_text()) for k in ("quality_report", "privacy_report")}
    assert _strip(by_dagster["quality_report"]) == _strip(by_cli["quality_report"])
    assert _strip(by_dagster["privacy_report"]) == _strip(by_cli["privacy_report"])
    assert by_cli["quality_report"].get("utility"), "the quality report has its utility section in both"
    assert "no_pii_leak" in by_dagster["privacy_report"]["passed"]
    assert (layout.reports / version / "privacy_report.json").is_file(), "a copy per model version in both"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(layout.synthetic.iterdir())} == files_by_cli
    # the Dagster expectations check finds the suite the CLI saved with its model
    evaluations = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    assert evaluations[("orders", "expectations")].metadata["expectations_evaluated"].value > 0


def spec_seed(spec_path: Path) -> int:
    from genesis_pipelines.engine.core.spec import load_spec

    return load_spec(spec_path).seed


# ---------------------------------------------------------------- checks judge exactly what they gate


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root / "data")
        defs = dataset_defs(write_shop(root / "shop"))
        instance = dg.DagsterInstance.ephemeral()
        first = _run(defs, instance, dg.AssetSelection.assets(MODEL).upstream())
        second = _run(defs, instance, [MODEL])
        assert first.success and second.success
        versions = [next(e.event_specific_data.materialization.metadata["model_version"].value
                         for e in r.get_asset_materialization_events()
                         if e.asset_key == MODEL) for r in (first, second)]
        yield defs, instance, root / "data", versions


def _check_versions(result: dg.ExecuteInJobResult) -> dict[tuple[str, str], str]:
    return {(e.asset_key.to_user_string(), e.check_name): e.metadata["model_version"].value
            for e in result.get_asset_check_evaluations()}


@pytest.mark.dagster
def test_checks_judge_the_runs_model_version(two_versions):
    defs, instance, _, (v1, v2) = two_versions
    assert v1 != v2
    result = _run(defs, instance, [*SYNTHETIC, *REPORTS], **{MODEL_VERSION_TAG: v1})
    assert result.success
    judged = _check_versions(result)
    assert len(judged) == 2 * 3 + 2
    assert set(judged.values()) == {v1}, judged  # not the latest model, v2
    # a check run on its own, without the tag, judges the version its asset's materialization recorded
    alone = dg.materialize(assets=[*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance,
                           selection=dg.AssetSelection.checks(dg.AssetCheckKey(SYNTHETIC[1], "keys_valid")),
                           raise_on_error=False)
    assert alone.success and set(_check_versions(alone).values()) == {v1}
    assert set(_check_versions(_run(defs, instance, [*SYNTHETIC])).values()) == {v2}


@pytest.mark.dagster
def test_report_gates_judge_their_own_materialization_not_the_file(two_versions, monkeypatch):
    defs, instance, _, (_, v2) = two_versions
    real_write = pipeline.write_report

    def writes_a_failing_report(directory, dataset, kind, report):  # another run rewrote the file on disk
        path = real_write(directory, dataset, kind, report)
        bogus = {**report, "overall_score": 0.0, "passed": {name: False for name in report.get("passed", {})}}
        (Path(directory) / f"{kind}.json").write_text(json.dumps(bogus, default=str))
        return path

    monkeypatch.setattr(pipeline, "write_report", writes_a_failing_report)
    result = _run(defs, instance, [*SYNTHETIC, *REPORTS])
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialized = {e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    quality = evaluations["quality_threshold"]
    assert quality.passed and quality.metadata["overall_score"].value == materialized["quality_report"]["overall_score"].value > 0
    assert evaluations["privacy_gates"].passed and evaluations["privacy_gates"].metadata["model_version"].value == v2


@pytest.mark.cli
def test_cli_export_killed_mid_export_keeps_the_previous_files(tmp_path, isolated_data, monkeypatch, capsys):
    spec = write_shop(tmp_path / "shop")
    assert main(["generate", "--spec", str(spec)]) == 0
    synthetic = DatasetLayout(isolated_data, "shop").synthetic
    before = {p.name: p.read_bytes() for p in synthetic.iterdir()}
    from genesis_pipelines.engine.sources import io

    real_export = io.export_warehouse_table
    calls = []

    def dies_on_the_second_table(con, schema, table, directory, formats=("parquet", "csv")):
        calls.append(table)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-export")
        return real_export(con, schema, table, directory, formats)

    monkeypatch.setattr(io, "export_warehouse_table", dies_on_the_second_table)
    assert main(["generate", "--spec", str(spec), "--seed", "7"]) == 130
    assert {p.name: p.read_bytes() for p in synthetic.iterdir()} == before
    assert not list(versions_dir(synthetic).glob(".staging-*"))


# ---------------------------------------------------------------- LATEST and a second writer


@pytest.mark.cli
def test_latest_moves_only_after_the_split_is_committed(tmp_path, isolated_data, monkeypatch, capsys):
    spec = write_shop(tmp_path / "shop")
    assert main(["generate", "--spec", str(spec)]) == 0
    layout = DatasetLayout(isolated_data, "shop")
    latest = (layout.models / "LATEST.json").read_text()
    versions = sorted(p.name for p in layout.models.iterdir() if p.is_dir())
    from genesis_pipelines.engine.synthesis import splits

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(splits, "write_splits", disk_full)
        assert main(["generate", "--spec", str(spec), "--train"]) == 2
    assert (layout.models / "LATEST.json").read_text() == latest
    assert sorted(p.name for p in layout.models.iterdir() if p.is_dir()) == versions, "the unpublished model is removed"
    # what a killed training leaves (its staging folder, a pointer temp file) goes with the next training
    (layout.models / ".staging-v1-killed" / "tables").mkdir(parents=True)
    (layout.models / ".LATEST.json.x1y2").write_text("{")
    assert main(["generate", "--spec", str(spec), "--train"]) == 0
    assert (layout.models / "LATEST.json").read_text() != latest
    assert not [p for p in layout.models.iterdir() if p.name.startswith(".")]


HOLDER = textwrap.dedent("""
    import sys, time
    from genesis_pipelines.engine.pipeline import DatasetLayout, writer_lock

    with writer_lock(DatasetLayout(sys.argv[1], "shop")):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


@pytest.mark.cli  # the CLI in process beside fresh interpreters holding the lock; the fast tier keeps the lock's own test
def test_a_second_writer_fails_or_waits_before_it_trains(tmp_path, isolated_data, capsys):
    spec = write_shop(tmp_path / "shop")
    layout = DatasetLayout(isolated_data, "shop")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(isolated_data), "60"], stdout=subprocess.PIPE, text=True,
                              cwd=PROJECT_ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["generate", "--spec", str(spec), "--train"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "another run" in err and "fitting" not in err
        assert not layout.models.exists() and not (isolated_data / "warehouse.duckdb").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    short = subprocess.Popen([sys.executable, "-c", HOLDER, str(isolated_data), "1"], stdout=subprocess.PIPE, text=True,
                             cwd=PROJECT_ROOT)
    try:
        assert short.stdout.readline().strip() == "locked"
        assert main(["generate", "--spec", str(spec), "--train", "--wait", "120"]) == 0
        assert "waiting for it" in capsys.readouterr().err
    finally:
        short.wait(timeout=30)
    assert (layout.models / "LATEST.json").is_file()


# ---------------------------------------------------------------- a code location no dataset can break


def _inferred_shop(folder: Path) -> Path:
    spec = write_shop(folder)
    text = spec.read_text()
    spec.write_text(text.replace("foreign_keys:\n  - {child: orders.customer_id, parent: customers.customer_id}\n", ""))
    assert "foreign_keys" not in spec.read_text()
    return spec


@pytest.mark.dagster
def test_definitions_load_reads_no_source_data_once_the_plan_is_stored(tmp_path, isolated_data, monkeypatch):
    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.engine.analysis import schema_inference
    from genesis_pipelines.engine.core.spec import load_spec
    from genesis_pipelines.engine.sources import io

    spec_path = _inferred_shop(tmp_path / "shop")
    orders = dg.AssetKey(["shop", "synthetic", "orders"])

    def parents(defs) -> set[str]:
        node = next(a for a in defs.assets if orders in a.keys)
        return {k.to_user_string() for k in node.asset_deps[orders]}

    first = build_dataset_defs(load_spec(spec_path))  # no state yet: planned from the source once, and stored
    assert parents(first) == {"shop/model", "shop/synthetic/customers"}
    assert (isolated_data / "shop" / "plan.json").is_file()

    def no_reading(*args, **kwargs):
        raise AssertionError("definitions load read source data")

    with monkeypatch.context() as mp:
        mp.setattr(io, "read_source_table", no_reading)
        mp.setattr(schema_inference, "analyse", no_reading)
        assert parents(build_dataset_defs(load_spec(spec_path))) == parents(first)
        # a changed spec invalidates the state: planning it again needs the data
        spec_path.write_text(spec_path.read_text() + "seed: 3\n")
        with pytest.raises(AssertionError, match="read source data"):
            build_dataset_defs(load_spec(spec_path))
    # the schema step stores the plan it analysed: the next load needs no data again
    (isolated_data / "shop" / "plan.json").unlink()
    defs = dataset_defs(spec_path)
    assert _run(defs, dg.DagsterInstance.ephemeral(), dg.AssetSelection.assets(dg.AssetKey(["shop", "schema"])).upstream()).success
    with monkeypatch.context() as mp:
        mp.setattr(io, "read_source_table", no_reading)
        assert parents(build_dataset_defs(load_spec(spec_path))) == {"shop/model", "shop/synthetic/customers"}


@pytest.mark.dagster
def test_a_broken_dataset_is_its_own_failing_asset_and_the_others_load(tmp_path, isolated_data, monkeypatch):
    from genesis_pipelines.definitions import build_definitions

    specs = tmp_path / "specs"
    write_shop(specs / "shop")
    bad_spec = write_shop(specs / "bad_spec")
    bad_spec.write_text(bad_spec.read_text().replace("name: shop", "name: bad_spec\nholdout_fraction: 7"))
    unreadable = _inferred_shop(specs / "unreadable")
    unreadable.write_text(unreadable.read_text().replace("name: shop", "name: unreadable"))
    (specs / "unreadable" / "data" / "orders.csv").write_bytes(b"order_id,customer_id\n1,2,3,4\n\xff\xfe secret@x.test\n")
    write_shop(specs / "shop_again")  # a second spec named `shop`
    monkeypatch.setenv("GENESIS_SPECS_DIR", str(specs))
    defs = build_definitions()
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"shop_synthetic_twin"}
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"bad_spec/definition_error", "unreadable/definition_error", "shop_again/definition_error",
            "shop/synthetic/orders"} <= keys
    for name in ("bad_spec", "unreadable"):
        node = defs.resolve_assets_def(dg.AssetKey([name, "definition_error"]))
        error = node.metadata_by_key[dg.AssetKey([name, "definition_error"])]["error"]
        assert "secret" not in error and error
        result = dg.materialize([node], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert not result.success
        text = "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)
        assert str(specs / name / "dataset.yaml") in text and "secret" not in text
    assert "holdout_fraction" in defs.resolve_assets_def(dg.AssetKey(["bad_spec", "definition_error"])).metadata_by_key[
        dg.AssetKey(["bad_spec", "definition_error"])]["error"]


@pytest.mark.slow  # a fresh interpreter importing Dagster
@pytest.mark.dagster
def test_loading_the_definitions_imports_no_training_or_evaluation_code(tmp_path):
    import os

    code = ("import sys; from genesis_pipelines.definitions import build_definitions; build_definitions(); "
            "heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'genesis_pipelines.engine.synthesis.relational', "
            "*(f'genesis_pipelines.engine.evaluation.{e}' for e in ('fidelity', 'utility', 'privacy', 'attacks', "
            "'report', 'drift', 'expectations'))) if m in sys.modules]; assert not heavy, heavy")
    env = {**os.environ, "GENESIS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENESIS_SPECS_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
