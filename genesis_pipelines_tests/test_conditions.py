"""Conditional generation for users: typed conditions, rebalance plans, clear errors, the reject fallback, children
of conditioned rows, the CLI flags and the `augmented/<table>` asset."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from genesis_pipelines import cli
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.analysis.schema_inference import profile_table
from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.spec import load_spec, parse_spec
from genesis_pipelines.engine.synthesis import conditions
from genesis_pipelines.engine.synthesis.conditioned_generator import ConditionedGenerator
from genesis_pipelines.engine.synthesis.conditions import ConditionError
from genesis_pipelines.engine.synthesis.generators import create_generator
from genesis_pipelines_tests.helpers import write_shop


def _train(spec_path: Path, data: Path):
    spec = load_spec(spec_path)
    layout = pipeline.DatasetLayout(data, spec.name)
    connect = pipeline.warehouse_connector(data / "warehouse.duckdb")
    pipeline.train(spec, layout, connect)
    model, model_dir = pipeline.load_model(layout)
    return spec, layout, connect, model, model_dir


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    spec_path = write_shop(root / "shop", customers=300, orders=900)
    spec, layout, connect, model, model_dir = _train(spec_path, root / "data")
    pipeline.generate(spec, layout, connect, model, model_dir)
    return spec_path, spec, layout, connect, model, model_dir


def test_conditions_are_typed_from_the_column_metadata(shop):
    _, _, _, _, model, _ = shop
    assert conditions.parse_condition("segment=online", model, "customers") == conditions.Condition("segment", "online")
    assert conditions.parse_condition("age=40", model, "customers").value == 40
    assert conditions.parse_condition("amount=12.5", model, "orders").value == 12.5
    assert conditions.parse_condition("coupon=A=B", model, "orders").value == "A=B"  # split at the first '='
    rb = conditions.parse_rebalance("segment=online:0.5,retail:0.25", model, "customers")
    assert rb == conditions.Rebalance("segment", {"online": 0.5, "retail": 0.25})


@pytest.mark.parametrize("text, says", [
    ("age=forty", "orders" and "customers.age"),
    ("nope=1", "customers.nope"),
    ("customer_id=3", "is a key"),
    ("email=someone@x.test", "is PII"),
    ("segment", "COLUMN=VALUE"),
])
def test_bad_conditions_name_table_and_column(shop, text, says):
    _, _, _, _, model, _ = shop
    with pytest.raises(ConditionError, match=says):
        conditions.parse_condition(text, model, "customers")


def test_impossible_value_is_refused_without_real_values(shop):
    _, _, _, _, model, model_dir = shop
    with pytest.raises(ConditionError) as caught:
        conditions.plan(model, model_dir, "customers", conditions=["segment=martian"], rows=10)
    message = str(caught.value)
    assert "customers.segment" in message and "'martian'" in message  # the caller's own value may be echoed
    assert not any(real in message for real in ("retail", "wholesale", "online"))  # no real category


def test_conditioned_rows_hold_the_value_and_children_follow(shop):
    _, spec, layout, connect, model, model_dir = shop
    done = pipeline.augment(spec, layout, connect, model, model_dir, "customers", conditions=["segment=wholesale"],
                            rows=120, seed=3)
    with duckdb.connect(str(layout.data_dir / "warehouse.duckdb"), read_only=True) as con:
        customers = con.execute('select * from augmented_shop."customers"').df()
        orders = con.execute('select * from augmented_shop."customers__orders"').df()
        twin = con.execute('select count(*) from synthetic_shop."customers"').fetchone()[0]
    assert len(customers) == 120 and (customers["segment"] == "wholesale").all()
    assert twin == 300, "the twin is not replaced"
    assert orders["customer_id"].isin(customers["customer_id"]).all() and len(orders) > 120  # ~3 orders each
    assert done.summary["groups"] == [{"condition": {"segment": "wholesale"}, "rows": 120}]
    summary = json.loads((layout.augmented("customers") / "conditions.json").read_text())
    assert summary["descendants"] == {"orders": len(orders)} and summary["model_version"] == model.version


def test_a_child_table_is_conditioned_on_its_own_and_points_at_the_twins_parents(shop):
    """Conditioning a child (no conditioned parent): its rows hold the condition, their keys point at the twin's
    generated parents (never at real ones), and the twin itself is untouched."""
    _, spec, layout, connect, model, model_dir = shop
    warehouse = str(layout.data_dir / "warehouse.duckdb")
    with duckdb.connect(warehouse, read_only=True) as con:
        before = con.execute('select * from synthetic_shop."orders" order by order_id').df()
    done = pipeline.augment(spec, layout, connect, model, model_dir, "orders", conditions=["coupon=VIP"], rows=200,
                            seed=5)
    with duckdb.connect(str(layout.data_dir / "warehouse.duckdb"), read_only=True) as con:
        orders = con.execute('select * from augmented_shop."orders"').df()
        twin_customers = con.execute('select customer_id from synthetic_shop."customers"').df()["customer_id"]
        after = con.execute('select * from synthetic_shop."orders" order by order_id').df()
    assert len(orders) == 200 and (orders["coupon"] == "VIP").all()
    assert orders["customer_id"].notna().all() and orders["customer_id"].isin(twin_customers).all()
    assert orders["order_id"].is_unique
    pd.testing.assert_frame_equal(before, after)  # the twin is not touched
    assert done.tables == {"orders": 200} and done.summary["descendants"] == {}
    # the other columns still follow the learned shape: amounts stay in the real range, not a constant
    assert orders["amount"].nunique() > 20


def test_conditioned_rows_are_scored_against_the_real_rows_meeting_the_condition():
    """Rows made under a condition must look like the real rows that meet it: rows drawn from the right class score
    above rows drawn from the other class; too few matching real rows give no score."""
    from genesis_pipelines.engine.evaluation.conditioned import conditioned_quality

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"cls": np.repeat(["a", "b"], 500), "x": np.r_[rng.normal(0, 1, 500), rng.normal(5, 1, 500)],
                         "k": np.r_[rng.choice(["u", "v"], 500, p=[0.9, 0.1]), rng.choice(["u", "v"], 500, p=[0.1, 0.9])]})
    real.loc[0, "cls"] = "rare"
    meta = profile_table("t", real, parse_spec({"name": "t"}))
    right = pd.DataFrame({"cls": "b", "x": rng.normal(5, 1, 300), "k": rng.choice(["u", "v"], 300, p=[0.1, 0.9])})
    wrong = pd.DataFrame({"cls": "b", "x": rng.normal(0, 1, 300), "k": rng.choice(["u", "v"], 300, p=[0.9, 0.1])})
    groups = [{"condition": {"cls": "b"}, "rows": 300}]
    good = conditioned_quality(real, right, meta, groups)["groups"][0]
    bad = conditioned_quality(real, wrong, meta, groups)["groups"][0]
    assert good["real_rows_matching"] == 500 and good["rows"] == 300 and good["columns"] == 2
    assert good["column_shapes"] > 0.9 > 0.5 > bad["column_shapes"]
    rare = conditioned_quality(real, right.assign(cls="rare"), meta, [{"condition": {"cls": "rare"}, "rows": 300}])
    assert rare["groups"][0]["column_shapes"] is None and "fewer than 5" in rare["groups"][0]["note"]


def test_the_quality_report_says_which_rows_were_conditioned(shop):
    _, spec, layout, connect, model, model_dir = shop
    pipeline.augment(spec, layout, connect, model, model_dir, "customers", conditions=["segment=online"], rows=90, seed=4)
    report = pipeline.quality_report(spec, layout, connect, model)
    (entry,) = [a for a in report["conditioned"] if a["table"] == "customers"]
    (group,) = entry["quality"]["groups"]
    assert group["condition"] == {"segment": "online"} and group["rows"] == 90
    assert group["real_rows_matching"] > 5 and 0.5 < group["column_shapes"] <= 1.0
    html = pipeline.write_report(layout.reports, spec.name, "quality_report", report).read_text()
    assert 'id="conditioned"' in html and "segment = online" in html
    from genesis_pipelines.engine.evaluation import summary_markdown
    assert "**Conditioned rows**" in summary_markdown(report, "quality")


def test_rebalance_uniform_and_given_shares(shop):
    _, _, _, _, model, model_dir = shop
    uniform = conditions.plan(model, model_dir, "customers", rebalance=conditions.Rebalance("segment"), rows=300)
    assert sorted(g["rows"] for g in uniform.groups) == [100, 100, 100]
    given = conditions.plan(model, model_dir, "customers", rows=200,
                            rebalance=conditions.parse_rebalance("segment=online:0.7", model, "customers"))
    assert {g["condition"]["segment"]: g["rows"] for g in given.groups} == {"online": 140, "retail": 30, "wholesale": 30}
    rows, summary = conditions.generate_rows(model, model_dir, "customers", {}, given, seed=1)
    assert rows["segment"].value_counts().to_dict() == {"online": 140, "retail": 30, "wholesale": 30}
    with pytest.raises(ConditionError, match="continuous"):
        conditions.plan(model, model_dir, "orders", rebalance=conditions.Rebalance("amount"), rows=10)
    with pytest.raises(ConditionError, match="more than 1"):
        conditions.plan(model, model_dir, "customers", rows=10,
                        rebalance=conditions.parse_rebalance("segment=online:0.7,retail:0.6", model, "customers"))


def test_a_frame_gives_one_condition_per_row(shop):
    _, _, _, _, model, model_dir = shop
    frame = pd.DataFrame({"segment": ["retail", "online"] * 20})
    p = conditions.plan(model, model_dir, "customers", conditions=frame)
    rows, _ = conditions.generate_rows(model, model_dir, "customers", {}, p, seed=2)
    assert rows["segment"].tolist() == frame["segment"].tolist()


class _Unconditional:
    """A generator that cannot take conditions, like the SDV backend with per-row conditions."""

    def __init__(self, inner):
        self.inner = inner

    def sample(self, n, *, conditions=None, seed=None):
        if conditions is not None:
            raise GenesisError("this generator does not support per-row conditions")
        return self.inner.sample(n, seed=seed)


def _fitted(frame: pd.DataFrame):
    generator = create_generator("gaussian_copula")
    generator.fit(frame, profile_table("t", frame, parse_spec({"name": "t"})), seed=0)
    return generator


def test_reject_fallback_keeps_matching_rows_and_fails_clearly_when_too_rare():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b"], 2000, p=[0.9, 0.1]), "x": rng.normal(size=2000)})
    wrapped = ConditionedGenerator(_Unconditional(_fitted(frame)), ["kind"], "t")
    out = wrapped.sample(50, conditions=pd.DataFrame({"kind": ["b"] * 50}), seed=1)
    assert len(out) == 50 and (out["kind"] == "b").all()
    with pytest.raises(ConditionError, match=r"t\.kind is too rare"):
        wrapped.sample(5, conditions=pd.DataFrame({"kind": ["never"] * 5}), seed=1)


def test_copula_conditions_a_class_through_its_own_marginals():
    rng = np.random.default_rng(1)
    label = rng.choice(["lo", "hi"], 4000, p=[0.75, 0.25])
    # bimodal within "hi", one mode within "lo": the latent normal alone cannot give both shapes
    x = np.where(label == "hi", np.where(rng.random(4000) < 0.5, 10.0, 20.0) + rng.normal(0, 0.5, 4000),
                 rng.normal(0, 1, 4000))
    frame = pd.DataFrame({"label": label, "x": x})
    generator = _fitted(frame)
    assert generator.describe()["per_class_copulas"] == {"label": 2}
    out = generator.sample(1000, conditions={"label": "hi"}, seed=0)
    assert (out["label"] == "hi").all()
    assert ((out["x"] > 5) & (out["x"] < 25)).mean() > 0.97  # the class's own range
    assert abs(((out["x"] > 15).mean()) - 0.5) < 0.08  # and its two modes


@pytest.mark.cli
def test_cli_condition_and_rebalance(shop, capsys, monkeypatch):
    spec_path, spec, layout, *_ = shop
    monkeypatch.setenv("GENESIS_DATA_DIR", str(layout.data_dir))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    args = ["generate", "--spec", str(spec_path), "--data-dir", str(layout.data_dir), "--table", "customers"]
    assert cli.main(args + ["--condition", "segment=online", "--rows", "40"]) == 0
    assert cli.main(args + ["--rebalance", "segment", "--rows", "30"]) == 0
    err = capsys.readouterr().err
    assert "10 rows with segment=" in err
    assert cli.main(args + ["--condition", "segment=martian", "--rows", "5"]) == 2
    assert "customers.segment" in capsys.readouterr().err


@pytest.mark.dagster
def test_augmented_asset_takes_run_config(tmp_path, isolated_data):
    import dagster as dg  # here, not at the top: the unit tier imports this module and never loads Dagster

    from genesis_pipelines.defs.resources import default_resources
    from genesis_pipelines_tests.helpers import dataset_defs

    spec_path = write_shop(tmp_path / "shop")
    defs = dataset_defs(spec_path)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("shop_synthetic_twin")
    key = dg.AssetKey(["shop", "augmented", "customers"])
    assert key not in job.asset_layer.selected_asset_keys, "augmentation runs on request, not with the twin"
    twin = [k for k in job.asset_layer.selected_asset_keys if "report" not in k.path[-1]]
    assert dg.materialize(assets=[*defs.assets], resources=default_resources(), instance=instance, selection=twin).success
    result = dg.materialize(assets=[*defs.assets], resources=default_resources(), instance=instance, selection=[key],
                            run_config={"ops": {"shop__augmented__customers": {"config": {
                                "conditions": ["segment=retail"], "rows": 25}}}})
    assert result.success
    meta = result.asset_materializations_for_node("shop__augmented__customers")[0].metadata
    assert meta["dagster/row_count"].value == 25 and "segment=retail" in meta["conditioned"].value
    assert meta["warehouse_schema"].value == "augmented_shop"
