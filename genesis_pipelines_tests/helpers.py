"""Helpers shared by the test modules: made-up datasets, the corpus of real databases, and Dagster wiring.

Test modules import from here, never from one another, so each can run (and be selected) on its own. Nothing heavy
is imported at module level (the engine, Dagster): each helper imports what it uses, so collecting the unit tier
loads no Dagster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

if TYPE_CHECKING:  # Dagster is imported by the helpers that use it, so the unit tier never loads it
    import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_SPECS = PROJECT_ROOT / "resources" / "datasets"

FIRST = ["Anna", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Brennan", "Costa", "Weber", "Silva", "Haddad"]


# ---------------------------------------------------------------- made-up data


def write_shop(folder: Path, *, customers: int = 60, orders: int = 240, seed: int = 0) -> Path:
    """A small two-table shop with PII, a nullable column and a date, plus its spec."""
    rng = np.random.default_rng(seed)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    first = rng.choice(FIRST, customers)
    last = rng.choice(LAST, customers)
    pd.DataFrame({
        "customer_id": np.arange(1, customers + 1),
        "first_name": first,
        "last_name": last,
        "email": [f"{given.lower()}.{family.lower()}{i}@shopmail.test" for i, (given, family) in enumerate(zip(first, last))],
        "phone": [f"+44 20 7946 {1000 + i:04d}" for i in range(customers)],
        "segment": rng.choice(["retail", "wholesale", "online"], customers, p=[0.5, 0.2, 0.3]),
        "age": rng.integers(18, 80, customers),
    }).to_csv(data / "customers.csv", index=False)
    amount = np.round(rng.gamma(2.0, 30.0, orders), 2)
    pd.DataFrame({
        "order_id": np.arange(1, orders + 1),
        "customer_id": rng.integers(1, customers + 1, orders),
        "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, orders), unit="D"),
        "amount": amount,
        "coupon": np.where(rng.random(orders) < 0.3, rng.choice(["SPRING", "VIP"], orders), ""),
    }).to_csv(data / "orders.csv", index=False)
    spec = folder / "dataset.yaml"
    spec.write_text(
        "name: shop\n"
        "source: {kind: csv_folder, path: data}\n"
        "tables:\n  customers: {primary_key: customer_id}\n  orders: {primary_key: order_id}\n"
        "foreign_keys:\n  - {child: orders.customer_id, parent: customers.customer_id}\n"
        "thresholds: {quality_min: 50}\n"
    )
    return spec


def people_table(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """One table of people (numbers with nulls, categories, a flag) and its profile; one city is a rare real value."""
    from genesis_pipelines.engine.analysis.schema_inference import profile_table
    from genesis_pipelines.engine.core.spec import parse_spec


    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(age * 900 + rng.normal(0, 8000, n), 2)
    df = pd.DataFrame({
        "age": age, "income": income, "hours": rng.choice([20, 40, 40, 40, 50], n),
        "city": rng.choice(["Paris", "Lyon", "Nice"], n, p=[0.6, 0.3, 0.1]),
        "member": rng.random(n) < 0.3,
    })
    df.loc[rng.random(n) < 0.1, "income"] = np.nan
    df.loc[0, "city"] = "Zanzibar-secret"  # one rare real value: must never be released
    return df, profile_table("people", df, parse_spec({"name": "people"}))


# ---------------------------------------------------------------- a trained relational model


@dataclass
class TrainedDataset:
    """A dataset read, analysed, scanned for PII and trained by the engine, with what each step produced."""

    spec: object
    tables: dict[str, pd.DataFrame]
    schema: object
    findings: list
    model: object
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    model_root: Path
    model_dir: Path

    def fk(self, label: str):
        """The foreign key `child.col -> parent.col`."""
        return next(fk for fk in self.schema.foreign_keys
                    if f"{fk.child_table}.{fk.child_column} -> {fk.parent_table}.{fk.parent_column}" == label)


def train_dataset(spec_path: Path, model_root: Path) -> TrainedDataset:
    """The engine's steps on one spec, outside Dagster: read, analyse, PII scan, train, load the saved model."""
    from genesis_pipelines.engine.analysis.schema_inference import analyse
    from genesis_pipelines.engine.core.spec import load_spec
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.sources.io import read_source_table
    from genesis_pipelines.engine.sources.locations import source_table_names
    from genesis_pipelines.engine.synthesis import relational



    spec = load_spec(spec_path)
    tables = {name: read_source_table(spec, name) for name in source_table_names(spec)}
    schema = analyse(spec, tables)
    findings = pii.scan_tables(tables, schema, spec)
    trained, splits = relational.train(spec, schema, tables, findings, model_root)
    model, model_dir = relational.load_model(model_root)
    assert model.version == trained.version
    return TrainedDataset(spec, tables, schema, findings, model, splits, model_root, model_dir)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across processes (pytest-xdist workers); `filelock` is a dev dependency."""
    from filelock import FileLock

    with FileLock(str(path)):
        yield


HOLDOUT_FILE = "holdout_positions.json"  # beside the shared models folder, never inside it


def shared_trained_dataset(spec_path: Path, shared_root: Path, private_root: Path) -> TrainedDataset:
    """train_dataset once per test run, shared by every xdist worker without pickling anything.

    The first worker to take the lock trains into `shared_root/models` and writes each table's holdout row positions
    (JSON) beside it; the others wait on the lock, then find both. Every worker then copies the models folder into
    its own `private_root` and loads it there with the pipeline's own loader (`relational.load_model`: model.json,
    generator JSON and safetensors weights), so no test can damage another worker's model. The reading, analysis and
    PII scan are rerun in each worker (deterministic, a second or two); the split is rebuilt from the positions."""
    from genesis_pipelines.engine.analysis.schema_inference import analyse
    from genesis_pipelines.engine.core.spec import load_spec
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.sources.io import read_source_table, write_json
    from genesis_pipelines.engine.sources.locations import source_table_names
    from genesis_pipelines.engine.synthesis import relational

    shared_root.mkdir(parents=True, exist_ok=True)
    shared_models, positions_file = shared_root / "models", shared_root / HOLDOUT_FILE
    with exclusive_lock(shared_root.parent / f"{shared_root.name}.lock"):
        if not positions_file.is_file():  # written last: a worker that failed midway leaves none, the next retrains
            shutil.rmtree(shared_models, ignore_errors=True)
            trained = train_dataset(spec_path, shared_models)
            write_json(positions_file, {name: trained.tables[name].index.get_indexer(holdout.index).tolist()
                                        for name, (_, holdout) in trained.splits.items()})
    model_root = private_root / "models"
    shutil.copytree(shared_models, model_root)
    spec = load_spec(spec_path)
    tables = {name: read_source_table(spec, name) for name in source_table_names(spec)}
    schema = analyse(spec, tables)
    findings = pii.scan_tables(tables, schema, spec)
    model, model_dir = relational.load_model(model_root)
    splits = {}
    for name, positions in json.loads(positions_file.read_text(encoding="utf-8")).items():
        held = np.zeros(len(tables[name]), dtype=bool)
        held[np.asarray(positions, dtype="int64")] = True
        splits[name] = (tables[name].iloc[np.flatnonzero(~held)], tables[name].iloc[np.flatnonzero(held)])
    return TrainedDataset(spec, tables, schema, findings, model, splits, model_root, model_dir)


# ---------------------------------------------------------------- the corpus of real databases


def corpus_dir() -> Path:
    """GENESIS_CORPUS_DIR (or GENESIS_SHARED_DATASETS), else `shared/datasets` beside the checkout or beside its
    parent (a git worktree); the corpus lives outside the repository, and tests that need it skip without it."""
    env = os.environ.get("GENESIS_CORPUS_DIR") or os.environ.get("GENESIS_SHARED_DATASETS")
    if env:
        return Path(env)
    candidates = [base / "shared" / "datasets" for base in (PROJECT_ROOT.parent, PROJECT_ROOT.parent.parent)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def corpus_path(*parts: str) -> Path:
    """A file or folder of the corpus; the calling test skips when it is absent."""
    path = corpus_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus path {path} not found (put the corpus at ../shared/datasets or set GENESIS_CORPUS_DIR)")
    return path


def needs_corpus(*parts: str) -> pytest.MarkDecorator:
    """Skip marker for tests that read `parts` of the corpus."""
    path = corpus_dir().joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"corpus path {path} not found")


def read_corpus_csv(database: str, table: str, rows: int | None = None) -> pd.DataFrame:
    """A corpus table typed as the pipeline reads it (R-style null tokens, nullable dtypes), optionally a fixed
    sample of `rows` rows."""
    from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types


    path = corpus_path(database, f"{table}.csv")
    df = coerce_types(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS))
    return df.sample(n=rows, random_state=0).reset_index(drop=True) if rows else df


# ---------------------------------------------------------------- Dagster


def dataset_defs(spec_path: Path) -> dg.Definitions:
    """One dataset's definitions with the default resources, as the code location builds them."""
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources
    from genesis_pipelines.engine.core.spec import load_spec

    return dg.Definitions.merge(build_dataset_defs(load_spec(spec_path)), dg.Definitions(resources=default_resources()))


def materialize_all(spec_path: Path, instance: dg.DagsterInstance, selection=None) -> dg.ExecuteInJobResult:
    """Materialize a dataset's assets and checks (or `selection` of them) in process, failures kept in the result."""
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources
    from genesis_pipelines.engine.core.spec import load_spec

    defs = build_dataset_defs(load_spec(spec_path))
    return dg.materialize(
        assets=[*defs.assets, *defs.asset_checks], resources=default_resources(), instance=instance,
        selection=selection, raise_on_error=False,
    )


class Ticker:
    """Evaluates one sensor tick after another, carrying the cursor the way the daemon persists it (a string)."""

    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance):
        self.sensor, self.instance, self.cursor = sensor, instance, None

    def tick(self) -> dg.SensorResult:
        import dagster as dg

        result = self.sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor))
        if result.cursor is not None:
            self.cursor = result.cursor
        return result
