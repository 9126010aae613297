"""Conditional generation: rows of one table given values of some of its columns, for augmentation.

    parse_condition   "income=>50K" -> Condition(column, value), the value typed from the column's metadata
    parse_rebalance   "income" or "income=>50K:0.6,<=50K:0.4" -> Rebalance(column, shares or None = uniform)
    plan              conditions, a frame of condition rows and/or a rebalance -> ConditionPlan: one condition row
                      per row to generate (checked against the model first: an impossible condition is an error)
    generate_rows     the table's rows for a plan, through the relational layer (keys, parents, rules, PII fakes),
                      and every condition column holding its condition's value

Each generator conditions in its own way (`sample(n, conditions=...)`: the copula through its latent normal, or
through its class-specific marginals where it has them; the autoregressive model by fixing the tokens; CTGAN and
TVAE by steering and rejection). One that cannot take a condition (e.g. per-row conditions of the SDV backend) is
sampled unconditioned and its rows are kept where they match (ConditionedGenerator): a bounded number of tries,
then a clear error when the condition is too rare for the model.

Errors name the table and column and may repeat the caller's own condition value, never a value of the real data.
No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import ColumnMeta, TableMeta
from genesis_pipelines.engine.synthesis.conditioned_generator import (
    ConditionError,
    _matches,
    _same,
    _strip,
    _unsupported,
)

PROBE_ROWS = 4000  # unconditioned rows sampled to learn which categories the model generates (and their shares)
STRING_KINDS = ("text", "code", "name")
_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Condition:
    column: str
    value: object  # typed like the real column (int, float, bool, Timestamp or str)

    def label(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class Rebalance:
    column: str
    shares: dict | None = None  # value -> share; None: uniform over the categories the model generates


@dataclass
class ConditionPlan:
    """One condition row per row to generate, shuffled (so every chunk of the table holds its share of each
    condition), and what they are, for reports: `groups` lists each distinct condition and its rows."""

    table: str
    rows: int
    frame: pd.DataFrame
    groups: list[dict] = field(default_factory=list)  # {"condition": {column: value}, "rows": k}
    rebalance: dict | None = None  # {"column": c, "shares": {value: share}} as requested (caller's values)

    def summary(self) -> dict:
        """JSON-safe: which rows were conditioned and on what (the caller's values and the model's categories)."""
        return {"table": self.table, "rows": self.rows, "columns": list(self.frame.columns),
                "groups": [{"condition": {c: _json_value(v) for c, v in g["condition"].items()}, "rows": g["rows"]}
                           for g in self.groups],
                "rebalance": self.rebalance}


# ---------------------------------------------------------------- parsing


def conditionable_columns(model, table: str) -> list[str]:
    """Columns of `table` a condition may fix: generated values (no keys, no PII that is faked, dropped or hashed,
    no free text, codes or names, which are rendered rather than learned)."""
    meta = _table_meta(model, table)
    return [c for c in model.tables[table].columns if _refusal(model, table, meta, c) is None]


def _table_meta(model, table: str) -> TableMeta:
    if table not in model.tables:
        raise ConditionError(f"table {table!r} is not in model version {model.version}; tables: "
                             f"{', '.join(sorted(model.tables))}")
    return model.db_schema.tables[table]


def _refusal(model, table: str, meta: TableMeta, column: str) -> str | None:
    if column not in meta.columns or column not in model.tables[table].columns:
        return "the table has no such column in the model"
    keys = set(meta.primary_key) | {c for fk in model.db_schema.foreign_keys if fk.child_table == table
                                    for c in fk.child_columns}
    if column in keys:
        return "it is a key (keys are assigned from the generated parents, not generated from values)"
    finding = next((f for f in model.pii if f.table == table and f.column == column), None)
    if finding is not None and finding.policy != "keep":
        return f"it is PII (policy {finding.policy}): its values are rendered after generation, not learned"
    sdtype = meta.columns[column].sdtype
    if sdtype == "id" or sdtype in STRING_KINDS:
        return f"its values are {sdtype} strings rendered per row, not learned as values"
    return None


def _check_column(model, table: str, column: str) -> ColumnMeta:
    meta = _table_meta(model, table)
    reason = _refusal(model, table, meta, column)
    if reason is not None:
        raise ConditionError(f"cannot condition on {table}.{column}: {reason}")
    return meta.columns[column]


def typed_value(text: str, cmeta: ColumnMeta, where: str):
    """A condition's text as the column's own type (from its metadata), so it compares with generated values."""
    raw = str(text).strip()
    if raw == "":
        raise ConditionError(f"condition on {where}: the value is empty")
    dtype, sdtype = cmeta.dtype.lower(), cmeta.sdtype
    try:
        if sdtype == "boolean" or dtype.startswith("bool"):
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError
        if sdtype == "datetime":
            if cmeta.text_layout or not dtype.startswith(("datetime", "timestamp", "date")):
                return raw if cmeta.text_layout else pd.Timestamp(raw)
            return pd.Timestamp(raw)
        if sdtype == "integer" or (sdtype == "categorical" and "int" in dtype):
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if sdtype == "numeric" or (sdtype == "categorical" and "float" in dtype):
            return float(raw)
    except (TypeError, ValueError):
        raise ConditionError(f"condition on {where}: {raw!r} is not a value of type {sdtype}") from None
    return raw


def parse_condition(text: str, model, table: str) -> Condition:
    """`COLUMN=VALUE` (split at the first '='; the value is everything after it, so `income=>50K` is income
    '>50K'), the value typed from the column's metadata."""
    column, sep, value = str(text).partition("=")
    column = column.strip()
    if not sep or not column:
        raise ConditionError(f"condition {text!r} on table {table!r}: write it as COLUMN=VALUE")
    cmeta = _check_column(model, table, column)
    return Condition(column, typed_value(value, cmeta, f"{table}.{column}"))


def parse_rebalance(text: str, model, table: str) -> Rebalance:
    """`COLUMN` (uniform over the categories the model generates) or `COLUMN=VALUE:SHARE,VALUE:SHARE,...`
    (each share in [0, 1]; categories not listed share what is left equally)."""
    column, sep, rest = str(text).partition("=")
    column = column.strip()
    if not column:
        raise ConditionError(f"rebalance {text!r} on table {table!r}: write it as COLUMN or COLUMN=VALUE:SHARE,...")
    cmeta = _check_column(model, table, column)
    if not sep or not rest.strip():
        return Rebalance(column)
    shares: dict = {}
    for item in rest.split(","):
        value, colon, share = item.rpartition(":")
        if not colon or not value.strip():
            raise ConditionError(f"rebalance on {table}.{column}: {item.strip()!r} is not VALUE:SHARE")
        try:
            fraction = float(share)
        except ValueError:
            raise ConditionError(f"rebalance on {table}.{column}: share {share.strip()!r} is not a number") from None
        if not 0 <= fraction <= 1:
            raise ConditionError(f"rebalance on {table}.{column}: share {fraction} is not in [0, 1]")
        shares[typed_value(value, cmeta, f"{table}.{column}")] = fraction
    return Rebalance(column, shares)


# ---------------------------------------------------------------- what the model generates


def probe(generator, *, seed: int, rows: int = PROBE_ROWS) -> pd.DataFrame:
    """Unconditioned rows of the model, for the categories it generates and their shares (never real rows)."""
    return generator.sample(rows, seed=seed)


def generated_categories(sample: pd.DataFrame, column: str) -> pd.Series:
    """Share of each non-null value of `column` in the model's own rows, commonest first."""
    return sample[column].dropna().value_counts(normalize=True, sort=True)


def rebalance_counts(categories: pd.Series, rebalance: Rebalance, rows: int, where: str) -> dict:
    """Rows per category: uniform, or the given shares (unlisted categories share the rest equally; shares that
    leave nothing for them and sum below 1 are scaled up). Largest remainder, so the counts sum to `rows`."""
    from genesis_pipelines.engine.synthesis.relational.keys import apportion

    known = list(categories.index)
    if len(known) == 0:
        raise ConditionError(f"cannot rebalance {where}: the model generates no value in it")
    if rebalance.shares is None:
        weights = np.ones(len(known))
    else:
        unknown = [v for v in rebalance.shares if not any(_same(v, k) for k in known)]
        if unknown:
            raise ConditionError(f"cannot rebalance {where}: the model never generates {unknown[0]!r}")
        given = {k: next(s for v, s in rebalance.shares.items() if _same(v, k)) for k in known
                 if any(_same(v, k) for v in rebalance.shares)}
        total = sum(given.values())
        if total > 1 + 1e-9:
            raise ConditionError(f"cannot rebalance {where}: the shares sum to {total:.4g}, more than 1")
        rest = [k for k in known if k not in given]
        left = max(0.0, 1.0 - total)
        weights = np.array([given[k] if k in given else left / len(rest) for k in known], dtype="float64")
        if weights.sum() <= 0:
            raise ConditionError(f"cannot rebalance {where}: every share is 0")
    counts = apportion(weights, int(rows), np.random.default_rng(0))
    return {k: int(c) for k, c in zip(known, counts) if c > 0}


def check_possible(generator, table: str, condition: dict, *, seed: int, sample: pd.DataFrame | None = None) -> None:
    """The model can generate rows with these values: the generator's own conditional draw accepts them, and a
    category is one the model generates. The error names table and column and the caller's value."""
    where = ", ".join(f"{table}.{c} = {v!r}" for c, v in condition.items())
    try:
        generator.sample(8, conditions=dict(condition), seed=seed)
        return  # the generator's own conditional draw accepts the values (each refuses a value it never saw)
    except GenesisError as exc:
        if not _unsupported(exc):
            raise ConditionError(f"impossible condition {where}: {_strip(exc)}") from None
    for column, value in condition.items():  # sampled by rejection: the value must be one the model generates
        if sample is not None and _discrete(sample[column]) and \
                not any(_same(value, k) for k in generated_categories(sample, column).index):
            raise ConditionError(f"impossible condition {where}: the model never generates {value!r} in {column!r}")


def _discrete(values: pd.Series) -> bool:
    return not pd.api.types.is_float_dtype(values) or values.nunique(dropna=True) <= 50


# ---------------------------------------------------------------- the plan


def plan(model, model_dir: Path, table: str, *, conditions: Sequence[Condition] | Mapping | pd.DataFrame | None = None,
         rows: int | None = None, rebalance: Rebalance | None = None, seed: int = 0) -> ConditionPlan:
    """One condition row per row to generate. `conditions`: Condition objects or a {column: value} mapping (every
    row gets them), or a frame with one condition row per row (its length is the row count); `rebalance` spreads
    `rows` (default: the real table's size) over a column's categories. Everything is checked against the model
    before anything is generated."""
    from genesis_pipelines.engine.synthesis.generators import load_generator

    meta = _table_meta(model, table)
    tm = model.tables[table]
    if tm.method in ("empty", "reference"):
        raise ConditionError(f"cannot condition table {table!r}: it is {'empty' if tm.method == 'empty' else 'reference data, copied as it is'}")
    generator = load_generator(Path(model_dir) / "tables" / table)
    rng = np.random.default_rng([seed, 7])
    frame_given = isinstance(conditions, pd.DataFrame)
    if frame_given:
        frame = _typed_frame(model, table, meta, conditions)
        if rows is not None and rows != len(frame):
            raise ConditionError(f"conditions for table {table!r} hold {len(frame)} rows but {rows} rows were asked for")
        rows = len(frame)
        fixed: dict = {}
    else:
        fixed = _as_mapping(model, table, conditions)
        frame = None
    rows = int(tm.row_count if rows is None else rows)
    if rows <= 0:
        raise ConditionError(f"rows for table {table!r} must be positive, got {rows}")
    sample = probe(generator, seed=int(rng.integers(0, 2**31 - 1))) if (rebalance is not None or fixed or frame_given) else None
    requested = None
    if rebalance is not None:
        _check_column(model, table, rebalance.column)
        if rebalance.column in fixed or (frame is not None and rebalance.column in frame.columns):
            raise ConditionError(f"{table}.{rebalance.column} is both conditioned on and rebalanced: choose one")
        where = f"{table}.{rebalance.column}"
        if not _discrete(sample[rebalance.column]):
            raise ConditionError(f"cannot rebalance {where}: it is continuous (rebalance a categorical column)")
        counts = rebalance_counts(generated_categories(sample, rebalance.column), rebalance, rows, where)
        values = np.concatenate([np.repeat(np.array([v], dtype=object), c) for v, c in counts.items()])
        part = pd.DataFrame({rebalance.column: pd.Series(values).astype(sample[rebalance.column].dtype)})
        frame = part if frame is None else pd.concat([frame.reset_index(drop=True), part], axis=1)
        requested = {"column": rebalance.column,
                     "shares": None if rebalance.shares is None else {str(k): v for k, v in rebalance.shares.items()}}
    if fixed:
        constant = pd.DataFrame({c: [v] * rows for c, v in fixed.items()})
        frame = constant if frame is None else pd.concat([frame.reset_index(drop=True), constant], axis=1)
    if frame is None or frame.empty and len(frame.columns) == 0:
        raise ConditionError(f"no condition and no rebalance given for table {table!r}")
    groups = []
    for values, group in frame.groupby(list(frame.columns), sort=False, dropna=False):
        condition = dict(zip(frame.columns, values if isinstance(values, tuple) else (values,)))
        check_possible(generator, table, condition, seed=int(rng.integers(0, 2**31 - 1)), sample=sample)
        groups.append({"condition": condition, "rows": len(group)})
    if not frame_given:  # blocks of conditions, shuffled so each chunk of the table holds its share of each
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    return ConditionPlan(table=table, rows=rows, frame=frame.reset_index(drop=True), groups=groups, rebalance=requested)


def _as_mapping(model, table: str, conditions) -> dict:
    if conditions is None:
        return {}
    if isinstance(conditions, Mapping):
        out = {}
        for column, value in conditions.items():
            cmeta = _check_column(model, table, str(column))
            out[str(column)] = typed_value(value, cmeta, f"{table}.{column}") if isinstance(value, str) else value
        return out
    out = {}
    for condition in conditions:
        if isinstance(condition, str):
            condition = parse_condition(condition, model, table)
        _check_column(model, table, condition.column)
        if condition.column in out:
            raise ConditionError(f"two conditions on {table}.{condition.column}: give one value per column")
        out[condition.column] = condition.value
    return out


def _typed_frame(model, table: str, meta: TableMeta, frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) == 0 or len(frame.columns) == 0:
        raise ConditionError(f"the condition frame for table {table!r} is empty")
    out = {}
    for column in frame.columns:
        cmeta = _check_column(model, table, str(column))
        values = frame[column].reset_index(drop=True)
        if values.isna().any():
            raise ConditionError(f"the condition frame for table {table!r} has empty cells in {column!r}")
        out[str(column)] = values.map(lambda v, cmeta=cmeta, where=f"{table}.{column}": typed_value(v, cmeta, where)) if values.dtype == object else values
    return pd.DataFrame(out)


# ---------------------------------------------------------------- generation


def generate_rows(model, model_dir: Path, table: str, parents: Mapping[str, pd.DataFrame], condition_plan: ConditionPlan,
                  *, seed: int = 0, locale: str = "en_US", forbidden=frozenset(), copy_guard: set[str] | None = None
                  ) -> tuple[pd.DataFrame, dict]:
    """The table's rows for the plan (keys assigned from `parents`, rules, PII fakes, copy guard, as in the twin),
    each condition column holding its condition's value. Returns the rows and a summary for the report: the plan,
    and `restored`: cells a data rule's repair had moved off their condition, set back to it."""
    from genesis_pipelines.engine.synthesis import relational

    chunks = list(relational.generate_table_chunks(model, model_dir, table, parents, seed=seed, locale=locale,
                                                   forbidden=forbidden, copy_guard=copy_guard,
                                                   rows=condition_plan.rows, conditions=condition_plan.frame))
    out = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    restored = 0
    wanted = condition_plan.frame.iloc[np.arange(len(out)) % len(condition_plan.frame)].reset_index(drop=True)
    for column in wanted.columns:
        ok = _matches(out[[column]], wanted[[column]])
        restored += int((~ok).sum())
        if (~ok).any():
            out.loc[~ok, column] = wanted.loc[~ok, column].astype(out[column].dtype).to_numpy()
    return out, {**condition_plan.summary(), "generated_rows": len(out), "restored": restored}


def _json_value(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
