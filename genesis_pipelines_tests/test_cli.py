"""`genesis` end to end on the small shop dataset: generate, evaluate, privacy-audit, export; clean errors."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from genesis_pipelines.cli import main
from genesis_pipelines.engine.pipeline import DatasetLayout as Layout
from genesis_pipelines.engine.sources.export import FORMATS
from genesis_pipelines_tests.helpers import PROJECT_ROOT, write_shop

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """One trained model and one generation, shared by the tests below (training is the slow part)."""
    root = tmp_path_factory.mktemp("cli")
    spec = write_shop(root / "shop")
    data = root / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        assert main(["generate", "--spec", str(spec)]) == 0
        yield spec, data


def _warehouse_counts(data: Path, schema: str) -> dict[str, int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f'select count(*) from "{schema}"."{t}"').fetchone()[0] for t in ("customers", "orders")}


def test_generate_trains_and_writes_warehouse_and_files(shop, capsys):
    spec, data = shop
    layout = Layout(data, "shop")
    assert (layout.models / "LATEST.json").is_file()
    assert _warehouse_counts(data, "synthetic_shop") == {"customers": 60, "orders": 240}
    assert _warehouse_counts(data, "holdout_shop")["orders"] > 0  # kept for the privacy audit, never exported
    orders = pd.read_parquet(layout.synthetic / "orders.parquet")
    customers = pd.read_parquet(layout.synthetic / "customers.parquet")
    assert set(orders["customer_id"].dropna()) <= set(customers["customer_id"])
    real_emails = set(pd.read_csv(spec.parent / "data" / "customers.csv")["email"])
    assert not real_emails & set(customers["email"].dropna())


def test_generate_reuses_model_with_scale_seed_and_version(shop, tmp_path, capsys):
    spec, data = shop
    layout = Layout(data, "shop")
    version = json.loads((layout.models / "LATEST.json").read_text())["version"]
    out = tmp_path / "half"
    assert main(["generate", "--spec", str(spec), "--scale", "0.5", "--seed", "7", "--model-version", version,
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "training" not in captured.err and f"model {version}" in captured.err
    assert str(out / "orders.csv") in captured.out
    assert len(pd.read_csv(out / "customers.csv")) == 30
    assert json.loads((layout.models / "LATEST.json").read_text())["version"] == version
    assert main(["generate", "--spec", str(spec), "--model-version", "v0-missing"]) == 2
    err = capsys.readouterr().err
    assert "v0-missing" in err and "--train" in err and "Traceback" not in err
    assert main(["generate", "--spec", str(spec)]) == 0  # back to the full-size twin for the tests below


def test_evaluate_writes_quality_report(shop, capsys):
    spec, data = shop
    assert main(["evaluate", "--spec", str(spec)]) == 0
    report = json.loads((Layout(data, "shop").reports / "quality_report.json").read_text())
    assert 0 <= report["overall_score"] <= 100
    assert (Layout(data, "shop").reports / "quality_report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert "overall quality" in capsys.readouterr().err


def test_privacy_audit_passes_then_fails_a_strict_gate(shop, capsys, monkeypatch):
    spec, data = shop
    assert main(["privacy-audit", "--spec", str(spec)]) == 0
    report = json.loads((Layout(data, "shop").reports / "privacy_report.json").read_text())
    assert report["passed"]["no_pii_leak"] is True
    strict = spec.with_name("strict.yaml")
    strict.write_text(spec.read_text().replace("thresholds: {quality_min: 50}", "thresholds: {quality_min: 50, dcr_share_max: 0.0}"))
    out = spec.parent / "strict_reports"
    # the shop's tables are too small for chance to leave the DCR share judgeable: judge it anyway here
    monkeypatch.setattr("genesis_pipelines.engine.evaluation.privacy.audit.DCR_MAX_CHANCE_SD", 1.0)
    assert main(["privacy-audit", "--spec", str(strict), "--out", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert (out / "privacy_report.html").is_file()


def test_export_every_format_round_trips(shop, tmp_path, capsys):
    spec, data = shop
    counts = _warehouse_counts(data, "synthetic_shop")
    has_openpyxl = importlib.util.find_spec("openpyxl") is not None  # the `export` extra
    for fmt in [f for f in FORMATS if f != "excel" or has_openpyxl]:
        assert main(["export", "--spec", str(spec), "--format", fmt, "--out", str(tmp_path / fmt)]) == 0, capsys.readouterr().err
    assert {t: len(pd.read_csv(tmp_path / "csv" / f"{t}.csv")) for t in counts} == counts
    assert {t: len(pd.read_parquet(tmp_path / "parquet" / f"{t}.parquet")) for t in counts} == counts
    assert {t: len(pd.read_json(tmp_path / "json" / f"{t}.json")) for t in counts} == counts
    if has_openpyxl:
        sheets = pd.read_excel(tmp_path / "excel" / "shop.xlsx", sheet_name=None)
        assert {t: len(sheets[t]) for t in counts} == counts
    con = sqlite3.connect(":memory:")
    con.execute("PRAGMA foreign_keys = ON")
    con.executescript((tmp_path / "sql" / "shop.sql").read_text(encoding="utf-8"))
    assert {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in counts} == counts
    assert {t: len(ET.parse(tmp_path / "xml" / f"{t}.xml").getroot().findall("row")) for t in counts} == counts


def test_errors_are_one_line_with_exit_2(shop, tmp_path, capsys):
    spec, data = shop
    assert main(["generate", "--spec", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genesis: error:") and "missing.yaml" in err and "Traceback" not in err
    assert main(["export", "--spec", str(spec), "--format", "yaml"]) == 2  # argparse usage error
    capsys.readouterr()
    # a fresh data dir: nothing generated yet
    assert main(["evaluate", "--spec", str(spec), "--data-dir", str(tmp_path / "empty")]) == 2
    assert "genesis generate" in capsys.readouterr().err
    # a corrupt model names the way out and leaks nothing
    corrupt = tmp_path / "corrupt"
    layout = Layout(corrupt, "shop")
    layout.models.mkdir(parents=True)
    (layout.models / "LATEST.json").write_text('{"version": "v1"}')
    (layout.models / "v1").mkdir()
    (layout.models / "v1" / "model.json").write_text("{not json")
    assert main(["generate", "--spec", str(spec), "--data-dir", str(corrupt)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "--train" in err and "Traceback" not in err


def test_layout_is_the_one_the_dagster_storage_uses(tmp_path):
    from genesis_pipelines.defs.resources import GenesisStorage
    from genesis_pipelines.engine.synthesis.splits import split_schemas

    storage, layout = GenesisStorage(data_dir=str(tmp_path)), Layout(tmp_path, "shop")
    assert storage.layout("shop") == layout
    assert layout.models == tmp_path / "shop" / "models" and layout.analysis("schema") == tmp_path / "shop" / "schema.json"
    assert (layout.source_schema, layout.synthetic_schema) == ("source_shop", "synthetic_shop")
    assert split_schemas("shop") == (layout.train_schema, layout.holdout_schema) == ("train_shop", "holdout_shop")


@pytest.mark.slow  # a fresh interpreter importing the engine
def test_console_entry_point_runs_without_dagster(shop, tmp_path):
    """The real process: no dagster import, paths on stdout, progress on stderr."""
    spec, data = shop
    code = ("import sys; from genesis_pipelines.cli import main; rc = main(sys.argv[1:]); "
            "assert 'dagster' not in sys.modules, 'the CLI imported dagster'; sys.exit(rc)")
    env = {**os.environ, "GENESIS_DATA_DIR": str(data)}
    env.pop("GENESIS_WAREHOUSE", None)
    done = subprocess.run([sys.executable, "-c", code, "export", "--spec", str(spec), "--format", "csv", "--out", str(tmp_path)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(tmp_path / "customers.csv"), str(tmp_path / "orders.csv")]
    assert "exported 2 tables" in done.stderr
