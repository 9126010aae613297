"""`<dataset>/synthetic/<table>`: generated after its parents, written to the warehouse and exported."""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, synthetic_key, table_metadata, warehouse_schema
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine.io import export_table, read_table, write_table
from genesis_pipelines.engine.relational import generate_table, load_copy_guard, load_model, load_pii_guard
from genesis_pipelines.engine.spec import DatasetSpec


def build_synthetic_assets(spec: DatasetSpec, plan: dict[str, list[str]]) -> list[dg.AssetsDefinition]:
    """`plan` maps each table to its parents in generation order, so the asset graph mirrors the FK graph."""
    return [_synthetic_asset(spec, table, parents) for table, parents in plan.items()]


def _synthetic_asset(spec: DatasetSpec, table: str, parents: list[str]) -> dg.AssetsDefinition:

    @dg.asset(
        key=synthetic_key(spec.name, table),
        group_name=spec.name,
        deps=[dataset_key(spec.name, "model")] + [synthetic_key(spec.name, p) for p in parents],
        kinds={"duckdb", "parquet"},
        pool="duckdb",
        description=f"Synthetic {table}: keys point only at generated parents ({', '.join(parents) or 'no parents'}).",
    )
    def synthetic_table(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        model, model_dir = load_model(storage.model_root(spec.name))
        out_schema = warehouse_schema("synthetic", spec.name)
        with warehouse.get_connection() as con:
            # the model's own FK graph decides which parents are read; the asset deps only order the runs
            generated_parents = {p: read_table(con, out_schema, p) for p in model.db_schema.parents_of(table)}
            df = generate_table(model, model_dir, table, generated_parents, scale=spec.scale, seed=spec.seed,
                                locale=spec.pii_locale, forbidden=load_pii_guard(model, model_dir),
                                copy_guard=load_copy_guard(model, model_dir, table))
            write_table(con, out_schema, table, df)
        exports = export_table(df, storage.synthetic_dir(spec.name), table)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(df),
                "model_version": model.version,
                "real_row_count": model.tables[table].row_count,
                "exports": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in exports)),
            },
            data_version=dg.DataVersion(f"{model.version}-{spec.seed}-{spec.scale}"),
        )

    return synthetic_table
