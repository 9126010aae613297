"""Resources shared by every dataset: the DuckDB warehouse, the file store and the PII hashing key."""


import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from genesis_pipelines import paths


class GenesisStorage(dg.ConfigurableResource):
    """Files that live beside the warehouse: models, synthetic exports, reports, analysis JSON."""

    data_dir: str = Field(description="root folder for models, exports and reports")

    def dataset_dir(self, dataset: str) -> Path:
        path = Path(self.data_dir) / dataset
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model_root(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "models"

    def synthetic_dir(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "synthetic"

    def reports_dir(self, dataset: str) -> Path:
        return self.dataset_dir(dataset) / "reports"

    def analysis_file(self, dataset: str, name: str) -> Path:
        return self.dataset_dir(dataset) / f"{name}.json"


class PiiSettings(dg.ConfigurableResource):
    """Secret for the `hash` PII policy; set GENESIS_HASH_KEY in the environment, never in a spec."""

    hash_key: str | None = Field(default=None, description="key for keyed hashing of PII columns")

    def key_bytes(self) -> bytes | None:
        return self.hash_key.encode("utf-8") if self.hash_key else None


class Warehouse(DuckDBResource):
    """The DuckDB warehouse; creates its folder so a fresh checkout runs with no setup."""

    def get_connection(self):
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        return super().get_connection()


def default_resources() -> dict:
    """Embedded defaults (DuckDB file + local folders); environment variables move them."""
    return {
        "warehouse": Warehouse(database=str(paths.warehouse_path())),
        "storage": GenesisStorage(data_dir=str(paths.data_dir())),
        "pii_settings": PiiSettings(hash_key=dg.EnvVar("GENESIS_HASH_KEY") if os.environ.get("GENESIS_HASH_KEY") else None),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
