"""Never release a copy of a real record that is unique in the training data, nor a real PII value.

Both guards keep only salted digests in the model, so a saved model holds no real PII value and no real row.
A record's digest is 64 bits of a SipHash keyed by the model's salt over the row's canonical column values
(row_digests: numbers by their float bits, categories by their text, hashed once per distinct value), all in
numpy / pandas' C hashing, so checking a generated batch costs no Python per value. Models saved before
hold 20-character sha256 digests of the row's text key (row_keys): they are still checked, the slow way.
"""

from __future__ import annotations

import functools
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
LEGACY_DIGEST_CHARS = 20  # sha256 of row_keys' text, truncated: the digests of models saved before row_digests
_NAN_BITS = np.array([np.nan]).view(np.uint64)[0]


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


def _hash_key(salt: str) -> str:
    """The 16-character SipHash key pandas' hashing takes, from the model's salt."""
    return hashlib.sha256(("genesis.row_digest\x00" + salt).encode("utf-8")).hexdigest()[:16]


def column_codes(df: pd.DataFrame, column: str, meta: TableMeta, salt: str) -> np.ndarray:
    """One uint64 per row, equal exactly when row_keys spells the two values alike: a number's float bits (one
    pattern for every missing value), a category's keyed hash of its text (hashed once per distinct value)."""
    sdtype = meta.columns[column].sdtype
    if sdtype in NUMERIC_LIKE:
        values = to_float(df[column], sdtype)
        bits = np.ascontiguousarray(values).view(np.uint64).copy()
        bits[np.isnan(values)] = _NAN_BITS
        return bits
    keys = category_keys(df[column])[0]
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    texts = pd.Series(uniques).astype("string").fillna("\x00null").astype(str).to_numpy(dtype=object)
    hashed = pd.util.hash_array(texts, hash_key=_hash_key(salt), categorize=False) if len(texts) else np.zeros(0, np.uint64)
    return hashed[codes]


def row_digests(df: pd.DataFrame, columns: list[str], meta: TableMeta, salt: str,
                codes: np.ndarray | None = None) -> np.ndarray:
    """The 64-bit keyed digest of each row's record (see column_codes); `codes` (rows x columns, from column_codes)
    skips the per-column step when the caller keeps them."""
    if codes is None:
        codes = np.column_stack([column_codes(df, c, meta, salt) for c in columns]) if columns else np.zeros((len(df), 0))
    if not codes.shape[1] or not len(codes):
        return np.zeros(len(codes), dtype=np.uint64)
    rows = np.ascontiguousarray(codes, dtype=np.uint64).view(f"S{8 * codes.shape[1]}").ravel()
    # bytes objects drop trailing NULs, which keeps them distinct at a fixed width
    return pd.util.hash_array(rows.astype(object), hash_key=_hash_key(salt), categorize=False)


class RecordDigests(frozenset):
    """The stored digests of a table's unique real records, with their uint64 form kept for np.isin."""

    @functools.cached_property
    def legacy(self) -> bool:
        return any(len(d) == LEGACY_DIGEST_CHARS for d in self)

    @functools.cached_property
    def array(self) -> np.ndarray:
        return np.sort(np.array([int(d, 16) for d in self], dtype=np.uint64))


def as_digests(digests) -> RecordDigests:
    return digests if isinstance(digests, RecordDigests) else RecordDigests(digests or ())


def digest_hits(row_hashes: np.ndarray, digests) -> np.ndarray:
    """Boolean mask of the rows whose row_digests value is a stored digest (new-format digests only)."""
    stored = as_digests(digests).array
    if not len(stored) or not len(row_hashes):
        return np.zeros(len(row_hashes), dtype=bool)
    at = np.minimum(np.searchsorted(stored, row_hashes), len(stored) - 1)
    return stored[at] == row_hashes


def copy_mask(df: pd.DataFrame, columns: list[str], meta: TableMeta, salt: str, digests) -> np.ndarray:
    """Boolean mask of the rows of `df` that reproduce a unique real record of the stored `digests`."""
    digests = as_digests(digests)
    if not digests or not columns or not len(df):
        return np.zeros(len(df), dtype=bool)
    if digests.legacy:
        return copies(row_keys(df, columns, meta), salt, digests)
    return digest_hits(row_digests(df, columns, meta, salt), digests)


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
    """The digests (row_digests, as 16 hex digits) of the records that occur once in the training rows."""
    if not columns or train.empty:
        return []
    values, counts = np.unique(row_digests(train, columns, meta, salt), return_counts=True)
    return sorted(f"{int(v):016x}" for v in values[counts == 1])


def redraw_copies(draw: Callable[[int, pd.DataFrame | None, int], pd.DataFrame], body: pd.DataFrame,
                  conditions: pd.DataFrame | None, columns: list[str], meta: TableMeta, salt: str, digests: set[str],
                  seed: int, *, first_repair: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The copy guard, once for every sampler: rows of `body` that reproduce a unique real record are redrawn with
    `draw(n, their conditions rows, seed)`, at most MAX_RESAMPLE_ROUNDS times; `first_repair(body)`, when given, may
    mend them before the first redraw (the relational sampler exchanges values between rows)."""
    if not digests or not columns or body.empty:
        return body
    for round_ in range(MAX_RESAMPLE_ROUNDS):
        hits = np.flatnonzero(copy_mask(body, columns, meta, salt, digests))
        if len(hits) and round_ == 0 and first_repair is not None:
            body = first_repair(body)
            hits = np.flatnonzero(copy_mask(body, columns, meta, salt, digests))
        if not len(hits):
            break
        cond = conditions.iloc[hits].reset_index(drop=True) if conditions is not None else None
        fresh = draw(len(hits), cond, seed + round_ + 1)[list(body.columns)].set_axis(hits)
        body = pd.concat([body.drop(index=hits), fresh]).sort_index()
    return body


def pii_guard(tables: Mapping[str, pd.DataFrame], findings: list[pii.PiiFinding], salt: str) -> list[str]:
    return sorted(digest(salt, v) for v in pii.forbidden_values(tables, findings))
