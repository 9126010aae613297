"""The Dagster layer: the whole graph with dg.materialize, metadata, checks, and bad input that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster._serdes import serialize_value

from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.engine.core.spec import load_spec
from genesis_pipelines_tests.helpers import BUNDLED_SPECS, materialize_all, write_shop

pytestmark = pytest.mark.dagster


def _warehouse(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)


# ---------------------------------------------------------------- the whole graph on the bundled demo


@pytest.fixture(scope="module")
def chinook_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("chinook_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data_dir))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_all(BUNDLED_SPECS / "chinook" / "dataset.yaml", instance)
        yield result, instance, data_dir


def test_whole_chinook_graph_materializes_with_passing_checks(chinook_run):
    result, _, _ = chinook_run
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 11 * 3 + 2  # keys_valid, no_pii_leak, expectations per table; two report gates
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    assert failed == []


def test_every_asset_reports_metadata(chinook_run):
    result, _, _ = chinook_run
    materialized = {m.asset_key.to_user_string(): m.metadata for m in result.get_asset_materialization_events() and
                    [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]}
    tables = ["Album", "Artist", "Customer", "Employee", "Genre", "Invoice", "InvoiceLine", "MediaType", "Playlist",
              "PlaylistTrack", "Track"]
    for table in tables:
        for kind in ("source", "synthetic"):
            metadata = materialized[f"chinook/{kind}/{table}"]
            assert metadata["dagster/row_count"].value > 0
            assert metadata["dagster/column_schema"].value.columns
    assert materialized["chinook/schema"]["foreign_keys"].value == 11
    assert materialized["chinook/pii_scan"]["pii_columns"].value >= 15
    assert materialized["chinook/model"]["model_version"].value.startswith("v")
    assert materialized["chinook/quality_report"]["overall_score"].value >= 70
    assert materialized["chinook/privacy_report"]["unique_record_copies"].value == 0


def test_synthetic_twin_has_integrity_and_outputs(chinook_run):
    _, _, data_dir = chinook_run
    with _warehouse(data_dir) as con:
        orphans = con.execute(
            'select count(*) from synthetic_chinook."InvoiceLine" l '
            'left join synthetic_chinook."Track" t on l."TrackId" = t."TrackId" where t."TrackId" is null'
        ).fetchone()[0]
        dupes = con.execute(
            'select count(*) from (select "PlaylistId", "TrackId", count(*) c from synthetic_chinook."PlaylistTrack" '
            'group by 1, 2 having c > 1)'
        ).fetchone()[0]
        holdout = con.execute('select count(*) from holdout_chinook."Invoice"').fetchone()[0]
    assert orphans == 0 and dupes == 0 and holdout > 0
    for table in ("Customer", "PlaylistTrack"):
        assert (data_dir / "chinook" / "synthetic" / f"{table}.parquet").is_file()
        assert (data_dir / "chinook" / "synthetic" / f"{table}.csv").is_file()
    for report in ("quality_report", "privacy_report"):
        assert (data_dir / "chinook" / "reports" / f"{report}.html").stat().st_size > 1000
        json.loads((data_dir / "chinook" / "reports" / f"{report}.json").read_text())


def _real_identifiers() -> tuple[set[str], set[str]]:
    """Emails, phones and full names (never as a substring anywhere), and single names (never as a whole value).

    A lone surname may legitimately occur inside a fake street name ("Brooks Village"); as a whole cell it may not.
    """
    data = BUNDLED_SPECS / "chinook" / "data"
    anywhere: set[str] = set()
    whole: set[str] = set()
    for table in ("Customer", "Employee"):
        df = pd.read_csv(data / f"{table}.csv", dtype=str)
        anywhere |= set(df["Email"].dropna()) | set(df["Phone"].dropna())
        anywhere |= set((df["FirstName"] + " " + df["LastName"]).dropna())
        whole |= set(df["FirstName"].dropna()) | set(df["LastName"].dropna())
    return anywhere, whole


def test_no_real_pii_in_event_log_reports_or_output(chinook_run):
    result, instance, data_dir = chinook_run
    anywhere, whole = _real_identifiers()
    texts = {"event log": "\n".join(serialize_value(record) for record in instance.all_logs(result.run_id))}
    for path in (data_dir / "chinook" / "reports").rglob("*"):
        if path.is_file():
            texts[str(path.relative_to(data_dir))] = path.read_text(encoding="utf-8")
    with _warehouse(data_dir) as con:
        for table in ("Customer", "Employee", "Invoice", "Track"):
            frame = con.execute(f'select * from synthetic_chinook."{table}"').df()
            texts[f"synthetic {table}"] = frame.to_csv()
            cells = set(frame.astype(str).to_numpy().ravel())
            assert not cells & whole, f"a real first or last name is a whole value in synthetic {table}"
    for where, text in texts.items():
        leaked = [value for value in anywhere if value in text]
        assert not leaked, f"{len(leaked)} real identifiers found in {where}"


def test_rematerializing_one_table_reuses_stored_parents(chinook_run):
    _, instance, data_dir = chinook_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data_dir))
        with _warehouse(data_dir) as con:
            tracks_before = con.execute('select count(*) from synthetic_chinook."Track"').fetchone()[0]
        result = materialize_all(BUNDLED_SPECS / "chinook" / "dataset.yaml", instance,
                                 selection=[dg.AssetKey(["chinook", "synthetic", "InvoiceLine"])])
    assert result.success
    with _warehouse(data_dir) as con:
        assert con.execute('select count(*) from synthetic_chinook."Track"').fetchone()[0] == tracks_before
        orphans = con.execute(
            'select count(*) from synthetic_chinook."InvoiceLine" l left join synthetic_chinook."Invoice" i '
            'on l."InvoiceId" = i."InvoiceId" where i."InvoiceId" is null'
        ).fetchone()[0]
    assert orphans == 0


# ---------------------------------------------------------------- bad input never loses what was written


@pytest.fixture
def shop(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_all(spec, instance)
    assert result.success, "the clean shop dataset must materialize"
    return spec, instance, isolated_data


def _counts(data_dir: Path) -> dict:
    with _warehouse(data_dir) as con:
        return {
            schema: con.execute(f'select count(*) from {schema}."orders"').fetchone()[0]
            for schema in ("source_shop", "synthetic_shop")
        }


def _failure_text(result: dg.ExecuteInJobResult) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def test_malformed_file_fails_clearly_and_keeps_previous_tables(shop):
    spec, instance, data_dir = shop
    before = _counts(data_dir)
    latest = (data_dir / "shop" / "models" / "LATEST.json").read_text()
    orders = spec.parent / "data" / "orders.csv"
    orders.write_text(orders.read_text() + "999,1,2024-01-01\n")  # a short, ragged row
    result = materialize_all(spec, instance)
    assert not result.success
    assert "table 'orders'" in _failure_text(result) and "fields" in _failure_text(result)
    assert _counts(data_dir) == before
    assert (data_dir / "shop" / "models" / "LATEST.json").read_text() == latest


def test_header_only_table_loads_empty_and_missing_file_fails_naming_the_table(shop):
    spec, instance, data_dir = shop
    orders = spec.parent / "data" / "orders.csv"
    orders.write_text(orders.read_text().splitlines()[0] + "\n")
    result = materialize_all(spec, instance, selection=[dg.AssetKey(["shop", "source", "orders"])])
    assert result.success  # an empty table is a table (test_names_and_empty.py runs one through the whole graph)
    before = _counts(data_dir)
    orders.unlink()
    result = materialize_all(spec, instance, selection=[dg.AssetKey(["shop", "source", "orders"])])
    assert not result.success and "does not exist" in _failure_text(result)
    assert _counts(data_dir) == before


def test_fk_to_missing_column_fails_at_schema_and_keeps_old_schema(shop):
    spec, instance, data_dir = shop
    schema_before = (data_dir / "shop" / "schema.json").read_text()
    spec.write_text(spec.read_text().replace("parent: customers.customer_id", "parent: customers.client_id"))
    result = materialize_all(spec, instance)
    assert not result.success
    assert "customers.client_id does not exist" in _failure_text(result)
    assert (data_dir / "shop" / "schema.json").read_text() == schema_before


def test_cycle_of_required_keys_loads_with_one_key_deferred(tmp_path, isolated_data):
    spec = write_shop(tmp_path / "shop")
    text = spec.read_text().replace(
        "foreign_keys:\n", "foreign_keys:\n  - {child: customers.age, parent: orders.order_id}\n")
    spec.write_text(text)
    keys = {key.to_user_string() for asset in build_dataset_defs(load_spec(spec)).assets for key in asset.keys}
    assert {"shop/synthetic/customers", "shop/synthetic/orders"} <= keys


def test_shop_pii_is_replaced_and_keys_hold(shop):
    spec, _, data_dir = shop
    real = pd.read_csv(spec.parent / "data" / "customers.csv")
    with _warehouse(data_dir) as con:
        synthetic = con.execute('select * from synthetic_shop."customers"').df()
        orphans = con.execute(
            'select count(*) from synthetic_shop."orders" o left join synthetic_shop."customers" c '
            'on o.customer_id = c.customer_id where c.customer_id is null').fetchone()[0]
    assert orphans == 0
    assert not set(synthetic["email"]) & set(real["email"])
    assert not set(synthetic["phone"]) & set(real["phone"])
    assert set(synthetic["segment"]) <= set(real["segment"])
