"""Spec constraints: validation at spec and schema time, repair and reject-resample, and the relational path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.constraint_spec import predicate_columns
from genesis_pipelines.engine.core.errors import GenesisError, SchemaError, SpecError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.synthesis import relational
from genesis_pipelines.engine.synthesis.constraints import TableConstraints


def _spec(constraints: list[dict], **extra):
    return parse_spec({"name": "shop", "tables": {"Customer": {"primary_key": "CustomerId"},
                                                  "Orders": {"primary_key": "OrderId"}},
                       "foreign_keys": [{"child": "Orders.CustomerId", "parent": "Customer.CustomerId"}],
                       "constraints": constraints, **extra})


def _tables(n: int = 400, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({"CustomerId": np.arange(1, 101), "Segment": rng.choice(["a", "b", "c"], 100),
                              "Age": rng.integers(18, 90, 100)})
    price = np.round(rng.gamma(2.0, 20.0, n) + 0.5, 2)
    country = rng.choice(["FR", "DE", "US"], n)
    city = np.where(country == "FR", rng.choice(["Paris", "Lyon"], n),
                    np.where(country == "DE", rng.choice(["Berlin", "Bonn"], n), rng.choice(["NYC", "LA"], n)))
    orders = pd.DataFrame({
        "OrderId": np.arange(1, n + 1), "CustomerId": rng.integers(1, 101, n), "Price": price,
        "Discount": np.round(price * rng.uniform(0, 0.5, n), 2), "Quantity": rng.integers(1, 20, n),
        "Country": country, "City": city, "Code": [f"C{i:05d}" for i in rng.permutation(n)],
    })
    return {"Customer": customers, "Orders": orders}


RULES = [
    {"kind": "positive", "table": "Orders", "column": "Price"},
    {"kind": "range", "table": "Orders", "column": "Quantity", "low": 1, "high": 10},
    {"kind": "inequality", "table": "Orders", "low_column": "Discount", "high_column": "Price"},
    {"kind": "fixed_combinations", "table": "Orders", "columns": ["Country", "City"]},
    {"kind": "unique", "table": "Orders", "columns": ["Code"]},
    {"kind": "predicate", "table": "Orders", "expression": "(Quantity < 8) | (Price > 10)"},
]


# ---------------------------------------------------------------- the spec


def test_spec_accepts_every_kind():
    spec = _spec(RULES)
    assert [r.kind for r in spec.constraints] == [r["kind"] for r in RULES]


@pytest.mark.parametrize("rule, field", [
    ({"kind": "range", "table": "Orders", "column": "Price"}, "low, high"),
    ({"kind": "bogus", "table": "Orders", "column": "Price"}, "constraints.0"),
    ({"kind": "predicate", "table": "Orders", "expression": "__import__('os').system('x')"}, "not allowed"),
    ({"kind": "predicate", "table": "Orders", "expression": "Price.abs() > 0"}, "not allowed"),
    ({"kind": "positive", "table": "Nope", "column": "Price"}, "'Nope'"),
    ({"kind": "fixed_combinations", "table": "Orders", "columns": ["Country"]}, "at least 2"),
])
def test_spec_rejects_bad_rules(rule, field):
    with pytest.raises(SpecError, match=field):
        _spec([rule])


def test_predicate_columns_are_parsed_not_evaluated():
    assert predicate_columns("(a <= b) & (c in ['x', 'y'])") == ["a", "b", "c"]


@pytest.mark.parametrize("rule, message", [
    ({"kind": "positive", "table": "Orders", "column": "Missing"}, "table 'Orders': column 'Missing' does not exist"),
    ({"kind": "unique", "table": "Orders", "columns": ["CustomerId"]}, "'CustomerId' is a key column"),
    ({"kind": "range", "table": "Orders", "column": "Country", "low": 0}, "'Country' is categorical"),
    ({"kind": "predicate", "table": "Orders", "expression": "Ghost > 1"}, "column 'Ghost' does not exist"),
])
def test_unknown_or_unfit_columns_fail_at_schema_time(rule, message):
    with pytest.raises(SchemaError, match=message):
        analyse(_spec([rule]), _tables())


# ---------------------------------------------------------------- enforcement on frames


def _noisy_sampler(seed: int = 0):
    """A deliberately bad generator: breaks every rule on a share of rows."""
    def draw(k, conditions=None, s=0):
        rng = np.random.default_rng(s)
        price = rng.normal(20, 30, k)
        return pd.DataFrame({
            "Price": price, "Discount": price + rng.normal(0, 10, k), "Quantity": pd.array(rng.integers(-5, 30, k), dtype="Int64"),
            "Country": pd.array(rng.choice(["FR", "DE", "US"], k), dtype="string"),
            "City": pd.array(rng.choice(["Paris", "Lyon", "Berlin", "Bonn", "NYC", "LA"], k), dtype="string"),
            "Code": pd.array([f"C{v:05d}" for v in rng.integers(0, 5000, k)], dtype="string"),
        })
    return draw


def test_enforce_returns_only_valid_rows():
    spec = _spec(RULES)
    rules = TableConstraints.fit("Orders", spec.constraints, _tables()["Orders"])
    draw = _noisy_sampler()
    first = draw(2000, None, 1)
    assert (~rules.valid(first)).mean() > 0.5  # the sampler really is bad
    out = rules.enforce(first, 2000, draw, seed=3)
    assert len(out) == 2000
    assert rules.valid(out).all()
    assert (out["Price"] > 0).all() and out["Quantity"].between(1, 10).all() and (out["Discount"] <= out["Price"]).all()
    assert not out["Code"].duplicated().any()
    assert set(zip(out["Country"], out["City"])) <= {("FR", "Paris"), ("FR", "Lyon"), ("DE", "Berlin"), ("DE", "Bonn"),
                                                     ("US", "NYC"), ("US", "LA")}
    assert out.dtypes["Quantity"] == "Int64"


def test_any_column_name_can_be_constrained():
    """Names a Python identifier cannot hold (dashes, spaces, accents) are named as they are, backticked in predicates."""
    renamed = {"Price": "unit-price", "Discount": "Remise accordée", "Quantity": "qty (units)"}
    orders = _tables()["Orders"].rename(columns=renamed)
    spec = _spec([
        {"kind": "positive", "table": "Orders", "column": "unit-price"},
        {"kind": "inequality", "table": "Orders", "low_column": "Remise accordée", "high_column": "unit-price"},
        {"kind": "predicate", "table": "Orders", "expression": "(`qty (units)` < 8) | (`unit-price` > 10)"},
    ])
    assert predicate_columns("(`qty (units)` < 8) | (`unit-price` > 10)") == ["qty (units)", "unit-price"]
    rules = TableConstraints.fit("Orders", spec.constraints, orders)
    bad = pd.DataFrame({"unit-price": [5.0, -1.0, 5.0, 50.0], "Remise accordée": [1.0, 0.0, 6.0, 1.0],
                        "qty (units)": [9, 1, 1, 9]})
    assert rules.valid(bad).tolist() == [False, False, False, True]
    out = rules.enforce(bad, 4, lambda k, cond, s: pd.DataFrame(
        {"unit-price": np.full(k, 20.0), "Remise accordée": np.full(k, 2.0), "qty (units)": np.full(k, 3)}), seed=0)
    assert rules.valid(out).all() and len(out) == 4
    for rule, message in [({"kind": "positive", "table": "Orders", "column": " "}, "non-empty"),
                          ({"kind": "predicate", "table": "Orders", "expression": "`unit-price > 0"}, "backtick")]:
        with pytest.raises(SpecError, match=message):
            _spec([rule])


def test_nulls_never_violate_and_aligned_conditions_keep_their_rows():
    spec = _spec([RULES[0], RULES[2]])
    rules = TableConstraints.fit("Orders", spec.constraints, _tables()["Orders"])
    frame = pd.DataFrame({"Price": [np.nan, 5.0, -1.0], "Discount": [3.0, np.nan, np.nan]})
    assert rules.valid(frame).tolist() == [True, True, False]
    conditions = pd.DataFrame({"Country": ["FR", "DE", "US"]})
    calls = []

    def draw(k, cond, s):
        calls.append(cond["Country"].tolist())
        return pd.DataFrame({"Price": np.full(k, 9.0), "Discount": np.full(k, 1.0)})
    out = rules.enforce(frame, 3, draw, conditions=conditions, seed=0)
    assert calls == [["US"]] and out["Price"].tolist()[1:] == [5.0, 9.0]


def test_impossible_rules_give_a_clear_error_without_values():
    spec = _spec([{"kind": "unique", "table": "Orders", "columns": ["Country"]}])
    rules = TableConstraints.fit("Orders", spec.constraints, _tables()["Orders"])
    draw = _noisy_sampler()
    with pytest.raises(GenesisError, match=r"table 'Orders'.*cannot satisfy.*unique\(Orders: Country\)") as info:
        rules.enforce(draw(500, None, 0), 500, draw, seed=0)
    assert "Paris" not in str(info.value) and "FR" not in str(info.value)


# ---------------------------------------------------------------- through train and generate


def test_relational_generation_obeys_constraints(tmp_path):
    rules = [r for r in RULES if r["kind"] != "unique"] + [{"kind": "unique", "table": "Orders", "columns": ["Price", "Quantity"]}]
    spec = _spec(rules, holdout_fraction=0.0)
    tables = _tables()
    schema = analyse(spec, tables)
    findings = pii.scan_tables(tables, schema, spec)
    relational.train(spec, schema, tables, findings, tmp_path)
    model, model_dir = relational.load_model(tmp_path)
    assert (model_dir / "tables" / "Orders" / "constraints.json").is_file()
    out = relational.generate_all(model, model_dir, scale=1.0, seed=5)["Orders"]
    assert len(out) == 400
    rules = TableConstraints.load(model_dir / "tables" / "Orders")
    assert rules.valid(out).all()
