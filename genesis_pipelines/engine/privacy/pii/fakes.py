"""Output-time fakes: Faker values per kind and per row locale, consistent fakes, derived templates rendered
with the row's fakes."""

from __future__ import annotations

import functools
import hashlib
import random
import threading
import zlib
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.privacy.pii.detection import _CLOSE, _INITIAL, _OPEN, _PLACEHOLDER
from genesis_pipelines.engine.privacy.pii.findings import DECLARED_KIND, PiiFinding
from genesis_pipelines.engine.privacy.pii.normalise import _WS, _fold, _fold_series, _isin, normalize_value
from genesis_pipelines.engine.privacy.pii.patterns import _codes, _luhn_total, _mod97, _name_tokens, _rate
from genesis_pipelines.engine.privacy.pii.policies import _of_table


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


_FAKERS = threading.local()  # one Faker per locale and thread: building one loads its providers (tens of ms)


def _faker_instance(locale: str):
    from faker import Faker

    made = _FAKERS.__dict__.setdefault("by_locale", {})
    if locale not in made:
        try:
            made[locale] = Faker(locale)
        except (AttributeError, ValueError, ModuleNotFoundError):
            raise SpecError(f"pii_locale {locale!r} is not a locale Faker knows") from None
    return made[locale]


class _Faker:
    """Seeded Faker pools per kind: Faker is slow per call, so a few thousand values are combined vectorised."""

    def __init__(self, locale: str, seed: int, n_rows: int, forbidden: frozenset | set):
        self.faker = _faker_instance(locale)
        self.random = random.Random(seed)  # this object's own stream (as seed_instance makes), set before each pool
        self.locale = locale
        # a pool of at least 200 values, or four per row for a small locale group (sakila's addresses fall into 60
        # locales of a few rows each: 200 Faker calls per locale and kind would be most of the run)
        self.size = int(min(2000, max(n_rows, min(200, 4 * n_rows + 20))))
        self.forbidden = forbidden
        self.cache: dict[str, np.ndarray] = {}

    def pool(self, method: str, transform: Callable[[object], str] = str) -> np.ndarray:
        if method not in self.cache:
            self.faker.random = self.random
            produce = getattr(self.faker, method, None)
            if produce is None:  # a locale without this provider (no phone numbers for some): the English one's
                fallback = _faker_instance("en_US")
                fallback.random = self.random
                produce = getattr(fallback, method)
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
    # folded and looked up once per distinct value, spread to the rows by code
    codes, uniques = pd.factorize(frame[column].astype("string").fillna("").str.strip())
    folded = _fold_series(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
    return np.asarray([mapping.get(v, default) for v in folded], dtype=object)[codes]


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
    inherited_locales: np.ndarray | None = None,
) -> pd.DataFrame:
    """The output table: Faker columns for `fake` findings (never learned), `drop` columns left out.

    Each row's fakes come from the Faker locale of its country column (`row_locales`; else `inherited_locales`, read
    through its FKs by parent_locales; `locale` where there is none or it is unknown), generated together per
    locale group, so a Spanish row gets a Spanish name, street,
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
    # copy-on-write: the caller's frame is never changed, and no copy is made where nothing is faked
    out = synthetic.reset_index(drop=True) if synthetic.shape[1] else pd.DataFrame(index=pd.RangeIndex(n_rows))
    for f in consistent:
        out[f.column] = consistent_fakes(out[f.column], f.kind, locale=locale, forbidden=forbidden)
    # the rows' locales serve the fakes drawn per locale group: a table with none to draw skips the country scan
    locales = row_locales(out, locale) if out.shape[1] and (fakes or derived) else None
    if locales is None and inherited_locales is not None and len(inherited_locales) == n_rows:
        locales = np.asarray(inherited_locales, dtype=object)
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
