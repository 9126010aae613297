"""Drift: PSI / KS / chi-squared per column, children per parent across tables, and the sensor that retrains."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.core.schema import ForeignKey
from genesis_pipelines.engine.evaluation.drift import categorical_drift, numeric_drift, psi, relation_drift, table_drift
from genesis_pipelines.engine.synthesis.relational import RelationStats
from genesis_pipelines_tests.helpers import Ticker, dataset_defs, write_shop

if TYPE_CHECKING:  # Dagster is imported by the test that uses it, so the unit tier never loads it
    import dagster as dg

RNG = np.random.default_rng(7)


def test_psi_is_zero_for_equal_shares_and_grows_with_shift():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    train = pd.Series(RNG.normal(0, 1, 2000))
    assert numeric_drift(train, pd.Series(RNG.normal(0, 1, 2000)))["psi"] < 0.05
    shifted = numeric_drift(train, pd.Series(RNG.normal(1.0, 1, 2000)))
    assert shifted["psi"] > 0.2 and shifted["ks"] > 0.3 and shifted["ks_pvalue"] < 1e-6


def test_datetime_and_categorical_columns():
    days = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(RNG.integers(0, 100, 500), unit="D"))
    later = days + pd.Timedelta(days=60)
    assert numeric_drift(days, later)["psi"] > 0.5
    a = pd.Series(RNG.choice(["x", "y", "z"], 1000, p=[0.6, 0.3, 0.1]))
    same = categorical_drift(a, pd.Series(RNG.choice(["x", "y", "z"], 1000, p=[0.6, 0.3, 0.1])))
    moved = categorical_drift(a, pd.Series(RNG.choice(["x", "y", "w"], 1000, p=[0.1, 0.3, 0.6])))
    assert same["psi"] < 0.05 and same["chi2_pvalue"] > 0.001
    assert moved["psi"] > 1 and moved["chi2_pvalue"] < 1e-10 and moved["new_category_share"] > 0.5


def test_table_drift_skips_ids_and_text_and_flags_missing_columns():
    train = pd.DataFrame({"id": range(100), "note": ["n"] * 100, "v": RNG.normal(size=100)})
    result = table_drift(train, train.drop(columns=["v"]), {"id": "id", "note": "text", "v": "numeric"})
    assert set(result["columns"]) == {"v"} and result["columns"]["v"]["kind"] == "missing"
    assert result["max_psi"] == float("inf")


def test_children_per_parent_drift():
    fk = ForeignKey(child_table="orders", child_column="cid", parent_table="customers", parent_column="id")
    learned = RelationStats(fk=fk, null_share=0.0, counts=[1, 2, 3], probs=[0.3, 0.4, 0.3])
    parents = pd.DataFrame({"id": range(100)})
    like = pd.DataFrame({"cid": np.repeat(np.arange(100), np.r_[[1] * 30, [2] * 40, [3] * 30])})
    heavy = pd.DataFrame({"cid": np.repeat(np.arange(100), np.r_[[0] * 50, [8] * 50])})
    assert relation_drift(learned, {"orders": like, "customers": parents})["psi"] < 0.01
    drifted = relation_drift(learned, {"orders": heavy, "customers": parents})
    assert drifted["psi"] > 1 and drifted["mean_current"] == pytest.approx(4.0)


# ---------------------------------------------------------------- the asset and the retraining sensor


def _drifted_orders(path: Path) -> None:
    """Orders three times larger, with every customer buying far more often: column and relation drift."""
    orders = pd.read_csv(path)
    more = pd.concat([orders] * 3, ignore_index=True)
    more["order_id"] = np.arange(1, len(more) + 1)
    more["amount"] = (more["amount"] * 4).round(2)
    more.to_csv(path, index=False)


def _metadata(result: dg.ExecuteInJobResult, key: str) -> dict:
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {k: v.value for e in events if e.asset_key.to_user_string() == key for k, v in e.metadata.items()}


@pytest.mark.dagster
def test_drift_asset_and_sensor_retrain_once(tmp_path, isolated_data):
    import dagster as dg

    spec = write_shop(tmp_path / "shop")
    defs = dataset_defs(spec)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("shop_synthetic_twin")
    no_reports = dg.AssetSelection.groups("shop") - dg.AssetSelection.assets(
        dg.AssetKey(["shop", "quality_report"]), dg.AssetKey(["shop", "privacy_report"]))
    first = dg.materialize(assets=[*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance,
                           selection=no_reports)
    assert first.success
    calm = _metadata(first, "shop/drift")
    # unchanged source: the training snapshot (train + holdout) is the source, so nothing drifted at all
    assert calm["max_psi"] < 1e-9 and calm["drifted"] is False and "psi/orders" in calm
    sensor = Ticker(defs.resolve_sensor_def("shop_drift_retrain"), instance)
    assert not sensor.tick().run_requests, "drift below the threshold retrains nothing"

    _drifted_orders(spec.parent / "data" / "orders.csv")
    measured = dg.materialize(assets=[*defs.assets], resources=defs.resources, instance=instance,
                              selection=[dg.AssetKey(["shop", "source", "orders"]), dg.AssetKey(["shop", "drift"])])
    assert measured.success
    drift = _metadata(measured, "shop/drift")
    assert drift["max_psi"] > 0.2 and drift["max_relation_psi"] > 0.2 and drift["drifted"] is True
    storage_id = instance.fetch_materializations(dg.AssetKey(["shop", "drift"]), limit=1).records[0].storage_id
    queued = instance.add_run(dg.DagsterRun(job_name="shop_synthetic_twin", status=dg.DagsterRunStatus.STARTED,
                                            tags={"genesis/trigger": "drift", "dataset": "shop"}))
    waiting = sensor.tick()
    assert not waiting.run_requests and "already queued or running" in waiting.skip_reason.skip_message and waiting.cursor is None
    instance.delete_run(queued.run_id)
    (request,) = sensor.tick().run_requests
    assert request.tags["genesis/trigger"] == "drift" and request.tags["dataset"] == "shop"
    assert request.run_key == f"shop-drift-{storage_id}"
    keys = {k.to_user_string() for k in request.asset_selection}
    assert {"shop/model", "shop/synthetic/orders", "shop/quality_report"} <= keys
    assert not any(k.startswith("shop/source/") for k in keys) and "shop/drift" not in keys
    assert keys <= {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert not sensor.tick().run_requests, "one measurement, one retraining run"

    assert defs.resolve_sensor_def("shop_drift_retrain").job_name == "shop_synthetic_twin"
    assert request.tags["genesis/requests"] == "retrain"
    # the run the daemon launches: the twin job, subset to the request's selection (reports are tested elsewhere)
    retrain = [k for k in request.asset_selection if "report" not in k.path[-1]]
    run = job.execute_in_process(instance=instance, asset_selection=retrain, tags=request.tags)
    assert run.success
    assert {e.asset_key for e in run.get_asset_materialization_events()} == set(retrain), "exactly the subset"
    fresh = Ticker(defs.resolve_sensor_def("shop_drift_retrain"), instance)  # no cursor: the old measurement is stale
    assert not fresh.tick().run_requests


def test_drift_spec_field():
    from genesis_pipelines.engine.core.errors import SpecError
    from genesis_pipelines.engine.core.spec import parse_spec

    assert parse_spec({"name": "x"}).drift.psi_threshold == 0.2
    assert parse_spec({"name": "x", "drift": {"psi_threshold": 0.3}}).drift.psi_threshold == 0.3
    assert parse_spec({"name": "x", "drift": {"threshold": 0.1}}).drift.psi_threshold == 0.1
    with pytest.raises(SpecError, match="drift.psi_threshold"):
        parse_spec({"name": "x", "drift": {"psi_threshold": -1}})
