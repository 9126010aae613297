"""Asset keys, warehouse schema names and metadata helpers shared by the asset factories."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING

import dagster as dg

from genesis_pipelines.engine.core.layout import warehouse_schema  # noqa: F401  (the one spelling of schema names)

if TYPE_CHECKING:
    import pandas as pd

_DAGSTER_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def key_name(table: str) -> str:
    """A table name as a Dagster asset-key part: unchanged when Dagster takes it, else sanitised and made unique.

    Dagster derives op and check names from the key, and those take only `[A-Za-z0-9_]`, so `Commandes clients`
    becomes `Commandes_clients_<hash>`: accents folded to ASCII, other characters to `_`, and 8 hex digits of the
    real name's SHA-256, so two names that sanitise alike (`order-lines`, `order lines`) keep distinct keys, the
    same on every load. The real name stays in each asset's metadata (`table`) and in every output.
    """
    if _DAGSTER_NAME.match(table):
        return table
    folded = unicodedata.normalize("NFKD", table).encode("ascii", "ignore").decode("ascii")
    base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", folded)).strip("_") or "table"
    return f"{base}_{hashlib.sha256(table.encode('utf-8')).hexdigest()[:8]}"


def source_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "source", key_name(table)])


def synthetic_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "synthetic", key_name(table)])


def table_definition_metadata(schema: str, table: str) -> dict:
    """The real table name beside its (possibly sanitised) key: `table`, and the warehouse's quoted qualified name."""
    return {"table": table, "dagster/table_name": f'{schema}."{table.replace(chr(34), chr(34) * 2)}"'}


def dataset_key(dataset: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, name])


STAGES = ("source", "analysis", "training", "synthetic", "reports", "monitoring")


def stage_tags(stage: str) -> dict[str, str]:
    """The `genesis/stage` tag every asset carries, so one stage of a dataset's lineage can be shown on its own.

    A whole twin's graph does not fit a screen, and the UI labels a node by its key's last part (`source/Track` and
    `synthetic/Track` both read `Track`): `tag:"genesis/stage"="synthetic"` in the lineage filter shows one stage.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown pipeline stage {stage!r}; one of {', '.join(STAGES)}")
    return {"genesis/stage": stage}


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def table_metadata(df: pd.DataFrame) -> dict:
    return {"dagster/row_count": dg.MetadataValue.int(len(df)), "dagster/column_schema": column_schema(df)}


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
