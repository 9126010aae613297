"""`<dataset>/synthetic_s3/<table>`: a synthetic table copied to S3 as Parquet by the S3 IO manager.

A separate step from generation so that an S3 blip retries only the upload (RetryPolicy with backoff), never
the generation or the warehouse write; present only when GENESIS_EXPORT_S3_URI is set.
"""

import dagster as dg

from genesis_pipelines.defs.assets.common import key_name, stage_tags, synthetic_key, table_metadata, warehouse_schema
from genesis_pipelines.defs.io_managers import IO_MANAGER_KEY, S3_RETRY_POLICY, s3_export_enabled
from genesis_pipelines.defs.resources import Warehouse
from genesis_pipelines.engine.core.spec import DatasetSpec


def s3_export_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "synthetic_s3", key_name(table)])


def s3_export_keys(spec: DatasetSpec, tables) -> list[dg.AssetKey]:
    return [s3_export_key(spec.name, t) for t in tables] if s3_export_enabled() else []


def build_s3_export_assets(spec: DatasetSpec, tables) -> list[dg.AssetsDefinition]:
    return [_s3_export_asset(spec, table) for table in tables] if s3_export_enabled() else []


def _s3_export_asset(spec: DatasetSpec, table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=s3_export_key(spec.name, table),
        tags=stage_tags("synthetic"),
        group_name=spec.name,
        metadata={"table": table},  # the real name: the IO manager writes <dataset>/<table>.parquet with it
        deps=[synthetic_key(spec.name, table)],
        kinds={"s3", "parquet"},
        io_manager_key=IO_MANAGER_KEY,
        retry_policy=S3_RETRY_POLICY,
        # reads the warehouse read-only: no pool
        description=f"Synthetic {table} as Parquet in S3 (GENESIS_EXPORT_S3_URI/{spec.name}/{table}.parquet).",
    )
    def synthetic_s3(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.Output:
        from genesis_pipelines.engine.sources.io import read_table

        with warehouse.read_connection()() as con:
            df = read_table(con, warehouse_schema("synthetic", spec.name), table)
        return dg.Output(df, metadata=table_metadata(df))

    return synthetic_s3
