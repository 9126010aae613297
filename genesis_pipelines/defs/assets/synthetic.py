"""`<dataset>/synthetic/<table>`: generated after its parents into the warehouse; `<dataset>/synthetic_files`: the
synthetic tables as Parquet + CSV, published as one complete versioned folder."""


import dagster as dg

from genesis_pipelines.defs.assets.common import (
    dataset_key,
    source_key,
    stage_tags,
    synthetic_key,
    table_definition_metadata,
    warehouse_schema,
)
from genesis_pipelines.defs.lineage import CODE_VERSION, run_model, run_seed
from genesis_pipelines.defs.metadata import synthetic_table_metadata
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec


def synthetic_files_key(dataset: str) -> dg.AssetKey:
    return dataset_key(dataset, "synthetic_files")


def build_synthetic_assets(spec: DatasetSpec, plan: dict[str, list[str]]) -> list[dg.AssetsDefinition]:
    """`plan` maps each table to its parents in generation order, so the asset graph mirrors the FK graph."""
    return [_synthetic_asset(spec, table, parents) for table, parents in plan.items()] + [_files_asset(spec, list(plan))]


def _synthetic_asset(spec: DatasetSpec, table: str, parents: list[str]) -> dg.AssetsDefinition:

    @dg.asset(
        key=synthetic_key(spec.name, table),
        tags=stage_tags("synthetic"),
        group_name=spec.name,
        metadata=table_definition_metadata(warehouse_schema("synthetic", spec.name), table),
        deps=[dataset_key(spec.name, "model")] + [synthetic_key(spec.name, p) for p in parents],
        kinds={"duckdb"},
        # no pool: generated into the step's own staging file, then one short commit that waits for another writer
        code_version=CODE_VERSION,
        description=f"Synthetic {table}: keys point only at generated parents ({', '.join(parents) or 'no parents'}).",
    )
    def synthetic_table(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        # run tags `genesis/model_version` and `genesis/seed` pick an earlier model and a new seed (schedule)
        layout = storage.layout(spec.name)
        model, model_dir = run_model(context, spec, layout)
        seed = run_seed(context, spec)
        done = pipeline.generate_table(layout, warehouse.get_connection, model, model_dir, table, scale=spec.scale,
                                       seed=seed, locale=spec.pii_locale, read=warehouse.read_connection())
        return dg.MaterializeResult(
            metadata={
                # the URI is the Parquet file the `synthetic_files` step publishes under the `synthetic` link
                **synthetic_table_metadata(model, table, done.columns, done.rows,
                                           exports=[layout.synthetic / f"{table}.parquet"],
                                           source_key=lambda t: source_key(spec.name, t),
                                           synthetic_key=lambda t: synthetic_key(spec.name, t)),
                "model_version": model.version,
                "seed": seed,
                "real_row_count": model.tables[table].row_count,
            },
            data_version=dg.DataVersion(f"{model.version}-{seed}-{spec.scale}"),
        )

    return synthetic_table


def _files_asset(spec: DatasetSpec, tables: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=synthetic_files_key(spec.name),
        tags=stage_tags("synthetic"),
        group_name=spec.name,
        deps=[synthetic_key(spec.name, t) for t in tables],
        kinds={"parquet", "csv"},
        # reads the warehouse read-only (COPY to files): no pool
        code_version=CODE_VERSION,
        description=f"The synthetic tables of {spec.name} as Parquet + CSV in <data dir>/{spec.name}/synthetic: a link "
                    "to one complete version folder, swapped in one rename, so it never mixes files of two runs.",
    )
    def synthetic_files(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        from genesis_pipelines.engine.sources.export import current_version

        layout = storage.layout(spec.name)
        files = pipeline.publish_files(layout, warehouse.read_connection(), tables)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(layout.synthetic)),
            "files_version": current_version(layout.synthetic) or "none",
            "files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in files)),
        })

    return synthetic_files
