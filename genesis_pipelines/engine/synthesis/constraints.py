"""Constraints from the spec, enforced on every sampled row: repair where a transform can, else reject and resample.

Repairs keep the rows the generator made and only move values that broke a rule: bounds are clipped (integers to
the nearest allowed integer), an inequality `a <= b` broken on a row swaps the two values. Unique columns, fixed
combinations, strict bounds on real numbers and row predicates are enforced by rejecting rows and sampling more,
a bounded number of times; when the generator cannot reach the needed acceptance rate, a GenesisError says which
rule failed and how often (rates only). Nulls never violate a rule (SQL CHECK semantics).

The only state learned from the data is the set of value combinations for `fixed_combinations`, stored beside the
table's generator as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

from genesis_pipelines.engine.core.constraint_spec import (
    ConstraintSpec,
    FixedCombinationsConstraint,
    InequalityConstraint,
    PositiveConstraint,
    PredicateConstraint,
    RangeConstraint,
    UniqueConstraint,
)
from genesis_pipelines.engine.core.errors import GenesisError, ModelError, SchemaError
from genesis_pipelines.engine.sources.io import write_json

if TYPE_CHECKING:
    from genesis_pipelines.engine.core.spec import DatasetSpec

FILE = "constraints.json"
MAX_ROUNDS = 30  # resampling rounds before giving up
MAX_OVERSAMPLE = 50  # at most this many rows drawn per row returned: below 2% acceptance the rules are infeasible
_NA_KEY = "\x00<NA>"
_RULES = TypeAdapter(list[ConstraintSpec])


# ---------------------------------------------------------------- the rules of one table


def _combination_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string per row for a set of columns; numbers by value, so Int64 1 and float 1.0 agree."""
    parts = []
    for column in columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series):
            text = series.astype(object).map(str)
        elif pd.api.types.is_numeric_dtype(series):
            text = pd.to_numeric(series).astype("float64").map(repr)
        else:
            text = series.astype(object).map(str)
        parts.append(text.where(series.notna(), _NA_KEY).astype(str).reset_index(drop=True))
    key = parts[0]
    for part in parts[1:]:
        key = key + "\x1f" + part
    return key


def _numbers(series: pd.Series) -> pd.Series:
    return series if pd.api.types.is_datetime64_any_dtype(series) else pd.to_numeric(series)


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series)


class TableConstraints:
    """The rules of one table plus what was learned for them (allowed combinations)."""

    def __init__(self, table: str, rules: list, combinations: dict[int, list[str]] | None = None):
        self.table, self.rules = table, list(rules)
        self.combinations = {int(k): set(v) for k, v in (combinations or {}).items()}

    # ------------------------------------------------------------ learning and persistence

    @classmethod
    def fit(cls, table: str, rules: list, train: pd.DataFrame) -> TableConstraints:
        for rule in rules:
            for column in rule.columns_used:
                if column not in train.columns:
                    raise SchemaError(f"constraint {rule.kind} on table {table!r}: column {column!r} is not learned "
                                      "(dropped or replaced by its PII policy, or a key column)")
        combos = {i: sorted(set(_combination_keys(train, r.columns))) for i, r in enumerate(rules)
                  if isinstance(r, FixedCombinationsConstraint)}
        return cls(table, rules, combos)

    def save(self, directory: Path) -> None:
        write_json(Path(directory) / FILE, {
            "table": self.table, "rules": [r.model_dump(mode="json") for r in self.rules],
            "combinations": {str(k): sorted(v) for k, v in self.combinations.items()},
        })

    @classmethod
    def load(cls, directory: Path) -> TableConstraints | None:
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["table"], _RULES.validate_python(data["rules"]), data.get("combinations"))
        except Exception:
            raise ModelError(f"constraints file {path} is corrupt: retrain the model") from None

    # ------------------------------------------------------------ checking rows

    def violations(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per rule label, a boolean array: True where the row breaks the rule."""
        return {rule.label: self._broken(i, rule, frame) for i, rule in enumerate(self.rules)}

    def _broken(self, index: int, rule, frame: pd.DataFrame) -> np.ndarray:
        if isinstance(rule, (PositiveConstraint, RangeConstraint)):
            values = pd.to_numeric(frame[rule.column]).astype("Float64")
            low = 0.0 if isinstance(rule, PositiveConstraint) else rule.low
            high = None if isinstance(rule, PositiveConstraint) else rule.high
            bad = pd.Series(False, index=frame.index, dtype="boolean")
            if low is not None:
                bad |= (values <= low) if rule.strict else (values < low)
            if high is not None:
                bad |= (values >= high) if rule.strict else (values > high)
            return bad.fillna(False).to_numpy(dtype=bool)
        if isinstance(rule, InequalityConstraint):
            low, high = _numbers(frame[rule.low_column]), _numbers(frame[rule.high_column])
            return pd.Series((low >= high) if rule.strict else (low > high), dtype="boolean").fillna(False).to_numpy(dtype=bool)
        if isinstance(rule, UniqueConstraint):
            subset = frame[rule.columns]
            return (frame.duplicated(subset=rule.columns, keep="first") & subset.notna().all(axis=1)).to_numpy(dtype=bool)
        if isinstance(rule, FixedCombinationsConstraint):
            return ~_combination_keys(frame, rule.columns).isin(self.combinations.get(index, set())).to_numpy(dtype=bool)
        if isinstance(rule, PredicateConstraint):
            try:
                result = frame.eval(rule.expression, engine="python", parser="pandas", local_dict={}, global_dict={})
            except Exception as exc:
                raise GenesisError(f"constraint predicate on table {self.table!r} cannot be evaluated "
                                   f"({exc.__class__.__name__}): check its column names and operators") from None
            if not isinstance(result, pd.Series) or not (pd.api.types.is_bool_dtype(result) or result.isna().all()):
                raise GenesisError(f"constraint predicate on table {self.table!r} must give true or false per row")
            return ~result.astype("boolean").fillna(True).to_numpy(dtype=bool)
        raise GenesisError(f"table {self.table!r}: unsupported constraint kind {rule.kind!r}")  # pragma: no cover

    def valid(self, frame: pd.DataFrame) -> np.ndarray:
        ok = np.ones(len(frame), dtype=bool)
        for broken in self.violations(frame).values():
            ok &= ~broken
        return ok

    # ------------------------------------------------------------ repairing rows

    def repair(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Clip bounds and swap inverted pairs; what cannot be repaired is left to rejection."""
        frame = frame.copy()
        for rule in self.rules:
            if isinstance(rule, (PositiveConstraint, RangeConstraint)):
                column = frame[rule.column]
                low = 0.0 if isinstance(rule, PositiveConstraint) else rule.low
                high = None if isinstance(rule, PositiveConstraint) else rule.high
                if _is_integer(column):
                    low = None if low is None else (math.floor(low) + 1 if rule.strict else math.ceil(low))
                    high = None if high is None else (math.ceil(high) - 1 if rule.strict else math.floor(high))
                elif rule.strict:
                    continue  # an open bound on real numbers has no nearest allowed value: reject instead
                if low is not None and high is not None and low > high:
                    continue
                frame[rule.column] = column.clip(lower=low, upper=high)
            elif isinstance(rule, InequalityConstraint) and frame[rule.low_column].dtype == frame[rule.high_column].dtype:
                low, high = frame[rule.low_column], frame[rule.high_column]
                swap = pd.Series(low > high, dtype="boolean").fillna(False).to_numpy(dtype=bool)
                if swap.any():
                    low_values = low.copy()
                    frame.loc[swap, rule.low_column] = high[swap]
                    frame.loc[swap, rule.high_column] = low_values[swap]
        return frame

    # ------------------------------------------------------------ enforcing

    def _infeasible(self, batch: pd.DataFrame, drawn: int, accepted: int) -> GenesisError:
        rates = {label: round(float(broken.mean()), 4) for label, broken in self.violations(batch).items() if len(batch)}
        return GenesisError(
            f"table {self.table!r}: the generator cannot satisfy the constraints: {accepted} of {drawn} sampled rows "
            f"were valid after {MAX_ROUNDS} rounds at most; share of rows breaking each rule: {rates}. Check that the "
            "rules hold in the real data and can hold together (e.g. `unique` on a column with few values)")

    def enforce(self, first: pd.DataFrame, n: int, draw: Callable[[int, object, int], pd.DataFrame],
                conditions=None, seed: int | None = None) -> pd.DataFrame:
        """`n` valid rows from `first` plus as many further draws `draw(k, conditions, seed)` as needed."""
        rng = np.random.default_rng(seed)
        if isinstance(conditions, pd.DataFrame):
            return self._enforce_aligned(first, draw, conditions, rng)
        frame = self.repair(first).reset_index(drop=True)
        drawn = len(frame)
        frame = frame[self.valid(frame)]
        batch = frame
        rounds = 0
        while len(frame) < n:
            rounds += 1
            rate = len(frame) / max(drawn, 1)
            if rounds > MAX_ROUNDS or (drawn >= 1000 and rate < 1 / MAX_OVERSAMPLE) or drawn > n * MAX_OVERSAMPLE + 1000:
                raise self._infeasible(batch, drawn, len(frame))
            need = n - len(frame)
            k = int(min(math.ceil(need / max(rate, 1 / MAX_OVERSAMPLE) * 1.2) + 16, n * MAX_OVERSAMPLE + 1000))
            batch = self.repair(draw(k, conditions, int(rng.integers(0, 2**31 - 1)))).reset_index(drop=True)
            drawn += len(batch)
            frame = pd.concat([frame, batch], ignore_index=True)
            frame = frame[self.valid(frame)]
        return frame.iloc[:n].reset_index(drop=True)

    def _enforce_aligned(self, first: pd.DataFrame, draw, conditions: pd.DataFrame, rng) -> pd.DataFrame:
        """Row i keeps condition row i: only the broken rows are drawn again, with their own conditions."""
        frame = self.repair(first).reset_index(drop=True)
        conditions = conditions.reset_index(drop=True)
        for _ in range(MAX_ROUNDS * 3):
            bad = ~self.valid(frame)
            if not bad.any():
                return frame
            redo = self.repair(draw(int(bad.sum()), conditions[bad].reset_index(drop=True), int(rng.integers(0, 2**31 - 1))))
            redo.index = np.flatnonzero(bad)
            frame = pd.concat([frame[~bad], redo]).sort_index()
        bad = ~self.valid(frame)
        raise self._infeasible(frame, len(frame), int((~bad).sum()))


# ---------------------------------------------------------------- glue for the relational layer


def fit_table(spec: DatasetSpec, table: str, train: pd.DataFrame, directory: Path) -> None:
    """Learn and save the table's constraints beside its generator (nothing is written when it has none)."""
    rules = [r for r in spec.constraints if r.table == table]
    if rules:
        TableConstraints.fit(table, rules, train).save(directory)


class ConstrainedGenerator:
    """A loaded generator whose `sample` only returns rows that obey the table's constraints."""

    def __init__(self, generator, constraints: TableConstraints):
        self._generator, self.constraints = generator, constraints

    def __getattr__(self, name: str):
        return getattr(self._generator, name)

    def sample(self, n: int, *, conditions=None, seed: int | None = None) -> pd.DataFrame:
        first = self._generator.sample(n, conditions=conditions, seed=seed)
        return self.constraints.enforce(
            first, n, lambda k, cond, s: self._generator.sample(k, conditions=cond, seed=s), conditions=conditions,
            seed=None if seed is None else seed + 7919)

    def describe(self) -> dict:
        return {**self._generator.describe(), "constraints": [r.label for r in self.constraints.rules]}

    def settle(self, body: pd.DataFrame, conditions: pd.DataFrame | None, post: Callable, seed: int) -> pd.DataFrame:
        """Re-check rows after the caller's own post-processing `post(rows, conditions)` (e.g. values copied from
        the parent row); broken rows are drawn again with their conditions and post-processed, a bounded number
        of times."""
        rng = np.random.default_rng(seed)
        body = body.reset_index(drop=True)
        for _ in range(MAX_ROUNDS):
            bad = ~self.constraints.valid(body)
            if not bad.any():
                return body
            cond = None if conditions is None else conditions.reset_index(drop=True)[bad].reset_index(drop=True)
            redo = post(self.sample(int(bad.sum()), conditions=cond, seed=int(rng.integers(0, 2**31 - 1))), cond)
            redo = redo[list(body.columns)].set_axis(np.flatnonzero(bad))
            body = pd.concat([body[~bad], redo]).sort_index()
        raise self.constraints._infeasible(body, len(body), int(self.constraints.valid(body).sum()))


def settle(generator, body: pd.DataFrame, conditions: pd.DataFrame | None, post: Callable, seed: int) -> pd.DataFrame:
    """`ConstrainedGenerator.settle` for a constrained generator; the body unchanged for any other."""
    return generator.settle(body, conditions, post, seed) if isinstance(generator, ConstrainedGenerator) else body


def constrain(generator, directory: Path):
    """Wrap `generator` with the constraints saved in `directory`; unchanged when there are none."""
    constraints = TableConstraints.load(directory)
    return generator if constraints is None else ConstrainedGenerator(generator, constraints)
