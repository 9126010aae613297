"""Training in three steps a scheduler can spread: plan the model, train each table on its own, assemble.

    prepare_training  the structure every table needs from the others: the split (as holdout row positions), the
                      FK relations with their children-per-parent models, the data's rules, reference tables, rows per
                      person, and the PII guards; written as plan.json into the model's staging folder
    train_table       one table's generator from the plan plus the source tables (its own, its parents', and those
                      holding PII, whose real values no generated word may copy): a result JSON and its folder
    assemble          every table's result into model.json, then the staging folder becomes the version folder

What a table takes from the others is data: the plan file and the source tables, never a shared in-memory object, so
the tables of one model train in separate processes (or pods) at the same time, and a failed table trains again
alone against the same plan. `train` runs the three in one process; for the same spec, tables and seed
the model is the same either way (version and timings aside). No Dagster import here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, Field

from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.privacy import pii as pii_engine
from genesis_pipelines.engine.synthesis.relational import structure
from genesis_pipelines.engine.synthesis.relational.holdout import fingerprint_tables, split_tables
from genesis_pipelines.engine.synthesis.relational.model import EMPTY_METHOD, RelationalModel, RelationStats, TableModel
from genesis_pipelines.engine.synthesis.relational.storage import set_latest

PLAN_FORMAT = "genesis.training-plan/1"
PLAN_FILE = "plan.json"
RESULTS_DIR = "results"  # one JSON per trained table; removed when the model is assembled
STAGING_PREFIX = ".staging-"

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class TrainingPlan(BaseModel):
    """What every table's training needs from the whole dataset (JSON: row positions and aggregates, no values)."""

    format: str = PLAN_FORMAT
    dataset: str
    version: str
    created_at: str
    source_fingerprint: str
    spec_digest: str  # a table step refuses a plan made for another spec
    salt: str
    db_schema: DatasetSchema  # with reference tables' labels as categories
    relations: list[RelationStats] = Field(default_factory=list)  # with their children-per-parent models fitted
    rules: list[Rule] = Field(default_factory=list)  # the data's rules kept by the spec (dependencies found per table)
    reference: dict[str, str] = Field(default_factory=dict)  # tables kept whole, and why
    rows_per_person: dict[str, float] = Field(default_factory=dict)
    holdout: dict[str, list[int]] = Field(default_factory=dict)  # row positions of each table's holdout rows
    plan_seconds: float = 0.0


class TableResult(BaseModel):
    """One table's trained part of the model: its TableModel, its copy guard, and what it learned about its FKs."""

    table: str
    table_model: dict  # relational.TableModel as JSON
    copy_guard: list[str] = Field(default_factory=list)  # salted digests of unique training records
    relation_updates: dict[str, dict] = Field(default_factory=dict)  # relation index -> inherited / constant
    seconds: float = 0.0
    device: str = "cpu"  # where it trained, and the step's peak memory (device.measure_training)
    peak_memory_bytes: int = 0
    memory_kind: str = ""


def spec_digest(spec: DatasetSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode("utf-8")).hexdigest()[:16]


def staging_dir(model_root: Path, version: str) -> Path:
    return Path(model_root) / f"{STAGING_PREFIX}{version}"


# ---------------------------------------------------------------- what each table needs from the others


def tables_needed(plan: TrainingPlan, findings: list[pii_engine.PiiFinding], table: str) -> list[str]:
    """The source tables one table's training reads: itself, its parents, and the tables whose PII no word may copy."""
    needed = {table} | {r.fk.parent_table for r in relations_of_plan(plan) if r.fk.child_table == table}
    needed |= {f.table for f in findings}  # people's names and PII values (derived templates, excluded words)
    return [t for t in plan.db_schema.generation_order if t in needed]


def relations_of_plan(plan: TrainingPlan) -> list[RelationStats]:
    """A deep copy: a table's training sets what it learns on its own relations, never on the plan."""
    return [r.model_copy(deep=True) for r in plan.relations]


def splits_from_plan(plan: TrainingPlan, tables: Mapping[str, pd.DataFrame],
                     names: Sequence[str] | None = None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(train, holdout) per table, rebuilt from the plan's holdout positions: the very frames split_tables gave."""
    import numpy as np

    out = {}
    for name in names if names is not None else plan.db_schema.generation_order:
        df = tables[name]
        held = np.zeros(len(df), dtype=bool)
        held[np.asarray(plan.holdout.get(name, []), dtype="int64")] = True
        out[name] = (df.iloc[np.flatnonzero(~held)], df.iloc[np.flatnonzero(held)])
    return out


# ---------------------------------------------------------------- 1. the plan


def prepare_training(spec: DatasetSpec, schema: DatasetSchema, tables: Mapping[str, pd.DataFrame],
                     findings: list[pii_engine.PiiFinding], model_root: Path, *, log: Log = _quiet) -> TrainingPlan:
    """Split, relations (with their children-per-parent models), rules, reference tables and guards, written into a
    new staging folder under `model_root` with plan.json last; returns the plan."""
    from genesis_pipelines.engine.analysis import reference_tables, rules
    from genesis_pipelines.engine.privacy import record_guard
    from genesis_pipelines.engine.sources.io import write_json

    started = time.perf_counter()
    fingerprint = fingerprint_tables(tables)
    created = datetime.now(UTC)
    version = created.strftime("v%Y%m%dT%H%M%S%fZ") + "-" + fingerprint[:8]
    staging = staging_dir(model_root, version)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        salt = os.urandom(16).hex()
        people = pii_engine.person_tables(findings)
        # split on positional copies: the holdout is kept as row positions, whatever the frames' index
        positional = {t: df.set_axis(pd.RangeIndex(len(df)), axis=0) for t, df in tables.items()}
        splits = split_tables(schema, positional, spec.holdout_fraction, spec.seed,
                                  follow_parents=spec.holdout_by_parent, people=people)
        per_person = structure.rows_per_person(schema, tables, people)
        reference = reference_tables.find_reference_tables(
            schema, tables, findings, {t: s.reference for t, s in spec.tables.items()})
        schema = _with_reference_labels(schema, tables, reference)
        holdout = {t: [int(i) for i in held.index] for t, (_, held) in splits.items()}
        for name in reference:  # kept whole: no rows are held out of what is copied by design
            holdout[name] = []
        # an empty parent has no features to condition on; an empty child has no children per parent to model
        relations = [structure.learn_relation(fk, tables[fk.child_table], tables[fk.parent_table],
                                        structure.select_parent_features(fk, tables[fk.parent_table], schema, findings,
                                                                   tables[fk.child_table])
                                        if len(tables[fk.parent_table]) and len(tables[fk.child_table]) else [])
                     for fk in schema.foreign_keys]
        found = rules.select(rules.discover(tables, schema, private=private_columns(tables, findings), seed=spec.seed,
                                            dependencies=False), spec.rules)
        for relation in relations:
            relation.min_children = max([r.min_count for r in found if r.kind == "min_children" and r.table == relation.fk.child_table
                                         and r.columns[0] == relation.fk.child_column], default=0)
        for index, relation in enumerate(relations):
            fk = relation.fk
            if not len(tables[fk.parent_table]) or not len(tables[fk.child_table]):
                continue
            lookup = structure.lookup_column(tables[fk.parent_table], schema.tables[fk.parent_table], findings)
            if fk.parent_table in reference and not fk.composite and not fk.is_self_reference and not fk.deferred:
                lookup = fk.parent_column  # the kept rows keep their keys: each gets its own real children count
            if lookup and not fk.is_self_reference and not fk.deferred:
                counts = structure.children_counts(fk, tables[fk.child_table], tables[fk.parent_table])
                relation.count_key = lookup
                relation.count_by_value = counts.groupby(tables[fk.parent_table][lookup].astype(str)).mean().to_dict()
            parent_train = splits_from_plan(_bare_plan(schema, holdout), tables, [fk.parent_table])[fk.parent_table][0]
            relation.count_model = structure.fit_count_model(
                relation, parent_train, structure.children_counts(fk, tables[fk.child_table], parent_train).to_numpy(),
                schema.tables[fk.parent_table], staging / "relations" / str(index), spec.seed + index)
        write_json(staging / "pii_guard.json", record_guard.pii_guard(tables, findings, salt))
        write_json(staging / "text_guard.json", pii_engine.text_shingle_digests(tables, schema, findings, salt))
        plan = TrainingPlan(dataset=spec.name, version=version, created_at=created.isoformat(),
                            source_fingerprint=fingerprint, spec_digest=spec_digest(spec), salt=salt, db_schema=schema,
                            relations=relations, rules=found, reference=reference, rows_per_person=per_person,
                            holdout=holdout, plan_seconds=round(time.perf_counter() - started, 3))
        write_json(staging / PLAN_FILE, plan.model_dump(mode="json"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"training plan {version}: {len(schema.generation_order)} tables, {len(relations)} relations")
    return plan


def _bare_plan(schema: DatasetSchema, holdout: dict[str, list[int]]) -> TrainingPlan:
    return TrainingPlan(dataset="", version="", created_at="", source_fingerprint="", spec_digest="", salt="",
                        db_schema=schema, relations=[], holdout=holdout)


def private_columns(tables: Mapping[str, pd.DataFrame], findings: list[pii_engine.PiiFinding]) -> dict[str, set[str]]:
    return {t: {f.column for f in findings if f.table == t and f.policy != "keep"} for t in tables}


def load_plan(model_root: Path, version: str, spec: DatasetSpec | None = None) -> TrainingPlan:
    """The stored plan of an unfinished training; an error naming the way out when it is gone or for another spec."""
    path = staging_dir(model_root, version) / PLAN_FILE
    try:
        plan = TrainingPlan.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"training plan {version} under {model_root} is missing or corrupt: plan the training again "
                         "(materialize the training_plan asset)") from None
    if plan.format != PLAN_FORMAT:
        raise ModelError(f"training plan {version} has format {plan.format!r}, expected {PLAN_FORMAT!r}: plan again")
    if spec is not None and plan.spec_digest != spec_digest(spec):
        raise ModelError(f"training plan {version} was made for another version of the {spec.name!r} spec: "
                         "plan the training again (materialize the training_plan asset)")
    return plan


# ---------------------------------------------------------------- 2. one table


def train_table(spec: DatasetSpec, plan: TrainingPlan, table: str, tables: Mapping[str, pd.DataFrame],
                findings: list[pii_engine.PiiFinding], model_root: Path, *, device: str = "cpu",
                hash_key: bytes | None = None, log: Log = _quiet) -> TableResult:
    """Fit one table's generator (its constraints, copy guard and FK-learned columns) from the plan; `tables` holds at
    least tables_needed(plan, findings, table). Written into the plan's staging folder: the table's folder swapped
    in whole, then its result JSON, so a table trained again replaces its earlier attempt."""

    from genesis_pipelines.engine.core.device import measure_training

    with measure_training(device) as cost:
        result = _train_table(spec, plan, table, tables, findings, model_root, device=device, hash_key=hash_key, log=log)
    result.seconds, result.device = round(cost.seconds, 3), device
    result.peak_memory_bytes, result.memory_kind = cost.peak_memory_bytes, cost.memory_kind
    from genesis_pipelines.engine.sources.io import write_json

    index = plan.db_schema.generation_order.index(table)
    write_json(staging_dir(model_root, plan.version) / RESULTS_DIR / f"{index:04d}.json", result.model_dump(mode="json"))
    return result


def _train_table(spec: DatasetSpec, plan: TrainingPlan, table: str, tables: Mapping[str, pd.DataFrame],
                 findings: list[pii_engine.PiiFinding], model_root: Path, *, device: str, hash_key: bytes | None,
                 log: Log) -> TableResult:
    from genesis_pipelines.engine.analysis import reference_tables, rules
    from genesis_pipelines.engine.analysis.rules import dependency
    from genesis_pipelines.engine.core.schema import child_keys
    from genesis_pipelines.engine.privacy import record_guard
    from genesis_pipelines.engine.synthesis import constraints
    from genesis_pipelines.engine.synthesis.generators import create_generator
    from genesis_pipelines.engine.synthesis.generators.free_text import excluded_words
    staging = staging_dir(model_root, plan.version)
    schema, relations, found = plan.db_schema, relations_of_plan(plan), plan.rules
    if table not in schema.tables:
        raise ModelError(f"table {table!r} is not in training plan {plan.version} of {plan.dataset!r}")
    missing = [t for t in tables_needed(plan, findings, table) if t not in tables]
    if missing:
        raise ModelError(f"training table {table!r} needs source tables {', '.join(missing)}")
    index = schema.generation_order.index(table)
    df, meta = tables[table], schema.tables[table]
    train_df, holdout_df = splits_from_plan(plan, tables, [table])[table]
    folder, work = staging / "tables" / table, staging / "tables" / f".{table}.part"
    shutil.rmtree(work, ignore_errors=True)
    copy_guard: list[str] = []
    updates: dict[str, dict] = {}
    if df.empty:
        log(f"table {table} is empty: generated empty, with its {df.shape[1]} columns")
        table_model = _empty_table_model(table, df, meta, findings)
    elif table in plan.reference:
        log(f"table {table} is reference data ({plan.reference[table]}): kept as it is")
        reference_tables.save_rows(df, work)
        table_model = TableModel(
            table=table, method=reference_tables.REFERENCE_METHOD, row_count=len(df), train_rows=len(df),
            holdout_rows=0, columns=list(df.columns), key_stats={}, rules=[r for r in found if r.table == table],
            describe={"method": reference_tables.REFERENCE_METHOD, "rows": len(df), "columns_modelled": 0,
                      "reference": plan.reference[table]})
    else:
        private = private_columns(tables, findings)
        keys = schema.key_columns(table)
        learnable = pii_engine.prepare_for_training(table, train_df, findings, hash_key=hash_key, tables=tables)
        learnable = learnable[[c for c in learnable.columns if c not in keys]].reset_index(drop=True)
        training_meta = structure.training_meta(meta, findings)
        training_meta.rows_per_person = plan.rows_per_person.get(table, 1.0)
        dependencies = dependency.find_dependencies(learnable, training_meta, private.get(table, set()), spec.seed)
        table_rules = [r for r in found if r.table == table] + rules.select(dependency.dependency_rules(table, dependencies), spec.rules)
        dependencies = {t: d for t, d in dependencies.items() if any(r.kind == "dependency" and r.columns[1] == t for r in table_rules)}
        mine = [r for r in relations if r.fk.child_table == table]
        joined = [learnable]
        for relation in mine:
            if not relation.features:
                continue
            parent = tables[relation.fk.parent_table]
            frame = structure.join_parent_features(relation, child_keys(relation.fk, train_df), parent,
                                              structure.children_counts(relation.fk, df, parent).to_numpy())
            training_meta.columns.update(structure.feature_meta(relation.features, schema.tables[relation.fk.parent_table], frame))
            relation.inherited = structure.inherited_columns(relation, table_rules, {c for r in mine for c in r.inherited})
            joined.append(frame)
        for relation in mine:
            # drawn per parent given that parent only: sound when no other parent of the row carries values
            # (a track's price is one per album, but also follows its media type, assigned track by track)
            others = [r for r in mine if r is not relation and any(f.kind == "value" for f in r.features)]
            if relation.features and not relation.fk.is_self_reference and not others:
                relation.constant = structure.constant_columns(relation.fk, train_df, learnable, training_meta, {
                    c for r in mine for c in [*r.inherited, *r.constant]})
        method = spec.generator.method_for(table)
        generator = create_generator(method, **spec.generator.settings.get(method, {}))
        fit_frame = pd.concat(joined[1:] + joined[:1], axis=1) if len(joined) > 1 else learnable
        log(f"fitting {method} on table {table}: {len(fit_frame)} rows x {fit_frame.shape[1]} columns "
            f"({fit_frame.shape[1] - learnable.shape[1]} parent features)")
        with excluded_words(pii_engine.forbidden_values(tables, findings)):  # vocabularies keep no word of real PII
            generator.fit(fit_frame, training_meta, device=device, seed=spec.seed + index)
        generator.save(work)
        constraints.fit_table(spec, table, learnable, work)
        exclusions = record_guard.comparison_exclusions(schema, findings)
        copy_guard = record_guard.unique_record_digests(
            train_df, record_guard.record_columns(meta, exclusions[table]), meta, plan.salt)
        dropped = {f.column for f in findings if f.table == table and f.policy == "drop"}
        table_model = TableModel(
            table=table, method=method, row_count=len(df), train_rows=len(train_df), holdout_rows=len(holdout_df),
            columns=[c for c in df.columns if c not in dropped],
            key_stats={c: structure.key_stats(df[c], df, meta.primary_key) for c in meta.primary_key
                       if not any(c in fk.child_columns for fk in schema.fks_of(table))},
            unique_columns=[c for c in learnable.columns if structure.is_lookup(df, meta, findings, c)],
            dependencies=dependencies, rules=table_rules, describe=generator.describe())
        updates = {str(i): {"inherited": r.inherited, "constant": r.constant}
                   for i, r in enumerate(relations) if r.fk.child_table == table}
    shutil.rmtree(folder, ignore_errors=True)
    if work.exists():
        os.replace(work, folder)
    return TableResult(table=table, table_model=table_model.model_dump(mode="json"), copy_guard=copy_guard,
                       relation_updates=updates)


# ---------------------------------------------------------------- 3. the model


def pending_tables(model_root: Path, plan: TrainingPlan) -> list[str]:
    results = staging_dir(model_root, plan.version) / RESULTS_DIR
    return [t for i, t in enumerate(plan.db_schema.generation_order) if not (results / f"{i:04d}.json").is_file()]


def assemble(spec: DatasetSpec, plan: TrainingPlan, findings: list[pii_engine.PiiFinding], model_root: Path, *,
             publish: bool = True):
    """Every table's result into model.json; the staging folder becomes the version folder (LATEST moves only with
    `publish`). A table without a result is an error naming it (train it, then assemble again)."""
    from genesis_pipelines.engine.core.lineage import engine_code_version
    from genesis_pipelines.engine.sources.io import write_json

    staging = staging_dir(model_root, plan.version)
    missing = pending_tables(model_root, plan)
    if missing:
        raise ModelError(f"training plan {plan.version} of {plan.dataset!r}: tables {', '.join(missing)} are not trained yet")
    relations = relations_of_plan(plan)
    table_models, copy_guard, seconds = {}, {}, plan.plan_seconds
    for index, name in enumerate(plan.db_schema.generation_order):
        result = TableResult.model_validate_json((staging / RESULTS_DIR / f"{index:04d}.json").read_text(encoding="utf-8"))
        table_models[name] = TableModel.model_validate(result.table_model)
        copy_guard[name] = result.copy_guard
        seconds += result.seconds
        for key, update in result.relation_updates.items():
            relations[int(key)].inherited = {c: tuple(v) for c, v in update["inherited"].items()}
            relations[int(key)].constant = list(update["constant"])
    model = RelationalModel(
        dataset=spec.name, version=plan.version, created_at=plan.created_at, source_fingerprint=plan.source_fingerprint,
        seed=spec.seed, db_schema=plan.db_schema, tables=table_models, relations=relations, pii=findings,
        pii_guard_salt=plan.salt, code_version=engine_code_version(),
        settings={"generator": spec.generator.model_dump(mode="json"), "seed": spec.seed, "scale": spec.scale,
                  "holdout_fraction": spec.holdout_fraction, "holdout_by_parent": spec.holdout_by_parent},
        metrics={"training_seconds": round(seconds, 3), "rows": {t: m.row_count for t, m in table_models.items()},
                 "train_rows": sum(m.train_rows for m in table_models.values())})
    write_json(staging / "record_guard.json", copy_guard)
    write_json(staging / "model.json", model.model_dump(mode="json"))
    shutil.rmtree(staging / RESULTS_DIR, ignore_errors=True)
    (staging / PLAN_FILE).unlink(missing_ok=True)
    os.replace(staging, Path(model_root) / plan.version)
    if publish:
        set_latest(model_root, plan.version)
    return model


def training_cost(model_root: Path, plan: TrainingPlan):
    """The tables' training cost together: seconds summed (plan included), the highest step's peak memory, the
    devices used."""
    from genesis_pipelines.engine.core.device import TrainingCost

    results = [TableResult.model_validate_json(p.read_text(encoding="utf-8"))
               for p in sorted((staging_dir(model_root, plan.version) / RESULTS_DIR).glob("*.json"))]
    cost = TrainingCost(device=",".join(sorted({r.device for r in results})) or "cpu")
    cost.seconds = plan.plan_seconds + sum(r.seconds for r in results)
    top = max(results, key=lambda r: r.peak_memory_bytes, default=None)
    if top is not None:
        cost.peak_memory_bytes, cost.memory_kind = top.peak_memory_bytes, top.memory_kind
    return cost


# ---------------------------------------------------------------- all three in one process


def train(
    spec: DatasetSpec,
    schema: DatasetSchema,
    tables: Mapping[str, pd.DataFrame],
    findings: list[pii_engine.PiiFinding],
    model_root: Path,
    *,
    device: str = "cpu",
    hash_key: bytes | None = None,
    log: Callable[[str], None] = lambda message: None,
    publish: bool = True,
) -> tuple[RelationalModel, dict[str, tuple[pd.DataFrame, pd.DataFrame]]]:
    """Fit every table's generator on its training split and learn the FK structure; save atomically. The three
    steps above in one process (plan, each table, assemble): the same model as when a scheduler
    runs them as separate steps.

    `publish=False` saves the version folder but leaves LATEST alone: the pipeline moves it (set_latest) only
    once the model's split is committed to the warehouse.

    A child's generator also sees its parents' features (see select_parent_features), so at generation it is
    sampled conditioned on the parents its rows were assigned to. Returns the model and each table's (train,
    holdout) split, so the caller can keep the holdout for evaluation.
    """
    plan = prepare_training(spec, schema, tables, findings, model_root, log=log)
    try:
        for name in plan.db_schema.generation_order:
            train_table(spec, plan, name, tables, findings, model_root, device=device, hash_key=hash_key, log=log)
        model = assemble(spec, plan, findings, model_root, publish=publish)
    except BaseException:
        shutil.rmtree(staging_dir(model_root, plan.version), ignore_errors=True)
        raise
    return model, splits_from_plan(plan, tables)


def _with_reference_labels(schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], reference: Mapping[str, str]) -> DatasetSchema:
    """A reference table's text columns are categories (genre names), whatever their count: children are conditioned
    on them and the quality report compares them as categories."""
    if not reference:
        return schema
    schema = schema.model_copy(deep=True)
    for name in reference:
        keys = schema.key_columns(name)
        for column, cmeta in schema.tables[name].columns.items():
            if column not in keys and cmeta.sdtype in ("name", "code", "text") and column in tables[name].columns:
                cmeta.sdtype = "categorical"
    return schema


def _empty_table_model(name: str, df: pd.DataFrame, meta: TableMeta, findings: list[pii_engine.PiiFinding]) -> TableModel:
    dropped = {f.column for f in findings if f.table == name and f.policy == "drop"}
    return TableModel(table=name, method=EMPTY_METHOD, row_count=0, train_rows=0, holdout_rows=0,
                      columns=[c for c in df.columns if c not in dropped], key_stats={},
                      describe={"method": EMPTY_METHOD, "rows": 0, "columns_modelled": 0})
