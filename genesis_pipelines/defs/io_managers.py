"""S3 as a home for synthetic tables: Parquet at s3://bucket/prefix/<dataset>/<table>.parquet, never pickles.

Chosen by GENESIS_EXPORT_S3_URI; unset (the embedded default), nothing here is used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    import pandas as pd

EXPORT_URI_ENV = "GENESIS_EXPORT_S3_URI"
IO_MANAGER_KEY = "synthetic_s3_io_manager"
# transient S3 trouble (network, throttling, 5xx) after botocore's own retries: 3 more tries, ~2 s, 4 s, 8 s apart
S3_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def s3_export_enabled() -> bool:
    return bool(os.environ.get(EXPORT_URI_ENV))


class S3ParquetIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame outputs as Parquet under `uri`, keyed by <dataset>/<table> (first and last asset key parts).

    Credentials and endpoint come from the usual AWS chain (env, IRSA/task role; AWS_ENDPOINT_URL for MinIO or moto).
    A missing bucket or denied access fails at once; anything else is left to the asset's RetryPolicy.
    """

    uri: str = Field(description="s3://bucket/prefix")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint; default: AWS_ENDPOINT_URL or AWS")
    region_name: str | None = Field(default=None)
    max_attempts: int = Field(default=3, ge=1, description="attempts per S3 call inside one step (botocore), before Dagster retries the step")

    def _client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name,
                            config=Config(retries={"total_max_attempts": self.max_attempts, "mode": "standard"}))

    def location(self, asset_key: dg.AssetKey, table: str | None = None) -> tuple[str, str]:
        """`table`: the real table name from the asset's metadata (the key's last part may be sanitised)."""
        from genesis_pipelines.engine.sources.export import parse_s3_uri, s3_table_key

        bucket, prefix = parse_s3_uri(self.uri)
        return bucket, s3_table_key(prefix, asset_key.path[0], table or asset_key.path[-1])

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        from genesis_pipelines.engine.sources.export import ExportError, TransientExportError, write_s3_parquet

        bucket, key = self.location(context.asset_key, (context.definition_metadata or {}).get("table"))
        try:
            size = write_s3_parquet(obj, self._client(), bucket, key)
        except TransientExportError:
            raise  # the RetryPolicy takes it from here
        except ExportError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        context.add_output_metadata({"uri": dg.MetadataValue.path(f"s3://{bucket}/{key}"), "parquet_bytes": size,
                                     "dagster/row_count": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        from genesis_pipelines.engine.sources.export import ExportError, TransientExportError, read_s3_parquet

        upstream = context.upstream_output
        bucket, key = self.location(context.asset_key, (upstream.definition_metadata or {}).get("table") if upstream else None)
        try:
            return read_s3_parquet(self._client(), bucket, key)
        except TransientExportError:
            raise
        except ExportError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def s3_io_manager_resources() -> dict:
    """The IO manager, only when GENESIS_EXPORT_S3_URI is set (read at run time through dg.EnvVar)."""
    return {IO_MANAGER_KEY: S3ParquetIOManager(uri=dg.EnvVar(EXPORT_URI_ENV))} if s3_export_enabled() else {}
