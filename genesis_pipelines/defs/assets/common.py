"""Asset keys, warehouse schema names and metadata helpers shared by the asset factories."""


import json
from pathlib import Path

import dagster as dg
import pandas as pd

from genesis_pipelines.engine.schema import DatasetSchema


def source_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "source", table])


def synthetic_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "synthetic", table])


def dataset_key(dataset: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, name])


def warehouse_schema(kind: str, dataset: str) -> str:
    """`source_chinook`, `synthetic_chinook`, `train_chinook`, `holdout_chinook`."""
    return f"{kind}_{dataset}"


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def table_metadata(df: pd.DataFrame) -> dict:
    return {"dagster/row_count": dg.MetadataValue.int(len(df)), "dagster/column_schema": column_schema(df)}


def load_schema(path: Path) -> DatasetSchema:
    if not path.is_file():
        raise dg.Failure(description=f"{path.name} is missing: materialize the schema asset first")
    return DatasetSchema.model_validate(json.loads(path.read_text(encoding="utf-8")))


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
