"""Value patterns (emails, cards, IBANs, phones, addresses, ...) and column-name patterns, per PII kind."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from genesis_pipelines.engine.privacy.pii.findings import SAMPLE_SIZE
from genesis_pipelines.engine.privacy.pii.normalise import _first_token_is_first_name, _known_names, _text_sample


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
