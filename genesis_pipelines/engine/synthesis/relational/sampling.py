"""Generation: each table's rows drawn (conditioned on their parents), the copy guard, rules and constraints
applied, keys assigned; tables in generation order, deferred keys filled last."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis import reference_tables, rules
from genesis_pipelines.engine.analysis.rules.core import Dependency
from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.schema import PlannedKey, TableMeta, comparable_values, key_series, planned_rows
from genesis_pipelines.engine.privacy import pii as pii_engine
from genesis_pipelines.engine.privacy import record_guard
from genesis_pipelines.engine.privacy.pii import parent_locales
from genesis_pipelines.engine.sources.io import dates_as_text
from genesis_pipelines.engine.synthesis import constraints
from genesis_pipelines.engine.synthesis.conditioned_generator import (
    ConditionedGenerator,
)
from genesis_pipelines.engine.synthesis.generators import load_generator
from genesis_pipelines.engine.synthesis.generators.free_text import redraw_forbidden
from genesis_pipelines.engine.synthesis.relational.keys import (
    deferred_relations,
    fill_deferred_keys,
    plan_keys,
)
from genesis_pipelines.engine.synthesis.relational.model import (
    BLOCK_ROWS,
    CHUNK_ROWS,
    EMPTY_METHOD,
    FEATURE_PREFIX,
    RelationalModel,
    RelationStats,
)
from genesis_pipelines.engine.synthesis.relational.storage import (
    comparison_exclusions,
    load_copy_guard,
    load_pii_guard,
)
from genesis_pipelines.engine.synthesis.relational.structure import RowConditions

SWAP_ROUNDS = 10  # exchange attempts for rows that copy a unique real record, before any left are redrawn


def _apply_dependencies(dependencies: dict[str, Dependency], body: pd.DataFrame, inherited: set[str],
                        rng: np.random.Generator, fixed: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """Columns copied from the parent keep their value and pull a fitting source value; the others follow
    their source. `fixed` columns (given as conditions, e.g. drawn once per parent) are never changed."""
    def assign(column: str, values: np.ndarray, rows: np.ndarray) -> None:
        merged = body[column].astype(object).to_numpy().copy()
        merged[rows] = values[rows]
        body[column] = pd.Series(merged).astype(body[column].dtype)

    for target, dep in dependencies.items():
        if target in inherited and dep.source not in fixed and dep.source in body.columns and target in body.columns:
            drawn = _draw_shares(body[target].astype(str).to_numpy(), dep.reverse, rng)
            assign(dep.source, drawn, np.flatnonzero(pd.notna(drawn) & body[target].notna().to_numpy()))
    for target, dep in dependencies.items():
        if target not in inherited and target not in fixed and dep.source in body.columns and target in body.columns:
            known = body[dep.source].astype(str).isin(dep.mapping.keys()).to_numpy() & body[dep.source].notna().to_numpy()
            mapped = body[dep.source].astype(str).map(dep.mapping).to_numpy(dtype=object)
            assign(target, mapped, np.flatnonzero(known))
    return body


def _draw_shares(keys: np.ndarray, reverse: dict[str, dict[str, float]], rng: np.random.Generator) -> np.ndarray:
    """Per row, a value drawn from the shares of its key; systematically within each key (the rows of one
    country get its cities in their learned shares, not a multinomial draw of them), in random row order."""
    out = np.full(len(keys), None, dtype=object)
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    for code, key in enumerate(uniques):
        shares = reverse.get(key)
        if not shares:
            continue
        rows = np.flatnonzero(codes == code)
        values = list(shares)
        cumulative = np.cumsum(np.asarray([shares[v] for v in values], dtype="float64"))
        positions = (np.arange(len(rows)) + rng.random()) / len(rows) * cumulative[-1]
        picked = np.minimum(np.searchsorted(cumulative, positions, side="right"), len(values) - 1)
        out[rows[rng.permutation(len(rows))]] = np.asarray(values, dtype=object)[picked]
    return out


def table_size(model: RelationalModel, table: str, scale: float) -> int:
    """At least one row at any scale, except for a table that had none; reference data keeps its size."""
    rows = model.tables[table].row_count
    if model.tables[table].method == reference_tables.REFERENCE_METHOD:
        return rows
    return max(1, int(round(rows * scale))) if rows else 0


def empty_table(model: RelationalModel, table: str) -> pd.DataFrame:
    """The table with no rows: its output columns, each with the real column's dtype."""
    columns = model.db_schema.tables[table].columns
    return pd.DataFrame({c: pd.Series(dtype=columns[c].dtype) for c in model.tables[table].columns})


def _swap_copies(body: pd.DataFrame, columns: list[str], meta: TableMeta, salt: str, digests: set[str],
                 swappable: list[str], rng: np.random.Generator, rounds: int = SWAP_ROUNDS) -> pd.DataFrame:
    """Rows that reproduce a unique real record exchange one column's value with another row, when that leaves
    neither row a copy: every column keeps its sampled values, so the batch's marginals stay as drawn (a redraw
    would pull rare values towards common ones: 59 customers lose most of their one-customer countries)."""
    swappable = [c for c in swappable if c in body.columns and body[c].nunique(dropna=False) > 1]
    if not swappable or len(body) < 2:
        return body
    body = body.reset_index(drop=True)
    taken = {c: np.arange(len(body)) for c in swappable}  # per column, the row whose value each row holds now
    digests = record_guard.as_digests(digests)
    # each record column's per-value codes, exchanged with the values: a row's digest without rebuilding any frame
    codes = None if digests.legacy else np.column_stack([record_guard.column_codes(body, c, meta, salt) for c in columns])
    position = {c: columns.index(c) for c in swappable if c in columns}

    def copies(rows: np.ndarray) -> np.ndarray:
        if codes is not None:
            return record_guard.digest_hits(record_guard.row_digests(body, columns, meta, salt, codes=codes[rows]), digests)
        frame = body.iloc[rows].copy()
        for column in swappable:
            frame[column] = body[column].take(taken[column][rows]).set_axis(frame.index)
        return record_guard.copy_mask(frame, columns, meta, salt, digests)

    def exchange(column: str, a: np.ndarray, b: np.ndarray) -> None:
        taken[column][a], taken[column][b] = taken[column][b], taken[column][a].copy()
        if codes is not None and column in position:
            j = position[column]
            codes[a, j], codes[b, j] = codes[b, j], codes[a, j].copy()

    every = np.arange(len(body))
    hit = every[copies(every)]
    for _ in range(rounds):
        if not len(hit):
            break
        free = np.setdiff1d(every, hit)
        if not len(free):
            break
        hit = rng.permutation(hit)[: len(free)]
        partners = rng.choice(free, size=len(hit), replace=False)
        chosen = np.asarray(swappable, dtype=object)[rng.integers(0, len(swappable), len(hit))]
        for column in swappable:
            sel = chosen == column
            exchange(column, hit[sel], partners[sel])
        after = copies(np.concatenate([hit, partners]))
        spoiled = after[len(hit):]  # the partner became a copy: undo that exchange
        for column in swappable:
            sel = (chosen == column) & spoiled
            exchange(column, hit[sel], partners[sel])
        hit = every[copies(every)]
    for column in swappable:  # the exchanges applied once, in the column's own dtype (no Python object per value)
        body[column] = body[column].take(taken[column]).reset_index(drop=True)
    return body


def _storage_types(body: pd.DataFrame, meta: TableMeta) -> pd.DataFrame:
    """Numbers modelled as categories (a 0/1 flag, a code like 20 / 40 / 50) come back as numbers, as stored in
    the real table, whenever every value parses; dates stored as text come back in the real column's layout:
    output reads like input, and compares equal to it."""
    for column in body.columns:
        cmeta = meta.columns.get(column)
        real = cmeta.dtype.lower() if cmeta else ""
        if cmeta is not None and cmeta.sdtype == "datetime" and cmeta.text_layout:  # "June 22, 2018" stays so
            body[column] = dates_as_text(body[column], cmeta.text_layout)
            continue
        if not real.startswith(("int", "uint", "float")) or pd.api.types.is_numeric_dtype(body[column]):
            continue
        parsed = pd.to_numeric(body[column], errors="coerce")
        if int(parsed.isna().sum()) == int(body[column].isna().sum()):
            body[column] = parsed.astype("Int64" if real.startswith(("int", "uint")) and (parsed.dropna() % 1 == 0).all()
                                          else "float64")
    return body


def _copies_after_rules(out: pd.DataFrame, table_rules: list, parents: Mapping[str, pd.DataFrame], columns: list[str],
                        meta: TableMeta, salt: str, digests: set[str], swappable: list[str],
                        rng: np.random.Generator) -> pd.DataFrame:
    """Rows the rule repair turned into copies of unique real records: exchange a value no rule reads; else any
    value, then repair again (a few rounds: the repair keeps the rules, the exchange breaks the copy)."""
    ruled = {c for r in table_rules for c in r.columns}
    if isinstance(out.index, pd.RangeIndex) and out.index.start == 0 and out.index.step == 1 and \
            not record_guard.copy_mask(out, columns, meta, salt, digests).any():
        return out  # no copy: what the exchanges below would return (they draw nothing then), digested once
    out = _swap_copies(out, columns, meta, salt, digests, [c for c in swappable if c not in ruled], rng)
    for _ in range(3):
        if not record_guard.copy_mask(out, columns, meta, salt, digests).any():
            break
        out = rules.enforce(table_rules, _swap_copies(out, columns, meta, salt, digests, swappable, rng), parents, rng)
    return out


def _inherit(relations: list[RelationStats], body: pd.DataFrame, conditions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    for relation in relations:
        for column, (feature, share) in relation.inherited.items():
            if column not in body.columns or feature not in conditions.columns:
                continue
            values = conditions[feature]
            take = (rng.random(len(body)) < share) & values.notna().to_numpy()
            if take.any():
                merged = body[column].astype(object).to_numpy().copy()
                merged[take] = values.to_numpy()[take]
                body[column] = pd.Series(merged).astype(body[column].dtype)
    return body


def _distinct_values(generator, body: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """A lookup table's names stay distinct, as in the real table (25 genres, not 25 draws with repeats)."""
    columns = [c for c in columns if c in body.columns and body[c].duplicated().any()]
    if not columns:
        return body
    pool = generator.sample(min(50 * len(body), 50_000), seed=int(rng.integers(0, 2**31 - 1)))
    for column in columns:
        distinct = np.asarray(pd.unique(pool[column].dropna()), dtype=object)
        if len(distinct) == 0:
            continue
        # every learned value once before any repeats (the training split may hold fewer names than rows)
        extra = rng.choice(distinct, max(0, len(body) - len(distinct)))
        values = np.concatenate([rng.permutation(distinct)[: len(body)], extra])
        body[column] = pd.Series(values[rng.permutation(len(values))]).astype(body[column].dtype)
    return body


def _per_parent_columns(relations: list[RelationStats], keys: dict[str, pd.Series], conditions: RowConditions,
                        draw: Callable[[int, pd.DataFrame | None, int], pd.DataFrame], fixed: set[str],
                        columns: set[str], seed: int) -> RowConditions:
    """Columns constant among a parent's children: one row is drawn per parent (given that parent's features, so
    the batch over parents follows the learned shares), and its values become conditions of all the children."""
    for relation in relations:
        wanted = [c for c in relation.constant if c in columns and c not in fixed]
        if not wanted or relation.fk.child_column not in keys:
            continue
        values = keys[relation.fk.child_column]
        if isinstance(values, PlannedKey):  # distinct parent rows are distinct keys, numbered alike
            codes, _ = pd.factorize(np.where(values.positions >= 0, values.positions, np.nan))
        else:
            codes, _ = pd.factorize(comparable_values(values).where(values.notna().to_numpy()))
        present = codes >= 0
        if not present.any():
            continue
        first = pd.Series(np.flatnonzero(present)).groupby(codes[present]).first().to_numpy()
        batch = draw(len(first), conditions.take(first), seed)
        for column in wanted:
            conditions.per_parent[column] = (codes, batch[column].reset_index(drop=True))
            fixed.add(column)
    return conditions


def _check_condition_columns(model: RelationalModel, table: str, columns) -> None:
    """A column the table's generator does not model (unknown, a key, PII that is replaced) cannot be a condition:
    the error names table and column."""
    replaced = {f.column for f in model.pii if f.table == table and f.policy != "keep"}
    keys = model.db_schema.key_columns(table)
    for column in columns:
        if column not in model.tables[table].columns:
            raise GenesisError(f"table {table!r} has no column {column!r} to condition on")
        if column in keys or column in replaced:
            raise GenesisError(f"table {table!r}: column {column!r} is a key or a replaced PII column; it cannot be a condition")


def generate_table_chunks(
    model: RelationalModel,
    model_dir: Path,
    table: str,
    parents: Mapping[str, pd.DataFrame],
    *,
    scale: float = 1.0,
    seed: int = 0,
    locale: str = "en_US",
    forbidden=frozenset(),
    copy_guard: set[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    rows: int | None = None,
    conditions: pd.DataFrame | Mapping | None = None,
    block_rows: int = BLOCK_ROWS,
) -> Iterator[pd.DataFrame]:
    """One synthetic table, given its already generated parents, as chunks of about `chunk_rows` rows (whole
    blocks of `block_rows`).

    Each block of rows is drawn from its own random stream (seeded from the table's), so the rows are the same
    whatever `chunk_rows` is: a chunk only groups blocks (memory), and blocks could be drawn in any order.

    `rows` replaces the table's size at `scale`; `conditions` (column -> value, or a frame such as conditions.plan
    makes, cycled to the rows) gives each row values of some of its columns, on top of its parent's features (the
    rows are then drawn through conditioned_generator.ConditionedGenerator).

    Keys for all rows are planned first (small integer arrays); the row bodies, the expensive part, are sampled
    and yielded chunk by chunk, so memory stays bounded on big child tables (stream them into DuckDB with
    io.write_table). `forbidden` holds real PII values that fake values must avoid; `copy_guard` the digests of
    unique real records that sampled rows must not reproduce (see record_guard).
    """
    if table not in model.tables:
        raise ModelError(f"model version {model.version} has no table {table!r}: retrain the model")
    tm = model.tables[table]
    schema = model.db_schema
    meta = schema.tables[table]
    rng = np.random.default_rng([seed, schema.generation_order.index(table)])
    for parent in schema.parents_of(table):
        if parent not in parents:
            raise GenesisError(f"table {table!r} needs its parent table {parent!r} generated first")
    if tm.method == EMPTY_METHOD:
        yield empty_table(model, table)
        return
    if tm.method == reference_tables.REFERENCE_METHOD:  # reference data: the real rows, at any scale
        yield reference_tables.load_rows(Path(model_dir) / "tables" / table)[tm.columns]
        return
    raw_generator = load_generator(Path(model_dir) / "tables" / table)
    given = conditions
    size = table_size(model, table, scale) if rows is None else max(0, int(rows))
    keys, conditions, n = plan_keys(model, model_dir, table, parents, size, rng, raw_generator)
    if given is not None and not isinstance(given, pd.DataFrame):  # values: the same for every row
        given = pd.DataFrame({c: [v] * n for c, v in dict(given).items()})
    if given is not None and len(given) and len(given.columns):
        _check_condition_columns(model, table, given.columns)
        given = given.iloc[np.arange(n) % len(given)].reset_index(drop=True)  # n may differ (a junction's pairs)
        conditions = conditions if conditions is not None else RowConditions([], n)
        conditions.given = given
        raw_generator = ConditionedGenerator(raw_generator, list(given.columns), table)
    # constrained: the body and any row resampled below obey the spec's constraints
    generator = constraints.constrain(raw_generator, Path(model_dir) / "tables" / table)
    guard_columns = record_guard.record_columns(meta, comparison_exclusions(model)[table]) if copy_guard is not None else []
    null_rates = {c.name: c.null_rate for c in meta.columns.values()}
    pii_columns = {f.column for f in model.pii if f.table == table}
    token_columns = [c for c, m in meta.columns.items() if m.sdtype in ("code", "name") and c not in pii_columns]
    pk = meta.primary_key
    chunk_rows = max(1, int(chunk_rows))
    inherited = {c for r in model.relations_of(table) for c in r.inherited} if conditions is not None else set()
    fixed: set[str] = set()  # columns drawn once per parent, then given to every row as conditions

    def draw(k: int, cond: pd.DataFrame | None, draw_seed: int) -> pd.DataFrame:
        """Rows from the generator, then parent values copied in and dependent columns restored."""
        body = _storage_types(generator.sample(k, conditions=cond, seed=draw_seed).reset_index(drop=True), meta)
        post = np.random.default_rng(draw_seed)
        if cond is not None:
            body = _inherit(model.relations_of(table), body, cond, post)
        return _apply_dependencies(tm.dependencies, body, inherited, post, fixed) if tm.dependencies else body

    if conditions is not None:
        conditions = _per_parent_columns(model.relations_of(table), keys, conditions, draw, fixed, set(tm.columns),
                                         int(rng.integers(0, 2**31 - 1)))
    # columns a copy may exchange with another row: none that must agree with the row's parent or other columns
    tied = inherited | fixed | {c for t, d in tm.dependencies.items() for c in (t, d.source)}
    swappable = [c for c in guard_columns if c not in tied]

    def block(start: int, stop: int, block_seed: int) -> pd.DataFrame:
        """Rows start..stop, all of their randomness from `block_seed`."""
        rng = np.random.default_rng(block_seed)
        cond = conditions.rows(start, stop) if conditions is not None else None
        body = draw(stop - start, cond, int(rng.integers(0, 2**31 - 1)))
        guard_seed = int(rng.integers(0, 2**31 - 1))
        digests = copy_guard or set()
        swap = (lambda b, digests=digests, guard_seed=guard_seed: _swap_copies(
            b, guard_columns, meta, model.pii_guard_salt, digests, swappable, np.random.default_rng(guard_seed))
        ) if swappable else None
        body = record_guard.redraw_copies(draw, body, cond, guard_columns, meta, model.pii_guard_salt, digests,
                                          guard_seed, first_repair=swap)
        if n <= block_rows:
            body = _distinct_values(generator, body, tm.unique_columns, rng)
        body = constraints.settle(generator, body, cond, lambda rows, c: rows if c is None else _inherit(
            model.relations_of(table), rows.reset_index(drop=True), c, rng), int(rng.integers(0, 2**31 - 1)))
        body = body[[c for c in body.columns if not c.startswith(FEATURE_PREFIX)]]
        for column, values in keys.items():
            if column in meta.columns:  # not a composite FK's tuple codes
                body[column] = planned_rows(values, start, stop)
        inherited = (parent_locales.inherited_locales(schema, table, body, parents, locale)
                     if any(f.table == table and f.policy == "fake" for f in model.pii) else None)
        out = pii_engine.fill_synthetic(table, body, model.pii, n_rows=stop - start, column_order=tm.columns, locale=locale,
                                        seed=int(rng.integers(0, 2**31 - 1)), forbidden=forbidden, null_rates=null_rates,
                                        parents=parents, inherited_locales=inherited)
        out = redraw_forbidden(out, token_columns, forbidden,
                               lambda k: raw_generator.sample(k, seed=int(rng.integers(0, 2**31 - 1))))
        out = rules.enforce(tm.rules, out, parents, rng)
        if copy_guard:  # a repaired value can complete a copy of a unique real record
            out = _copies_after_rules(out, tm.rules, parents, guard_columns, meta, model.pii_guard_salt, copy_guard,
                                      swappable, rng)
        if repeated is not None:
            return out[~repeated[start:stop]].reset_index(drop=True)
        if pk and out.duplicated(subset=pk).any():
            out = out.drop_duplicates(subset=pk).reset_index(drop=True)
        return out

    # a primary key made of planned keys (a one-to-one FK given a parent again): its repeats are known before any
    # row is drawn, so they are dropped the same way whichever chunk they fall in
    repeated = (pd.DataFrame({c: key_series(keys[c]) for c in pk}).duplicated().to_numpy()
                if pk and all(c in keys for c in pk) else None)
    block_rows = max(1, int(block_rows))
    starts = list(range(0, max(n, 1), block_rows))
    block_seeds = rng.integers(0, 2**63 - 1, size=len(starts))
    pending: list[pd.DataFrame] = []
    for i, start in enumerate(starts):
        pending.append(block(start, min(n, start + block_rows), int(block_seeds[i])))
        if sum(len(p) for p in pending) < chunk_rows and i + 1 < len(starts):
            continue
        yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
        pending = []


def generate_table(model: RelationalModel, model_dir: Path, table: str, parents: Mapping[str, pd.DataFrame],
                   **options) -> pd.DataFrame:
    """One synthetic table in one frame: generate_table_chunks' chunks put together. Its keyword options (scale,
    seed, locale, forbidden, copy_guard, chunk_rows, rows, conditions, block_rows) are generate_table_chunks' own,
    declared there once."""
    chunks = list(generate_table_chunks(model, model_dir, table, parents, **options))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def generate_all(model: RelationalModel, model_dir: Path, *, scale: float = 1.0, seed: int = 0, locale: str = "en_US",
                 chunk_rows: int = CHUNK_ROWS, conditions: Mapping[str, pd.DataFrame | Mapping] | None = None,
                 ) -> dict[str, pd.DataFrame]:
    """Every table in generation order: the library entry point outside Dagster (`conditions`: table -> its
    conditions, see generate_table_chunks)."""
    guard = load_pii_guard(model, model_dir)
    out: dict[str, pd.DataFrame] = {}
    for table in model.db_schema.generation_order:
        out[table] = generate_table(model, model_dir, table, out, scale=scale, seed=seed, locale=locale, forbidden=guard,
                                    copy_guard=load_copy_guard(model, model_dir, table), chunk_rows=chunk_rows,
                                    conditions=(conditions or {}).get(table))
        for relation in deferred_relations(model, table):
            out[relation.fk.child_table] = fill_deferred_keys(model, model_dir, relation, out[relation.fk.child_table],
                                                              out[table], seed=seed)
    return out
