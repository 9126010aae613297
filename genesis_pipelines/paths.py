"""Where the project keeps its files; every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def specs_dir() -> Path:
    return Path(os.environ.get("GENESIS_SPECS_DIR", PROJECT_ROOT / "resources" / "datasets"))


def data_dir() -> Path:
    return Path(os.environ.get("GENESIS_DATA_DIR", PROJECT_ROOT / "data"))


def warehouse_path() -> Path:
    return Path(os.environ.get("GENESIS_WAREHOUSE", data_dir() / "warehouse.duckdb"))
