"""Resources shared by every dataset: the DuckDB warehouse, the file store and the PII hashing key."""


import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from genesis_pipelines import paths
from genesis_pipelines.defs.io_managers import s3_io_manager_resources
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.device import resolve_device
from genesis_pipelines.engine.pipeline import DatasetLayout

READ_WAIT_S = 600.0  # fail-safe: a reader gives up after waiting this long behind writers


class GenesisStorage(dg.ConfigurableResource):
    """Files that live beside the warehouse (models, synthetic files, reports, analysis JSON): the data dir, laid
    out per dataset by the engine's DatasetLayout, the same layout the CLI uses."""

    data_dir: str = Field(description="root folder for models, exports and reports")

    def layout(self, dataset: str) -> DatasetLayout:
        return DatasetLayout(Path(self.data_dir), dataset)


class PiiSettings(dg.ConfigurableResource):
    """Secret for the `hash` PII policy; set GENESIS_HASH_KEY in the environment, never in a spec."""

    hash_key: str | None = Field(default=None, description="key for keyed hashing of PII columns")

    def key_bytes(self) -> bytes | None:
        return self.hash_key.encode("utf-8") if self.hash_key else None


class Warehouse(DuckDBResource):
    """The DuckDB warehouse; creates its folder so a fresh checkout runs with no setup.

    The connection is closed even when the step fails or is interrupted (the base class only closes on success),
    so a failed step never keeps the file lock that other runs wait for.
    """

    @contextmanager
    def get_connection(self):
        """Read-write; while another process holds the file (its short commit, or readers), wait for it up to
        READ_WAIT_S (a fail-safe), so steps without a pool queue for the single writer instead of failing."""
        if self.database == ":memory:":
            with super().get_connection() as conn:
                try:
                    yield conn
                finally:
                    conn.close()
            return
        with pipeline.warehouse_connector(self.database, wait=READ_WAIT_S)() as conn:
            yield conn


    def read_connection(self):
        """A `Connect` that opens the warehouse read-only, waiting while another process writes: steps that only
        read (schema, PII scan, per-table training) run in parallel processes. In-memory: the shared connection."""
        if self.database == ":memory:" or not Path(self.database).is_file():
            return self.get_connection
        return pipeline.warehouse_connector(self.database, read_only=True, wait=READ_WAIT_S)


class DeviceResource(dg.ConfigurableResource):
    """Where torch generators train: auto picks CUDA when a GPU is visible (GENESIS_DEVICE overrides)."""

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")

    def resolve(self) -> str:
        return resolve_device(self.device)


def default_resources() -> dict:
    """Embedded defaults (DuckDB file + local folders); environment variables move them."""
    return {
        "warehouse": Warehouse(database=str(paths.warehouse_path())),
        "storage": GenesisStorage(data_dir=str(paths.data_dir())),
        "pii_settings": PiiSettings(hash_key=dg.EnvVar("GENESIS_HASH_KEY") if os.environ.get("GENESIS_HASH_KEY") else None),
        "device": DeviceResource(device=os.environ.get("GENESIS_DEVICE", "auto")),
        **s3_io_manager_resources(),  # only with GENESIS_EXPORT_S3_URI: synthetic tables as Parquet in S3
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
