"""Synthetic tables to S3 as Parquet against a local moto server on 127.0.0.1: round trip, a transient error
retried by the RetryPolicy, and a missing bucket failing at once with its name."""

from __future__ import annotations

import io

import dagster as dg
import pandas as pd
import pytest

from genesis_pipelines.defs.assets.s3_export import s3_export_key
from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.defs.io_managers import EXPORT_URI_ENV, IO_MANAGER_KEY, S3ParquetIOManager
from genesis_pipelines.defs.resources import default_resources
from genesis_pipelines.engine.core.spec import load_spec
from genesis_pipelines_tests.helpers import write_shop

pytestmark = pytest.mark.dagster

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e '.[dev]')")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def s3_endpoint():
    try:
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot start a local moto S3 server on 127.0.0.1: {exc.__class__.__name__}: {exc}")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def shop_generated(tmp_path_factory, s3_endpoint):
    """The shop dataset generated up to its synthetic tables once (no S3 yet)."""
    root = tmp_path_factory.mktemp("s3shop")
    spec_path = write_shop(root / "shop")
    env = {"GENESIS_DATA_DIR": str(root / "data"), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_endpoint}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        for k in ("GENESIS_WAREHOUSE", EXPORT_URI_ENV, "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(k, raising=False)
        defs = build_dataset_defs(load_spec(spec_path))
        selection = [k for a in defs.assets for k in a.keys if k.path[1] in ("source", "schema", "pii_scan", "training_plan", "model", "synthetic")]
        result = dg.materialize(assets=list(defs.assets), resources=default_resources(), selection=selection,
                                instance=dg.DagsterInstance.ephemeral())
        assert result.success
        yield spec_path, env


@pytest.fixture
def s3_env(shop_generated, monkeypatch):
    spec_path, env = shop_generated
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    return spec_path


def _export(spec_path, uri: str, monkeypatch, tables=("customers", "orders"), **manager):
    monkeypatch.setenv(EXPORT_URI_ENV, uri)
    defs = build_dataset_defs(load_spec(spec_path))
    resources = default_resources()
    assert IO_MANAGER_KEY in resources  # chosen by the env var
    if manager:
        resources[IO_MANAGER_KEY] = S3ParquetIOManager(uri=uri, **manager)
    synthetic = [a for a in defs.assets if any(k.path[1] == "synthetic" for k in a.keys)]
    exports = [a for a in defs.assets if any(k.path[1] == "synthetic_s3" for k in a.keys)]
    assert len(exports) == 2
    return dg.materialize(assets=exports + synthetic, resources=resources, instance=dg.DagsterInstance.ephemeral(),
                          selection=[s3_export_key("shop", t) for t in tables], raise_on_error=False)


def _retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def test_without_the_env_var_there_is_no_s3_asset(s3_env, monkeypatch):
    monkeypatch.delenv(EXPORT_URI_ENV, raising=False)
    defs = build_dataset_defs(load_spec(s3_env))
    assert not [k for a in defs.assets for k in a.keys if k.path[1] == "synthetic_s3"]
    assert IO_MANAGER_KEY not in default_resources()


def test_synthetic_tables_round_trip_through_s3(s3_env, monkeypatch):
    client = boto3.client("s3")
    client.create_bucket(Bucket="twins")
    result = _export(s3_env, "s3://twins/prod/v1", monkeypatch)
    assert result.success
    body = client.get_object(Bucket="twins", Key="prod/v1/shop/orders.parquet")["Body"].read()
    orders = pd.read_parquet(io.BytesIO(body))
    assert len(orders) == 240 and "customer_id" in orders.columns
    meta = result.asset_materializations_for_node("shop__synthetic_s3__orders")[0].metadata
    assert meta["uri"].value == "s3://twins/prod/v1/shop/orders.parquet" and meta["dagster/row_count"].value == 240
    # the same IO manager loads it back for downstream assets
    manager = S3ParquetIOManager(uri="s3://twins/prod/v1")
    loaded = manager.load_input(dg.build_input_context(asset_key=s3_export_key("shop", "customers")))
    assert len(loaded) == 60


def test_transient_error_is_retried_with_backoff(s3_env, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="flaky")
    from botocore.exceptions import ConnectionClosedError

    calls = {"n": 0}

    def fail_once(request, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionClosedError(endpoint_url="s3")

    boto3.setup_default_session()  # clients copy the session's hooks when created, inside the step
    boto3.DEFAULT_SESSION.events.register("before-send.s3.PutObject", fail_once)
    try:
        # botocore's own retries off: the retry seen here is Dagster's RetryPolicy
        result = _export(s3_env, "s3://flaky/p", monkeypatch, tables=("customers",), max_attempts=1)
    finally:
        boto3.DEFAULT_SESSION = None
    assert result.success
    assert _retries(result) == 1 and calls["n"] == 2
    assert boto3.client("s3").head_object(Bucket="flaky", Key="p/shop/customers.parquet")["ContentLength"] > 0


def test_missing_bucket_fails_at_once_naming_the_bucket(s3_env, monkeypatch):
    result = _export(s3_env, "s3://no-such-bucket-here/x", monkeypatch, tables=("customers",))
    assert not result.success
    assert _retries(result) == 0
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no-such-bucket-here" in failure.step_failure_data.error.message or \
        "no-such-bucket-here" in str(failure.step_failure_data.user_failure_data)
    assert "does not exist" in str(failure.step_failure_data.user_failure_data.description)
