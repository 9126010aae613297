"""Shared fixtures: isolated data dirs, so no test touches ./data or ./.dagster_home."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_SPECS = PROJECT_ROOT / "resources" / "datasets"


@pytest.fixture
def isolated_data(tmp_path, monkeypatch) -> Path:
    """A private GENESIS_DATA_DIR (warehouse, models, exports, reports) for one test."""
    data = tmp_path / "data"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(data))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    return data


def copy_dataset(name: str, target: Path) -> Path:
    """A writable copy of a bundled dataset folder (spec + data), for tests that damage the data."""
    destination = target / name
    shutil.copytree(BUNDLED_SPECS / name, destination)
    return destination / "dataset.yaml"
