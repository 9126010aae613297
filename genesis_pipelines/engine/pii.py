"""Find the columns that identify people and apply one policy to each: drop, fake, hash, mask or keep.

Detection, the training-time transform, the output-time fill and the leak check live together because they
must agree on kinds and on how values are normalised; if they drifted apart a real value could slip through.

Policies:
- ``fake``: the column is never learned; Faker values are generated at output time (the default). With the spec's
  ``pii_consistent_fake: true`` (needs GENESIS_HASH_KEY) the model instead learns keyed tokens of the real values
  and each token becomes a Faker value seeded by the token itself: the same real value maps to the same fake in
  every table and every run with that key (Customer.Address and Invoice.BillingAddress of one real address get one
  fake address), and no real value or unkeyed digest is stored. Synthetic rows are new people, so a synthetic
  invoice's billing address equals its synthetic customer's address only where the model reproduces the pair.
- ``drop``: the column is never learned and is left out of the output.
- ``hash``: keyed HMAC-SHA256 tokens are learned, so equal values stay equal (joins, counts) without the key
  making the tokens reversible by a dictionary attack.
- ``mask``: a shape-preserving mask (``Ab-12`` -> ``Xx-99``) is learned, keeping formats but no content.
- ``keep``: learned as is. The default for ``city``: a city is a quasi-identifier, not a direct identifier,
  and synthetic rows keep their analytic value only if geography survives; re-identification risk from
  quasi-identifier combinations is measured by the privacy report, not removed here.

Free text (comments, notes) that contains emails, phones or person names is kind ``free_text_pii`` and is replaced
by Faker sentences. Real free text never reaches the output in pieces either: the model keeps salted digests of
every 20-character shingle of the real text columns (`text_shingle_digests`), and `find_text_leaks` flags any
synthetic value that reproduces one.

Detection does not trust headers alone: first names, surnames and full names are also found from the values
(Faker's name lists of every locale, over distinct values), so a surname column under `Prénom 名前` or `c7` is
PII; a column of single words beside a first-name column needs fewer known surnames. A company column in a table
of people (an employer) is kind ``company``. A column whose values embed the row's own names (a photo path ending
in the surname, `jsmith`, a login equal to the first name), or its parent's, or that names real people of the
dataset in full (a note), is kind ``derived_pii``: it is learned as a template (`⟦source.word:case⟧` in place of
each name) and rendered with the row's fakes, so the synthetic path holds the synthetic surname of that row.

Fakes follow the row: its country column (name or ISO code) picks the Faker locale (`row_locales`), and every
faked column of the row (names, street, postcode, phone) is drawn from that locale, per locale group.

Hard rule: real values never appear in findings, exceptions or logs, only names, kinds, counts and rates.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
import importlib
import os
import pkgutil
import re
import unicodedata
import zlib
from collections.abc import Callable, Collection, Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from genesis_pipelines.engine.errors import SchemaError, SpecError
from genesis_pipelines.engine.schema import DatasetSchema, infer_sdtype
from genesis_pipelines.engine.spec import PII_POLICIES, DatasetSpec

PII_KINDS = (
    "person_name", "first_name", "last_name", "email", "phone", "street_address", "postal_code",
    "ip_address", "card_number", "national_id", "birth_date", "iban", "city", "free_text_pii", "company", "derived_pii",
)
DECLARED_KIND = "declared"  # a column the spec names as PII that no detector recognised
METHODS = ("name", "values", "name+values", "spec")
HASH_KEY_ENV = "GENESIS_HASH_KEY"
SAMPLE_SIZE = 2000  # value checks look at a deterministic sample this large, at most
PERSON_NAME_THRESHOLD = 0.5  # share of values starting with a known first name for a bare "Name" column
FREE_TEXT_THRESHOLD = 0.1  # share of free-text values that mention an email, phone or person name
SHINGLE = 20  # real free-text snippets this long (normalised) must not reappear in synthetic output
MAX_SHINGLES = 2_000_000  # per model; beyond it shingles are taken at a stride (see text_shingle_digests)
DEFAULT_POLICY = {kind: "fake" for kind in PII_KINDS} | {"city": "keep", DECLARED_KIND: "fake"}
# Kinds that make a row a person's record (a bare name mention, a city or a postcode does not: a track's composer).
IDENTIFYING_KINDS = frozenset({"first_name", "last_name", "email", "phone", "street_address", "national_id",
                               "birth_date", "iban", "card_number"})


class DerivedSource(BaseModel):
    """A PII column whose row values occur inside a derived column; in a parent table when `child_key` is set."""

    model_config = ConfigDict(frozen=True)

    table: str
    column: str
    kind: str
    child_key: str | None = None  # the derived table's FK column that points at the parent row
    parent_key: str | None = None


class PiiFinding(BaseModel):
    """One column judged to hold PII; aggregates only, so it is safe to log and to show as metadata."""

    model_config = ConfigDict(frozen=True)

    table: str
    column: str
    kind: str
    method: str  # "name", "values", "name+values" or "spec"
    confidence: float = Field(ge=0, le=1)
    policy: str
    match_rate: float = Field(default=0.0, ge=0, le=1)
    policy_from_spec: bool = False
    consistent: bool = False  # `fake` through keyed tokens: one real value -> one fake everywhere (see module doc)
    # derived_pii: the PII columns whose values it embeds (a path built from the surname); `mentions`: it also
    # names real people of the dataset (a note). Learned as a template, rendered with the row's fakes.
    derived_from: tuple[DerivedSource, ...] = ()
    mentions: bool = False

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in PII_KINDS and value != DECLARED_KIND:
            raise ValueError(f"unknown PII kind {value!r}")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown detection method {value!r}")
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in PII_POLICIES:
            raise ValueError(f"unknown PII policy {value!r}")
        return value

    @property
    def ref(self) -> str:
        return f"{self.table}.{self.column}"


# ---------------------------------------------------------------- normalisation

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


# ---------------------------------------------------------------- name lists from Faker


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


@functools.lru_cache(maxsize=None)
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


# ---------------------------------------------------------------- value patterns


def _rx(*alternatives: str) -> re.Pattern:
    return re.compile("(?:" + "|".join(alternatives) + ")", re.IGNORECASE)


_EMAIL = _rx(r"[\w.%+'\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}")
_IPV4 = _rx(r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
_IPV6_FULL = _rx(r"(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}")
_IPV6_SHORT = _rx(r"(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}")
_SSN = _rx(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
_ID_CODE = _rx(r"(?=.*\d)[a-z0-9][a-z0-9 ./\-]{4,20}")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
_PHONE_CHARS = _rx(r"\+?[\d\s().\-/]{6,}")
_PHONE_EXT = _rx(r"\s*(?:x|ext\.?|extension)\s*\d{1,6}$")
_DATE_LIKE = _rx(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}", r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_DOTTED_QUAD = _rx(r"\d{1,3}(?:\.\d{1,3}){3}")
_POSTAL_DISTINCT = _rx(
    r"\d{5}-\d{4}",  # US ZIP+4
    r"\d{5}-\d{3}",  # BR CEP
    r"\d{4}\s?[a-z]{2}",  # NL
    r"[a-z]\d[a-z][\s-]?\d[a-z]\d",  # CA
    r"[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2}",  # UK
    r"[a-z]\d{2}\s?[a-z\d]{4}",  # IE Eircode
    r"\d{3}\s\d{2}",  # SE, CZ, SK, GR
)
_POSTAL_ANY = _rx(
    _POSTAL_DISTINCT.pattern, r"\d{3,7}", r"\d{4}-\d{3}", r"\d{2}-\d{3}", r"\d{3}-\d{4}", r"[a-z]{1,2}-?\d{4,5}",
)
_STREET = _rx(
    # number first: "1498 rue Bélanger", "12,Community Centre", "8210 111 ST NW"
    r"\d{1,6}[a-z]?(?:[-/]\d{1,5}[a-z]?)?(?:,\s*|\s+)(?=.*[^\W\d_]).{2,80}",
    # number last: "Theodor-Heuss-Straße 34", "Av. Brigadeiro Faria Lima, 2170", "Rilská 3174/6"
    r"(?=[^\W\d_])[^\d]{2,60}?[\s,]+(?:(?:no|nr|n°|nº)\.?\s*)?\d{1,6}[a-z]{0,3}(?:[-/]\d{1,5}[a-z]{0,3})?"
    r"(?:[\s,\-]+.{1,40})?",
)
_STREET_WORD = _rx(
    r"\b(?:st|street|ave|avenue|rd|road|blvd|boulevard|lane|ln|dr|drive|way|ct|court|pl|place|sq|square|hwy|highway|"
    r"pkwy|parkway|ter|terrace|cres|crescent|broadway|suite|apt|unit|rue|chemin|impasse|allée|quai|cours|via|viale|"
    r"piazza|corso|vicolo|borgo|contrada|calle|avenida|av|paseo|camino|carrera|glorieta|rua|rodovia|alameda|travessa|"
    r"largo|estrada|praça|plaza|platz|ul|ulica|utca|krt|piso|piano|puerta|bloco|andar)\b\.?",
    r"(?:straße|strasse|str\.|straat|gatan|gata|vägen|veien|vej|gade|gasse|weg|katu|laan|plein|gracht|allee|ring|"
    r"dreef|steeg|singel|kade|boulevard|platz)(?=[\s,\d]|$)",
)
_STREET_COMMA_NUMBER = _rx(r"(?=[^\W\d_])[^\d,]{3,60},\s*\d{1,5}[a-z]?(?:[\s,\-]+.{1,30})?")  # "Rua X, 155"
_STREET_NUMBER_FIRST = _rx(r"\d{1,6}[a-z]?(?:[-/]\d{1,5}[a-z]?)?(?:,\s*|\s+)\S*[^\W\d_]\S*\s+\S*[^\W\d_].{0,70}")
_PLACE = _rx(r"[^\W\d_][^\d]{0,80}")


def _luhn_total(digits: pd.Series) -> np.ndarray:
    """The Luhn sum of digit strings up to 19 long (left zero-padding does not change it)."""
    padded = digits.str.zfill(19)
    codes = np.frombuffer("".join(padded).encode("ascii"), dtype=np.uint8).reshape(-1, 19).astype(np.int64) - 48
    doubled = codes[:, -2::-2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    return codes[:, ::-2].sum(axis=1) + doubled.sum(axis=1)


def _card_mask(values: pd.Series) -> pd.Series:
    digits = values.str.replace(r"[\s\-]", "", regex=True)
    shaped = digits.str.fullmatch(r"\d{12,19}") & ~digits.str.fullmatch(r"(\d)\1*")
    result = pd.Series(False, index=values.index)
    if shaped.any():
        result[shaped] = _luhn_total(digits[shaped]) % 10 == 0
    return result


def _codes(strings) -> np.ndarray:
    """Unicode code points of fixed-width strings, one row each, zero-padded on the right."""
    array = np.asarray(strings, dtype=str)
    if array.size == 0:
        return np.zeros((0, 1), dtype=np.uint32)
    width = array.dtype.itemsize // 4
    return array.view(np.uint32).reshape(len(array), width).copy()


def _mod97(strings) -> np.ndarray:
    """ISO 7064 mod-97 of upper-case alphanumeric strings (letters count as 10..35), vectorised by position."""
    codes = _codes(strings).astype(np.int64)
    digit = (codes >= 48) & (codes <= 57)
    letter = (codes >= 65) & (codes <= 90)
    values = np.where(digit, codes - 48, np.where(letter, codes - 55, -1))
    remainder = np.zeros(len(codes), dtype=np.int64)
    for position in range(codes.shape[1]):
        value = values[:, position]
        step = (remainder * np.where(value >= 10, 100, 10) + value) % 97
        remainder = np.where(value < 0, remainder, step)
    return remainder


def _street_strict(values: pd.Series) -> pd.Series:
    """Values alone need more than "words and a number" (product names have that): a street word, a house
    number followed by two words, or "words, number"."""
    street = values.str.fullmatch(_STREET)
    return street & (values.str.contains(_STREET_WORD) | values.str.fullmatch(_STREET_NUMBER_FIRST)
                     | values.str.fullmatch(_STREET_COMMA_NUMBER))


def _iban_mask(values: pd.Series) -> pd.Series:
    compact = values.str.replace(r"\s", "", regex=True).str.upper()
    shaped = compact.str.fullmatch(_IBAN_SHAPE)
    result = pd.Series(False, index=values.index)
    if shaped.any():
        candidates = compact[shaped]
        rearranged = candidates.str[4:] + candidates.str[:4]
        result[shaped] = _mod97(rearranged.to_numpy(dtype=str)) == 1
    return result


def _ip_mask(values: pd.Series) -> pd.Series:
    short = values.str.fullmatch(_IPV6_SHORT) & (values.str.count("::") == 1) & (values.str.count(":") <= 8)
    return values.str.fullmatch(_IPV4) | values.str.fullmatch(_IPV6_FULL) | short


def _phone_loose(values: pd.Series) -> pd.Series:
    core = values.str.replace(_PHONE_EXT, "", regex=True)
    n_digits = core.str.count(r"\d")
    return (core.str.fullmatch(_PHONE_CHARS) & n_digits.between(7, 15)
            & ~core.str.fullmatch(_DATE_LIKE) & ~core.str.fullmatch(_DOTTED_QUAD))


def _phone_strict(values: pd.Series) -> pd.Series:
    """Loose, plus visibly formatted as a phone number: bare digit runs are too often codes or amounts."""
    core = values.str.replace(_PHONE_EXT, "", regex=True).str.strip()
    formatted = core.str.startswith("+") | core.str.contains(r"\(\d", regex=True) | (core.str.count(r"\d+") >= 3)
    return _phone_loose(values) & formatted


def _birth_rate(values: pd.Series) -> float:
    """Share of values that are plausible birth dates (parseable, 1900 up to now)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dropna()
    else:
        stamps = pd.to_datetime(_text_sample(values), errors="coerce", format="mixed", utc=True).dropna()
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    if len(stamps) == 0:
        return 0.0
    if len(stamps) > SAMPLE_SIZE:
        stamps = stamps.sample(n=SAMPLE_SIZE, random_state=0)
    plausible = (stamps >= pd.Timestamp("1900-01-01")) & (stamps <= pd.Timestamp.now())
    return float(plausible.sum() / len(stamps))


def _person_mask(values: pd.Series) -> pd.Series:
    return _first_token_is_first_name(values) & (values.str.count(r"\s+") >= 1)


def _last_name_mask(values: pd.Series) -> pd.Series:
    return _known_names(values, "last") | _known_names(values.str.split().str[-1], "last")


# kind -> (mask used when the column name already points to the kind, stricter mask for values alone)
_VALUE_MASKS: dict[str, tuple[Callable[[pd.Series], pd.Series], Callable[[pd.Series], pd.Series] | None]] = {
    "email": (lambda v: v.str.fullmatch(_EMAIL), None),
    "ip_address": (_ip_mask, None),
    "iban": (_iban_mask, None),
    "card_number": (_card_mask, None),
    "national_id": (lambda v: v.str.fullmatch(_SSN) | v.str.fullmatch(_ID_CODE), lambda v: v.str.fullmatch(_SSN)),
    "phone": (_phone_loose, _phone_strict),
    "postal_code": (lambda v: v.str.fullmatch(_POSTAL_ANY), lambda v: v.str.fullmatch(_POSTAL_DISTINCT)),
    "first_name": (lambda v: _known_names(v.str.split().str[0], "first"), None),
    "last_name": (_last_name_mask, None),
    "person_name": (_person_mask, None),
    "street_address": (lambda v: v.str.fullmatch(_STREET), _street_strict),
    "city": (lambda v: v.str.fullmatch(_PLACE), None),
}
# kinds that values alone may reveal: (minimum match rate, weight of the evidence), in precedence order
_VALUE_ONLY = {
    "email": (0.8, 0.95), "iban": (0.8, 0.95), "card_number": (0.8, 0.9), "national_id": (0.8, 0.85),
    "ip_address": (0.8, 0.9), "phone": (0.8, 0.8), "street_address": (0.8, 0.7), "postal_code": (0.9, 0.6),
}


_EMAIL_IN_TEXT = _rx(r"[\w.%+'\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}")
_PHONE_IN_TEXT = re.compile(r"(?<![\w/])\+?\(?\d[\d\s().\-]{6,20}\d(?![\w/])")
_CAPITALISED_PAIR = re.compile(r"\b(?=([A-Z][a-z\u00C0-\u017F'\-]+\s+[A-Z][a-z\u00C0-\u017F'\-]+))")


def _has_phone(values: pd.Series) -> pd.Series:
    """A run of 9 to 15 digits written with phone punctuation (dates have 8 digits, amounts fewer)."""
    runs = values.str.findall(_PHONE_IN_TEXT).explode().dropna().astype(str)
    if runs.empty:
        return pd.Series(False, index=values.index)
    digits = runs.str.count(r"\d")
    ok = digits.between(9, 15) & runs.str.contains(r"[\s().\-]", regex=True)
    return ok.groupby(level=0).any().reindex(values.index, fill_value=False)


def _looks_like_free_text(values: pd.Series) -> bool:
    """Prose, not codes, labels or addresses: values of six or more words, most of them distinct."""
    words = values.str.split().str.len()
    return bool(words.median() >= 6 and values.nunique() >= 0.5 * len(values))


def _free_text_mask(values: pd.Series) -> pd.Series:
    """Values that mention an email, a formatted phone number, or "Firstname Lastname" with a known first name."""
    email = values.str.contains(_EMAIL_IN_TEXT)
    phone = _has_phone(values)
    pairs = values.str.findall(_CAPITALISED_PAIR).explode().dropna().astype(str).str.split()
    named = pd.Series(False, index=values.index)
    if len(pairs):  # "Mad Scientist", "An Astronaut": a known first word alone is not a person
        known = _known_names(pairs.str[0], "first") & _known_names(pairs.str[-1], "last")
        named = known.groupby(level=0).any().reindex(values.index, fill_value=False)
    return email | phone | named


# ---------------------------------------------------------------- name patterns

_END = r"\d*(?:_|$)"


def _name_rx(*alternatives: str) -> re.Pattern:
    return re.compile(r"(?:^|_)(?:" + "|".join(alternatives) + ")" + _END)


_NUM = r"(?:_?(?:number|num|no|nr))?"
_PERSON_NOUNS = (r"customer|client|contact|employee|person|patient|member|owner|holder|card_?holder|account_?holder|"
                 r"student|driver|passenger|guest|recipient|sender|beneficiary|applicant|tenant|subscriber|spouse|"
                 r"parent|guardian|emergency_?contact|buyer|insured|policy_?holder|signatory|user_?full")
# columns that hold people by role (Track.Composer): person names if the values say so, like a bare "Name"
_PERSON_ROLES = frozenset(
    "composer composers author authors writer writers artist artists performer performers director directors "
    "singer singers creator creators editor editors lyricist lyricists producer producers".split()
)
# precedence order: the first kind whose name pattern matches and whose type fits wins
_NAME_PATTERNS: dict[str, re.Pattern] = {
    "email": _name_rx(r"e_?mail(?:_?addr(?:ess)?)?", r"mail_?addr(?:ess)?", r"mail"),
    "ip_address": _name_rx(r"ip", r"ipv[46]", r"ip_?addr(?:ess)?", r"remote_?addr(?:ess)?"),
    "iban": _name_rx(r"iban", r"bank_?account" + _NUM),
    "card_number": _name_rx(r"(?:credit|debit)_?card" + _NUM, r"card_?(?:number|num|no|nr)", r"cc_?(?:number|num|no|nr)",
                            r"ccn"),
    "national_id": _name_rx(
        r"ssn", r"social_?security" + _NUM, r"national_?(?:id|identifier|insurance|identity)" + _NUM,
        r"passport(?:_?(?:number|num|no|nr|id))?", r"tax_?(?:id|number)", r"driver_?s?_?licen[cs]e" + _NUM,
        r"id_?card" + _NUM, r"personal_?(?:id|identity)_?(?:number|code)?", r"aadhaar", r"cpf", r"pesel", r"bsn",
        r"nino", r"curp", r"dni", r"nif"),
    "birth_date": _name_rx(r"birth(?:_?(?:date|day|dt))?", r"date_?of_?birth", r"dob", r"birthday", r"born(?:_?(?:on|date))?"),
    "phone": _name_rx(r"(?:tele)?phone" + _NUM, r"tel" + _NUM, r"fax" + _NUM, r"mobile(?:_?(?:number|num|no|nr|phone))?",
                      r"cell_?phone", r"cellular", r"msisdn"),
    "postal_code": _name_rx(r"zip(?:_?code)?", r"postal(?:_?code)?", r"post_?code", r"plz", r"cep", r"eircode"),
    "first_name": _name_rx(r"first_?name", r"fname", r"given_?names?", r"fore_?names?", r"middle_?names?", r"christian_?name"),
    "last_name": _name_rx(r"last_?name", r"lname", r"surname", r"family_?name", r"maiden_?name"),
    "person_name": _name_rx(r"full_?name", rf"(?:{_PERSON_NOUNS})_?name", r"contact_?person"),
    "street_address": _name_rx(r"(?:street_?)?addr(?:ess)?(?:_?line)?", r"street(?:_?(?:name|line))?",
                               r"house_?(?:number|no|nr)"),
    "city": _name_rx(r"city", r"town", r"municipality"),
}
# a trailing token that makes the column about the PII rather than the PII itself (phone_type, email_verified)
_QUALIFIERS = frozenset(
    "type kind category count cnt flag verified valid validated confirmed status format length len consent optin opt "
    "hash hashed md5 sha sha1 sha256 domain provider source country region state province lat lon lng latitude "
    "longitude year month age".split()
)
# tokens before "address" that make it a non-postal address (mac_address, wallet_address)
_NON_POSTAL_ADDRESS = frozenset("mac web url wallet server host memory bitcoin btc eth contract ip email mail".split())
# prefixes glued to a keyword in all-lowercase names (billingaddress, homephone): split them off
_GLUED_PREFIXES = ("billing", "shipping", "home", "work", "mobile", "customer", "contact", "primary", "secondary",
                   "mailing", "delivery", "business", "office", "personal", "emergency", "alt", "main", "other")
_NUMERIC_KINDS = frozenset({"card_number", "phone", "national_id", "postal_code", "ip_address"})


def _name_tokens(column: str) -> str:
    """`BillingPostalCode` -> `billing_postal_code`; acronyms (`IPv4`, `ZIPCode`, `EMail`) stay whole."""
    text = re.sub(r"IPv([46])", r"_ipv\1_", str(column))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    tokens = [t for t in re.sub(r"[^a-z0-9]+", "_", text.lower()).split("_") if t]
    split: list[str] = []
    for token in tokens:
        for prefix in _GLUED_PREFIXES:
            if token.startswith(prefix) and len(token) > len(prefix) + 2:
                split += [prefix, token[len(prefix):]]
                break
        else:
            split.append(token)
    return "_".join(split)


def _type_fits(kind: str, is_datetime: bool, is_numeric: bool) -> bool:
    if is_datetime:
        return kind == "birth_date"
    if is_numeric:
        return kind in _NUMERIC_KINDS
    return True


def _rate(mask: pd.Series) -> float:
    return float(mask.fillna(False).astype(bool).mean()) if len(mask) else 0.0


# ---------------------------------------------------------------- detection


def detect_column(table: str, column: str, series: pd.Series, sdtype: str) -> PiiFinding | None:
    """A finding when the column name or its values say PII; None otherwise.

    The name is trusted first, since values alone are ambiguous (a 5-digit code is not always a ZIP);
    value patterns then raise the confidence, or find PII under names nobody anticipated. Numeric, id,
    boolean and datetime columns are judged by name only, so counts and amounts are never flagged. A bare
    ``Name`` column counts as a person's name only when most values start with a first name Faker knows.
    City is found by name only and defaults to ``keep`` (see the module docstring).
    """
    if sdtype == "boolean" or pd.api.types.is_bool_dtype(series):
        return None
    is_datetime = sdtype == "datetime" or pd.api.types.is_datetime64_any_dtype(series)
    is_numeric = not is_datetime and pd.api.types.is_numeric_dtype(series)
    tokens = _name_tokens(column)
    words = tokens.split("_")
    sample = _text_sample(series)

    def finding(kind: str, method: str, confidence: float, match_rate: float) -> PiiFinding:
        return PiiFinding(table=table, column=column, kind=kind, method=method, confidence=round(min(confidence, 1.0), 4),
                          policy=DEFAULT_POLICY[kind], match_rate=round(match_rate, 4))

    if words and words[-1] not in _QUALIFIERS:
        for kind, pattern in _NAME_PATTERNS.items():
            match = pattern.search(tokens)
            if not match or not _type_fits(kind, is_datetime, is_numeric):
                continue
            if kind == "street_address":
                before = tokens[: match.start()].split("_")
                if before and before[-1] in _NON_POSTAL_ADDRESS:
                    continue
            if kind == "birth_date":
                rate = _birth_rate(series)
                if not is_datetime and rate < 0.5:
                    continue  # birth_place, birth_country: not a date
            else:
                rate = _rate(_VALUE_MASKS[kind][0](sample)) if len(sample) else 0.0
            if kind == "city":
                return finding(kind, "name", 0.7, rate)
            method = "name+values" if rate >= 0.5 else "name"
            return finding(kind, method, 0.6 + 0.4 * rate, rate)
        if (words[-1] in ("name", "names") or words[-1] in _PERSON_ROLES) and not is_numeric and not is_datetime and len(sample):
            rate = _rate(_first_token_is_first_name(sample))
            if rate >= PERSON_NAME_THRESHOLD:
                return finding("person_name", "name+values", 0.5 + 0.5 * rate, rate)

    if is_numeric or is_datetime or sdtype == "id" or not len(sample):
        return None
    best: tuple[float, int, str, float] | None = None
    for order, (kind, (threshold, weight)) in enumerate(_VALUE_ONLY.items()):
        loose, strict = _VALUE_MASKS[kind]
        rate = _rate((strict or loose)(sample))
        if rate >= threshold and (best is None or rate > best[0]):
            best = (rate, order, kind, weight)
    if best is None:
        named = _name_by_values(sample)
        if named is not None:
            kind, rate = named
            return finding(kind, "values", NAME_VALUES_WEIGHT * rate, rate)
        if _looks_like_free_text(sample):  # prose: PII inside the text rather than as the whole value
            rate = _rate(_free_text_mask(sample))
            if rate >= FREE_TEXT_THRESHOLD:
                return finding("free_text_pii", "values", 0.5 + 0.5 * rate, rate)
        return None
    rate, _, kind, weight = best
    return finding(kind, "values", weight * rate, rate)


_WORDS_OF_LETTERS = re.compile(r"[^\W\d_]+(?:[\s,'’.\-/]+[^\W\d_]+)*\.?")
_LIST_SEPARATOR = re.compile(r"\s*(?:,|;|&|/|\b(?:and|And|und|et|y)\b)\s*")
NAME_VALUES_WEIGHT = 0.85  # names from values alone: Faker's lists over every locale, never a certainty


def _name_shaped(sample: pd.Series) -> pd.Series | None:
    """The distinct values when nearly all are words of letters (no digits, no symbols), else None."""
    distinct = pd.Series(pd.unique(sample), dtype=object).astype(str)
    if len(distinct) < 2 or distinct.str.len().median() < 3:
        return None
    return distinct if distinct.str.fullmatch(_WORDS_OF_LETTERS).mean() >= 0.9 else None


def _single_words(distinct: pd.Series) -> bool:
    return bool((distinct.str.split().str.len() == 1).mean() >= 0.9)


def _name_by_values(sample: pd.Series) -> tuple[str, float] | None:
    """(kind, rate) when the values alone are first names, surnames or full names, whatever the header says.

    Rates are over distinct values (a frequent name does not count twice) against Faker's names of every
    locale; a list of single words needs most of them to be known names, a list of 2-4 words a known first
    word and often a known last word (film titles, genres, places and job titles fail one or the other)."""
    distinct = _name_shaped(sample)
    if distinct is None:
        return None
    listed = distinct.str.split(_LIST_SEPARATOR).explode().str.strip()  # "Lea, Mark": a list of names
    listed = listed[listed != ""]
    if len(listed) > len(distinct):
        distinct = pd.Series(pd.unique(listed), dtype=object)
    if _single_words(distinct):
        first = float(_known_names(distinct, "first").mean())
        if first >= 0.7:
            return "first_name", first
        last = float(_known_names(distinct, "last").mean())
        return ("last_name", last) if last >= 0.6 else None
    words = distinct.str.split().str.len()
    if words.between(2, 4).mean() < 0.7:  # lists of credits hold some surnames alone ("Clapton/Linn")
        return None
    first = float(_first_token_is_first_name(distinct).mean())
    last = float(_known_names(distinct.str.split().str[-1], "last").mean())
    return ("person_name", first) if first >= 0.6 and last >= 0.25 else None


_COMPANY_HEADER = _name_rx(r"company(?:_?name)?", r"organi[sz]ation(?:_?name)?", r"employer", r"firm", r"business(?:_?name)?",
                           r"corporation", r"enterprise")


@functools.lru_cache(maxsize=1)
def _company_suffix_pattern() -> re.Pattern:
    """Legal-form suffixes of every Faker locale (Inc., GmbH, S.A., s.r.o., and Sons...) ending a value."""
    import faker.providers.company as company_providers

    suffixes: set[str] = {"Corp", "Corp.", "Co.", "Company", "Holdings", "Group", "Ltd", "Inc."}
    for module in pkgutil.iter_modules(company_providers.__path__):
        provider = importlib.import_module(f"faker.providers.company.{module.name}").Provider
        suffixes.update(v.strip() for v in _as_strings(getattr(provider, "company_suffixes", ())) if len(v.strip()) >= 2)
    alternatives = "|".join(re.escape(v) for v in sorted(suffixes, key=len, reverse=True))
    # case-sensitive and trailing: a legal form ends the name ("Telus AS"), "started as" is prose
    return re.compile(rf"(?<![^\W_])(?:{alternatives})\.?$")


def _company_rate(sample: pd.Series) -> float:
    """Share of distinct values with a legal-form suffix after a first word ("AB" alone is a state code)."""
    distinct = pd.Series(pd.unique(sample), dtype=object).astype(str).str.strip()
    if not len(distinct):
        return 0.0
    parts = distinct.str.split(n=1)
    first, rest = parts.str[0].astype(str), parts.str[1].astype(object).where(parts.str.len() > 1, "").astype(str)
    return _rate(rest.str.contains(_company_suffix_pattern()) & ~first.str.fullmatch(_company_suffix_pattern()))


BIRTH_MIN_YEARS = 15  # a birth date lies this many years or more before the newest date of its record
BIRTH_MIN_SPREAD_YEARS = 10  # and the people of a table were not all born in the same decade


def _digit_strings(series: pd.Series) -> pd.Series:
    """Values as digit strings: whole numbers read as floats (1.403334e+10) lose no digit."""
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64")
        whole = np.isfinite(numbers) & (np.mod(numbers, 1) == 0) & (np.abs(numbers) < 1e17)
        if not whole.all():
            return pd.Series([], dtype=object)
        return pd.Series(numbers.astype("int64").astype(str), dtype=object)
    return _text_sample(series)


def _years(stamps: pd.Series) -> pd.Series:
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return stamps.dt.year + stamps.dt.day_of_year / 366.0


def _birth_dates_in_row(df: pd.DataFrame, column: str) -> float:
    """Share of a person table's date values that read as birth dates: plausible (1900 to now), spread over
    decades, and many years before the row's other dates (hired, created) or before today when it has none."""
    if not pd.api.types.is_datetime64_any_dtype(df[column]) or _birth_rate(df[column]) < 0.95:
        return 0.0
    years = _years(df[column])
    present = years.dropna()
    if len(present) < 5 or present.quantile(0.95) - present.quantile(0.05) < BIRTH_MIN_SPREAD_YEARS:
        return 0.0
    others = [c for c in df.columns if c != column and pd.api.types.is_datetime64_any_dtype(df[c])]
    later = pd.concat([_years(df[c]) for c in others], axis=1).max(axis=1) if others else \
        pd.Series(pd.Timestamp.now().year, index=df.index, dtype="float64")
    gap = (later - years)[years.notna() & later.notna()]
    return float((gap >= BIRTH_MIN_YEARS).mean()) if len(gap) else 0.0


def _address_context_finding(table: str, column: str, df: pd.DataFrame, kinds: set[str],
                             is_person_table: bool) -> PiiFinding | None:
    """PII that bare values only reveal beside the rest of a person's or an address's record: unformatted phone
    numbers (digit runs of 7 to 15, almost all distinct), postcodes (codes of a postal shape beside a street address
    or a city) and birth dates (see _birth_dates_in_row). Values alone would flag amounts, codes and event dates."""
    address = bool({"street_address", "city"} & kinds)
    series = df[column]

    def finding(kind: str, rate: float, weight: float) -> PiiFinding:
        return PiiFinding(table=table, column=column, kind=kind, method="values", confidence=round(weight * rate, 4),
                          policy=DEFAULT_POLICY[kind], match_rate=round(rate, 4))

    if is_person_table and "birth_date" not in kinds:
        rate = _birth_dates_in_row(df, column)
        if rate >= 0.95:
            return finding("birth_date", rate, 0.75)
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_bool_dtype(series) or not (is_person_table or address):
        return None
    digits = _digit_strings(series)
    if len(digits) < 5:
        return None
    distinct = float(digits.nunique() / len(digits))
    core = digits.str.replace(r"[\s().\-+/]", "", regex=True)
    if "phone" not in kinds and distinct >= 0.9:
        rate = _rate(core.str.fullmatch(r"\d{7,15}") & _phone_loose(digits))
        if rate >= 0.9 and core.str.len().median() >= 9:
            return finding("phone", rate, 0.7)
    if address and "postal_code" not in kinds and (distinct >= 0.3 or digits.nunique() >= 20):  # repeat per person
        rate = _rate(digits.str.fullmatch(_POSTAL_ANY) & (digits.str.len() >= 3))
        if rate >= 0.9:
            return finding("postal_code", rate, 0.6)
    return None


def _context_findings(table: str, df: pd.DataFrame, found: list[PiiFinding], candidates: list[str],
                      is_person_table: bool) -> list[PiiFinding]:
    """Findings that need the rest of the row: a surname column beside a first-name column (Faker knows fewer
    surnames than first names), and a company column in a table of people (an employer names a person's
    context) or whose values carry legal-form suffixes and surnames (Smith & Sons)."""
    out = []
    has_first = any(f.kind == "first_name" for f in found)
    kinds = {f.kind for f in found}
    for column in candidates:
        contextual = _address_context_finding(table, column, df, kinds, is_person_table)
        if contextual is not None:
            out.append(contextual)
            kinds.add(contextual.kind)
            continue
        sample = _text_sample(df[column])
        if not len(sample) or pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_datetime64_any_dtype(df[column]):
            continue
        distinct = _name_shaped(sample)
        if has_first and distinct is not None and _single_words(distinct):
            rate = float(_known_names(distinct, "last").mean())
            if rate >= 0.3:
                out.append(PiiFinding(table=table, column=column, kind="last_name", method="values",
                                      confidence=round(0.5 + 0.4 * rate, 4), policy=DEFAULT_POLICY["last_name"],
                                      match_rate=round(rate, 4)))
                continue
        named = bool(_COMPANY_HEADER.search(_name_tokens(column)))
        rate = _company_rate(sample)
        people_like = rate >= 0.3 and _rate(_last_name_mask(pd.Series(pd.unique(sample), dtype=object).astype(str))) >= 0.3
        if (is_person_table and (named or rate >= 0.3)) or people_like:
            method = "name+values" if named and rate >= 0.3 else ("name" if named else "values")
            out.append(PiiFinding(table=table, column=column, kind="company", method=method,
                                  confidence=round(min(1.0, 0.6 + 0.4 * rate), 4), policy=DEFAULT_POLICY["company"],
                                  match_rate=round(rate, 4)))
    return out


# ---------------------------------------------------------------- derived PII and mentions of real people

SOURCE_KINDS = ("first_name", "last_name", "person_name")  # the PII whose words other columns embed
DERIVED_THRESHOLD = 0.5  # share of rows whose value embeds the row's own name for a column to be derived from it
MIN_NAME_WORD = 3  # shorter words ("Li", "Al") are too often other words
_OPEN, _CLOSE = "\u27e6", "\u27e7"  # ⟦source.word:case⟧ in a learned template; never in real names
_PLACEHOLDER = re.compile("\u27e6(\\d+|m\\d+)\\.(\\d+):([ltuf])\u27e7")
_INITIAL = re.compile("\u27e6(\\d+)\\.0:i\u27e7")
_LETTER_BEFORE, _LETTER_AFTER = r"(?<![^\W\d_])", r"(?![^\W\d_])"


def _name_words(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return []
    return [w for w in re.split(r"[^\w'’\-]+|_", str(value)) if len(w) >= MIN_NAME_WORD and not w.isdigit()]


def _case_of(matched: str, folded: bool) -> str:
    if folded and matched == matched.lower():
        return "f"
    if matched == matched.lower():
        return "l"
    return "u" if matched == matched.upper() and len(matched) > 1 else "t"


def _template_row(text: str, sources: list[object], first_index: int | None) -> tuple[str, int]:
    """`text` with each word of the row's source values replaced by ⟦source.word:case⟧; how many were replaced.

    A surname glued to the first name's initial (jsmith) becomes ⟦first.0:i⟧⟦last.0:case⟧."""
    count = 0
    initial = None
    if first_index is not None:
        words = _name_words(sources[first_index])
        initial = _fold(words[0])[:1] if words else None
    for j, value in enumerate(sources):
        before = _LETTER_BEFORE
        if initial and j != first_index:
            before = rf"(?:{_LETTER_BEFORE}|(?<=(?<![^\W\d_])[{re.escape(initial)}]))"
        for w, word in sorted(enumerate(_name_words(value)), key=lambda p: -len(p[1])):
            for form, folded in dict.fromkeys([(word, False), (_fold(word), True)]):
                if not form:
                    continue

                def replace(match: re.Match, j=j, w=w, folded=folded) -> str:
                    nonlocal count
                    count += 1
                    return f"{_OPEN}{j}.{w}:{_case_of(match.group(1), folded)}{_CLOSE}"

                text = re.sub(rf"{before}({re.escape(form)}){_LETTER_AFTER}", replace, text, flags=re.IGNORECASE)
    if initial and first_index is not None:
        glued_initial = re.compile(rf"{_LETTER_BEFORE}{re.escape(initial)}(?={_OPEN}(?!{first_index}\.))", re.IGNORECASE)
        text = glued_initial.sub(f"{_OPEN}{first_index}.0:i{_CLOSE}", text)
    return text, count


def _mention_pattern(people: list[str]) -> re.Pattern | None:
    """One regex for the real full names of the people a dataset holds."""
    names = sorted({p for p in people if len(p) >= 2 * MIN_NAME_WORD}, key=len, reverse=True)
    if not names:
        return None
    alternatives = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
    return re.compile(rf"{_LETTER_BEFORE}(?:{alternatives}){_LETTER_AFTER}", re.IGNORECASE)


def _template_mentions(text: str, pattern: re.Pattern | None) -> tuple[str, int]:
    """Real people named in `text` replaced by ⟦mK.word:case⟧, K one slot per distinct person in the value."""
    if pattern is None:
        return text, 0
    slots: dict[str, int] = {}

    def replace(match: re.Match) -> str:
        words = match.group(0).split()
        slot = slots.setdefault(_fold(" ".join(words)), len(slots))
        return " ".join(f"{_OPEN}m{slot}.{w}:{_case_of(word, False)}{_CLOSE}" for w, word in enumerate(words))

    text = pattern.sub(replace, text)
    return text, len(slots)


def _people(tables: Mapping[str, pd.DataFrame], findings: list[PiiFinding]) -> list[str]:
    """Real full names ("first last") and multi-word person names of the person tables. A surname alone is not
    enough ("Mr. Jones" is also a song title)."""
    people: list[str] = []
    for table in sorted(person_tables(findings)):
        if table not in tables:
            continue
        df, mine = tables[table], [f for f in findings if f.table == table and f.column in tables[table].columns]
        first = [f.column for f in mine if f.kind == "first_name"]
        last = [f.column for f in mine if f.kind == "last_name"]
        for f in mine:
            if f.kind == "person_name":
                people += [v for v in df[f.column].dropna().astype(str) if len(v.split()) >= 2]
        for a in first:
            for b in last:
                pairs = df[[a, b]].dropna().astype(str)
                people += list(pairs[a] + " " + pairs[b])
    return people


def _sources_frame(table: str, df: pd.DataFrame, sources: list[DerivedSource],
                   tables: Mapping[str, pd.DataFrame]) -> list[pd.Series]:
    """Each source's values aligned with the rows of `df` (through the FK for a parent's column)."""
    out = []
    for source in sources:
        if source.child_key is None:
            out.append(df[source.column].reset_index(drop=True))
            continue
        parent = tables[source.table]
        lookup = parent.drop_duplicates(source.parent_key).set_index(source.parent_key)[source.column]
        out.append(df[source.child_key].map(lookup).reset_index(drop=True))
    return out


def _template_column(values: pd.Series, sources: list[pd.Series], first_index: int | None,
                     mentions: re.Pattern | None) -> tuple[pd.Series, pd.Series]:
    """The templated values and, per row, whether anything was replaced; nulls stay null."""
    out = pd.Series(pd.NA, index=range(len(values)), dtype=object)
    hit = pd.Series(False, index=range(len(values)))
    texts = values.reset_index(drop=True)
    rows = [sources_j.to_numpy(dtype=object) for sources_j in sources]
    for i, text in enumerate(texts.to_numpy(dtype=object)):
        if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)):
            continue
        templated, n = _template_row(str(text), [r[i] for r in rows], first_index) if rows else (str(text), 0)
        templated, m = _template_mentions(templated, mentions)
        out[i], hit[i] = templated, (n + m) > 0
    return out, hit


def _derived_sources(table: str, schema: DatasetSchema, findings: list[PiiFinding],
                     tables: Mapping[str, pd.DataFrame]) -> list[DerivedSource]:
    """Name columns of this table and of its (single-key, already generated) parents that hold people."""
    people = person_tables(findings)
    sources = [DerivedSource(table=table, column=f.column, kind=f.kind) for f in findings
               if f.table == table and f.kind in SOURCE_KINDS and table in people]
    for fk in schema.fks_of(table) if table in schema.tables else []:
        parent = fk.parent_table
        if fk.is_self_reference or fk.deferred or parent not in people or schema.tables[parent].primary_key != [fk.parent_column]:
            continue
        sources += [DerivedSource(table=parent, column=f.column, kind=f.kind, child_key=fk.child_column,
                                  parent_key=fk.parent_column)
                    for f in findings if f.table == parent and f.kind in SOURCE_KINDS and f.column in tables.get(parent, {})]
    return sources


def _first_index(sources: list[DerivedSource]) -> int | None:
    return next((j for j, s in enumerate(sources) if s.kind == "first_name"), None)


def detect_derived(table: str, df: pd.DataFrame, findings: list[PiiFinding], *, schema: DatasetSchema | None = None,
                   tables: Mapping[str, pd.DataFrame] | None = None, columns: list[str] | None = None) -> list[PiiFinding]:
    """Columns that embed the row's own names (a path ending in the surname, jsmith, john.smith@...) or name
    real people of the dataset (a note): kind derived_pii, learned as templates and rendered with fakes.

    Derived needs at least DERIVED_THRESHOLD of the sampled rows to embed the row's name; a mention needs one
    value naming a real person in full (first and last name) anywhere in the column."""
    tables = dict(tables or {}) | {table: df}
    if schema is None:
        people = person_tables(findings)
        sources = [DerivedSource(table=table, column=f.column, kind=f.kind) for f in findings
                   if f.table == table and f.kind in SOURCE_KINDS and table in people]
    else:
        sources = _derived_sources(table, schema, findings, tables)
    mentions = _mention_pattern(_people(tables, findings))
    flagged = {f.column for f in findings if f.table == table}
    out = []
    for column in columns if columns is not None else list(df.columns):
        series = df[column]
        if column in flagged or not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
            continue
        rows = series.dropna()
        if rows.empty:
            continue
        if len(rows) > SAMPLE_SIZE:
            rows = rows.sample(n=SAMPLE_SIZE, random_state=0)
        aligned = [s.iloc[rows.index.map(df.index.get_loc)].reset_index(drop=True)
                   for s in _sources_frame(table, df, sources, tables)]
        _, derived = _template_column(rows, aligned, _first_index(sources), None)
        rate = _rate(derived)
        used = tuple(sources) if rate >= DERIVED_THRESHOLD else ()
        named = False
        if mentions is not None:
            distinct = pd.Series(pd.unique(series.dropna().astype(str)), dtype=object)
            named = bool(distinct.str.contains(mentions).any())
        if rate >= DERIVED_THRESHOLD or named:
            out.append(PiiFinding(table=table, column=column, kind="derived_pii", method="values",
                                  confidence=round(max(rate, 0.9 if named else 0.0), 4), policy=DEFAULT_POLICY["derived_pii"],
                                  match_rate=round(rate, 4), derived_from=used, mentions=named))
    return out


def _overrides(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame], schema: DatasetSchema) -> dict[tuple[str, str], str]:
    result = {}
    for ref, policy in spec.pii.items():
        table, column = ref.split(".", 1)
        if table not in tables:
            raise SpecError(f"pii names table {table!r} in {ref!r}, which is not a source table")
        if column not in tables[table].columns:
            raise SpecError(f"pii names column {ref!r}, which table {table!r} does not have")
        if table in schema.tables and column in schema.key_columns(table):
            raise SpecError(f"pii names column {ref!r}, a primary or foreign key that the relational layer owns; "
                            "a PII policy cannot apply to a key column")
        result[(table, column)] = policy
    return result


def scan_tables(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, spec: DatasetSpec) -> list[PiiFinding]:
    """Findings for every non-key column, with the spec's `pii` policies applied on top.

    A spec entry for a column no detector flagged still yields a finding (kind "declared"), because the
    person who knows the data outranks the heuristics.
    """
    overrides = _overrides(spec, tables, schema)
    detected: dict[tuple[str, str], PiiFinding] = {}
    for table, df in tables.items():
        if table not in schema.tables:
            raise SchemaError(f"table {table!r} is not in the schema of dataset {schema.dataset!r}: analyse it first")
        meta = schema.tables[table]
        keys = schema.key_columns(table)
        for column in df.columns:
            if column in keys:
                continue
            sdtype = meta.columns[column].sdtype if column in meta.columns else infer_sdtype(df[column])
            found = detect_column(table, column, df[column], sdtype)
            if found is not None:
                detected[(table, column)] = found
    _add(detected, lambda table, df, found, rest: _context_findings(
        table, df, found, rest, bool(IDENTIFYING_KINDS & {f.kind for f in found})), tables, schema)
    _promote_copies_of_names(detected, tables, schema)
    # derived after every table's names are known: a child's path may embed its parent's surname
    _add(detected, lambda table, df, found, rest: detect_derived(
        table, df, list(detected.values()), schema=schema, tables=tables, columns=rest), tables, schema)
    findings = []
    for table, df in tables.items():
        keys = schema.key_columns(table)
        for column in df.columns:
            if column in keys:
                continue
            found = detected.get((table, column))
            policy = overrides.get((table, column))
            if found is None and policy is None:
                continue
            if found is None:
                found = PiiFinding(table=table, column=column, kind=DECLARED_KIND, method="spec", confidence=1.0,
                                   policy=policy, match_rate=0.0, policy_from_spec=True)
            elif policy is not None:
                found = found.model_copy(update={"policy": policy, "policy_from_spec": True})
            if getattr(spec, "pii_consistent_fake", False) and found.policy == "fake":
                found = found.model_copy(update={"consistent": True})
            findings.append(found)
    return findings


def _promote_copies_of_names(detected: dict[tuple[str, str], PiiFinding], tables: Mapping[str, pd.DataFrame],
                             schema: DatasetSchema) -> None:
    """A column found to hold names by its values alone that repeats, row by row, a name column its header names
    (a login equal to the first name) becomes derived from it, so its fake follows the row's fake name."""
    for table, df in tables.items():
        named = [f for (t, _), f in detected.items() if t == table and f.kind in SOURCE_KINDS and f.method != "values"]
        copies = [f.column for (t, _), f in detected.items()
                  if t == table and f.kind in SOURCE_KINDS and f.method == "values"]
        if not named or not copies:
            continue
        for finding in detect_derived(table, df, named, columns=copies):
            if finding.derived_from and finding.match_rate >= 0.9:
                detected[(table, finding.column)] = finding


def _add(detected: dict[tuple[str, str], PiiFinding], find, tables: Mapping[str, pd.DataFrame], schema: DatasetSchema) -> None:
    """Run a table-level detector over each table's columns not yet flagged and record what it finds."""
    for table, df in tables.items():
        keys = schema.key_columns(table)
        found = [f for (t, _), f in detected.items() if t == table]
        rest = [c for c in df.columns if c not in keys and (table, c) not in detected]
        for finding in find(table, df, found, rest):
            detected[(table, finding.column)] = finding


def annotate_schema(schema: DatasetSchema, findings: list[PiiFinding]) -> DatasetSchema:
    """A copy of the schema with each finding's kind and policy on its ColumnMeta."""
    annotated = schema.model_copy(deep=True)
    for f in findings:
        meta = annotated.tables.get(f.table)
        if meta is not None and f.column in meta.columns:
            meta.columns[f.column].pii_kind = f.kind
            meta.columns[f.column].pii_policy = f.policy
    return annotated


# ---------------------------------------------------------------- training-time policies


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


# ---------------------------------------------------------------- output-time fakes


def _redigit(values: np.ndarray, rng: np.random.Generator, *, keep_leading: int = 0, nonzero_start: bool = False) -> np.ndarray:
    """Replace every digit after the first `keep_leading` with a random one: a small pool becomes many values."""
    array = np.asarray(values, dtype=str)
    if array.size == 0:
        return array
    codes = _codes(array)
    is_digit = (codes >= 48) & (codes <= 57)
    replace = is_digit & (np.cumsum(is_digit, axis=1) > keep_leading)
    fresh = rng.integers(48, 58, size=codes.shape, dtype=np.uint32)
    if nonzero_start:
        previous = np.zeros_like(is_digit)
        previous[:, 1:] = is_digit[:, :-1]
        starts = is_digit & ~previous
        fresh[starts] = rng.integers(49, 58, size=int(starts.sum()), dtype=np.uint32)
    codes[replace] = fresh[replace]
    return codes.view(array.dtype).reshape(len(array))


def _slug(values) -> pd.Series:
    slug = _fold_series(pd.Series(values, dtype=object)).str.replace(r"[^a-z0-9]", "", regex=True)
    return slug.where(slug != "", "user")


def _join(*parts) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    result = None
    for part in parts:
        part = np.asarray(part, dtype=object)
        result = part if result is None else result + part
    return np.asarray(result, dtype=object)


_FAMILY_FIRST_UNSPACED = frozenset({"zh", "ja", "ko"})  # 高橋桃子: family name first, no space
_FAMILY_FIRST_SPACED = frozenset({"hu", "vi"})
_SAFE_EMAIL_DOMAINS = np.array(["example.com", "example.net", "example.org"], dtype=object)
_SYLLABLES = np.array("ka lo mi ne ru sa te vi da bo ra li mo na pe ti zu ha ke ro".split(), dtype=object)


class _Faker:
    """Seeded Faker pools per kind: Faker is slow per call, so a few thousand values are combined vectorised."""

    def __init__(self, locale: str, seed: int, n_rows: int, forbidden: frozenset | set):
        from faker import Faker

        try:
            self.faker = Faker(locale)
        except (AttributeError, ValueError, ModuleNotFoundError):
            raise SpecError(f"pii_locale {locale!r} is not a locale Faker knows") from None
        self.faker.seed_instance(seed)
        self.locale = locale
        self.size = int(min(2000, max(200, n_rows)))
        self.forbidden = forbidden
        self.cache: dict[str, np.ndarray] = {}

    def pool(self, method: str, transform: Callable[[object], str] = str) -> np.ndarray:
        if method not in self.cache:
            produce = getattr(self.faker, method)
            # one line each: some locales write a street address over two lines
            values = list(dict.fromkeys(transform(produce()).replace("\n", ", ") for _ in range(self.size)))
            if self.forbidden:
                values = [v for v in values if normalize_value(v) not in self.forbidden]
            self.cache[method] = np.array(values, dtype=object)
        return self.cache[method]


def _syllable_names(rng: np.random.Generator, k: int) -> np.ndarray:
    """Pronounceable made-up names, for when every Faker name is forbidden."""
    picks = _SYLLABLES[rng.integers(0, len(_SYLLABLES), size=(k, 3))]
    return np.array([("".join(p)).capitalize() for p in picks], dtype=object)


def _from_pool(pool: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    if len(pool) == 0:
        return _syllable_names(rng, k)
    return pool[rng.integers(0, len(pool), size=k)]


def _luhn_complete(payloads: np.ndarray) -> np.ndarray:
    """Append the Luhn check digit to each digit string."""
    series = pd.Series(payloads, dtype=object).astype(str)
    check = (10 - _luhn_total(series + "0") % 10) % 10
    return _join(series.to_numpy(dtype=object), check.astype(str))


def _generator(kind: str, pools: _Faker, rng: np.random.Generator, context: dict[str, np.ndarray]):
    """A function rows -> values for one kind; `attempt` > 0 asks for values unlike the previous try."""

    def first(k):
        return _from_pool(pools.pool("first_name"), rng, k)

    def last(k):
        return _from_pool(pools.pool("last_name"), rng, k)

    def sampled(method: str, transform: Callable[[object], str] = str):
        return lambda rows, attempt: _from_pool(pools.pool(method, transform), rng, len(rows))

    def person(rows, attempt):
        if attempt == 0 and "first_name" in context and "last_name" in context:
            given, family = context["first_name"][rows], context["last_name"][rows]
        else:
            given, family = first(len(rows)), last(len(rows))
        language = pools.locale.split("_")[0].lower()
        if language in _FAMILY_FIRST_UNSPACED:
            return _join(family, given)
        if language in _FAMILY_FIRST_SPACED:
            return _join(family, " ", given)
        return _join(given, " ", family)

    def email(rows, attempt):
        k = len(rows)
        if "first_name" in context and "last_name" in context:
            given, family = context["first_name"][rows], context["last_name"][rows]
        elif "person_name" in context:
            parts = pd.Series(context["person_name"][rows], dtype=object).astype(str).str.split()
            given, family = parts.str[0].to_numpy(dtype=object), parts.str[-1].to_numpy(dtype=object)
        else:
            given, family = first(k), last(k)
        g, f = _slug(given).to_numpy(dtype=object), _slug(family).to_numpy(dtype=object)
        initial = pd.Series(g, dtype=object).str[0].to_numpy(dtype=object)
        shape = rng.integers(0, 4, size=k)
        local = np.where(shape == 0, _join(g, ".", f),
                         np.where(shape == 1, _join(initial, f), np.where(shape == 2, _join(g, f), _join(g, "_", f))))
        if attempt > 0:
            local = _join(local, rng.integers(10, 100000, size=k).astype(str))
        domain = _SAFE_EMAIL_DOMAINS[rng.integers(0, len(_SAFE_EMAIL_DOMAINS), size=k)]
        full = pd.Series(_join(local, "@", domain))
        repeat = full.groupby(full, sort=False).cumcount().to_numpy()
        local = np.where(repeat > 0, _join(local, repeat.astype(str)), local)
        return _join(local, "@", domain)

    def redigited(method: str, **how):
        def make(rows, attempt):
            templates = _from_pool(pools.pool(method), rng, len(rows))
            return _redigit(templates.astype(str), rng, **how).astype(object)
        return make

    def ip(rows, attempt):
        k = len(rows)
        head = rng.choice(np.setdiff1d(np.arange(1, 224), [10, 127]), size=k)
        rest = rng.integers(0, 256, size=(k, 3))
        return _join(head.astype(str), ".", rest[:, 0].astype(str), ".", rest[:, 1].astype(str), ".", rest[:, 2].astype(str))

    def card(rows, attempt):
        templates = _from_pool(pools.pool("credit_card_number"), rng, len(rows)).astype(str)
        fresh = _redigit(templates, rng, keep_leading=6)
        payloads = pd.Series(fresh, dtype=object).str[:-1].to_numpy(dtype=object)
        return _luhn_complete(payloads)

    def iban(rows, attempt):
        templates = pd.Series(_from_pool(pools.pool("iban"), rng, len(rows)), dtype=object).astype(str)
        country = templates.str[:2].to_numpy(dtype=object)
        bban = _redigit(templates.str[4:].to_numpy(dtype=str), rng).astype(object)
        check = 98 - _mod97(_join(bban, country, "00").astype(str))
        return _join(country, pd.Series(check).astype(str).str.zfill(2).to_numpy(dtype=object), bban)

    def birth(rows, attempt):
        start = np.datetime64("1940-01-01", "D") if attempt < 10 else np.datetime64("1900-01-01", "D")
        end = np.datetime64("2006-12-31", "D")
        days = rng.integers(0, int((end - start).astype(int)) + 1, size=len(rows))
        return (start + days.astype("timedelta64[D]")).astype("datetime64[us]")

    def declared(rows, attempt):
        """A bothify-style code (ABC-123456): nothing is known of a declared column but that it is PII."""
        k = len(rows)
        letters = rng.integers(65, 91, size=(k, 3)).astype(np.uint32)
        digits = rng.integers(48, 58, size=(k, 6)).astype(np.uint32)
        dash = np.full((k, 1), 45, dtype=np.uint32)
        codes = np.ascontiguousarray(np.concatenate([letters, dash, digits], axis=1))
        return codes.view("<U10").reshape(k).astype(object)

    return {
        "first_name": lambda rows, attempt: first(len(rows)),
        "last_name": lambda rows, attempt: last(len(rows)),
        "person_name": person,
        "email": email,
        "phone": redigited("phone_number", keep_leading=3),
        "street_address": redigited("street_address", nonzero_start=True),
        "postal_code": redigited("postcode"),
        "ip_address": ip,
        "card_number": card,
        "national_id": redigited("ssn", keep_leading=3),
        "birth_date": birth,
        "iban": iban,
        "city": sampled("city"),
        "free_text_pii": sampled("sentence"),
        "company": sampled("company"),
        "derived_pii": sampled("user_name"),  # a derived column the model did not learn: a handle-like value
        DECLARED_KIND: declared,
    }[kind]


def _normalized(values: np.ndarray) -> pd.Series:
    series = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.strftime("%Y-%m-%d").fillna("")
    text = series.astype(str).str.normalize("NFKC").str.casefold()
    return text.str.replace(_WS, " ", regex=True).str.strip()


def _avoiding(make, rows: np.ndarray, forbidden, rng: np.random.Generator, is_datetime: bool) -> np.ndarray:
    """Generate for `rows`, then regenerate those that hit a real value, so no real value appears by coincidence."""
    values = make(rows, 0)
    if not forbidden or len(rows) == 0:
        return values
    for attempt in range(1, 21):
        bad = np.flatnonzero(_isin(_normalized(values), forbidden))
        if bad.size == 0:
            return values
        values[bad] = make(rows[bad], attempt)
    bad = np.flatnonzero(_isin(_normalized(values), forbidden))
    while bad.size:  # the kind's value space is exhausted by real values: fall back to something obviously made up
        if is_datetime:
            values[bad] = np.datetime64("NaT")
            break
        values[bad] = _join("x-", pd.Series(rng.integers(0, 2**62, size=bad.size)).map("{:016x}".format).to_numpy(dtype=object))
        bad = np.flatnonzero(_isin(_normalized(values), forbidden))
    return values


_CONSISTENT_SEED = 20240601  # fixed: the Faker pools must be the same in every table and every run


def consistent_fakes(tokens: pd.Series, kind: str, *, locale: str = "en_US", forbidden=frozenset()) -> pd.Series:
    """One Faker value per pseudonym token, seeded by the token: equal tokens give equal fakes in every table.

    The pools depend only on kind, locale and the forbidden set, never on the table or its size; a fake that
    hits a real value is redrawn by a rule that depends on the token alone, so consistency survives it."""
    pools = _Faker(locale, _CONSISTENT_SEED, 2000, forbidden)
    values: dict[str, object] = {}
    for token in pd.unique(tokens.dropna().astype(str)):
        rng = np.random.default_rng(int(hashlib.sha256(token.encode()).hexdigest()[:16], 16))
        make = _generator(kind, pools, rng, {})
        values[token] = _avoiding(make, np.arange(1), forbidden, rng, is_datetime=kind == "birth_date")[0]
    mapped = tokens.astype("string").map(values)
    if kind == "birth_date":
        return pd.Series(mapped.to_numpy(dtype=object), index=tokens.index).astype("datetime64[us]")
    return mapped.astype("string")


def _seed_for(seed: int, table: str, column: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(table.encode()), zlib.crc32(column.encode())])


_NAME_KINDS_FIRST = {"first_name": 0, "last_name": 1, "person_name": 2}


_COUNTRY_ALIASES = {
    "usa": "US", "us": "US", "u.s.a.": "US", "united states of america": "US", "america": "US", "uk": "GB",
    "u.k.": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "netherlands": "NL", "the netherlands": "NL", "holland": "NL", "ireland": "IE", "china": "CN", "korea": "KR",
    "czechia": "CZ", "russian federation": "RU", "deutschland": "DE", "espana": "ES", "brasil": "BR", "italia": "IT",
    "suisse": "CH", "schweiz": "CH", "osterreich": "AT", "polska": "PL", "sverige": "SE", "norge": "NO",
    "danmark": "DK", "suomi": "FI", "belgique": "BE", "belgie": "BE", "nippon": "JP", "nihon": "JP",
}
_LOCALE_QUIRKS = frozenset({"dk_DK"})  # an alias Faker keeps for da_DK


@functools.lru_cache(maxsize=1)
def _country_locales() -> dict[str, str]:
    """Accent-folded country name, ISO alpha-2 or alpha-3 code -> the Faker locale of that territory.

    Where a territory has several, the one whose language code equals the country code wins (es_ES, not ca_ES),
    then English (en_CA), then the first by name."""
    from faker.config import AVAILABLE_LOCALES
    from faker.providers.date_time import Provider

    by_territory: dict[str, list[str]] = {}
    for locale in sorted(AVAILABLE_LOCALES):
        if "_" in locale and locale not in _LOCALE_QUIRKS:
            by_territory.setdefault(locale.split("_", 1)[1], []).append(locale)

    def pick(territory: str) -> str | None:
        options = by_territory.get(territory, [])
        for prefer in (lambda loc: loc.split("_")[0] == territory.lower(), lambda loc: loc.startswith("en_"), lambda loc: True):
            match = next((loc for loc in options if prefer(loc)), None)
            if match:
                return match
        return None

    mapping: dict[str, str] = {}
    codes = {}
    for country in Provider.countries:
        codes[_fold(country.name)] = country.alpha_2_code
        codes[_fold(country.alpha_2_code)] = country.alpha_2_code
        codes[_fold(country.alpha_3_code)] = country.alpha_2_code
    codes |= _COUNTRY_ALIASES
    for key, code in codes.items():
        locale = pick(code)
        if locale:
            mapping[key] = locale
    return mapping


COUNTRY_MATCH = 0.8  # share of a column's distinct values that must be countries for it to set the rows' locale


def row_locales(frame: pd.DataFrame, default: str) -> np.ndarray | None:
    """The Faker locale of each row from its country column (a name or ISO code), `default` where unknown.

    The country column is the first whose header says country and whose values are mostly countries, else the
    first whose distinct values are nearly all countries; None when the table has none."""
    mapping = _country_locales()
    candidates = []
    for column in frame.columns:
        series = frame[column]
        if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
                or isinstance(series.dtype, pd.CategoricalDtype)):
            continue
        distinct = pd.Series(pd.unique(series.dropna().astype(str)), dtype=object)
        if len(distinct) == 0:
            continue
        rate = _rate(pd.Series(_isin(_fold_series(distinct.str.strip()), set(mapping))))
        named = "country" in _name_tokens(column).split("_")
        if (named and rate >= 0.5) or rate >= COUNTRY_MATCH and len(distinct) >= 2:
            candidates.append((not named, column))
    if not candidates:
        return None
    column = min(candidates, key=lambda c: c[0])[1]
    folded = _fold_series(frame[column].astype("string").fillna("").str.strip())
    return folded.map(lambda v: mapping.get(v, default)).to_numpy(dtype=object)


def _apply_case(words: np.ndarray, case: str) -> np.ndarray:
    series = pd.Series(words, dtype=object).astype(str)
    if case == "l":
        return series.str.lower().to_numpy(dtype=object)
    if case == "u":
        return series.str.upper().to_numpy(dtype=object)
    if case == "f":
        return _fold_series(series).str.replace(r"[^a-z0-9'\-]", "", regex=True).to_numpy(dtype=object)
    if case == "i":
        return _fold_series(series).str[:1].to_numpy(dtype=object)
    return series.to_numpy(dtype=object)


def render_templates(templates: pd.Series, sources: Mapping[str, np.ndarray], fresh_names: Callable[[int], np.ndarray]) -> pd.Series:
    """Learned templates with every ⟦source.word:case⟧ replaced by that word of the row's fake, in that case.

    `sources` maps a source index (as text) to the row's fake values; a mention slot ⟦mK...⟧ gets a fresh fake
    full name per row (`fresh_names(n)`), the same for every word of one slot."""
    text = templates.astype("string").reset_index(drop=True)
    if not len(text):
        return text
    found = set(text.dropna().str.findall(_PLACEHOLDER).explode().dropna().map(lambda t: (t[0], int(t[1]), t[2])))
    found |= {(j, 0, "i") for j in text.dropna().str.findall(_INITIAL).explode().dropna()}
    slots = {j for j, _, _ in found if j.startswith("m")}
    values = {j: pd.Series(sources[j], dtype=object) for j in {j for j, _, _ in found if not j.startswith("m")} if j in sources}
    values |= {slot: pd.Series(fresh_names(len(text)), dtype=object) for slot in sorted(slots)}
    for j, w, case in sorted(found):
        fake = values.get(j)
        if fake is None:  # a source the output lacks (dropped): a fresh name keeps the text readable
            fake = values.setdefault(j, pd.Series(fresh_names(len(text)), dtype=object))
        words = fake.fillna("").astype(str).str.split()
        word = words.map(lambda parts, w=w: parts[min(w, len(parts) - 1)] if parts else "").to_numpy(dtype=object)
        marker = f"{_OPEN}{j}.{w}:{case}{_CLOSE}"
        rendered = _apply_case(word, case)
        has = text.str.contains(marker, regex=False).fillna(False).to_numpy(dtype=bool)
        if has.any():
            text[has] = [t.replace(marker, r) for t, r in zip(text[has], rendered[has])]
    leftover = text.str.contains(_OPEN, regex=False).fillna(False).to_numpy(dtype=bool)
    if leftover.any():  # a template the generator garbled: drop the broken markers rather than emit them
        text[leftover] = text[leftover].str.replace(f"{_OPEN}[^{_CLOSE}]*{_CLOSE}?", "", regex=True)
    return text


def fill_synthetic(
    table: str,
    synthetic: pd.DataFrame,
    findings: list[PiiFinding],
    *,
    n_rows: int,
    column_order: list[str],
    locale: str = "en_US",
    seed: int = 0,
    forbidden: set[str] | frozenset = frozenset(),
    null_rates: dict[str, float] | None = None,
    parents: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The output table: Faker columns for `fake` findings (never learned), `drop` columns left out.

    Each row's fakes come from the Faker locale of its country column (`row_locales`; `locale` where there is
    none or it is unknown), generated together per locale group, so a Spanish row gets a Spanish name, street,
    postcode and phone. Emails are derived from the row's fake names and use example.com/.net/.org, so a
    synthetic address can never reach a real inbox. Derived columns (learned as templates) are rendered with the
    row's fakes, or its synthetic parent's (`parents`). Birth dates fall in 1940..2006, a fixed range so one seed
    gives one output regardless of the day it runs. Any value equal (normalised) to a value in `forbidden` is
    regenerated; where a kind's value space is exhausted, an obviously made-up token (or a null date) is used
    instead. `null_rates` blanks that share of rows per column (a real null rate is an aggregate and safe to reuse).
    """
    if synthetic.shape[1] and len(synthetic) != n_rows:
        raise ValueError(f"table {table!r}: synthetic frame has {len(synthetic)} rows, n_rows is {n_rows}")
    mine = _of_table(findings, table)
    dropped = {f.column for f in mine if f.policy == "drop"}
    derived = [f for f in mine if f.kind == "derived_pii" and f.policy == "fake" and f.column in synthetic.columns]
    consistent = [f for f in mine if f.policy == "fake" and f.consistent and f.column in synthetic.columns and f not in derived]
    fakes = sorted((f for f in mine if f.policy == "fake" and f.column in column_order and f not in consistent
                    and f not in derived), key=lambda f: _NAME_KINDS_FIRST.get(f.kind, 3))
    out = synthetic.copy() if synthetic.shape[1] else pd.DataFrame(index=pd.RangeIndex(n_rows))
    out = out.reset_index(drop=True)
    for f in consistent:
        out[f.column] = consistent_fakes(out[f.column], f.kind, locale=locale, forbidden=forbidden)
    locales = row_locales(out, locale) if out.shape[1] else None
    groups = ({locale: np.arange(n_rows)} if locales is None else
              {loc: np.flatnonzero(locales == loc) for loc in sorted(set(locales))})
    null_rates = null_rates or {}
    context: dict[str, np.ndarray] = {}
    faked: dict[str, np.ndarray] = {}
    for f in fakes:
        sequence = _seed_for(seed, table, f.column)
        rng = np.random.default_rng(sequence)
        values = np.empty(n_rows, dtype="datetime64[us]" if f.kind == "birth_date" else object)
        for group, (loc, rows) in enumerate(groups.items()):
            pools = _Faker(loc, int(sequence.generate_state(1)[0]) + group, len(rows), forbidden)
            make = _generator(f.kind, pools, rng, context)
            values[rows] = _avoiding(make, rows, forbidden, rng, is_datetime=f.kind == "birth_date")
        if f.kind in _NAME_KINDS_FIRST:
            context.setdefault(f.kind, values)
        faked[f.column] = values
        if f.kind == "birth_date":
            series = pd.Series(values, index=out.index).astype("datetime64[us]")
        else:
            series = pd.Series(values, index=out.index, dtype="string")
        rate = float(null_rates.get(f.column, 0.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"null rate for {table}.{f.column} must be between 0 and 1")
        n_null = int(round(rate * n_rows))
        if n_null:
            series.iloc[rng.choice(n_rows, size=n_null, replace=False)] = None
        out[f.column] = series
    for f in derived:
        out[f.column] = _render_derived(table, f, out, faked, parents or {}, groups, seed, forbidden)
    columns = [c for c in column_order if c not in dropped]
    missing = [c for c in columns if c not in out.columns]
    if missing:
        raise ValueError(f"table {table!r}: synthetic output lacks column(s) {', '.join(missing)}")
    return out[columns]


def _render_derived(table: str, finding: PiiFinding, out: pd.DataFrame, faked: Mapping[str, np.ndarray],
                    parents: Mapping[str, pd.DataFrame], groups: Mapping[str, np.ndarray], seed: int,
                    forbidden) -> pd.Series:
    """A derived column: its learned templates filled with the row's own fakes (or its synthetic parent's)."""
    sources: dict[str, np.ndarray] = {}
    for j, source in enumerate(finding.derived_from):
        if source.child_key is None:
            if source.column in faked:
                sources[str(j)] = faked[source.column]
            elif source.column in out.columns:
                sources[str(j)] = out[source.column].to_numpy(dtype=object)
            continue
        parent = parents.get(source.table)
        if parent is None or source.column not in parent.columns or source.child_key not in out.columns:
            continue
        lookup = parent.drop_duplicates(source.parent_key).set_index(source.parent_key)[source.column]
        sources[str(j)] = out[source.child_key].map(lookup).to_numpy(dtype=object)
    sequence = _seed_for(seed, table, finding.column)
    rng = np.random.default_rng(sequence)

    def fresh_names(k: int) -> np.ndarray:
        names = np.empty(k, dtype=object)
        for group, (loc, rows) in enumerate(groups.items()):
            pools = _Faker(loc, int(sequence.generate_state(1)[0]) + group, len(rows), forbidden)
            names[rows] = _generator("person_name", pools, rng, {})(rows, 1)
        return names

    return render_templates(out[finding.column], sources, fresh_names).set_axis(out.index)


# ---------------------------------------------------------------- leak checks


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
            if not _checkable(series) or f"{table}.{column}" in exempt:
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


# ---------------------------------------------------------------- free-text snippets


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
            text = pd.Series(pd.unique(_normalize_series(df[column])), dtype=object)
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
            if f"{table}.{column}" in exempt:
                continue
            values = _normalize_series(series)
            long = values[values.str.len() >= width] if len(values) else values
            hit = {v for v in pd.unique(long) if _shingle_digest(salt, v) not in categories
                   and any(_shingle_digest(salt, v[i:i + width]) in digests for i in range(len(v) - width + 1))}
            count = int(long.isin(hit).sum()) if hit else 0
            if count:
                leaks.setdefault(table, {})[column] = count
    return leaks


def person_tables(findings: list[PiiFinding]) -> set[str]:
    """Tables whose rows are people's records: they hold an identifying kind of PII."""
    return {f.table for f in findings if f.kind in IDENTIFYING_KINDS}
