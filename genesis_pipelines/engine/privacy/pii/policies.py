"""Training-time policies: the keyed hash, pseudonym tokens and masks learned instead of real values."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.privacy.pii.detection import (
    _first_index,
    _mention_pattern,
    _people,
    _sources_frame,
    _template_column,
)
from genesis_pipelines.engine.privacy.pii.findings import PiiFinding
from genesis_pipelines.engine.privacy.pii.normalise import _normalize_series, normalize_value

HASH_KEY_ENV = "GENESIS_HASH_KEY"


def hash_key_from_env() -> bytes | None:
    """The hash key from GENESIS_HASH_KEY: a secret kept out of specs so tokens cannot be recomputed from them."""
    value = os.environ.get(HASH_KEY_ENV)
    return value.encode("utf-8") if value else None


def _exact_text(values: pd.Series) -> pd.Series:
    """Non-null values as exact text (no casefolding: hashing must not merge distinct values)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.map(lambda v: v.isoformat())
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64").astype(str)
    return values.map(lambda v: normalize_value(v) if isinstance(v, (float, np.floating)) else str(v))


def _keyed_tokens(series: pd.Series, key: bytes, as_text, prefix: bytes = b"") -> pd.Series:
    """HMAC-SHA256 tokens (16 hex chars) of `as_text(values)`; nulls stay null, equal texts give equal tokens."""
    out = pd.Series(pd.NA, index=series.index, dtype="string")
    values = series.dropna()
    if values.empty:
        return out
    text = as_text(values)
    tokens = {v: hmac.new(key, prefix + v.encode("utf-8"), hashlib.sha256).hexdigest()[:16] for v in pd.unique(text)}
    out[values.index] = text.map(tokens).to_numpy()
    return out


def hash_series(series: pd.Series, key: bytes) -> pd.Series:
    """Keyed tokens of the exact value: the `hash` policy."""
    return _keyed_tokens(series, key, _exact_text)


def pseudonym_tokens(series: pd.Series, key: bytes) -> pd.Series:
    """Keyed tokens of the *normalised* value (so "12 Main St" and "12 main st" meet): the seed of a consistent fake."""
    return _keyed_tokens(series, key, _normalize_series, prefix=b"pseudonym\x00")


def _mask_text(text: str) -> str:
    return "".join("9" if ch.isdigit() else ("X" if ch.isupper() else "x") if ch.isalpha() else ch for ch in text)


def mask_series(series: pd.Series) -> pd.Series:
    """Letters -> x/X, digits -> 9, the rest kept: formats and lengths survive, content does not."""
    out = pd.Series(pd.NA, index=series.index, dtype="string")
    values = series.dropna()
    if values.empty:
        return out
    text = _exact_text(values) if not pd.api.types.is_datetime64_any_dtype(values) else values.dt.strftime("%Y-%m-%d")
    masks = {v: _mask_text(v) for v in pd.unique(text)}
    out[values.index] = text.map(masks).to_numpy()
    return out


def _of_table(findings: list[PiiFinding], table: str) -> list[PiiFinding]:
    return [f for f in findings if f.table == table]


def derived_templates(table: str, df: pd.DataFrame, finding: PiiFinding,
                      tables: Mapping[str, pd.DataFrame], findings: list[PiiFinding]) -> tuple[pd.Series, pd.Series]:
    """A derived column's templates (the row's names and real people replaced by placeholders) and which rows
    held any; `tables` supplies parents' names and the dataset's people, never stored."""
    tables = dict(tables) | {table: tables.get(table, df)}
    sources = list(finding.derived_from)
    aligned = _sources_frame(table, df, sources, tables)
    mentions = _mention_pattern(_people(tables, findings)) if finding.mentions else None
    templates, hit = _template_column(df[finding.column], aligned, _first_index(sources), mentions)
    return templates.set_axis(df.index), hit.set_axis(df.index)


def prepare_for_training(table: str, df: pd.DataFrame, findings: list[PiiFinding], *, hash_key: bytes | None,
                         tables: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The table a generator may learn from: fake and drop columns removed, hash and mask columns transformed,
    derived columns as templates (their real names replaced by placeholders; `tables` gives parents' names)."""
    mine = [f for f in _of_table(findings, table) if f.column in df.columns]
    if isinstance(hash_key, str):
        hash_key = hash_key.encode("utf-8")
    for f in mine:
        if (f.policy == "hash" or f.consistent) and not hash_key:
            what = "PII policy 'hash'" if f.policy == "hash" else "consistent fakes (pii_consistent_fake)"
            raise SpecError(f"column {f.ref} uses {what} but no hash key is set: "
                            f"set the environment variable {HASH_KEY_ENV} to a secret")
    out = df.copy()
    for f in mine:
        if f.kind == "derived_pii" and f.policy == "fake":
            out[f.column] = derived_templates(table, df, f, tables or {table: df}, findings)[0].astype("string")
    for f in mine:
        if f.kind == "derived_pii" and f.policy == "fake":
            continue
        if f.policy == "fake" and f.consistent:
            out[f.column] = pseudonym_tokens(out[f.column], hash_key)
        elif f.policy in ("fake", "drop"):
            out = out.drop(columns=f.column)
        elif f.policy == "hash":
            out[f.column] = hash_series(out[f.column], hash_key)
        elif f.policy == "mask":
            out[f.column] = mask_series(out[f.column])
    return out
