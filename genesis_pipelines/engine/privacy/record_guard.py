"""Never release a copy of a real record that is unique in the training data, nor a real PII value.

Both guards keep only salted digests in the model, so a saved model holds no real PII value and no real row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from genesis_pipelines.engine.analysis.columns import NUMERIC_LIKE, category_keys, evaluable_columns, to_float
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta
from genesis_pipelines.engine.privacy import pii

MAX_RESAMPLE_ROUNDS = 25
# A "record" of one column is a single value: sampling a learned category repeats it by design, so
# tables compared on fewer columns are reported but left out of the exact-copies gate.
MIN_RECORD_COLUMNS = 2


def digest(salt: str, text: str) -> str:
    return hashlib.sha256((salt + "\x00" + text).encode("utf-8")).hexdigest()[:20]


class HashedValueSet:
    """Membership test against real PII values stored only as salted digests."""

    def __init__(self, salt: str, digests: set[str]):
        self.salt, self.digests = salt, digests

    def __contains__(self, value: object) -> bool:
        return digest(self.salt, pii.normalize_value(value)) in self.digests

    def __len__(self) -> int:
        return len(self.digests)


def comparison_exclusions(schema: DatasetSchema, findings: list[pii.PiiFinding]) -> dict[str, set[str]]:
    """Keys are regenerated and non-kept PII is replaced, so neither is compared with the real rows."""
    exclude = {t: schema.key_columns(t) for t in schema.tables}
    for finding in findings:
        if finding.policy != "keep":
            exclude.setdefault(finding.table, set()).add(finding.column)
    return exclude


def tells_records_apart(meta: TableMeta, column: str) -> bool:
    """A column with more than one value (nulls count as one): a constant, such as a lookup table's load timestamp
    or an address line nobody filled, tells no record apart."""
    cmeta = meta.columns[column]
    return cmeta.cardinality >= 2 or (cmeta.cardinality == 1 and 0.0 < cmeta.null_rate < 1.0)


def record_columns(meta: TableMeta, exclude: set[str]) -> list[str]:
    """The columns that make up a 'record' for the copy gate; fewer than two that tell records apart make no record
    (guarding single values would steer the output away from every value one training row holds, and that very gap
    would tell an attacker which rows were trained on)."""
    # sorted: the model's JSON stores columns alphabetically, so source order would not survive a reload
    columns = sorted(evaluable_columns(meta, exclude))
    return columns if sum(tells_records_apart(meta, c) for c in columns) >= MIN_RECORD_COLUMNS else []


def _number_texts(values: np.ndarray) -> pd.Series:
    """repr(float) of each value ('\x00null' for NaN), formatted once per distinct value (by bit pattern, so
    -0.0 keeps its own text) and spread to the rows by index."""
    bits = np.ascontiguousarray(values, dtype="float64").view(np.int64)
    uniques, inverse = np.unique(bits, return_inverse=True)
    texts = np.asarray(["\x00null" if np.isnan(v) else repr(float(v)) for v in uniques.view("float64")], dtype=object)
    return pd.Series(texts[inverse.reshape(-1)] if len(values) else np.empty(0, dtype=object), dtype=object)


def row_keys(df: pd.DataFrame, columns: list[str], meta: TableMeta) -> pd.Series:
    """One canonical text per row, equal exactly when the evaluation counts two rows as equal."""
    parts = []
    for column in columns:
        sdtype = meta.columns[column].sdtype
        if sdtype in NUMERIC_LIKE:
            values = _number_texts(to_float(df[column], sdtype))
        else:
            # nulls spelled out: under pandas 3, astype(str) keeps a float NaN, which would poison the joined key
            values = category_keys(df[column])[0].astype("string").fillna("\x00null").astype(str)
        parts.append(values.reset_index(drop=True))
    if not parts:
        return pd.Series([""] * len(df), dtype=object)
    # one pass over all the columns (joining pairwise would copy the growing key once per column)
    arrays = [pa.array(part.astype(object).to_numpy(), type=pa.large_string()) for part in parts]
    joined = pc.binary_join_element_wise(*arrays, pa.scalar("\x1f", type=pa.large_string()))
    return pd.Series(joined.to_numpy(zero_copy_only=False), dtype=object)


def digests_of(keys: pd.Series, salt: str) -> np.ndarray:
    """digest(salt, key) per row, hashed once per distinct key; a missing key gets '' (it matches no digest)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    prefix = salt + "\x00"
    hashed = np.asarray([hashlib.sha256((prefix + k).encode("utf-8")).hexdigest()[:20] if isinstance(k, str) else ""
                         for k in uniques] + [""], dtype=object)
    return hashed[codes]  # the sentinel -1 takes the trailing ''


def copies(keys: pd.Series, salt: str, digests: set[str]) -> np.ndarray:
    """Boolean mask of the rows whose key is one of the stored unique-record digests."""
    if not digests or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    prefix = salt + "\x00"
    hit = np.asarray([isinstance(k, str) and hashlib.sha256((prefix + k).encode("utf-8")).hexdigest()[:20] in digests
                      for k in uniques] + [False], dtype=bool)
    return hit[codes]


def unique_record_digests(train: pd.DataFrame, columns: list[str], meta: TableMeta, salt: str) -> list[str]:
    if not columns or train.empty:
        return []
    keys = row_keys(train, columns, meta)
    counts = keys.value_counts()
    return sorted(digests_of(pd.Series(counts.index[counts.to_numpy() == 1], dtype=object), salt).tolist())


def redraw_copies(draw: Callable[[int, pd.DataFrame | None, int], pd.DataFrame], body: pd.DataFrame,
                  conditions: pd.DataFrame | None, columns: list[str], meta: TableMeta, salt: str, digests: set[str],
                  seed: int, *, first_repair: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The copy guard, once for every sampler: rows of `body` that reproduce a unique real record are redrawn with
    `draw(n, their conditions rows, seed)`, at most MAX_RESAMPLE_ROUNDS times; `first_repair(body)`, when given, may
    mend them before the first redraw (the relational sampler exchanges values between rows)."""
    if not digests or not columns or body.empty:
        return body
    for round_ in range(MAX_RESAMPLE_ROUNDS):
        hits = np.flatnonzero(copies(row_keys(body, columns, meta), salt, digests))
        if len(hits) and round_ == 0 and first_repair is not None:
            body = first_repair(body)
            hits = np.flatnonzero(copies(row_keys(body, columns, meta), salt, digests))
        if not len(hits):
            break
        cond = conditions.iloc[hits].reset_index(drop=True) if conditions is not None else None
        fresh = draw(len(hits), cond, seed + round_ + 1)[list(body.columns)].set_axis(hits)
        body = pd.concat([body.drop(index=hits), fresh]).sort_index()
    return body


def pii_guard(tables: Mapping[str, pd.DataFrame], findings: list[pii.PiiFinding], salt: str) -> list[str]:
    return sorted(digest(salt, v) for v in pii.forbidden_values(tables, findings))
