"""Where one dataset's things live: files under the data dir, warehouse schema names, and the specs folder.

The one spelling of every path and schema name, shared by the CLI, the Dagster resources and the engine's
pipeline steps (genesis_pipelines.engine.pipeline re-exports DatasetLayout). Every location can be moved with an
environment variable: GENESIS_DATA_DIR, GENESIS_WAREHOUSE, GENESIS_SPECS_DIR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SPECS_DIR = "resources/datasets"
SPECS_DIR_ENV, DATA_DIR_ENV, WAREHOUSE_ENV = "GENESIS_SPECS_DIR", "GENESIS_DATA_DIR", "GENESIS_WAREHOUSE"
WAREHOUSE_KINDS = ("source", "synthetic", "train", "holdout", "augmented")
# the formats `export` writes, each to exports/<format>/ (engine/sources/export.py); here so the CLI can list them
# without importing pandas
EXPORT_FORMATS = ("csv", "parquet", "json", "excel", "sql", "xml")


def specs_dir(default: str | Path | None = None, *, root: Path | None = None) -> Path:
    """GENESIS_SPECS_DIR, else `default` (a component's `specs_dir`), else resources/datasets; relative paths are
    taken from `root` (the project root)."""
    chosen = Path(os.environ.get(SPECS_DIR_ENV) or default or DEFAULT_SPECS_DIR)
    return chosen if chosen.is_absolute() else Path(root or PROJECT_ROOT) / chosen


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data")


def warehouse_path(data: Path | None = None) -> Path:
    """GENESIS_WAREHOUSE, else `<data dir>/warehouse.duckdb` (`data` given: that data dir's warehouse)."""
    if os.environ.get(WAREHOUSE_ENV):
        return Path(os.environ[WAREHOUSE_ENV])
    return Path(data if data is not None else data_dir()) / "warehouse.duckdb"


def warehouse_schema(kind: str, dataset: str) -> str:
    """`source_chinook`, `synthetic_chinook`, `train_chinook`, `holdout_chinook`, `augmented_chinook`."""
    if kind not in WAREHOUSE_KINDS:
        raise ValueError(f"unknown warehouse schema kind {kind!r}: one of {', '.join(WAREHOUSE_KINDS)}")
    return f"{kind}_{dataset}"


@dataclass(frozen=True)
class DatasetLayout:
    """Files of one dataset under the data dir (models/, synthetic/, reports/, exports/, analysis JSON) and its
    warehouse schemas. Nothing is created by reading a property; writers create what they write."""

    data_dir: Path
    dataset: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def root(self) -> Path:
        return self.data_dir / self.dataset

    @property
    def staging(self) -> Path:
        """Scratch files of running generation steps (see staging.claim); leftovers of killed ones are removed."""
        return self.root / ".staging"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def synthetic(self) -> Path:
        """The current synthetic files: a link to one complete version under `synthetic.versions/`."""
        return self.root / "synthetic"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def augmented(self, table: str) -> Path:
        """Conditioned rows of one table (and their children): a link to one complete version, like `synthetic`."""
        return self.root / "augmented" / table

    @property
    def privacy_ledger(self) -> Path:
        """Every DP training's spend, append-only (privacy_ledger.py)."""
        return self.root / "privacy_ledger.json"

    def exports(self, fmt: str) -> Path:
        return self.root / "exports" / fmt

    def analysis(self, name: str) -> Path:
        return self.root / f"{name}.json"

    @property
    def lock_file(self) -> Path:
        """Held by the one writer that trains or publishes this dataset (see pipeline.writer_lock)."""
        return self.root / ".writer.lock"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def schema(self, kind: str) -> str:
        return warehouse_schema(kind, self.dataset)

    @property
    def source_schema(self) -> str:
        return self.schema("source")

    @property
    def synthetic_schema(self) -> str:
        return self.schema("synthetic")

    @property
    def train_schema(self) -> str:
        return self.schema("train")

    @property
    def holdout_schema(self) -> str:
        return self.schema("holdout")

    @property
    def augmented_schema(self) -> str:
        return self.schema("augmented")
