"""The privacy budget ledger: append-only entries, basic and RDP composition, the budget refusing a model, and the
drift sensor skipping with that reason."""

from __future__ import annotations

import json
from types import SimpleNamespace

import dagster as dg
import pytest

from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import load_spec, parse_spec
from genesis_pipelines.engine.synthesis import privacy_ledger
from genesis_pipelines.engine.synthesis.privacy_ledger import PrivacyBudgetExceeded
from genesis_pipelines_tests.helpers import write_shop

pytestmark = pytest.mark.dagster


def _model(version: str, fingerprint: str, **tables):
    return SimpleNamespace(version=version, source_fingerprint=fingerprint, tables={
        t: SimpleNamespace(method=d.get("method", "dp_ctgan"), train_rows=100, describe=d) for t, d in tables.items()})


SGD = {"epsilon_spent": 1.0, "delta_spent": 1e-5, "accountant": "rdp (opacus)", "rdp_history": [[1.1, 0.01, 2000]],
       "delta_sgd": 1e-5, "epsilon_preprocessing": 0.0, "delta_preprocessing": 0.0}


def test_entries_append_and_add_up(tmp_path):
    layout = pipeline.DatasetLayout(tmp_path, "shop")
    assert privacy_ledger.read(layout) == []
    privacy_ledger.record(layout, _model("v1", "f1", customers={"epsilon_spent": 1.0, "delta": 1e-6, "method": "dp_gaussian_copula"},
                                         orders={"method": "gaussian_copula"}))  # not DP: no entry
    privacy_ledger.record(layout, _model("v2", "f2", customers={"epsilon_spent": 0.5, "delta": 1e-6}))
    entries = privacy_ledger.read(layout)
    assert [(e["model_version"], e["table"], e["epsilon"]) for e in entries] == [("v1", "customers", 1.0), ("v2", "customers", 0.5)]
    assert {"method", "accountant", "source_fingerprint", "recorded_at", "delta"} <= set(entries[0])
    total = privacy_ledger.cumulative(entries)
    assert total["basic"] == {"epsilon": 1.5, "delta": 2e-6} and total["epsilon"] == 1.5 and total["rdp"] is None
    summary = privacy_ledger.summary(parse_spec({"name": "shop", "privacy_budget": {"epsilon": 2}}), layout)
    assert summary["fingerprints"] == ["f1", "f2"] and summary["budget"]["epsilon_left"] == pytest.approx(0.5)
    assert json.loads(layout.privacy_ledger.read_text())["format"] == privacy_ledger.FORMAT


def test_rdp_total_is_tighter_than_basic_composition():
    # one training's epsilon as Opacus' RDP accountant reports it, for the same history
    one = privacy_ledger.cumulative(privacy_ledger.entries_for(_model("v0", "f", t={**SGD, "epsilon_spent": 99.0})))
    describe = {**SGD, "epsilon_spent": one["rdp"]["epsilon"]}
    entries = [privacy_ledger.entries_for(_model(v, "f", t=describe))[0] for v in ("v1", "v2")]
    total = privacy_ledger.cumulative(entries)
    assert total["basic"]["epsilon"] == pytest.approx(2 * one["rdp"]["epsilon"])
    assert total["rdp"] is not None and total["rdp"]["epsilon"] < total["basic"]["epsilon"]
    assert total["epsilon"] == total["rdp"]["epsilon"] and "RDP" in total["method"]


def test_budget_spec_field_is_validated():
    with pytest.raises(SpecError, match="privacy_budget.epsilon"):
        parse_spec({"name": "x", "privacy_budget": {"epsilon": 0}})
    with pytest.raises(SpecError, match="privacy_budget.delta"):
        parse_spec({"name": "x", "privacy_budget": {"epsilon": 1, "delta": 1.5}})


def _dp_shop(tmp_path):
    spec_path = write_shop(tmp_path / "shop")
    spec_path.write_text(spec_path.read_text() + (
        "generator: {default: gaussian_copula, tables: {customers: dp_gaussian_copula},\n"
        # public domain: 48 training rows are too few to find categories and bounds privately at epsilon 1
        "            settings: {dp_gaussian_copula: {epsilon: 1.0, delta: 1.0e-6,\n"
        "                       categories: {segment: [retail, wholesale, online]}, bounds: {age: [18, 80]}}}}\n"
        "privacy_budget: {epsilon: 1.5}\n"))
    return spec_path


def test_model_asset_refuses_past_the_budget_and_sensor_skips(tmp_path, isolated_data):
    from genesis_pipelines_tests.helpers import Ticker, dataset_defs

    spec_path = _dp_shop(tmp_path)
    spec = load_spec(spec_path)
    defs = dataset_defs(spec_path)
    instance = dg.DagsterInstance.ephemeral()
    upto_model = [dg.AssetKey(["shop", "source", t]) for t in ("customers", "orders")] + \
        [dg.AssetKey(["shop", k]) for k in ("schema", "pii_scan", "model")]
    first = dg.materialize(assets=[*defs.assets], resources=defs.resources, instance=instance, selection=upto_model)
    assert first.success
    layout = pipeline.DatasetLayout(isolated_data, "shop")
    (entry,) = privacy_ledger.read(layout)
    assert entry["table"] == "customers" and entry["epsilon"] <= 1.0 and entry["method"] == "dp_gaussian_copula"

    # drift above the threshold: the sensor would retrain, but a second model would spend 2.0 > 1.5
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["shop", "drift"]), metadata={"max_psi": 0.9}))
    sensor = Ticker(defs.resolve_sensor_def("shop_drift_retrain"), instance)
    skipped = sensor.tick()
    assert not skipped.run_requests and "privacy_budget" in skipped.skip_reason.skip_message

    second = dg.materialize(assets=[*defs.assets], resources=defs.resources, instance=instance,
                            selection=[dg.AssetKey(["shop", "model"])], raise_on_error=False)
    assert not second.success
    failure = next(e for e in second.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.event_specific_data.error
    assert "PrivacyBudgetExceeded" in (error.cause.cls_name if error.cause else error.cls_name)
    assert "would exceed privacy_budget" in (error.cause.message if error.cause else error.message)
    assert len(privacy_ledger.read(layout)) == 1, "a refused model spends nothing"
    with pytest.raises(PrivacyBudgetExceeded, match="privacy_budget"):
        privacy_ledger.check(spec, layout, {"customers": 48, "orders": 192})


def test_cli_exits_2_past_the_budget(tmp_path, isolated_data, capsys):
    from genesis_pipelines import cli

    spec_path = _dp_shop(tmp_path)
    assert cli.main(["generate", "--spec", str(spec_path)]) == 0
    assert cli.main(["privacy-audit", "--spec", str(spec_path)]) in (0, 1)  # 1: a gate failed on this tiny shop
    reports = isolated_data / "shop" / "reports"
    ledger = json.loads((reports / "privacy_report.json").read_text())["privacy_budget"]
    assert len(ledger["entries"]) == 1 and ledger["cumulative"]["epsilon"] <= 1.0 and ledger["budget"]["epsilon"] == 1.5
    assert "Privacy budget" in (reports / "privacy_report.html").read_text()
    assert cli.main(["generate", "--spec", str(spec_path), "--train"]) == 2
    assert "would exceed privacy_budget" in capsys.readouterr().err
