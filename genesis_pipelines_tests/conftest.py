"""Shared fixtures: isolated data dirs, so no test touches ./data or ./.dagster_home."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def isolated_data(tmp_path, monkeypatch) -> Path:
    """A private GENESIS_DATA_DIR (warehouse, models, exports, reports) for one test."""
    data = tmp_path / "data"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(data))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    return data
