"""Training as steps an executor can spread:

    <dataset>/training_plan    the split, FK relations and rules every table trains against (engine/synthesis/relational/training.py)
    <dataset>/model/<table>    one step per table: its generator, trained in parallel with the other tables
    <dataset>/model            the trained tables assembled into one model version, published as LATEST

Each step reads what it needs as data (the plan in the staging folder, source tables opened read-only), so the
multiprocess executor here and the k8s executor in production train independent tables at the same time, and a
failed table retrains alone (re-execute the run from failure). Only a table whose generator will train on CUDA holds
the `gpu` pool; nothing here holds the `duckdb` pool (reads are read-only, the split commit is one short write).
`<dataset>/model` materialized alone (no plan in progress) trains every table itself, through the same functions.
"""


import os

import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, key_name, markdown_table, stage_tags
from genesis_pipelines.defs.lineage import CODE_VERSION
from genesis_pipelines.defs.metadata import generators, model_kinds
from genesis_pipelines.defs.resources import DeviceResource, GenesisStorage, PiiSettings, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.device import may_use_cuda
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.evaluation import catalog


def training_plan_key(dataset: str) -> dg.AssetKey:
    return dataset_key(dataset, "training_plan")


def table_model_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "model", key_name(table)])


def training_keys(dataset: str, tables: list[str]) -> list[dg.AssetKey]:
    """Every training step's key, in order: what a retrain requests besides the schema and the PII scan."""
    return [training_plan_key(dataset), *[table_model_key(dataset, t) for t in tables], dataset_key(dataset, "model")]


def table_pool(spec: DatasetSpec, table: str) -> str | None:
    """`gpu` only for a table whose generator trains with torch on a device that may be CUDA; else no pool."""
    families = catalog.generator_families([spec.generator.method_for(table)])
    return "gpu" if "torch" in families and may_use_cuda(os.environ.get("GENESIS_DEVICE", "auto")) else None


def build_model_assets(spec: DatasetSpec, tables: list[str]) -> list[dg.AssetsDefinition]:
    return [_plan_asset(spec), *[_table_asset(spec, t) for t in tables], _model_asset(spec, tables)]


def _plan_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=training_plan_key(spec.name),
        tags=stage_tags("training"),
        group_name=spec.name,
        deps=[dataset_key(spec.name, "pii_scan")],
        kinds={"python"},
        code_version=CODE_VERSION,
        description="What every table trains against: the train/holdout split (row positions), the FK relations "
                    "with their children-per-parent models, the data's rules and the PII guards.",
    )
    def training_plan(context: dg.AssetExecutionContext, warehouse: Warehouse,
                      storage: GenesisStorage) -> dg.MaterializeResult:
        layout, read = storage.layout(spec.name), warehouse.read_connection()
        # the dataset's writer lock is waited for (another run or a CLI training it)
        plan = pipeline.plan_training(spec, layout, pipeline.read_sources(spec, layout, read), pipeline.load_schema(layout),
                                      pipeline.load_findings(layout), log=context.log.info, wait=None)
        return dg.MaterializeResult(metadata={
            "model_version": plan.version,
            "source_fingerprint": plan.source_fingerprint,
            "tables": len(plan.db_schema.generation_order),
            "relations": len(plan.relations),
            "count_models": sum(r.count_model for r in plan.relations),
            "holdout_rows": sum(len(v) for v in plan.holdout.values()),
            "reference_tables": ", ".join(plan.reference) or "none",
            "plan_seconds": plan.plan_seconds,
        }, data_version=dg.DataVersion(plan.version))

    return training_plan


def _table_asset(spec: DatasetSpec, table: str) -> dg.AssetsDefinition:
    method = spec.generator.method_for(table)

    @dg.asset(
        key=table_model_key(spec.name, table),
        tags=stage_tags("training"),
        group_name=spec.name,
        deps=[training_plan_key(spec.name)],
        metadata={"table": table},
        kinds={"python", *catalog.generator_families([method])},
        pool=table_pool(spec, table),
        code_version=CODE_VERSION,
        description=f"The {method} generator of {table}, trained on its training split with its parents' features.",
    )
    def table_model(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage,
                    pii_settings: PiiSettings, device: DeviceResource) -> dg.MaterializeResult:
        from genesis_pipelines.engine.core.device import forward_training_log

        layout, where = storage.layout(spec.name), device.resolve()
        with forward_training_log(context.log.info):
            result = pipeline.train_table(spec, layout, warehouse.read_connection(), table, device=where,
                                          hash_key=pii_settings.key_bytes(), log=context.log.info)
        describe = result.table_model.get("describe", {})
        return dg.MaterializeResult(metadata={
            "model_version": pipeline.building_version(layout) or "none",
            "method": result.table_model["method"],
            "train_rows": result.table_model["train_rows"],
            "holdout_rows": result.table_model["holdout_rows"],
            "columns_modelled": describe.get("columns_modelled", 0),
            "device": result.device,
            "training_seconds": result.seconds,
            "peak_memory_mib": round(result.peak_memory_bytes / 2**20, 1),
            "peak_memory_kind": result.memory_kind,
            "generator": generators({table: describe}),  # aggregates, no value
        })

    return table_model


def _model_asset(spec: DatasetSpec, tables: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(spec.name, "model"),
        tags=stage_tags("training"),
        group_name=spec.name,
        # pii_scan too: materialized without the table steps it trains from the schema and scan itself
        deps=[dataset_key(spec.name, "pii_scan"), *(table_model_key(spec.name, t) for t in tables)],
        kinds=model_kinds(spec),  # what trains: torch for the neural generators, scipy for the copulas
        code_version=CODE_VERSION,
        description="The model version: every table's generator and the children-per-parent distributions, with its "
                    "train/holdout split committed to the warehouse and its expectation suites; LATEST moves last.",
    )
    def model(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage,
              pii_settings: PiiSettings, device: DeviceResource) -> dg.MaterializeResult:
        layout, connect = storage.layout(spec.name), warehouse.get_connection
        if pipeline.building_version(layout) is not None:  # the plan and table steps ran: assemble what they trained
            done = pipeline.finish_training(spec, layout, connect, log=context.log.info, wait=None)
        else:  # materialized alone (the retrain hint, a drift retrain of this key only): every step here, in one go
            context.log.info("no training in progress: planning and training every table in this step")
            done = pipeline.train_model(spec, layout, connect, pipeline.read_sources(spec, layout, warehouse.read_connection()),
                                        pipeline.load_schema(layout), pipeline.load_findings(layout),
                                        device=device.resolve(), hash_key=pii_settings.key_bytes(),
                                        log=context.log.info, wait=None)
        trained, suites = done.model, done.suites
        table_rows = [[t, m.method + (f" -> {m.describe['auto']['chosen_method']}" if "auto" in m.describe else ""),
                       m.train_rows, m.holdout_rows, m.describe.get("columns_modelled", "-")] for t, m in trained.tables.items()]
        relation_rows = [[r.fk.label, f"{r.mean:.2f}", max(r.counts, default=0), f"{r.null_share:.2f}"] for r in trained.relations]
        return dg.MaterializeResult(
            metadata={
                "model_version": trained.version,
                "source_fingerprint": trained.source_fingerprint,
                "code_version": trained.code_version,
                # the plan and every table step: seconds summed, the highest step's peak memory, the devices used
                **done.cost.as_metadata(),
                "generators": generators({t: m.describe for t, m in trained.tables.items()}),  # aggregates, no value
                "tables": dg.MetadataValue.md(markdown_table(["table", "method", "train rows", "holdout rows", "columns modelled"], table_rows)),
                "children_per_parent": dg.MetadataValue.md(markdown_table(["foreign key", "mean", "max", "null share"], relation_rows)),
                "model_path": dg.MetadataValue.path(str(done.model_dir)),
                "expectations": sum(len(suite["expectations"]) for suite in suites.values()),
            },
            data_version=dg.DataVersion(trained.version),
        )

    return model
