"""`<dataset>/synthetic/<table>`: generated after its parents, written to the warehouse and exported."""


import dagster as dg

from genesis_pipelines.defs.assets.common import (
    dataset_key, source_key, synthetic_key, table_definition_metadata, warehouse_schema,
)
from genesis_pipelines.defs.lineage import CODE_VERSION, run_model, run_seed
from genesis_pipelines.defs.metadata import synthetic_table_metadata
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine.io import export_warehouse_table, read_table, write_table
from genesis_pipelines.engine.relational import (
    deferred_relations,
    fill_deferred_keys,
    generate_table_chunks,
    load_copy_guard,
    load_pii_guard,
)
from genesis_pipelines.engine.spec import DatasetSpec


def build_synthetic_assets(spec: DatasetSpec, plan: dict[str, list[str]]) -> list[dg.AssetsDefinition]:
    """`plan` maps each table to its parents in generation order, so the asset graph mirrors the FK graph."""
    return [_synthetic_asset(spec, table, parents) for table, parents in plan.items()]


def _synthetic_asset(spec: DatasetSpec, table: str, parents: list[str]) -> dg.AssetsDefinition:

    @dg.asset(
        key=synthetic_key(spec.name, table),
        group_name=spec.name,
        metadata=table_definition_metadata(warehouse_schema("synthetic", spec.name), table),
        deps=[dataset_key(spec.name, "model")] + [synthetic_key(spec.name, p) for p in parents],
        kinds={"duckdb", "parquet"},
        pool="duckdb",
        code_version=CODE_VERSION,
        description=f"Synthetic {table}: keys point only at generated parents ({', '.join(parents) or 'no parents'}).",
    )
    def synthetic_table(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        # run tags `genesis/model_version` and `genesis/seed` pick an earlier model and a new seed (schedule)
        model, model_dir = run_model(context, spec, storage.model_root(spec.name))
        seed = run_seed(context, spec)
        out_schema = warehouse_schema("synthetic", spec.name)
        first: list = []

        def remember_first(chunks):
            for chunk in chunks:
                if not first:
                    first.append(chunk.head(0))
                yield chunk

        with warehouse.get_connection() as con:
            # the model's own FK graph decides which parents are read; the asset deps only order the runs
            generated_parents = {p: read_table(con, out_schema, p) for p in model.db_schema.parents_of(table)}
            chunks = generate_table_chunks(model, model_dir, table, generated_parents, scale=spec.scale, seed=seed,
                                           locale=spec.pii_locale, forbidden=load_pii_guard(model, model_dir),
                                           copy_guard=load_copy_guard(model, model_dir, table))
            rows = write_table(con, out_schema, table, remember_first(chunks))  # streamed: memory bounded by a chunk
            exports = export_warehouse_table(con, out_schema, table, storage.synthetic_dir(spec.name))
            # a cycle broken at a nullable FK into this table: its children were generated first, fill their keys now
            for relation in deferred_relations(model, table):
                child = relation.fk.child_table
                filled = fill_deferred_keys(model, model_dir, relation, read_table(con, out_schema, child),
                                            read_table(con, out_schema, table), seed=seed)
                write_table(con, out_schema, child, filled)
                export_warehouse_table(con, out_schema, child, storage.synthetic_dir(spec.name))
        return dg.MaterializeResult(
            metadata={
                **synthetic_table_metadata(model, table, first[0], rows, exports=exports,
                                           source_key=lambda t: source_key(spec.name, t),
                                           synthetic_key=lambda t: synthetic_key(spec.name, t)),
                "model_version": model.version,
                "seed": seed,
                "real_row_count": model.tables[table].row_count,
                "exports": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in exports)),
            },
            data_version=dg.DataVersion(f"{model.version}-{seed}-{spec.scale}"),
        )

    return synthetic_table
