"""`<dataset>/model`: one trained generator per table plus the learned FK structure, saved as JSON."""


import json

import dagster as dg

from genesis_pipelines.defs.assets.analysis import read_source_tables
from genesis_pipelines.defs.assets.common import dataset_key, load_schema, markdown_table
from genesis_pipelines.defs.lineage import CODE_VERSION
from genesis_pipelines.defs.metadata import generators, model_kinds
from genesis_pipelines.defs.resources import DeviceResource, GenesisStorage, PiiSettings, Warehouse
from genesis_pipelines.engine.device import forward_training_log, measure_training
from genesis_pipelines.engine.pii import PiiFinding
from genesis_pipelines.engine.expectations import build_suites, save_suites
from genesis_pipelines.engine.relational import comparison_exclusions, train
from genesis_pipelines.engine.spec import DatasetSpec
from genesis_pipelines.engine.splits import write_splits


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
        kinds=model_kinds(spec),  # what trains: torch for the neural generators, scipy for the copulas
        # GPU training is serialised by this pool (limit 1, see dagster.yaml); its short DuckDB reads and writes
        # retry on a lock (DuckDBResource's backoff), so it need not hold the "duckdb" pool while training
        pool="gpu",
        code_version=CODE_VERSION,
        description="Trained generators (one per table, trained on the training split) and children-per-parent distributions.",
    )
    def model(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage,
              pii_settings: PiiSettings, device: DeviceResource) -> dg.MaterializeResult:
        resolved = device.resolve()
        schema, sources = load_schema(storage.analysis_file(spec.name, "schema")), read_source_tables(spec, warehouse)
        with measure_training(resolved) as cost, forward_training_log(context.log.info):
            trained, splits = train(
                spec, schema, sources, load_findings(storage, spec.name), storage.model_root(spec.name),
                device=resolved, hash_key=pii_settings.key_bytes(), log=context.log.info,
            )
        with warehouse.get_connection() as con:  # the holdout stays in the warehouse for evaluation, never exported
            write_splits(con, spec.name, trained, splits)
        # the expectation suite travels with the model version: aggregates of the training rows, no PII columns
        suites = build_suites({t: rows for t, (rows, _) in splits.items()}, trained.db_schema, comparison_exclusions(trained))
        save_suites(storage.model_root(spec.name) / trained.version, suites)
        table_rows = [[t, m.method + (f" -> {m.describe['auto']['chosen_method']}" if "auto" in m.describe else ""),
                       m.train_rows, m.holdout_rows, m.describe.get("columns_modelled", "-")] for t, m in trained.tables.items()]
        relation_rows = [[r.fk.label, f"{r.mean:.2f}", max(r.counts, default=0), f"{r.null_share:.2f}"] for r in trained.relations]
        return dg.MaterializeResult(
            metadata={
                "model_version": trained.version,
                "source_fingerprint": trained.source_fingerprint,
                "code_version": trained.code_version,
                **cost.as_metadata(),  # device, training_seconds, peak_memory_mib, peak_memory_kind
                "generators": generators({t: m.describe for t, m in trained.tables.items()}),  # aggregates, no value
                "tables": dg.MetadataValue.md(markdown_table(["table", "method", "train rows", "holdout rows", "columns modelled"], table_rows)),
                "children_per_parent": dg.MetadataValue.md(markdown_table(["foreign key", "mean", "max", "null share"], relation_rows)),
                "model_path": dg.MetadataValue.path(str(storage.model_root(spec.name) / trained.version)),
                "expectations": sum(len(suite["expectations"]) for suite in suites.values()),
            },
            data_version=dg.DataVersion(trained.version),
        )

    return model
