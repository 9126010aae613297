"""`<dataset>/augmented/<table>`: rows of one table under conditions, from run config, beside the twin.

Materialized on request only (not part of the twin's jobs): the run config (`AugmentConfig`) says which values
(`conditions`), or which column to rebalance, and how many rows; the rows and their descendants go to
`augmented_<ds>` and `<data dir>/<ds>/augmented/<table>/`, never over the twin. The metadata says which rows were
conditioned and on what. The body calls engine.pipeline.augment.
"""


import dagster as dg
from pydantic import Field

from genesis_pipelines.defs.assets.common import dataset_key, key_name, markdown_table, stage_tags, synthetic_key
from genesis_pipelines.defs.lineage import CODE_VERSION, run_model, run_seed
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.evaluation.catalog import number_text


class AugmentConfig(dg.Config):
    conditions: list[str] = Field(default_factory=list, description='"COLUMN=VALUE" each (all hold), e.g. "income=>50K"')
    rebalance: str | None = Field(default=None, description='"COLUMN" (uniform) or "COLUMN=VALUE:SHARE,..."')
    rows: int | None = Field(default=None, gt=0, description="rows to generate (default: the real table's size)")
    seed: int | None = Field(default=None, description="sampling seed (default: the run's seed)")


def augmented_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "augmented", key_name(table)])


def augmented_keys(spec: DatasetSpec, plan: dict[str, list[str]]) -> list[dg.AssetKey]:
    return [augmented_key(spec.name, t) for t in plan]


def build_augmented_assets(spec: DatasetSpec, plan: dict[str, list[str]]) -> list[dg.AssetsDefinition]:
    return [_augmented_asset(spec, table, plan) for table in plan]


def _read_parents(table: str, plan: dict[str, list[str]]) -> list[str]:
    """Twin tables the augmentation reads: the table's parents and its descendants' other parents."""
    order, affected = list(plan), [table]
    for t in order[order.index(table) + 1:]:
        if any(p in affected for p in plan[t]):
            affected.append(t)
    return sorted({p for t in affected for p in plan[t] if p not in affected})


def _augmented_asset(spec: DatasetSpec, table: str, plan: dict[str, list[str]]) -> dg.AssetsDefinition:
    @dg.asset(
        key=augmented_key(spec.name, table),
        tags=stage_tags("synthetic"),
        group_name=spec.name,
        deps=[dataset_key(spec.name, "model")] + [synthetic_key(spec.name, p) for p in _read_parents(table, plan)],
        kinds={"duckdb", "parquet"},
        code_version=CODE_VERSION,
        metadata={"table": table},
        description=f"Conditioned rows of {table} (and their children) from run config: conditions, rebalance, rows; "
                    "written beside the twin, never over it.",
    )
    def augmented(context: dg.AssetExecutionContext, config: AugmentConfig, warehouse: Warehouse,
                  storage: GenesisStorage) -> dg.MaterializeResult:
        if not config.conditions and not config.rebalance:  # e.g. "materialize all": nothing asked, nothing written
            context.log.info(f"{spec.name}/augmented/{table}: no conditions or rebalance in the run config: nothing generated")
            return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(0),
                                                  "conditioned": "nothing requested (run config: conditions or rebalance)"})
        layout = storage.layout(spec.name)
        model, model_dir = run_model(context, spec, layout)
        seed = config.seed if config.seed is not None else run_seed(context, spec)
        done = pipeline.augment(spec, layout, warehouse.get_connection, model, model_dir, table,
                                conditions=config.conditions or None, rows=config.rows, rebalance=config.rebalance,
                                seed=seed, log=context.log.info, wait=None)
        groups = [[", ".join(f"{c}={v}" for c, v in g["condition"].items()) or "(rebalance)", g["rows"],
                   g["real_rows_matching"], number_text(g["column_shapes"], 3) if g["column_shapes"] is not None else g["note"]]
                  for g in done.summary["quality"]["groups"]]
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(done.tables[pipeline.augmented_name(table)]),
            "conditioned": dg.MetadataValue.md(markdown_table(
                ["condition", "rows", "real rows meeting it", "column shapes vs those rows"], groups)),
            "condition_columns": ", ".join(done.summary["columns"]),
            "rebalanced": (done.summary["rebalance"] or {}).get("column") or "no",
            "restored_cells": done.summary["restored"],
            "tables": dg.MetadataValue.md(markdown_table(["warehouse table", "rows"], [[t, n] for t, n in done.tables.items()])),
            "warehouse_schema": layout.augmented_schema,
            "path": dg.MetadataValue.path(str(layout.augmented(table))),
            "model_version": model.version,
            "seed": seed,
        })

    return augmented
