"""Great Expectations suites from the real data: what they contain, what they catch, and that they hold no PII."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.evaluation import expectations


def _tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({
        "customer_id": np.arange(1, 81),
        "email": [f"person{i}@mail.test" for i in range(80)],
        "segment": rng.choice(["retail", "wholesale", "online"], 80),
        "age": rng.integers(18, 80, 80),
    })
    orders = pd.DataFrame({
        "order_id": np.arange(1, 301),
        "customer_id": rng.integers(1, 81, 300),
        "amount": np.round(rng.gamma(2.0, 30.0, 300), 2),
        "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, 300), unit="D"),
        "coupon": pd.array(np.where(rng.random(300) < 0.3, "VIP", None), dtype="string"),
    })
    return {"customers": customers, "orders": orders}


@pytest.fixture(scope="module")
def setup():
    tables = _tables()
    spec = parse_spec({"name": "shop", "tables": {"customers": {"primary_key": "customer_id"},
                                                  "orders": {"primary_key": "order_id"}},
                       "foreign_keys": [{"child": "orders.customer_id", "parent": "customers.customer_id"}]})
    schema = analyse(spec, tables)
    suites = expectations.build_suites(tables, schema, {"customers": {"email"}})
    return tables, schema, suites, expectations.new_context()


def _types(suite: dict, column: str) -> set[str]:
    return {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == column}


def test_suite_covers_types_ranges_sets_nulls_keys_and_fks(setup):
    _, _, suites, _ = setup
    orders, customers = suites["orders"], suites["customers"]
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"} <= _types(orders, "order_id")
    assert {"expect_column_to_exist", "expect_column_values_to_be_in_type_list",
            "expect_column_values_to_be_between"} <= _types(orders, "amount")
    assert "expect_column_values_to_be_between" in _types(orders, "ordered_at")
    assert "expect_column_values_to_be_in_set" in _types(customers, "segment")
    coupon_null = [e for e in orders["expectations"] if e["kwargs"].get("column") == "coupon"
                   and e["type"] == "expect_column_values_to_not_be_null"]
    real_null = float(_tables()["orders"]["coupon"].isna().mean())  # ~70% null: at least ~25% present
    assert coupon_null[0]["kwargs"]["mostly"] == pytest.approx(1 - real_null - expectations.NULL_TOLERANCE, abs=1e-4)
    amount_null = [e for e in orders["expectations"] if e["kwargs"].get("column") == "amount"
                   and e["type"] == "expect_column_values_to_not_be_null"]
    assert amount_null[0]["kwargs"]["mostly"] == pytest.approx(1 - expectations.NULL_TOLERANCE)
    assert orders["meta"]["foreign_keys"] == [{"column": "customer_id", "parent_table": "customers",
                                               "parent_column": "customer_id"}]


def test_suite_holds_no_pii_and_is_json(setup):
    tables, _, suites, _ = setup
    text = json.dumps(suites)
    assert "@mail.test" not in text and _types(suites["customers"], "email") == set()
    assert not any(e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "customer_id"
                   for e in suites["customers"]["expectations"])


def test_real_rows_pass_and_broken_rows_fail_by_type(setup):
    tables, _, suites, context = setup
    ok = expectations.validate(tables["orders"], suites["orders"], parents={"customers": tables["customers"]},
                               context=context)
    assert ok["success"] and ok["failed"] == 0 and ok["evaluated"] >= 12
    broken = tables["orders"].copy()
    broken["amount"] = broken["amount"] * 1000
    broken.loc[0, "customer_id"] = 9999  # not in the synthetic parent
    broken.loc[1, "order_id"] = broken.loc[2, "order_id"]
    result = expectations.validate(broken, suites["orders"], parents={"customers": tables["customers"]}, context=context)
    assert not result["success"]
    assert result["failed_types"] == ["expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
                                      "expect_column_values_to_be_unique"]
    assert "9999" not in json.dumps(result)


def test_dtype_families_and_missing_columns(setup):
    tables, _, suites, context = setup
    stored = tables["customers"].astype({"age": "Int64", "segment": "string"})  # as read back from a warehouse
    assert expectations.validate(stored, suites["customers"], context=context)["success"]
    pandas3_default = tables["customers"].astype({"segment": "str"})  # NaN-backed strings: GX does not know the dtype
    assert expectations.validate(pandas3_default, suites["customers"], context=context)["success"]
    dropped = expectations.validate(stored.drop(columns=["segment"]), suites["customers"], context=context)
    assert "expect_column_to_exist" in dropped["failed_types"]


def test_suites_are_saved_and_loaded(tmp_path, setup):
    _, _, suites, _ = setup
    expectations.save_suites(tmp_path, suites)
    assert expectations.load_suites(tmp_path) == json.loads(json.dumps(suites))
    assert expectations.load_suites(tmp_path / "missing") == {}
