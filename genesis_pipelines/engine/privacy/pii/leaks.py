"""Leak guards: real PII values and real free-text snippets that must never reach synthetic output."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping

import pandas as pd

from genesis_pipelines.engine.core.errors import SchemaError
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import column_ref
from genesis_pipelines.engine.privacy.pii.findings import PiiFinding
from genesis_pipelines.engine.privacy.pii.normalise import _isin, _normalize_series
from genesis_pipelines.engine.privacy.pii.policies import derived_templates

SHINGLE = 20  # real free-text snippets this long (normalised) must not reappear in synthetic output


MAX_SHINGLES = 2_000_000  # per model; beyond it shingles are taken at a stride (see text_shingle_digests)


def forbidden_values(tables: Mapping[str, pd.DataFrame], findings: list[PiiFinding]) -> set[str]:
    """Normalised real values of every finding not kept: none may appear in synthetic output."""
    forbidden: set[str] = set()
    for f in findings:
        if f.policy == "keep" or f.table not in tables or f.column not in tables[f.table].columns:
            continue
        values = tables[f.table][f.column]
        if f.kind == "derived_pii":  # only the values that carry a name are PII-bearing (a path without one is not)
            values = values[derived_templates(f.table, tables[f.table], f, tables, findings)[1]]
        forbidden.update(_normalize_series(values))
    forbidden.discard("")
    return forbidden


def _checkable(series: pd.Series) -> bool:
    return (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
            or isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(series))


_SINGLE_WORD = re.compile(r"[^\W\d_]+")


def find_leaks(synthetic_tables: Mapping[str, pd.DataFrame], forbidden: set[str], exempt: Collection[str] = (),
               findings: list[PiiFinding] | None = None) -> dict[str, dict[str, int]]:
    """{table: {column: count}} of synthetic values equal to a forbidden real value; counts, never values.

    `exempt` holds "Table.Column" refs the spec declares public by design (`pii_leak_exempt`): not checked.
    With `findings`, a column that holds no PII is not blamed for a single word that happens to be someone's
    first name or surname ("Dolores" as a district): it is checked for the identifying values (emails, phones,
    addresses, full names) only; PII columns not kept are checked for every value."""
    leaks: dict[str, dict[str, int]] = {}
    if not forbidden:
        return leaks
    exempt = set(exempt)
    pii_refs = None if findings is None else {f.ref for f in findings if f.policy != "keep"}
    for table, df in synthetic_tables.items():
        for column in df.columns:
            series = df[column]
            if not _checkable(series) or column_ref(table, column) in exempt:
                continue
            if isinstance(series.dtype, pd.CategoricalDtype):
                series = series.astype(object)
            values = _normalize_series(series)
            if pii_refs is not None and f"{table}.{column}" not in pii_refs and len(values):
                values = values[~values.str.fullmatch(_SINGLE_WORD)]
            count = int(_isin(values, forbidden).sum())
            if count:
                leaks.setdefault(table, {})[column] = count
    return leaks


def _shingle_digest(salt: str, text: str) -> str:
    return hashlib.sha256((salt + "\x00" + text).encode("utf-8")).hexdigest()[:16]


def text_columns(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, findings: list[PiiFinding]) -> list[tuple[str, str]]:
    """Free-text columns: semantic type text, or found to hold free text with PII. Keys never are."""
    refs = {(f.table, f.column) for f in findings if f.kind == "free_text_pii"}
    derived = {(f.table, f.column) for f in findings if f.kind == "derived_pii"}  # guarded by their real values
    for table, meta in schema.tables.items():
        keys = schema.key_columns(table)
        refs |= {(table, c) for c, m in meta.columns.items() if m.sdtype == "text" and c not in keys} - derived
    return sorted((t, c) for t, c in refs if t in tables and c in tables[t].columns)


def text_shingle_digests(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, findings: list[PiiFinding],
                         salt: str) -> dict:
    """Salted digests of every SHINGLE-character window of the real free text (normalised), for the leak check.

    Past MAX_SHINGLES windows they are kept every `stride` positions with width SHINGLE - stride + 1, which still
    covers every 20-character snippet (each contains one whole stored window). Only digests are stored."""
    texts: set[str] = set()
    for table, column in text_columns(tables, schema, findings):
        texts.update(v for v in _normalize_series(tables[table][column]) if len(v) >= SHINGLE)
    total = sum(len(t) - SHINGLE + 1 for t in texts)
    stride = max(1, -(-total // MAX_SHINGLES))
    width = max(8, SHINGLE - stride + 1)
    digests = {_shingle_digest(salt, t[i:i + width]) for t in texts for i in range(0, len(t) - width + 1, stride)}
    return {"width": width, "stride": stride, "digests": sorted(digests),
            "categories": category_digests(tables, schema, findings, salt, width)}


def category_digests(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, findings: list[PiiFinding], salt: str,
                     width: int) -> list[str]:
    """Salted digests of whole real values of the non-PII, non-text columns at least `width` long.

    Such a value (a job title) is learned and emitted as a category by design; that it also occurs inside a real
    note does not make it PII-bearing text, so `find_text_leaks` does not count it as a snippet leak."""
    flagged = {(f.table, f.column) for f in findings} | set(text_columns(tables, schema, findings))
    values: set[str] = set()
    for table, df in tables.items():
        keys = schema.key_columns(table) if table in schema.tables else set()
        for column in df.columns:
            if (table, column) in flagged or column in keys or not _checkable(df[column]):
                continue
            if pd.api.types.is_datetime64_any_dtype(df[column]):
                continue
            # normalised per value: each distinct value once (a category column of many rows holds a few)
            text = pd.Series(pd.unique(_normalize_series(df[column].drop_duplicates())), dtype=object)
            values.update(text[text.str.len() >= width])
    return sorted(_shingle_digest(salt, v) for v in values)


def read_text_guard(model_dir) -> dict | None:
    """The model's shingle digests, or None for a model saved before they existed (nothing to check against)."""
    import json
    from pathlib import Path

    path = Path(model_dir) / "text_guard.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SchemaError(f"model at {path.parent.name}: text_guard.json is corrupt: retrain the model") from None


def find_text_leaks(synthetic_tables: Mapping[str, pd.DataFrame], guard: Mapping | None, salt: str,
                    exempt: Collection[str] = ()) -> dict[str, dict[str, int]]:
    """{table: {column: values}} of synthetic text values that contain a real free-text snippet; counts only.

    A value equal to a whole real category of a non-PII column (see `category_digests`) is not a snippet leak;
    `exempt` "Table.Column" refs are not checked."""
    leaks: dict[str, dict[str, int]] = {}
    if not guard or not guard.get("digests"):
        return leaks
    digests, width = set(guard["digests"]), int(guard["width"])
    categories, exempt = set(guard.get("categories", ())), set(exempt)
    for table, df in synthetic_tables.items():
        for column in df.columns:
            series = df[column]
            if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
                continue
            if column_ref(table, column) in exempt:
                continue
            values = _normalize_series(series)
            long = values[values.str.len() >= width] if len(values) else values
            hit = {v for v in pd.unique(long) if _shingle_digest(salt, v) not in categories
                   and any(_shingle_digest(salt, v[i:i + width]) in digests for i in range(len(v) - width + 1))}
            count = int(long.isin(hit).sum()) if hit else 0
            if count:
                leaks.setdefault(table, {})[column] = count
    return leaks
