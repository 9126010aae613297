"""`<dataset>/model`: one trained generator per table plus the learned FK structure, saved as JSON."""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, markdown_table
from genesis_pipelines.defs.lineage import CODE_VERSION
from genesis_pipelines.defs.metadata import generators, model_kinds
from genesis_pipelines.defs.resources import DeviceResource, GenesisStorage, PiiSettings, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.spec import DatasetSpec


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
        layout, connect = storage.layout(spec.name), warehouse.get_connection
        # the dataset's writer lock is waited for (another run or a CLI training it); LATEST moves after the split
        done = pipeline.train_model(spec, layout, connect, pipeline.read_sources(spec, layout, connect),
                                    pipeline.load_schema(layout), pipeline.load_findings(layout), device=device.resolve(),
                                    hash_key=pii_settings.key_bytes(), log=context.log.info, wait=None)
        trained, cost, suites = done.model, done.cost, done.suites
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
                "model_path": dg.MetadataValue.path(str(done.model_dir)),
                "expectations": sum(len(suite["expectations"]) for suite in suites.values()),
            },
            data_version=dg.DataVersion(trained.version),
        )

    return model
