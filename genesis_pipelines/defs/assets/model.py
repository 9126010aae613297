"""`<dataset>/model`: one trained generator per table plus the learned FK structure, saved as JSON."""


import json
import time

import dagster as dg

from genesis_pipelines.defs.assets.analysis import read_source_tables
from genesis_pipelines.defs.assets.common import dataset_key, load_schema, markdown_table, warehouse_schema
from genesis_pipelines.defs.resources import GenesisStorage, PiiSettings, Warehouse
from genesis_pipelines.engine.io import write_table
from genesis_pipelines.engine.pii import PiiFinding
from genesis_pipelines.engine.relational import train
from genesis_pipelines.engine.spec import DatasetSpec


def load_findings(storage: GenesisStorage, dataset: str) -> list[PiiFinding]:
    path = storage.analysis_file(dataset, "pii_scan")
    if not path.is_file():
        raise dg.Failure(description="pii_scan.json is missing: materialize the pii_scan asset first")
    return [PiiFinding.model_validate(f) for f in json.loads(path.read_text(encoding="utf-8"))]


def build_model_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(spec.name, "model"),
        group_name=spec.name,
        deps=[dataset_key(spec.name, "pii_scan")],
        kinds={"python", "scipy"},
        pool="duckdb",
        description="Trained generators (one per table, trained on the training split) and children-per-parent distributions.",
    )
    def model(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage,
              pii_settings: PiiSettings) -> dg.MaterializeResult:
        started = time.perf_counter()
        trained, splits = train(
            spec, load_schema(storage.analysis_file(spec.name, "schema")), read_source_tables(spec, warehouse),
            load_findings(storage, spec.name), storage.model_root(spec.name),
            hash_key=pii_settings.key_bytes(), log=context.log.info,
        )
        with warehouse.get_connection() as con:  # the holdout stays in the warehouse for evaluation, never exported
            for table, (train_rows, holdout_rows) in splits.items():
                write_table(con, warehouse_schema("train", spec.name), table, train_rows)
                write_table(con, warehouse_schema("holdout", spec.name), table, holdout_rows)
        table_rows = [[t, m.method, m.train_rows, m.holdout_rows, m.describe.get("columns_modelled", "-")] for t, m in trained.tables.items()]
        relation_rows = [[r.fk.label, f"{r.mean:.2f}", max(r.counts), f"{r.null_share:.2f}"] for r in trained.relations]
        return dg.MaterializeResult(
            metadata={
                "model_version": trained.version,
                "source_fingerprint": trained.source_fingerprint,
                "training_seconds": round(time.perf_counter() - started, 2),
                "tables": dg.MetadataValue.md(markdown_table(["table", "method", "train rows", "holdout rows", "columns modelled"], table_rows)),
                "children_per_parent": dg.MetadataValue.md(markdown_table(["foreign key", "mean", "max", "null share"], relation_rows)),
                "model_path": dg.MetadataValue.path(str(storage.model_root(spec.name) / trained.version)),
            },
            data_version=dg.DataVersion(trained.version),
        )

    return model
