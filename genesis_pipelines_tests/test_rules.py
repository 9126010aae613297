"""The data's own rules (engine/analysis/rules/): each kind found on small tables made here, kept by `enforce` on rows
that break it, counted by `violations`, switched off in the spec, and kept end to end by relational."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis import rules
from genesis_pipelines.engine.analysis.rules import children, core, dependency, orders
from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import RulesSpec, parse_spec
from genesis_pipelines.engine.synthesis import relational

N = 400


def _orders_and_lines(seed: int = 0) -> dict[str, pd.DataFrame]:
    """Customers created before they order; orders shipped 1-10 days after they are ordered, each with 1-4
    lines whose price is the product's in about 70% of lines."""
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({
        "customer_id": np.arange(1, 61),
        "city": [f"c{i % 12}" for i in range(60)],
        "created": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 200, 60), unit="D"),
    })
    customers["country"] = customers["city"].map(lambda c: f"k{int(c[1:]) % 4}")
    products = pd.DataFrame({"product_id": np.arange(1, 31), "price": np.round(rng.uniform(1, 50, 30), 2)})
    customer = rng.integers(1, 61, N)
    ordered = customers["created"].to_numpy()[customer - 1] + pd.to_timedelta(rng.integers(0, 400, N), unit="D").to_numpy()
    orders = pd.DataFrame({"order_id": np.arange(1, N + 1), "customer_id": customer, "ordered": ordered,
                           "shipped": ordered + pd.to_timedelta(rng.integers(1, 11, N), unit="D").to_numpy(),
                           "weight": np.round(rng.gamma(2.0, 3.0, N), 1)})
    per_order = rng.integers(1, 5, N)
    product = rng.integers(1, 31, per_order.sum())
    price = products["price"].to_numpy()[product - 1]
    discounted = rng.random(len(product)) < 0.3
    lines = pd.DataFrame({"line_id": np.arange(1, len(product) + 1), "order_id": np.repeat(orders["order_id"], per_order).to_numpy(),
                          "product_id": product, "unit_price": np.where(discounted, np.round(price * 0.8, 2), price)})
    return {"customers": customers, "products": products, "orders": orders, "lines": lines}


def _spec(**extra):
    return parse_spec({
        "name": "shop",
        "tables": {"customers": {"primary_key": "customer_id"}, "products": {"primary_key": "product_id"},
                   "orders": {"primary_key": "order_id"}, "lines": {"primary_key": "line_id"}},
        "foreign_keys": [{"child": "orders.customer_id", "parent": "customers.customer_id"},
                         {"child": "lines.order_id", "parent": "orders.order_id"},
                         {"child": "lines.product_id", "parent": "products.product_id"}],
        **extra,
    })


@pytest.fixture(scope="module")
def shop():
    tables = _orders_and_lines()
    schema = analyse(_spec(), tables)
    return tables, schema, rules.discover(tables, schema)


def _rule(found, rule_id):
    return next(r for r in found if r.id == rule_id)


def test_order_found_and_broken_rows_redrawn_from_real_gaps(shop):
    tables, schema, found = shop
    rule = _rule(found, "order:orders.ordered<orders.shipped")
    assert rule.share == 1.0 and rule.min_gap == 86400.0
    body = tables["orders"].copy()
    broken = np.arange(N) % 2 == 0  # half shipped 3 days before they were ordered
    body.loc[broken, "shipped"] = body.loc[broken, "ordered"] - pd.Timedelta(days=3)
    assert rules.violations([rule], {"orders": body})[0]["violations"] == int(broken.sum())
    fixed = rules.enforce([rule], body, {}, np.random.default_rng(0))
    gaps = (fixed["shipped"] - fixed["ordered"]).dt.days
    assert rules.violations([rule], {"orders": fixed})[0]["violations"] == 0
    assert gaps.min() >= 1 and gaps.max() <= 10 and gaps[broken].nunique() >= 5  # real gaps, not clipped to one bound
    assert (fixed["shipped"].dt.normalize() == fixed["shipped"]).all()  # whole days, like the real column
    assert fixed.loc[~broken, "shipped"].equals(body.loc[~broken, "shipped"])


def test_order_of_disjoint_dates_keeps_the_minimum_gap():
    rng = np.random.default_rng(1)
    birth = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 20, 50), unit="D")
    people = pd.DataFrame({"birth": birth, "hired": birth + pd.to_timedelta(rng.integers(365 * 25, 365 * 40, 50), unit="D")})
    meta = analyse(parse_spec({"name": "hr", "tables": {"people": {}}}), {"people": people}).tables["people"]
    found = orders.find_orders("people", people, meta, set())
    assert [r.columns for r in found] == [["birth", "hired"]]
    young = people.copy()
    young["hired"] = young["birth"] + pd.Timedelta(days=365 * 4)  # hired aged four: ordered, but below the real gap
    assert rules.violations(found, {"people": young})[0]["violations"] == 50
    fixed = rules.enforce(found, young, {}, np.random.default_rng(0))
    assert ((fixed["hired"] - fixed["birth"]).dt.days >= found[0].min_gap / 86400 - 1e-9).all()


def test_orders_between_unrelated_columns_are_not_rules():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"seats": rng.integers(2, 400, 300), "dep_time": rng.integers(500, 2300, 300),
                          "low": rng.normal(0, 1, 300)})
    frame["high"] = frame["low"] + rng.exponential(1.0, 300)
    meta = analyse(parse_spec({"name": "x", "tables": {"t": {}}}), {"t": frame}).tables["t"]
    # seats < dep_time holds on every row, but so it would for rows paired at random: no rule
    assert [r.columns for r in orders.find_orders("t", frame, meta, set())] == [["low", "high"]]


def test_approximate_order_keeps_its_real_share():
    rng = np.random.default_rng(3)
    low = rng.normal(0, 1, 2000)
    high = low + np.where(rng.random(2000) < 0.97, rng.exponential(1.0, 2000), -rng.exponential(1.0, 2000))
    frame = pd.DataFrame({"low": low, "high": high})
    meta = analyse(parse_spec({"name": "x", "tables": {"t": {}}}), {"t": frame}).tables["t"]
    rule = orders.find_orders("t", frame, meta, set())[0]
    assert 0.95 <= rule.share < 1
    sampled = pd.DataFrame({"low": rng.normal(0, 1, 2000), "high": rng.normal(0, 1, 2000)})  # half broken
    fixed = rules.enforce([rule], sampled, {}, np.random.default_rng(0))
    share = rules.violations([rule], {"t": fixed})[0]["synthetic_share"]
    assert abs(share - rule.share) <= 0.05


def test_parent_order_found_and_kept(shop):
    tables, _, found = shop
    rule = next(r for r in found if r.kind == "parent_order" and r.columns == ["ordered"])
    assert rule.parent_table == "customers" and rule.parent_column == "created" and rule.parent_is_low
    body = tables["orders"].copy()
    body["ordered"] = pd.Timestamp("2019-06-01")  # before every customer was created
    body["shipped"] = body["ordered"] + pd.Timedelta(days=2)
    fixed = rules.enforce([r for r in found if r.table == "orders"], body, {"customers": tables["customers"]},
                          np.random.default_rng(0))
    result = {v["rule"]: v["violations"] for v in rules.violations(found, {**tables, "orders": fixed})}
    assert result[rule.id] == 0 and result["order:orders.ordered<orders.shipped"] == 0


def test_parent_equal_share_found_and_reproduced(shop):
    tables, _, found = shop
    rule = _rule(found, "parent_equal:lines.unit_price=products.price via product_id")
    assert 0.6 <= rule.share <= 0.8  # 70% of lines at the product's price, far above chance
    rng = np.random.default_rng(4)
    for equal_share in (0.02, 1.0):
        body = tables["lines"].copy()
        own = tables["products"]["price"].to_numpy()[body["product_id"] - 1]
        body["unit_price"] = np.where(rng.random(len(body)) < equal_share, own, np.round(own * 1.3, 2))
        fixed = rules.enforce([rule], body, tables, np.random.default_rng(0))
        assert abs(rules.violations([rule], {**tables, "lines": fixed})[0]["synthetic_share"] - rule.share) <= 0.05


def test_dependency_found_with_missing_values_and_many_categories():
    rng = np.random.default_rng(5)
    cities = np.array([f"city{i}" for i in range(300)])
    city = cities[rng.integers(0, 300, 3000)]
    frame = pd.DataFrame({"city": city, "noise": rng.choice(["a", "b", "c"], 3000)})
    frame["country"] = pd.Series(city).str[-1].map(lambda d: f"country{d}")
    frame["state"] = frame["country"].where(frame["country"] != "country0")  # one country has no states
    meta = analyse(parse_spec({"name": "x", "tables": {"t": {}}}), {"t": frame}).tables["t"]
    found = dependency.find_dependencies(frame, meta, set())
    assert found["country"].source == "city" and found["country"].purity == 1.0
    assert found["state"].mapping["city0"] is None  # a missing value is part of the mapping
    assert "noise" not in found and "city" not in found
    assert "country" not in dependency.find_dependencies(frame, meta, {"city", "state"})  # PII sources are left out
    mixed = frame.assign(country=rng.permutation(frame["country"].to_numpy()))
    result = rules.violations(dependency.dependency_rules("t", {"country": found["country"]}), {"t": mixed})[0]
    assert result["violations"] > 0 and result["synthetic_share"] < 0.9


def test_dependency_screen_on_a_row_subsample_keeps_every_dependency(monkeypatch):
    """Long tables score their pairs on a quarter of the rows first: a dependency just above the purity bar (with
    nulls in its source) and one just below it come out exactly as when every pair is scored on every row."""
    rng = np.random.default_rng(6)
    n = 4000
    region = rng.choice([f"r{i}" for i in range(40)], n)
    zone = pd.Series(region).str[1:].astype(int).mod(7).map(lambda z: f"z{z}").to_numpy()
    noisy = rng.random(n) < 0.04  # 96% pure: a dependency
    zone_noisy = np.where(noisy, rng.choice([f"z{i}" for i in range(7)], n), zone)
    frame = pd.DataFrame({
        "region": pd.Series(region).where(rng.random(n) > 0.05).to_numpy(),
        "zone": zone_noisy,
        "band": np.where(rng.random(n) < 0.08, "b9", pd.Series(zone).str[1:].astype(int).mod(3).map(str)),
        **{f"noise{i}": rng.choice(list("abcdef"), n) for i in range(6)},
    })
    meta = analyse(parse_spec({"name": "x", "tables": {"t": {}}}), {"t": frame}).tables["t"]
    screened = dependency.find_dependencies(frame, meta, set())
    monkeypatch.setattr(dependency, "SCREEN_MIN_ROWS", 10 * n)
    full = dependency.find_dependencies(frame, meta, set())
    assert set(screened) == set(full) and "zone" in full and "band" not in full
    for target, found in full.items():
        assert (screened[target].source, screened[target].purity, screened[target].mapping) == \
            (found.source, found.purity, found.mapping)


def test_min_children_found_and_kept(shop):
    tables, schema, found = shop
    rule = _rule(found, "min_children:orders->lines.order_id")
    assert rule.min_count == 1
    counts = children.at_least(np.array([0, 0, 5, 3, 0, 1]), 1, np.random.default_rng(0))
    assert counts.min() == 1 and counts.sum() == 9
    is_null = children.enough_present(np.array([True, True, True, False]), 3, np.random.default_rng(0))
    assert int((~is_null).sum()) == 3  # nulls give way when too few children are left for every parent
    # a junction: partners distinct within each group, every second parent at least once
    groups, picked = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    covered = children.cover(groups, picked, 8, 1, np.random.default_rng(0))
    assert np.bincount(covered, minlength=8).min() == 1
    assert all(len(set(covered[groups == g])) == 5 for g in range(4))
    lines = tables["lines"][tables["lines"]["order_id"] > 10]  # ten orders without lines
    assert rules.violations([rule], {**tables, "lines": lines})[0]["violations"] == 10


def test_spec_switch():
    assert _spec().rules == RulesSpec()
    found = [core.Rule(id="order:t.a<=t.b", kind="order", table="t", columns=["a", "b"], share=1.0),
             core.Rule(id="dependency:t.a->t.c", kind="dependency", table="t", columns=["a", "c"], share=1.0)]
    assert rules.select(found, _spec(rules={"enabled": False}).rules) == []
    assert [r.kind for r in rules.select(found, _spec(rules={"disabled": ["order"]}).rules)] == ["dependency"]
    assert [r.kind for r in rules.select(found, _spec(rules={"disabled": ["dependency:t.a->t.c"]}).rules)] == ["order"]
    with pytest.raises(SpecError, match="rules.disabled"):
        _spec(rules={"disabled": ["ordering"]})


def test_relational_keeps_the_rules_and_the_spec_switches_them_off(tmp_path, shop):
    tables, schema, found = shop
    model, _ = relational.train(_spec(), schema, tables, [], tmp_path / "on")
    kept = {r.id for t in model.tables.values() for r in t.rules}
    assert {"order:orders.ordered<orders.shipped", "min_children:orders->lines.order_id",
            "parent_equal:lines.unit_price=products.price via product_id"} <= kept
    assert all("mapping" not in r.describe() for t in model.tables.values() for r in t.rules)
    _, model_dir = relational.load_model(tmp_path / "on")
    synthetic = relational.generate_all(model, model_dir, seed=3)
    for result in rules.violations([r for t in model.tables.values() for r in t.rules], synthetic):
        if result["real_share"] >= 1:
            assert result["violations"] == 0, result
        else:
            assert abs(result["synthetic_share"] - result["real_share"]) <= 0.05, result
    off, _ = relational.train(_spec(rules={"enabled": False}), schema, tables, [], tmp_path / "off")
    assert all(not t.rules and not t.dependencies for t in off.tables.values())
    assert all(r.min_children == 0 and not r.inherited for r in off.relations)


@pytest.mark.slow
@pytest.mark.dagster
def test_schema_asset_lists_the_rules_without_values(tmp_path):
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources

    tables = _orders_and_lines()
    (tmp_path / "data").mkdir()
    for name, frame in tables.items():
        frame.to_csv(tmp_path / "data" / f"{name}.csv", index=False)
    spec = _spec(source={"kind": "csv_folder", "path": str(tmp_path / "data")},
                 rules={"disabled": ["min_children"]}).model_copy(update={"spec_dir": tmp_path})
    defs = build_dataset_defs(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(tmp_path / "out"))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        result = dg.materialize(assets=list(defs.assets), resources=default_resources(),
                                instance=dg.DagsterInstance.ephemeral(),
                                selection=dg.AssetSelection.assets(dg.AssetKey(["shop", "schema"])).upstream())
    metadata = next(e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["shop", "schema"]))
    listing = metadata["data_rule_list"].value
    assert "order:orders.ordered<orders.shipped" in listing and "| order | orders.ordered, orders.shipped | 100% |" in listing
    assert metadata["data_rules_by_kind"].value.get("parent_equal") == 1 and "min_children" not in listing
    assert "k0" not in listing and "c1" not in listing and "2020" not in listing  # no real value


def test_min_children_holds_where_the_child_picks_among_parents_agreeing_on_a_shared_key(tmp_path):
    """Results of (series, episode, baker) pick their baker among the bakers of the episode's series, distinct within
    the episode: every baker still gets at least one result, as in the real data."""
    from genesis_pipelines.engine.privacy import pii

    rng = np.random.default_rng(2)
    bakers, episodes, results = [], [], []
    for series in range(1, 9):
        names = [f"B{series}x{i}" for i in range(int(rng.integers(8, 13)))]
        bakers += [{"series": series, "baker": b, "age": int(rng.integers(20, 70))} for b in names]
        left = list(names)
        for episode in range(1, len(names) - 1):
            episodes.append({"series": series, "episode": episode, "viewers": round(float(rng.gamma(5.0, 1.0)), 2)})
            results += [{"series": series, "episode": episode, "baker": b, "score": int(rng.integers(1, 10))} for b in left]
            left.pop(int(rng.integers(0, len(left))))
    tables = {"bakers": pd.DataFrame(bakers), "episodes": pd.DataFrame(episodes), "results": pd.DataFrame(results)}
    spec = parse_spec({"name": "bake", "seed": 0,
                       "tables": {"bakers": {"primary_key": ["series", "baker"]}, "episodes": {"primary_key": ["series", "episode"]},
                                  "results": {"primary_key": ["series", "episode", "baker"]}},
                       "foreign_keys": [{"child": ["results.series", "results.episode"], "parent": ["episodes.series", "episodes.episode"]},
                                        {"child": ["results.series", "results.baker"], "parent": ["bakers.series", "bakers.baker"]}]})
    schema = analyse(spec, tables)
    relational.train(spec, schema, tables, pii.scan_tables(tables, schema, spec), tmp_path)
    model, model_dir = relational.load_model(tmp_path)
    assert any(r.kind == "min_children" and r.table == "results" for r in model.tables["results"].rules)
    for seed in range(3):
        synth = relational.generate_all(model, model_dir, seed=seed)
        per_baker = synth["results"].groupby(["series", "baker"]).size()
        keys = pd.MultiIndex.from_frame(synth["bakers"][["series", "baker"]])
        assert per_baker.reindex(keys, fill_value=0).min() >= 1, seed
        assert not synth["results"].duplicated(["series", "episode", "baker"]).any()
