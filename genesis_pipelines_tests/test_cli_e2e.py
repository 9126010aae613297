"""End to end through the real `dagster` CLI on the bundled demo, as the README's demo command runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from genesis_pipelines_tests.helpers import PROJECT_ROOT

pytestmark = [pytest.mark.cli, pytest.mark.slow]


def test_dagster_asset_materialize_cli_on_chinook(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "GENESIS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENESIS_SPECS_DIR", None)
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "genesis_pipelines.definitions", "--select", "group:chinook"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout + completed.stderr
    assert "RUN_SUCCESS" in output
    # keys_valid, no_pii_leak and expectations on 11 tables, plus the two report gates
    assert output.count("ASSET_CHECK_EVALUATION") == 11 * 3 + 2
    assert "did not pass" not in output
    data = tmp_path / "data"
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'synthetic_chinook'").fetchall()}
    assert len(tables) == 11
    assert (data / "chinook" / "reports" / "quality_report.html").is_file()
    assert (data / "chinook" / "synthetic" / "InvoiceLine.parquet").is_file()
    # the run is recorded in the instance, so `dagster dev` shows it
    assert any(home.joinpath("storage").iterdir()) or (home / "history").exists()
