"""How values are compared: one normalised text per value, case and script folding, and Faker's name lists of
every locale."""

from __future__ import annotations

import datetime as _dt
import functools
import importlib
import pkgutil
import re
import unicodedata

import numpy as np
import pandas as pd

from genesis_pipelines.engine.privacy.pii.findings import SAMPLE_SIZE

_WS = re.compile(r"\s+")


def normalize_value(value) -> str:
    """The form two values are compared in: casefolded, trimmed, single-spaced; datetimes as ISO dates."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return ""
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date, np.datetime64)):
        stamp = pd.Timestamp(value)
        return "" if pd.isna(stamp) else stamp.strftime("%Y-%m-%d")
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else str(float(value))
    text = unicodedata.normalize("NFKC", str(value)).casefold()
    return _WS.sub(" ", text).strip()


def _normalize_series(series: pd.Series) -> pd.Series:
    """normalize_value over the non-null values of a column, vectorised where the dtype allows."""
    values = series.dropna()
    if values.empty:
        return pd.Series([], dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d")
    if pd.api.types.is_bool_dtype(values):
        return values.map(lambda v: "true" if v else "false")
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64").astype(str)
    if pd.api.types.is_float_dtype(values):
        return values.map(normalize_value)
    if not (pd.api.types.is_string_dtype(values) and pd.api.types.infer_dtype(values, skipna=True) == "string"):
        return values.map(normalize_value)
    text = values.astype(str).str.normalize("NFKC").str.casefold()
    return text.str.replace(_WS, " ", regex=True).str.strip()


def _text_sample(values: pd.Series) -> pd.Series:
    """A deterministic sample of at most SAMPLE_SIZE non-null values as trimmed, non-empty text."""
    values = values.dropna()
    if len(values) > SAMPLE_SIZE:
        values = values.sample(n=SAMPLE_SIZE, random_state=0)
    if pd.api.types.is_datetime64_any_dtype(values):
        text = values.dt.strftime("%Y-%m-%d")
    elif pd.api.types.is_integer_dtype(values):
        text = values.astype("int64").astype(str)
    elif pd.api.types.is_float_dtype(values):
        text = values.map(lambda v: str(int(v)) if float(v).is_integer() else str(v))
    else:
        text = values.astype(str)
    text = text.astype(str).str.strip()
    return text[text != ""]


_TRANSLIT = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d",
                           "Đ": "D", "þ": "th", "Þ": "Th", "œ": "oe", "Œ": "OE", "ı": "i"})


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return text.encode("ascii", "ignore").decode("ascii").casefold()


def _fold_series(series: pd.Series) -> pd.Series:
    decomposed = series.astype(str).str.translate(_TRANSLIT).str.normalize("NFKD")
    return decomposed.str.encode("ascii", "ignore").str.decode("ascii").str.casefold()


def _as_strings(value) -> list[str]:
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return [v for v in value if isinstance(v, str)]
    return []


@functools.cache
def _faker_names(which: str) -> frozenset[str]:
    """First or last names of every Faker locale, casefolded and accent-folded: names cross borders."""
    attrs = {"first": ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"),
             "last": ("last_names", "last_names_male", "last_names_female")}[which]
    import faker.providers.person as person_providers

    names: set[str] = set()
    for module in pkgutil.iter_modules(person_providers.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        for attr in attrs:
            for name in _as_strings(getattr(provider, attr, None)):
                if any(ch.isalpha() for ch in name):
                    names.add(name.casefold())
                    folded = _fold(name)
                    if folded.isalpha():
                        names.add(folded)
    return frozenset(names)


def _isin(values: pd.Series, members: set[str] | frozenset[str]) -> np.ndarray:
    """Set membership by hashing; Series.isin would rebuild a large set as an array on every call."""
    return np.fromiter((v in members for v in values.to_numpy(dtype=object)), dtype=bool, count=len(values))


def _known_names(tokens: pd.Series, which: str) -> pd.Series:
    known = _faker_names(which)
    tokens = tokens.fillna("").astype(str).str.strip(".,;:'\"()[]")
    return pd.Series(_isin(tokens.str.casefold(), known) | _isin(_fold_series(tokens), known), index=tokens.index)


_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|miss|mx|dr|prof|sir|dame|herr|frau|sr|sra|mme|mlle|m)\.?\s+", re.IGNORECASE)


def _first_token_is_first_name(values: pd.Series) -> pd.Series:
    first = values.str.replace(_HONORIFIC, "", regex=True).str.split(n=1).str[0]
    return _known_names(first, "first")
