"""`<dataset>/drift`: how far the current source has moved from the model's training snapshot."""


import dagster as dg

from genesis_pipelines.defs.assets.common import dataset_key, markdown_table, source_key, stage_tags
from genesis_pipelines.defs.lineage import CODE_VERSION, run_model, split_rows
from genesis_pipelines.defs.resources import GenesisStorage, Warehouse
from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.evaluation.catalog import NOISE, readable


def _finite(value: float, digits: int | None = 4) -> float:
    """Metadata floats must plot; an infinite PSI (a vanished column or table) is shown as a large number, numerical
    noise (2e-32 for unchanged data) as 0, the rest to `digits` significant digits (None: unrounded)."""
    value = float(min(value, 1e6))
    return float(readable(value, digits)) if digits else (0.0 if abs(value) < NOISE else value)


def build_drift_asset(spec: DatasetSpec, tables: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=dataset_key(spec.name, "drift"),
        tags=stage_tags("monitoring"),
        group_name=spec.name,
        deps=[dataset_key(spec.name, "model")] + [source_key(spec.name, t) for t in tables],
        kinds={"python", "scipy"},
        # reads only (read-only connections, waiting out a writer's commit): no pool
        code_version=CODE_VERSION,
        description=f"PSI, KS and chi-squared of the current source against the training snapshot; "
                    f"above {spec.drift.psi_threshold} the drift sensor retrains.",
    )
    def drift(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: GenesisStorage) -> dg.MaterializeResult:
        import pandas as pd

        from genesis_pipelines.engine.evaluation.drift import dataset_drift
        from genesis_pipelines.engine.sources.io import write_json

        layout = storage.layout(spec.name)
        model, _ = run_model(context, spec, layout)
        current = pipeline.read_sources(spec, layout, warehouse.read_connection())
        train, holdout = split_rows(spec, layout, warehouse.read_connection(), model)
        # the snapshot the model was made from is train + holdout: against the train split alone, the categories only
        # the holdout holds (a held-out customer's city) would read as drift on unchanged data
        snapshot = {t: pd.concat([train[t], holdout[t]], ignore_index=True) for t in train}
        report = dataset_drift(model, snapshot, current, threshold=spec.drift.psi_threshold, bins=spec.drift.bins)
        write_json(layout.analysis("drift"), report)
        rows = [[t, f"{v['max_psi']:.3f}", len(v["columns"])] for t, v in report["tables"].items()]
        rows += [[label, f"{r['psi']:.3f}", "children per parent"] for label, r in report["relations"].items()]
        return dg.MaterializeResult(metadata={
            # unrounded (noise aside): the drift sensor compares it with the threshold
            "max_psi": dg.MetadataValue.float(_finite(report["max_psi"], None)),
            "max_column_psi": dg.MetadataValue.float(_finite(report["max_column_psi"])),
            "max_relation_psi": dg.MetadataValue.float(_finite(report["max_relation_psi"])),
            "max_ks": dg.MetadataValue.float(_finite(report["max_ks"])),
            **{f"psi/{t}": dg.MetadataValue.float(_finite(v["max_psi"])) for t, v in report["tables"].items()},
            "threshold": dg.MetadataValue.text(f"max PSI above {readable(spec.drift.psi_threshold)} retrains"),  # a constant: not plotted
            "drifted": report["drifted"],
            "drifted_items": len(report["drifted_items"]),
            "model_version": model.version,
            "scores": dg.MetadataValue.md(markdown_table(["table / relation", "max PSI", "columns"], rows)),
        })

    return drift
