"""Any table or column name (spaces, dots, dashes, non-ASCII, leading digits) and empty tables, end to end."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.cli import main as genesis_main
from genesis_pipelines.defs.assets.common import key_name, source_key, synthetic_key
from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.spec import load_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.sources.io import read_source_table
from genesis_pipelines.engine.sources.locations import source_table_names
from genesis_pipelines.engine.synthesis import relational
from genesis_pipelines.engine.synthesis.relational.model import EMPTY_METHOD
from genesis_pipelines_tests.helpers import materialize_all

pytestmark = pytest.mark.dagster

CUSTOMERS, LINES, REGIONS, RETURNS, LOOKUP = "Commandes clients", "order-lines", "Régions", "2024 returns", "Prénom 名前.v2"


def write_odd_names(folder: Path, *, customers: int = 60, lines: int = 240) -> Path:
    """Five tables whose names Dagster cannot take, columns likewise; three of them empty (header only):
    an empty parent (its child's FK is all null), an empty child, and an empty table with no keys."""
    rng = np.random.default_rng(3)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "N° client": np.arange(1, customers + 1),
        "segment-type": rng.choice(["retail", "online", "trade"], customers),
        "âge.ans": rng.integers(18, 80, customers),
        "région id": [""] * customers,
    }).to_csv(data / f"{CUSTOMERS}.csv", index=False)
    pd.DataFrame({
        "line id": np.arange(1, lines + 1),
        "N° client": rng.integers(1, customers + 1, lines),
        "montant €": np.round(rng.gamma(2.0, 30.0, lines), 2),
        "2024 qty": rng.integers(1, 5, lines),
    }).to_csv(data / f"{LINES}.csv", index=False)
    pd.DataFrame(columns=["région id", "nom"]).to_csv(data / f"{REGIONS}.csv", index=False)
    pd.DataFrame(columns=["retour id", "line id", "raison"]).to_csv(data / f"{RETURNS}.csv", index=False)
    pd.DataFrame(columns=["code", "libellé"]).to_csv(data / f"{LOOKUP}.csv", index=False)
    spec = folder / "dataset.yaml"
    spec.write_text(
        "name: odd\n"
        "source: {kind: csv_folder, path: data}\n"
        f'tables:\n  "{CUSTOMERS}": {{primary_key: "N° client"}}\n  "{LINES}": {{primary_key: line id}}\n'
        f'  "{REGIONS}": {{primary_key: "région id"}}\n  "{RETURNS}": {{primary_key: retour id}}\n  "{LOOKUP}": {{}}\n'
        "foreign_keys:\n"
        f'  - {{child: "{LINES}.N° client", parent: "{CUSTOMERS}.N° client"}}\n'
        f'  - {{child: "{CUSTOMERS}.région id", parent: "{REGIONS}.région id"}}\n'
        f'  - {{child: "{RETURNS}.line id", parent: "{LINES}.line id"}}\n'
        # tiny tables: the privacy gates are not what this file tests
        "thresholds: {quality_min: 10, dcr_share_max: 1.0, mia_auc_max: 1.0}\n",
        encoding="utf-8",
    )
    return spec


# ---------------------------------------------------------------- asset-key names


def test_key_name_keeps_valid_names_and_sanitises_the_rest_uniquely():
    assert key_name("Customer_2") == "Customer_2"
    odd = [CUSTOMERS, LINES, "order lines", "order.lines", REGIONS, "Regions", "2024 sales", "名前", LOOKUP]
    names = [key_name(n) for n in odd]
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names)
    assert len(set(names)) == len(odd)  # `order-lines`, `order lines`, `order.lines` sanitise alike, keys differ
    assert key_name(REGIONS).startswith("Regions_") and key_name("Regions") == "Regions"
    assert names == [key_name(n) for n in odd]  # deterministic


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    spec = write_odd_names(folder)
    data_dir = folder / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data_dir))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        result = materialize_all(spec, dg.DagsterInstance.ephemeral())
    return spec, result, data_dir


@pytest.mark.slow
def test_odd_names_and_empty_tables_materialize_with_passing_checks(odd_run):
    _, result, _ = odd_run
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 5 * 3 + 2
    blocking = [e for e in evaluations if e.check_name in ("keys_valid", "no_pii_leak", "privacy_gates")]
    assert blocking and all(e.passed for e in blocking)


@pytest.mark.slow
def test_real_names_stay_in_metadata_warehouse_and_exports(odd_run):
    spec, result, data_dir = odd_run
    metadata = {k: m for asset in build_dataset_defs(load_spec(spec)).assets for k, m in asset.metadata_by_key.items()}
    for table in (CUSTOMERS, LINES, REGIONS, RETURNS, LOOKUP):
        for key in (source_key("odd", table), synthetic_key("odd", table)):
            assert metadata[key]["table"] == table
    materialized = {e.event_specific_data.materialization.asset_key: e.event_specific_data.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    columns = [c.name for c in materialized[synthetic_key("odd", LINES)]["dagster/column_schema"].value.columns]
    assert columns == ["line id", "N° client", "montant €", "2024 qty"]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        names = {r[0] for r in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'synthetic_odd'").fetchall()}
    assert {CUSTOMERS, LINES, REGIONS, RETURNS, LOOKUP} <= names
    exported = data_dir / "odd" / "synthetic"
    assert list(pd.read_csv(exported / f"{CUSTOMERS}.csv").columns) == ["N° client", "segment-type", "âge.ans", "région id"]
    assert list(pd.read_parquet(exported / f"{LINES}.parquet").columns) == columns


@pytest.mark.slow
def test_empty_tables_come_out_empty_and_children_of_an_empty_parent_get_null_keys(odd_run):
    _, result, data_dir = odd_run
    exported = data_dir / "odd" / "synthetic"
    for table, columns in ((REGIONS, ["région id", "nom"]), (RETURNS, ["retour id", "line id", "raison"]),
                           (LOOKUP, ["code", "libellé"])):
        df = pd.read_parquet(exported / f"{table}.parquet")
        assert df.empty and list(df.columns) == columns
    customers = pd.read_parquet(exported / f"{CUSTOMERS}.parquet")
    assert len(customers) == 60 and customers["région id"].isna().all()
    materialized = {e.event_specific_data.materialization.asset_key: e.event_specific_data.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    assert materialized[synthetic_key("odd", REGIONS)]["dagster/row_count"].value == 0
    quality = materialized[dg.AssetKey(["odd", "quality_report"])]
    assert 0 <= quality["overall_score"].value <= 100


@pytest.mark.slow
def test_genesis_cli_takes_the_same_names(tmp_path: Path, monkeypatch):
    spec = write_odd_names(tmp_path / "odd")
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    assert genesis_main(["generate", "--spec", str(spec), "--out", str(tmp_path / "twin")]) == 0
    twin = pd.read_csv(tmp_path / "twin" / f"{LINES}.csv")
    assert len(twin) == 240 and "montant €" in twin.columns
    assert pd.read_csv(tmp_path / "twin" / f"{REGIONS}.csv").empty
    assert genesis_main(["evaluate", "--spec", str(spec)]) == 0


# ---------------------------------------------------------------- empty tables in the engine


def test_empty_parquet_tables_keep_their_dtypes_through_train_and_generate(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame({"shop_id": pd.Series([], dtype="Int64"), "label": pd.Series([], dtype="string"),
                  "opened": pd.Series([], dtype="datetime64[us]")}).to_parquet(data / "shops.parquet")
    pd.DataFrame({"sale_id": np.arange(1, 101), "shop_id": pd.Series([pd.NA] * 100, dtype="Int64"),
                  "amount": rng.gamma(2.0, 10.0, 100)}).to_parquet(data / "sales.parquet")
    pd.DataFrame({"refund_id": pd.Series([], dtype="Int64"), "sale_id": pd.Series([], dtype="Int64"),
                  "reason": pd.Series([], dtype="string")}).to_parquet(data / "refunds.parquet")
    (tmp_path / "dataset.yaml").write_text(
        "name: shops\nsource: {kind: parquet_folder, path: data}\n"
        "tables:\n  shops: {primary_key: shop_id}\n  sales: {primary_key: sale_id}\n  refunds: {primary_key: refund_id}\n"
        "foreign_keys:\n  - {child: sales.shop_id, parent: shops.shop_id}\n"
        "  - {child: refunds.sale_id, parent: sales.sale_id}\n")
    spec = load_spec(tmp_path / "dataset.yaml")
    real = {t: read_source_table(spec, t) for t in source_table_names(spec)}
    schema = analyse(spec, real)
    assert schema.tables["shops"].row_count == 0
    findings = pii.scan_tables(real, schema, spec)
    model, splits = relational.train(spec, schema, real, findings, tmp_path / "models")
    assert model.tables["shops"].method == EMPTY_METHOD and splits["shops"][0].empty
    model, model_dir = relational.load_model(tmp_path / "models")
    out = relational.generate_all(model, model_dir, scale=2.0, seed=1)
    for table in ("shops", "refunds"):
        assert out[table].empty and out[table].dtypes.to_dict() == real[table].dtypes.to_dict()
    assert len(out["sales"]) == 200 and out["sales"]["shop_id"].isna().all()


# ---------------------------------------------------------------- one broken dataset


def test_a_broken_spec_is_left_out_and_the_others_still_load(tmp_path: Path, monkeypatch, caplog):
    from genesis_pipelines.definitions import build_definitions

    write_odd_names(tmp_path / "odd")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset.yaml").write_text("name: broken\nsource: {kind: csv_folder, path: nowhere}\n")
    monkeypatch.setenv("GENESIS_SPECS_DIR", str(tmp_path))
    jobs = {job.name for job in build_definitions().resolve_all_job_defs()}
    assert "odd_synthetic_twin" in jobs and "broken_synthetic_twin" not in jobs
    assert any("broken" in r.getMessage() and "SourceError" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- references to names with dots


def test_references_take_names_with_dots_in_backticks():
    from genesis_pipelines.engine.core.spec import column_ref, split_ref

    assert split_ref("Orders.Total") == ("Orders", "Total")
    assert split_ref("`dbo.Orders`.Total") == ("dbo.Orders", "Total")
    assert split_ref('"dbo.Orders".`unit.price`') == ("dbo.Orders", "unit.price")
    assert split_ref("`Prénom 名前.v2`.code") == ("Prénom 名前.v2", "code")
    for table, column in [("Orders", "Total"), ("dbo.Orders", "unit.price"), ("a b", "c-d")]:
        assert split_ref(column_ref(table, column)) == (table, column)
    assert column_ref("Orders", "Total") == "Orders.Total"  # plain names keep the plain spelling
    for bad in ["dbo.Orders.Total", "Orders", "`dbo.Orders.Total", "Orders.", ".Total", "`a`b.c"]:
        with pytest.raises(ValueError, match="Table.Column"):
            split_ref(bad)


def test_a_schema_with_dots_in_table_and_column_names_runs_end_to_end(tmp_path: Path, monkeypatch):
    """`dbo.customers` / `dbo.orders` with dotted columns: keys, a PII override, a type override and the utility
    target all name them (backticked), and the CLI trains, generates and evaluates with every FK kept."""
    rng = np.random.default_rng(5)
    data = tmp_path / "dotted" / "data"
    data.mkdir(parents=True)
    pd.DataFrame({"cust.id": np.arange(1, 81), "tier": rng.choice(["gold", "silver", "bronze"], 80),
                  "e.mail": [f"user{i}@dots.test" for i in range(80)]}).to_csv(data / "dbo.customers.csv", index=False)
    pd.DataFrame({"order.id": np.arange(1, 321), "cust.id": rng.integers(1, 81, 320),
                  "unit.price": np.round(rng.gamma(2.0, 20.0, 320), 2),
                  "status": rng.choice(["open", "shipped"], 320)}).to_csv(data / "dbo.orders.csv", index=False)
    spec = tmp_path / "dotted" / "dataset.yaml"
    spec.write_text(
        "name: dotted\n"
        "source: {kind: csv_folder, path: data}\n"
        'tables:\n  "dbo.customers": {primary_key: cust.id}\n  "dbo.orders": {primary_key: order.id}\n'
        "foreign_keys:\n  - {child: '`dbo.orders`.`cust.id`', parent: '`dbo.customers`.`cust.id`'}\n"
        "pii: {'`dbo.customers`.`e.mail`': fake}\n"
        "column_types: {'`dbo.orders`.`unit.price`': numeric}\n"
        "utility: {target: '`dbo.orders`.status'}\n"
        "thresholds: {quality_min: 10, dcr_share_max: 1.0, mia_auc_max: 1.0}\n", encoding="utf-8")
    parsed = load_spec(spec)
    assert parsed.foreign_keys[0].child_refs == [("dbo.orders", "cust.id")]
    assert parsed.utility.target == "`dbo.orders`.status"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    assert genesis_main(["generate", "--spec", str(spec), "--out", str(tmp_path / "twin")]) == 0
    customers = pd.read_csv(tmp_path / "twin" / "dbo.customers.csv")
    orders = pd.read_csv(tmp_path / "twin" / "dbo.orders.csv")
    assert orders["cust.id"].isin(customers["cust.id"]).all() and len(orders) == 320
    assert not customers["e.mail"].isin([f"user{i}@dots.test" for i in range(80)]).any()  # the override faked it
    assert genesis_main(["evaluate", "--spec", str(spec)]) == 0
    report = __import__("json").loads((tmp_path / "out" / "dotted" / "reports" / "quality_report.json").read_text())
    assert report["utility"]["target"] == "`dbo.orders`.status" and not report["utility"].get("skipped")
