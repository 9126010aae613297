"""New-data sensors: content hashes and ETags, half-written files, a cursor that survives restarts, S3 via moto."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from genesis_pipelines.defs.factory import build_dataset_defs, twin_job_name
from genesis_pipelines.defs.resources import default_resources
from genesis_pipelines.engine.core.errors import SourceError
from genesis_pipelines.engine.core.spec import load_spec, parse_spec
from genesis_pipelines.engine.sources.io import read_source_table
from genesis_pipelines.engine.sources.locations import source_table_names
from genesis_pipelines.engine.sources.watch import load_cursor
from genesis_pipelines_tests.helpers import Ticker, dataset_defs, write_shop

pytestmark = pytest.mark.dagster  # so the unit tier never imports this module (it loads Dagster)


def _sensor(spec_path: Path, name: str = "shop_new_data") -> tuple[dg.Definitions, dg.SensorDefinition]:
    defs = dataset_defs(spec_path)
    return defs, defs.resolve_sensor_def(name)


def _keys(request: dg.RunRequest) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection}


@pytest.fixture
def shop_sensor(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    defs, sensor = _sensor(spec)
    return spec, defs, Ticker(sensor, dg.DagsterInstance.ephemeral())


@pytest.mark.dagster
def test_sensor_is_registered_stopped_and_targets_what_it_requests(shop_sensor):
    _, defs, ticker = shop_sensor
    assert ticker.sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # one job per dataset: a sensor's run is the subset of the twin job it requests (its description says which)
    assert ticker.sensor.job_name == twin_job_name("shop")
    assert defs.resolve_sensor_def("shop_drift_retrain").job_name == twin_job_name("shop")
    assert {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")} == {twin_job_name("shop")}
    assert "refreshes the drift asset" in ticker.sensor.description and "genesis/requests=refresh" in ticker.sensor.description
    assert ticker.sensor.minimum_interval_seconds == 60
    assert {s.name for s in defs.sensors} == {"shop_new_data", "shop_drift_retrain"}


@pytest.mark.dagster
def test_files_trigger_once_when_stable_then_not_again(shop_sensor):
    spec, defs, ticker = shop_sensor
    first = ticker.tick()
    assert not first.run_requests, "a file seen once may still be growing"
    second = ticker.tick()
    (request,) = second.run_requests
    keys = _keys(request)
    # new data is loaded and measured; retraining is the drift sensor's call (test_drift)
    assert keys == {"shop/source/customers", "shop/source/orders", "shop/drift"}
    assert request.run_key.startswith("shop-new-data-")
    assert request.tags["genesis/trigger"] == "new_data" and request.tags["genesis/requests"] == "refresh"
    twin = defs.resolve_job_def(twin_job_name("shop"))
    assert keys < {k.to_user_string() for k in twin.asset_layer.selected_asset_keys}, "a strict subset of its job"
    # the run launched for it holds those steps only (not the schema, model or synthetic tables)
    subset = twin.get_subset(asset_selection=set(request.asset_selection))
    assert {k.to_user_string() for k in subset.asset_layer.selected_asset_keys} == keys
    assert not ticker.tick().run_requests
    assert not ticker.tick().run_requests


@pytest.mark.dagster
def test_on_change_all_retrains_everything_downstream(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    text = spec.read_text().replace("source: {kind: csv_folder, path: data}",
                                    "source: {kind: csv_folder, path: data, watch: {on_change: all}}")
    assert text != spec.read_text()
    spec.write_text(text)
    _, sensor = _sensor(spec)
    ticker = Ticker(sensor, dg.DagsterInstance.ephemeral())
    assert not ticker.tick().run_requests
    (request,) = ticker.tick().run_requests
    assert {"shop/source/orders", "shop/model", "shop/synthetic/orders", "shop/quality_report", "shop/drift"} <= _keys(request)


@pytest.mark.dagster
def test_touched_file_with_same_bytes_does_not_trigger(shop_sensor):
    spec, _, ticker = shop_sensor
    ticker.tick(), ticker.tick()
    orders = spec.parent / "data" / "orders.csv"
    stat = orders.stat()
    os.utime(orders, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert not ticker.tick().run_requests  # new mtime: not yet stable
    assert not ticker.tick().run_requests  # stable, hashed, same content: no run


@pytest.mark.dagster
def test_half_written_file_waits_until_size_is_stable(shop_sensor):
    spec, _, ticker = shop_sensor
    ticker.tick(), ticker.tick()
    orders = spec.parent / "data" / "orders.csv"
    lines = orders.read_text().splitlines(keepends=True)
    with orders.open("a") as handle:  # an upload in progress: half of the new rows
        handle.write("".join(lines[1:50]))
        handle.flush()
        assert not ticker.tick().run_requests
        handle.write("".join(lines[50:100]))  # still growing
        handle.flush()
        assert not ticker.tick().run_requests
    (request,) = ticker.tick().run_requests  # unchanged since the last tick: complete
    assert "shop/source/orders" in _keys(request) and "shop/source/customers" not in _keys(request)
    assert not ticker.tick().run_requests, "a change triggers exactly once"


@pytest.mark.dagster
def test_success_marker_makes_a_new_file_ready_at_once(shop_sensor):
    spec, _, ticker = shop_sensor
    ticker.tick(), ticker.tick()
    customers = spec.parent / "data" / "customers.csv"
    customers.write_text(customers.read_text().replace("retail", "RETAIL"))
    (spec.parent / "data" / "_SUCCESS").write_text("")
    (request,) = ticker.tick().run_requests
    assert _keys(request) >= {"shop/source/customers"} and "shop/source/orders" not in _keys(request)


@pytest.mark.dagster
def test_cursor_survives_a_restart_and_keys_follow_content(shop_sensor):
    spec, _, ticker = shop_sensor
    ticker.tick()
    first_key = ticker.tick().run_requests[0].run_key
    saved = ticker.cursor
    assert json.loads(saved)["files"], "the cursor is plain JSON: per-file hash and size"
    _, sensor = _sensor(spec)  # a new process: definitions rebuilt, only the persisted cursor carries over
    restarted = Ticker(sensor, dg.DagsterInstance.ephemeral())
    restarted.cursor = saved
    assert not restarted.tick().run_requests
    orders = spec.parent / "data" / "orders.csv"
    original = orders.read_bytes()
    orders.write_bytes(original.replace(b"SPRING", b"SUMMER"))
    restarted.tick()
    changed = restarted.tick().run_requests[0].run_key
    assert changed != first_key
    assert load_cursor("not json") == load_cursor(None), "an unreadable cursor starts afresh"


# ---------------------------------------------------------------- S3, against a local moto server


@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_shop(moto_endpoint, tmp_path, monkeypatch, isolated_data):
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    local = write_shop(tmp_path / "local").parent / "data"
    bucket = f"genesis-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    for path in local.glob("*.csv"):
        client.upload_file(str(path), bucket, f"landing/shop/{path.name}")
    spec_path = tmp_path / "s3spec" / "dataset.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text((tmp_path / "local" / "dataset.yaml").read_text().replace(
        "source: {kind: csv_folder, path: data}", f"source: {{path: 's3://{bucket}/landing/shop'}}"))
    return spec_path, client, bucket, local


@pytest.mark.dagster
def test_s3_source_reads_like_a_folder(s3_shop):
    spec_path, _, _, local = s3_shop
    spec = load_spec(spec_path)
    assert spec.source.kind == "s3_csv" and spec.source.prefix == "landing/shop"
    remote = read_source_table(spec, "orders")
    pd.testing.assert_frame_equal(remote, read_source_table(load_spec(local.parent / "dataset.yaml"), "orders"))
    unlisted = parse_spec({"name": "s3any", "source": {"kind": "s3_csv", "bucket": spec.source.bucket, "prefix": "landing/shop"}})
    assert source_table_names(unlisted) == ["customers", "orders"]


@pytest.mark.dagster
def test_s3_sensor_uses_etags_and_waits_for_stable_uploads(s3_shop):
    spec_path, client, bucket, local = s3_shop
    _, sensor = _sensor(spec_path)
    ticker = Ticker(sensor, dg.DagsterInstance.ephemeral())
    assert not ticker.tick().run_requests
    (request,) = ticker.tick().run_requests
    assert {"shop/source/customers", "shop/source/orders"} <= _keys(request)
    client.upload_file(str(local / "orders.csv"), bucket, "landing/shop/orders.csv")  # same bytes, new LastModified
    ticker.tick()
    assert not ticker.tick().run_requests, "same ETag: no run"
    changed = (local / "orders.csv").read_text().replace("VIP", "GOLD")
    client.put_object(Bucket=bucket, Key="landing/shop/orders.csv", Body=changed.encode())
    client.put_object(Bucket=bucket, Key="landing/shop/_SUCCESS", Body=b"")
    (request,) = ticker.tick().run_requests  # the marker says the upload is complete
    assert "shop/source/orders" in _keys(request) and "shop/source/customers" not in _keys(request)
    assert not ticker.tick().run_requests


@pytest.mark.dagster
def test_s3_source_materializes_through_the_asset(s3_shop):
    spec_path, *_ = s3_shop
    defs = build_dataset_defs(load_spec(spec_path))
    source = next(a for a in defs.assets if dg.AssetKey(["shop", "source", "orders"]) in a.keys)
    assert source.op.retry_policy.max_retries == 3, "transient S3 errors are retried with backoff"
    result = dg.materialize(assets=list(defs.assets), resources=default_resources(),
                            selection=[dg.AssetKey(["shop", "source", "orders"])], instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.event_specific_data.materialization.metadata["dagster/row_count"].value == 240


@pytest.mark.dagster
def test_missing_bucket_is_a_clear_error(s3_shop):
    spec = parse_spec({"name": "gone", "source": {"path": "s3://no-such-bucket-genesis/x"}})
    with pytest.raises(SourceError, match=r"no-such-bucket-genesis.*NoSuchBucket"):
        source_table_names(spec)
