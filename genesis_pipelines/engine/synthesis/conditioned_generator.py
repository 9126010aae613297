"""A loaded generator wrapped so its rows match the caller's condition columns, and the error a condition that
cannot hold raises. Used by relational sampling (conditions on some columns of a table) and by conditions.py."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError

MAX_REJECT_TRIES = 20  # batches of unconditioned rows drawn for a generator that cannot condition
REJECT_BATCH_FACTOR = 4  # each reject batch draws this many rows per row still missing (at least 256)


class ConditionError(GenesisError):
    """A condition that cannot hold: unknown or unconditionable column, a value the model never generates, a
    condition too rare for the model. The message names the table and column (and the caller's value)."""


class ConditionedGenerator:
    """A loaded generator whose conditioned rows match the caller's condition columns: its own conditional draw
    where it has one, else (or for rows it left off the condition) unconditioned draws kept where they match, a
    bounded number of batches. Other conditions (a child's parent features) are passed through as they are."""

    def __init__(self, generator, columns: Sequence[str], table: str):
        self._generator, self.columns, self.table = generator, list(columns), table

    def __getattr__(self, name: str):
        return getattr(self._generator, name)

    def sample(self, n: int, *, conditions=None, seed: int | None = None) -> pd.DataFrame:
        if not isinstance(conditions, pd.DataFrame) or not set(self.columns) & set(conditions.columns):
            return self._generator.sample(n, conditions=conditions, seed=seed)
        conditions = conditions.reset_index(drop=True)
        own = [c for c in self.columns if c in conditions.columns]
        try:
            out = self._generator.sample(n, conditions=conditions, seed=seed).reset_index(drop=True)
            bad = ~_matches(out[own], conditions[own])
        except GenesisError as exc:
            if not _unsupported(exc):
                raise ConditionError(f"table {self.table!r}: {_strip(exc)}") from None
            out, bad = None, np.ones(len(conditions), dtype=bool)
        if not bad.any():
            return out
        return self._reject(out, bad, conditions, own, seed)

    def _reject(self, out, bad: np.ndarray, conditions: pd.DataFrame, own: list[str], seed) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        rest = [c for c in conditions.columns if c not in own]  # parent features: still conditioned on
        found: dict[int, pd.Series] = {}
        missing = np.flatnonzero(bad)
        tries = 0
        while len(missing) and tries < MAX_REJECT_TRIES:
            tries += 1
            k = max(256, REJECT_BATCH_FACTOR * len(missing))
            base = conditions.iloc[rng.choice(missing, k)][rest].reset_index(drop=True) if rest else None
            try:
                batch = self._generator.sample(k, conditions=base, seed=int(rng.integers(0, 2**31 - 1))).reset_index(drop=True)
            except GenesisError as exc:
                raise ConditionError(f"table {self.table!r}: {_strip(exc)}") from None
            keys = _row_keys(batch[own])
            pool: dict[tuple, list[int]] = {}
            for i, key in enumerate(keys):
                pool.setdefault(key, []).append(i)
            still = []
            for row in missing:
                key = tuple(_key(conditions.at[row, c]) for c in own)
                if pool.get(key):
                    found[row] = batch.iloc[pool[key].pop()]
                else:
                    still.append(row)
            missing = np.asarray(still, dtype=int)
        if len(missing):
            names = ", ".join(f"{self.table}.{c}" for c in own)
            raise ConditionError(f"condition on {names} is too rare for this model: {len(missing)} of {len(bad)} rows "
                                 f"found no match in {tries} batches of unconditioned rows")
        columns = list(out.columns) if out is not None else list(next(iter(found.values())).index)
        rows = pd.DataFrame([found[i] for i in sorted(found)], columns=columns).set_axis(sorted(found))
        if out is None:
            merged = rows.sort_index().reset_index(drop=True)
        else:
            merged = pd.concat([out[~bad], rows]).sort_index().reset_index(drop=True)
            merged = merged.astype(out.dtypes.to_dict(), errors="ignore")
        for column in own:  # the caller's exact values
            merged[column] = pd.Series(conditions[column].to_numpy()).astype(merged[column].dtype, errors="ignore")
        return merged


def _unsupported(exc: GenesisError) -> bool:
    return "does not support" in str(exc)


def _strip(exc: Exception) -> str:
    """The generator's reason, without its own "impossible condition on column ...:" prefix."""
    message = str(exc).rstrip(".")
    head, sep, reason = message.partition(": ")
    return reason if sep and head.startswith(("impossible condition", "cannot condition")) else message


def _key(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return ("n", float(value))
    if isinstance(value, (np.floating, float)):
        return ("n", float(round(float(value), 9)))
    if isinstance(value, (np.bool_, bool)):
        return ("b", bool(value))
    if isinstance(value, pd.Timestamp):
        return ("t", value.value)
    return ("s", str(value))


def _row_keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(_key(v) for v in row) for row in frame.itertuples(index=False, name=None)]


def _same(a, b) -> bool:
    return _key(a) == _key(b)


def _matches(out: pd.DataFrame, wanted: pd.DataFrame) -> np.ndarray:
    """Per row: every column equals the wanted value (numbers compared as numbers, text as text)."""
    ok = np.ones(len(out), dtype=bool)
    for column in wanted.columns:
        have, want = out[column].reset_index(drop=True), wanted[column].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(have) and pd.api.types.is_numeric_dtype(want) \
                and not pd.api.types.is_bool_dtype(have):
            a = pd.to_numeric(have, errors="coerce").astype("float64").to_numpy()
            b = pd.to_numeric(want, errors="coerce").astype("float64").to_numpy()
            ok &= np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=False)
        else:
            ok &= np.array([_same(x, y) for x, y in zip(have.tolist(), want.tolist())], dtype=bool)
    return ok
