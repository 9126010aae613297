"""Detection: a column's kind from its name, values and the columns beside it; names embedded in other
columns (derived PII) and mentions of real people; the scan of a whole dataset."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.schema_inference import infer_sdtype
from genesis_pipelines.engine.core.errors import SchemaError, SpecError
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import DatasetSpec, split_ref
from genesis_pipelines.engine.privacy.pii.findings import (
    DECLARED_KIND,
    DEFAULT_POLICY,
    IDENTIFYING_KINDS,
    SAMPLE_SIZE,
    DerivedSource,
    PiiFinding,
    person_tables,
)
from genesis_pipelines.engine.privacy.pii.normalise import (
    _as_strings,
    _first_token_is_first_name,
    _fold,
    _known_names,
    _text_sample,
)
from genesis_pipelines.engine.privacy.pii.patterns import (
    _NAME_PATTERNS,
    _NON_POSTAL_ADDRESS,
    _PERSON_ROLES,
    _POSTAL_ANY,
    _QUALIFIERS,
    _VALUE_MASKS,
    _VALUE_ONLY,
    _birth_rate,
    _free_text_mask,
    _last_name_mask,
    _looks_like_free_text,
    _name_rx,
    _name_tokens,
    _phone_loose,
    _rate,
    _type_fits,
)

PERSON_NAME_THRESHOLD = 0.5  # share of values starting with a known first name for a bare "Name" column


FREE_TEXT_THRESHOLD = 0.1  # share of free-text values that mention an email, phone or person name


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
    distinct, counts = _distinct(sample)

    def rate_of(mask: Callable[[pd.Series], pd.Series]) -> float:
        """The share of sampled values the (per-value) mask holds for, computed once per distinct value."""
        return _weighted_rate(mask(distinct), counts) if len(distinct) else 0.0

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
                rate = rate_of(_VALUE_MASKS[kind][0])
            if kind == "city":
                return finding(kind, "name", 0.7, rate)
            method = "name+values" if rate >= 0.5 else "name"
            return finding(kind, method, 0.6 + 0.4 * rate, rate)
        if (words[-1] in ("name", "names") or words[-1] in _PERSON_ROLES) and not is_numeric and not is_datetime and len(sample):
            rate = rate_of(_first_token_is_first_name)
            if rate >= PERSON_NAME_THRESHOLD:
                return finding("person_name", "name+values", 0.5 + 0.5 * rate, rate)

    if is_numeric or is_datetime or sdtype == "id" or not len(sample):
        return None
    best: tuple[float, int, str, float] | None = None
    for order, (kind, (threshold, weight)) in enumerate(_VALUE_ONLY.items()):
        loose, strict = _VALUE_MASKS[kind]
        rate = rate_of(strict or loose)
        if rate >= threshold and (best is None or rate > best[0]):
            best = (rate, order, kind, weight)
    if best is None:
        named = _name_by_values(sample)
        if named is not None:
            kind, rate = named
            return finding(kind, "values", NAME_VALUES_WEIGHT * rate, rate)
        if _looks_like_free_text(sample):  # prose: PII inside the text rather than as the whole value
            rate = rate_of(_free_text_mask)
            if rate >= FREE_TEXT_THRESHOLD:
                return finding("free_text_pii", "values", 0.5 + 0.5 * rate, rate)
        return None
    rate, _, kind, weight = best
    return finding(kind, "values", weight * rate, rate)


def _distinct(sample: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A sample's distinct values (plain Python strings: on a few values pandas' pattern checks cost more than the
    matching) and how many sampled values each stands for. Every value mask is per value, so a rate over the
    distinct values weighted by these counts equals the rate over the sample."""
    codes, uniques = pd.factorize(sample)
    return _plain_text(uniques), np.bincount(codes[codes >= 0], minlength=len(uniques))


def _plain_text(values) -> pd.Series:
    """Values as Python strings in an object Series (see _distinct)."""
    return pd.Series([str(v) for v in values], dtype=object)


def _weighted_rate(mask: pd.Series, counts: np.ndarray) -> float:
    held = mask.fillna(False).astype(bool).to_numpy()
    return float(int(counts[held].sum()) / int(counts.sum())) if counts.sum() else 0.0


_WORDS_OF_LETTERS = re.compile(r"[^\W\d_]+(?:[\s,'’.\-/]+[^\W\d_]+)*\.?")


_LIST_SEPARATOR = re.compile(r"\s*(?:,|;|&|/|\b(?:and|And|und|et|y)\b)\s*")


NAME_VALUES_WEIGHT = 0.85  # names from values alone: Faker's lists over every locale, never a certainty


def _name_shaped(sample: pd.Series) -> pd.Series | None:
    """The distinct values when nearly all are words of letters (no digits, no symbols), else None."""
    distinct = _plain_text(pd.unique(sample))
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
    distinct = _plain_text(pd.unique(sample)).str.strip()
    if not len(distinct):
        return 0.0
    parts = distinct.str.split(n=1)
    first, rest = _plain_text(parts.str[0]), _plain_text(parts.str[1].astype(object).where(parts.str.len() > 1, ""))
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
        people_like = rate >= 0.3 and _rate(_last_name_mask(_plain_text(pd.unique(sample)))) >= 0.3
        if (is_person_table and (named or rate >= 0.3)) or people_like:
            method = "name+values" if named and rate >= 0.3 else ("name" if named else "values")
            out.append(PiiFinding(table=table, column=column, kind="company", method=method,
                                  confidence=round(min(1.0, 0.6 + 0.4 * rate), 4), policy=DEFAULT_POLICY["company"],
                                  match_rate=round(rate, 4)))
    return out


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
    texts = values.to_numpy(dtype=object)
    out: list = [pd.NA] * len(texts)
    hit = np.zeros(len(texts), dtype=bool)
    rows = [sources_j.to_numpy(dtype=object) for sources_j in sources]
    if rows or mentions is not None:  # with neither, nothing can be replaced: every value stays as it is
        for i, text in enumerate(texts):
            if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)):
                continue
            templated, n = _template_row(str(text), [r[i] for r in rows], first_index) if rows else (str(text), 0)
            templated, m = _template_mentions(templated, mentions)
            out[i], hit[i] = templated, (n + m) > 0
    else:
        out = [pd.NA if t is None or t is pd.NA or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    return pd.Series(out, dtype=object), pd.Series(hit)


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
        table, column = split_ref(ref, "pii key")
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
