"""`<dataset>/source/<table>`: one real table loaded into the warehouse."""


import dagster as dg

from genesis_pipelines.defs.assets.common import source_key, stage_tags, table_definition_metadata, warehouse_schema
from genesis_pipelines.defs.lineage import CODE_VERSION
from genesis_pipelines.defs.metadata import source_table_metadata
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec


def build_source_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:
    return [_source_asset(spec, table) for table in tables]


def _source_asset(spec: DatasetSpec, table: str) -> dg.AssetsDefinition:
    kinds = {"csv_folder": {"csv"}, "parquet_folder": {"parquet"}, "duckdb": set(),
             "s3_csv": {"s3", "csv"}, "s3_parquet": {"s3", "parquet"}}[spec.source.kind]

    @dg.asset(
        key=source_key(spec.name, table),
        tags=stage_tags("source"),
        group_name=spec.name,
        metadata=table_definition_metadata(warehouse_schema("source", spec.name), table),
        kinds={*kinds, "duckdb"},
        # the CSV is parsed outside any lock; its write is one short swap that waits for another writer
        code_version=CODE_VERSION,
        # S3 reads can fail transiently (throttling, resets): retry with backoff; a missing bucket still fails clearly
        retry_policy=dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL) if spec.source.is_s3 else None,
        description=f"Real table {table} of {spec.name}, typed and loaded into the warehouse.",
    )
    def source_table(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.synthesis.relational import fingerprint_tables

        df = pipeline.load_source(spec, storage.layout(spec.name), warehouse.get_connection, table)
        snapshot = fingerprint_tables({table: df})
        context.log.info(f"loaded {table}: {len(df)} rows, {df.shape[1]} columns")
        return dg.MaterializeResult(
            metadata={**source_table_metadata(spec, table, df), "content_hash": snapshot},
            data_version=dg.DataVersion(snapshot),
        )

    return source_table
