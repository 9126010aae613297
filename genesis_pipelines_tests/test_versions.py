"""Versions and lineage: what each model records, code versions, regenerating from an earlier model, new seeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

import genesis_pipelines
from genesis_pipelines.definitions import build_definitions
from genesis_pipelines.defs.lineage import CODE_VERSION, MODEL_VERSION_TAG, SEED_TAG
from genesis_pipelines.engine.core.lineage import engine_code_version
from genesis_pipelines.engine.synthesis.relational import load_model
from genesis_pipelines_tests.helpers import dataset_defs, write_shop

pytestmark = pytest.mark.dagster  # so the unit tier never imports this module (it loads Dagster)

SYNTHETIC = [dg.AssetKey(["shop", "synthetic", "customers"]), dg.AssetKey(["shop", "synthetic", "orders"])]


def _metadata(result: dg.ExecuteInJobResult, key: str) -> dict:
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {k: v.value for e in events if e.asset_key.to_user_string() == key for k, v in e.metadata.items()}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """The shop trained twice (two model versions), synthetic tables from the second."""
    root = tmp_path_factory.mktemp("versions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(root / "data"))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        defs = dataset_defs(write_shop(root / "shop"))
        instance = dg.DagsterInstance.ephemeral()
        upstream = dg.AssetSelection.assets(*SYNTHETIC).upstream()
        first = dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=upstream)
        second = dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance,
                                selection=[dg.AssetKey(["shop", "model"]), *SYNTHETIC])
        assert first.success and second.success
        versions = [_metadata(r, "shop/model")["model_version"] for r in (first, second)]
        yield defs, instance, root / "data", versions, mp


@pytest.mark.dagster
def test_each_model_version_records_snapshot_code_settings_and_metrics(two_models):
    _, _, data, (v1, v2), _ = two_models
    assert v1 != v2
    model, directory = load_model(data / "shop" / "models", v1)
    assert model.source_fingerprint and model.code_version == engine_code_version()
    assert model.settings["generator"]["default"] == "gaussian_copula" and model.settings["scale"] == 1.0
    assert model.settings["seed"] == 0 and model.metrics["rows"] == {"customers": 60, "orders": 240}
    assert model.metrics["training_seconds"] >= 0
    old = json.loads((directory / "model.json").read_text())
    for field in ("code_version", "settings", "metrics"):  # a model saved before these fields existed still loads
        old.pop(field)
    (directory / "model.json").write_text(json.dumps(old))
    assert load_model(data / "shop" / "models", v1)[0].metrics == {}


@pytest.mark.dagster
def test_assets_carry_the_code_version(two_models):
    defs = two_models[0]
    assert CODE_VERSION.startswith(genesis_pipelines.__version__ + "+")
    graph = defs.resolve_asset_graph()
    for key in ("shop/source/orders", "shop/model", "shop/synthetic/orders", "shop/drift"):
        assert graph.get(dg.AssetKey.from_user_string(key)).code_version == CODE_VERSION


@pytest.mark.dagster
def test_regenerate_from_an_earlier_model_version_with_a_new_seed(two_models):
    defs, instance, _, (v1, v2), _ = two_models
    latest = instance.get_latest_materialization_event(SYNTHETIC[1]).asset_materialization.metadata
    assert latest["model_version"].value == v2
    result = dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=SYNTHETIC,
                            tags={MODEL_VERSION_TAG: v1, SEED_TAG: "1234"})
    assert result.success
    metadata = _metadata(result, "shop/synthetic/orders")
    assert metadata["model_version"] == v1 and metadata["seed"] == 1234
    event = instance.get_latest_materialization_event(SYNTHETIC[1]).asset_materialization
    assert event.tags["dagster/data_version"] == f"{v1}-1234-1.0"
    bad = dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=SYNTHETIC[:1],
                         tags={MODEL_VERSION_TAG: "v0-missing"}, raise_on_error=False)
    assert not bad.success
    text = "\n".join(str(e.event_specific_data.error) for e in bad.all_events if e.is_step_failure)
    assert "v0-missing" in text and "materialize the asset shop/model" in text


@pytest.mark.dagster
def test_schedule_regenerates_with_a_new_seed_each_tick(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    spec.write_text(spec.read_text() + 'schedule: "0 3 * * *"\n')
    defs = dataset_defs(spec)
    schedule = defs.resolve_schedule_def("shop_regeneration")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "shop_synthetic_twin"  # a subset of it: regeneration only, as its description says
    assert "(no retraining)" in schedule.description and "genesis/requests=regenerate" in schedule.description
    requests = []
    for day in (1, 2):
        when = datetime(2026, 1, day, 3, tzinfo=UTC)
        request = schedule(dg.build_schedule_context(scheduled_execution_time=when))
        requests.append(request)
        assert request.tags[SEED_TAG] == str(int(when.timestamp()))
    assert requests[0].tags[SEED_TAG] != requests[1].tags[SEED_TAG]
    assert requests[0].tags["genesis/trigger"] == "regeneration" and requests[0].tags["genesis/requests"] == "regenerate"
    keys = {k.to_user_string() for k in requests[0].asset_selection}
    assert keys == {"shop/synthetic/customers", "shop/synthetic/orders", "shop/synthetic_files", "shop/quality_report",
                    "shop/privacy_report"}  # the files are republished with the tables; no schema, PII scan or model
    subset = defs.resolve_job_def("shop_synthetic_twin").get_subset(asset_selection=set(requests[0].asset_selection))
    assert {k.to_user_string() for k in subset.asset_layer.selected_asset_keys} == keys


@pytest.mark.dagster
def test_removing_a_spec_keeps_its_stored_outputs(tmp_path, monkeypatch, isolated_data):
    write_shop(tmp_path / "specs" / "shop")
    monkeypatch.setenv("GENESIS_SPECS_DIR", str(tmp_path / "specs"))
    assert "shop_synthetic_twin" in {j.name for j in build_definitions().resolve_all_job_defs()}
    outputs = isolated_data / "shop" / "models" / "v1"
    outputs.mkdir(parents=True)
    (outputs / "model.json").write_text("{}")
    (isolated_data / "warehouse.duckdb").write_bytes(b"")
    for path in (tmp_path / "specs" / "shop").rglob("*"):
        if path.is_file():
            path.unlink()
    reloaded = build_definitions()
    assert "shop_synthetic_twin" not in {j.name for j in reloaded.resolve_all_job_defs()}
    assert (outputs / "model.json").is_file() and (isolated_data / "warehouse.duckdb").exists()


@pytest.mark.dagster
def test_reports_of_an_earlier_model_use_its_split_or_say_it_is_gone(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    defs = dataset_defs(spec)
    instance = dg.DagsterInstance.ephemeral()
    privacy = dg.AssetKey(["shop", "privacy_report"])
    model_and_synthetic = [dg.AssetKey(["shop", "model"]), *SYNTHETIC]

    def run(selection, **tags):
        return dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=selection,
                              tags=tags, raise_on_error=False)

    first = run(dg.AssetSelection.assets(*SYNTHETIC).upstream())
    same_snapshot = run(model_and_synthetic)
    v1, v2 = (_metadata(r, "shop/model")["model_version"] for r in (first, same_snapshot))
    # same source snapshot, same split settings: the stored split is v1's split too
    assert run([*SYNTHETIC, privacy], **{MODEL_VERSION_TAG: v1}).success

    orders = spec.parent / "data" / "orders.csv"
    orders.write_text("".join(orders.read_text().splitlines(keepends=True)[:200]))
    new_snapshot = run(dg.AssetSelection.assets(*SYNTHETIC).upstream())
    v3 = _metadata(new_snapshot, "shop/model")["model_version"]
    assert len({v1, v2, v3}) == 3
    stale = run([*SYNTHETIC, privacy], **{MODEL_VERSION_TAG: v1})
    assert not stale.success
    text = "\n".join(str(e.event_specific_data.error) for e in stale.all_events if e.is_step_failure)
    assert v1 in text and v3 in text and "materialize the asset shop/model" in text
    assert run([*SYNTHETIC, privacy], **{MODEL_VERSION_TAG: v3}).success
