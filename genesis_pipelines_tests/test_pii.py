"""PII detection and policies, on real Chinook tables and on Faker-made columns."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from faker import Faker
from faker.providers.person.en_US import Provider as EnUsPerson

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.privacy.pii import (
    PiiFinding,
    detect_column,
    fill_synthetic,
    find_leaks,
    forbidden_values,
    normalize_value,
    prepare_for_training,
    scan_tables,
)
from genesis_pipelines.engine.privacy.pii import leaks as pii_leaks
from genesis_pipelines.engine.privacy.pii.fakes import _slug
from genesis_pipelines.engine.privacy.pii.normalise import _normalize_series
from genesis_pipelines.engine.privacy.pii.patterns import _EMAIL, _SSN, _card_mask, _iban_mask, _ip_mask
from genesis_pipelines.engine.sources.io import read_source_table
from genesis_pipelines.engine.sources.locations import source_table_names
from genesis_pipelines_tests.helpers import corpus_dir

CHINOOK = corpus_dir() / "chinook"


def _chinook_spec(**extra):
    return parse_spec({"name": "chinook", "source": {"kind": "csv_folder", "path": str(CHINOOK)}, **extra})


@pytest.fixture(scope="module")
def chinook():
    if not CHINOOK.is_dir():
        pytest.skip(f"Chinook data not found at {CHINOOK}")
    spec = _chinook_spec()
    tables = {name: read_source_table(spec, name) for name in source_table_names(spec)}
    schema = analyse(spec, tables)
    return spec, tables, schema


@pytest.fixture(scope="module")
def findings(chinook):
    spec, tables, schema = chinook
    return scan_tables(tables, schema, spec)


def _by_ref(findings):
    return {f.ref: f for f in findings}


# ---------------------------------------------------------------- detection on Chinook

EXPECTED_CHINOOK = {
    "Customer.FirstName": "first_name", "Customer.LastName": "last_name", "Customer.Address": "street_address",
    "Customer.City": "city", "Customer.PostalCode": "postal_code", "Customer.Phone": "phone",
    "Customer.Fax": "phone", "Customer.Email": "email",
    "Employee.FirstName": "first_name", "Employee.LastName": "last_name", "Employee.BirthDate": "birth_date",
    "Employee.Address": "street_address", "Employee.City": "city", "Employee.PostalCode": "postal_code",
    "Employee.Phone": "phone", "Employee.Fax": "phone", "Employee.Email": "email",
    "Invoice.BillingAddress": "street_address", "Invoice.BillingCity": "city",
    "Invoice.BillingPostalCode": "postal_code",
    # real (public) people by role: the values are person names, so they are replaced like any other
    "Track.Composer": "person_name",
    # a customer's employer, in a table of people: organisation PII
    "Customer.Company": "company",
}


def test_chinook_direct_identifiers_are_found_and_nothing_else(findings):
    found = {ref: f.kind for ref, f in _by_ref(findings).items()}
    assert found == EXPECTED_CHINOOK


def test_chinook_values_confirm_the_names(findings):
    by_ref = _by_ref(findings)
    for ref in ("Customer.Email", "Customer.Phone", "Customer.FirstName", "Customer.Address", "Customer.PostalCode",
                "Employee.BirthDate", "Employee.Email"):
        finding = by_ref[ref]
        assert finding.method == "name+values", ref
        assert finding.match_rate >= 0.8, ref
        assert finding.confidence >= 0.9, ref
        assert finding.policy == "fake", ref


def test_city_is_kept_as_a_quasi_identifier(findings):
    city = _by_ref(findings)["Customer.City"]
    assert (city.kind, city.method, city.policy) == ("city", "name", "keep")


@pytest.mark.parametrize("ref", ["Genre.Name", "Track.Name", "Invoice.Total", "MediaType.Name", "Playlist.Name",
                                 "Artist.Name", "Album.Title", "Employee.Title", "Employee.HireDate",
                                 "Customer.Company", "Customer.Country", "Customer.SupportRepId"])
def test_chinook_non_pii_is_not_flagged(chinook, ref):
    _, tables, schema = chinook
    table, column = ref.split(".")
    assert detect_column(table, column, tables[table][column], schema.tables[table].columns[column].sdtype) is None


def test_key_columns_are_never_scanned(findings, chinook):
    _, _, schema = chinook
    for f in findings:
        assert f.column not in schema.key_columns(f.table)


def test_findings_carry_no_real_values(chinook, findings):
    _, tables, _ = chinook
    payload = json.dumps([f.model_dump() for f in findings]).casefold()
    real = {v for v in forbidden_values(tables, findings) if len(v) >= 6}
    assert real and not [v for v in real if v in payload]


# ---------------------------------------------------------------- detection by name and by values

FAKE = Faker("en_US")
FAKE.seed_instance(7)


def _fakes(method: str, n: int = 300) -> pd.Series:
    return pd.Series([str(getattr(FAKE, method)()) for _ in range(n)], dtype="string")


@pytest.mark.parametrize(("column", "method", "kind"), [
    ("email", "email", "email"), ("e_mail", "email", "email"), ("EMailAddress", "email", "email"),
    ("phone", "phone_number", "phone"), ("fax_no", "phone_number", "phone"), ("mobile", "phone_number", "phone"),
    ("tel", "phone_number", "phone"), ("FirstName", "first_name", "first_name"),
    ("first_name", "first_name", "first_name"), ("surname", "last_name", "last_name"),
    ("last_name", "last_name", "last_name"), ("full name", "name", "person_name"),
    ("customer_name", "name", "person_name"), ("street", "street_address", "street_address"),
    ("HomeAddress", "street_address", "street_address"), ("zip", "postcode", "postal_code"),
    ("postcode", "postcode", "postal_code"), ("ZIPCode", "postcode", "postal_code"),
    ("ip", "ipv4", "ip_address"), ("IPv6", "ipv6", "ip_address"), ("cc_number", "credit_card_number", "card_number"),
    ("ssn", "ssn", "national_id"), ("passport_no", "passport_number", "national_id"), ("iban", "iban", "iban"),
    ("BillingCity", "city", "city"),
])
def test_detection_by_column_name(column, method, kind):
    finding = detect_column("T", column, _fakes(method), "text")
    assert finding is not None and finding.kind == kind
    assert finding.method in ("name", "name+values")


@pytest.mark.parametrize(("method", "kind"), [
    ("email", "email"), ("ipv4", "ip_address"), ("ipv6", "ip_address"), ("credit_card_number", "card_number"),
    ("iban", "iban"), ("ssn", "national_id"), ("street_address", "street_address"),
])
def test_detection_by_values_alone(method, kind):
    finding = detect_column("T", "col_a", _fakes(method), "text")
    assert finding is not None
    assert (finding.kind, finding.method) == (kind, "values")
    assert finding.match_rate >= 0.8 and 0 < finding.confidence <= 1


def test_formatted_phones_found_by_values():
    phones = pd.Series([f"+1 ({FAKE.numerify('###')}) {FAKE.numerify('###-####')}" for _ in range(200)], dtype="string")
    assert detect_column("T", "col_a", phones, "text").kind == "phone"


def _break_last_digit(values: pd.Series) -> pd.Series:
    return values.str[:-1] + values.str[-1].map(lambda d: str((int(d) + 1) % 10))


def test_luhn_and_mod97_checks_reject_near_misses():
    cards = _fakes("credit_card_number")
    assert detect_column("T", "col_a", _break_last_digit(cards), "text") is None
    ibans = _fakes("iban")
    assert detect_column("T", "col_a", _break_last_digit(ibans), "text") is None
    valid = pd.Series(["4539 1488 0343 6467", "GB82WEST12345698765432", "DE89370400440532013000"], dtype="string")
    assert list(_card_mask(valid)) == [True, False, False]
    assert list(_iban_mask(valid)) == [False, True, True]
    assert not _iban_mask(pd.Series(["GB82WEST12345698765431"], dtype="string")).iloc[0]


def test_ssn_pattern_rejects_impossible_numbers():
    values = pd.Series(["123-45-6789", "000-12-3456", "666-12-3456", "912-12-3456", "123-00-6789"], dtype="string")
    assert list(values.str.fullmatch(_SSN)) == [True, False, False, False, False]


def test_numeric_columns_need_a_name():
    numbers = pd.Series(np.arange(10_000, 10_300), dtype="Int64")
    assert detect_column("T", "amount", numbers, "integer") is None
    assert detect_column("T", "zip", numbers, "integer").kind == "postal_code"
    cards = pd.Series([int(c) for c in _fakes("credit_card_number") if len(c) >= 13], dtype="Int64")
    finding = detect_column("T", "card_number", cards, "integer")
    assert finding.kind == "card_number" and finding.method == "name+values"
    assert detect_column("T", "col_a", cards, "integer") is None


def test_qualified_names_and_booleans_are_not_pii():
    assert detect_column("T", "phone_type", pd.Series(["mobile", "home"] * 50, dtype="string"), "categorical") is None
    assert detect_column("T", "email_verified", pd.Series([True, False] * 50), "boolean") is None
    assert detect_column("T", "mac_address", pd.Series(["00:1B:44:11:3A:B7"] * 5, dtype="string"), "text") is None


def test_birth_date_needs_a_date_column():
    dates = pd.Series(pd.to_datetime(["1962-02-18", "1958-12-08", "1973-08-29"]))
    assert detect_column("T", "dob", dates, "datetime").kind == "birth_date"
    assert detect_column("T", "DateOfBirth", dates, "datetime").kind == "birth_date"
    assert detect_column("T", "created_at", dates, "datetime") is None
    places = pd.Series(["Lisbon", "Paris", "Oslo"] * 10, dtype="string")
    assert detect_column("T", "birth_city", places, "categorical").kind == "city"


def test_bare_name_column_counts_only_when_values_look_like_people():
    people = _fakes("name")
    finding = detect_column("Person", "Name", people, "text")
    assert finding.kind == "person_name" and finding.method == "name+values"
    # words and a number look like an address to a naive pattern; neither a person nor an address here
    products = pd.Series([f"{FAKE.word().title()} {FAKE.word()} {i}" for i in range(300)], dtype="string")
    assert detect_column("Product", "Name", products, "text") is None
    assert detect_column("Product", "Name", products.str.replace(r" \d+$", "", regex=True), "text") is None


# ---------------------------------------------------------------- spec overrides


def test_spec_overrides_and_declared_columns(chinook):
    _, tables, schema = chinook
    spec = _chinook_spec(pii={"Customer.Email": "hash", "Customer.Company": "keep", "Genre.Name": "mask"})
    by_ref = _by_ref(scan_tables(tables, schema, spec))
    email = by_ref["Customer.Email"]
    assert (email.kind, email.policy, email.policy_from_spec) == ("email", "hash", True)
    company = by_ref["Customer.Company"]
    assert (company.kind, company.policy, company.policy_from_spec) == ("company", "keep", True)
    assert by_ref["Genre.Name"].policy == "mask"
    assert by_ref["Customer.Phone"].policy == "fake"


@pytest.mark.parametrize(("ref", "named"), [("Nope.Email", "'Nope'"), ("Customer.Nope", "Customer.Nope"),
                                            ("Customer.CustomerId", "Customer.CustomerId")])
def test_spec_override_on_unknown_or_key_column_is_an_error(chinook, ref, named):
    _, tables, schema = chinook
    with pytest.raises(SpecError, match=named.replace(".", r"\.")):
        scan_tables(tables, schema, _chinook_spec(pii={ref: "drop"}))


# ---------------------------------------------------------------- training-time policies


def _finding(table, column, kind, policy):
    return PiiFinding(table=table, column=column, kind=kind, method="name", confidence=0.9, policy=policy)


def test_prepare_for_training_applies_each_policy(chinook):
    _, tables, _ = chinook
    customer = tables["Customer"]
    before = customer.copy()
    policies = [_finding("Customer", "Email", "email", "fake"), _finding("Customer", "Fax", "phone", "drop"),
                _finding("Customer", "Phone", "phone", "hash"), _finding("Customer", "PostalCode", "postal_code", "mask"),
                _finding("Customer", "City", "city", "keep"), _finding("Employee", "Email", "email", "hash")]
    out = prepare_for_training("Customer", customer, policies, hash_key=b"k1")
    assert "Email" not in out and "Fax" not in out
    pd.testing.assert_series_equal(out["City"], customer["City"])
    pd.testing.assert_frame_equal(customer, before)  # the input is not modified
    tokens = out["Phone"]
    assert tokens.isna().equals(customer["Phone"].isna())
    assert tokens.dropna().str.fullmatch(r"[0-9a-f]{16}").all()
    assert not tokens.dropna().isin(customer["Phone"].dropna()).any()
    masked = out["PostalCode"].dropna()
    real = customer["PostalCode"].dropna()
    assert (masked.str.len() == real.str.len()).all()
    assert masked.str.fullmatch(r"[9xX \-]+").all()


def test_hash_is_keyed_and_deterministic():
    values = pd.Series(["a@x.org", "b@x.org", "a@x.org", None], dtype="string")
    finding = [_finding("T", "email", "email", "hash")]
    frame = pd.DataFrame({"email": values})
    first = prepare_for_training("T", frame, finding, hash_key=b"secret")["email"]
    again = prepare_for_training("T", frame, finding, hash_key=b"secret")["email"]
    other = prepare_for_training("T", frame, finding, hash_key=b"another")["email"]
    assert first.equals(again)
    assert first[0] == first[2] != first[1] and pd.isna(first[3])
    assert (first.dropna() != other.dropna()).all()


def test_hash_without_a_key_names_the_column_and_env_var():
    frame = pd.DataFrame({"email": pd.Series(["private@x.org"], dtype="string")})
    with pytest.raises(SpecError) as raised:
        prepare_for_training("T", frame, [_finding("T", "email", "email", "hash")], hash_key=None)
    message = str(raised.value)
    assert "T.email" in message and "GENESIS_HASH_KEY" in message and "private" not in message


def test_mask_keeps_the_shape():
    masked = pii.mask_series(pd.Series(["Ab-12 z", "Ünï 7/B", None], dtype="string"))
    assert list(masked[:2]) == ["Xx-99 x", "Xxx 9/X"] and pd.isna(masked[2])


# ---------------------------------------------------------------- output-time fakes

ALL_KINDS = pii.PII_KINDS + (pii.DECLARED_KIND,)


def _fill(kinds, n=500, seed=0, forbidden=frozenset(), **kwargs):
    findings = [_finding("T", kind, kind, "fake") for kind in kinds]
    return fill_synthetic("T", pd.DataFrame(), findings, n_rows=n, column_order=list(kinds), seed=seed,
                          forbidden=forbidden, **kwargs)


def test_fill_synthetic_orders_columns_and_leaves_out_dropped_ones():
    synthetic = pd.DataFrame({"id": range(5), "country": ["PT"] * 5})
    findings = [_finding("T", "email", "email", "fake"), _finding("T", "fax", "phone", "drop"),
                _finding("T", "token", "email", "hash"), _finding("Other", "name", "person_name", "fake")]
    synthetic["token"] = "0123456789abcdef"
    out = fill_synthetic("T", synthetic, findings, n_rows=5, column_order=["id", "email", "fax", "token", "country"])
    assert list(out.columns) == ["id", "email", "token", "country"]
    assert out["email"].str.fullmatch(_EMAIL).all()
    assert out["token"].eq("0123456789abcdef").all()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_is_generated_seeded_and_full(kind):
    out = _fill([kind], n=300, seed=3)
    again = _fill([kind], n=300, seed=3)
    other = _fill([kind], n=300, seed=4)
    pd.testing.assert_frame_equal(out, again)
    assert not out[kind].equals(other[kind])
    assert out[kind].notna().all()
    if kind == "birth_date":
        assert pd.api.types.is_datetime64_any_dtype(out[kind])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_no_forbidden_value_is_ever_emitted(kind):
    # forbid exactly what this seed produced: every first try collides and must be regenerated
    first = _fill([kind], n=400, seed=5)
    forbidden = set(_normalize_series(first[kind]))
    second = _fill([kind], n=400, seed=5, forbidden=forbidden)
    assert not _normalize_series(second[kind]).isin(forbidden).any()
    assert second[kind].notna().all() or kind == "birth_date"


def test_forbidden_faker_first_names_are_avoided():
    names = list(EnUsPerson.first_names)
    forbidden = {normalize_value(n) for n in names[: len(names) * 9 // 10]}
    out = _fill(["first_name", "person_name"], n=2000, forbidden=forbidden)
    assert not out["first_name"].map(normalize_value).isin(forbidden).any()
    assert out["first_name"].nunique() > 10
    everything = {normalize_value(n) for n in names}
    out = _fill(["first_name"], n=200, forbidden=everything)
    assert not out["first_name"].map(normalize_value).isin(everything).any()


def test_generated_values_are_well_formed():
    out = _fill(["first_name", "last_name", "email", "card_number", "iban", "ip_address", "national_id"], n=2000)
    assert _card_mask(out["card_number"].astype(str)).all()
    assert _iban_mask(out["iban"].astype(str)).all()
    assert _ip_mask(out["ip_address"].astype(str)).all()
    assert out["national_id"].str.fullmatch(r"\d{3}-\d{2}-\d{4}").all()
    emails = out["email"]
    assert emails.str.fullmatch(_EMAIL).all()
    assert emails.str.split("@").str[1].isin(["example.com", "example.net", "example.org"]).all()
    # emails follow the row's fake names
    surnames = _slug(out["last_name"].to_numpy(dtype=object))
    assert np.mean([s in e for s, e in zip(surnames, emails)]) > 0.95


def test_fill_synthetic_is_fast_and_emails_stay_unique():
    start = time.process_time()  # CPU seconds: a loaded machine stretches wall time, not the work done
    out = _fill(["email"], n=100_000)
    assert time.process_time() - start < 10
    assert out["email"].nunique() / len(out) > 0.99


def test_null_rates_blank_that_share_of_rows():
    out = _fill(["phone", "birth_date"], n=1000, null_rates={"phone": 0.25, "birth_date": 0.1})
    assert out["phone"].isna().sum() == 250
    assert out["birth_date"].isna().sum() == 100


def test_unknown_locale_is_a_spec_error():
    with pytest.raises(SpecError, match="xx_XX"):
        _fill(["first_name"], n=5, locale="xx_XX")


# ---------------------------------------------------------------- normalisation and leaks


def test_normalize_value():
    assert normalize_value("  Foo \t  BAR ") == "foo bar"
    assert normalize_value("STRASSE") == normalize_value("straße")
    assert normalize_value(pd.Timestamp("1962-02-18 13:00")) == "1962-02-18"
    assert normalize_value(12.0) == "12" and normalize_value(7) == "7"
    assert normalize_value(None) == "" and normalize_value(float("nan")) == ""


def test_vectorised_normalisation_matches_normalize_value(chinook):
    _, tables, _ = chinook
    for table, column in [("Customer", "Address"), ("Employee", "BirthDate"), ("Track", "Milliseconds"),
                          ("Invoice", "Total")]:
        series = tables[table][column]
        assert list(_normalize_series(series)) == [normalize_value(v) for v in series.dropna()]


def test_forbidden_values_skip_kept_columns(chinook, findings):
    _, tables, _ = chinook
    forbidden = forbidden_values(tables, findings)
    assert normalize_value(tables["Customer"]["Email"].iloc[0]) in forbidden
    assert normalize_value(tables["Employee"]["BirthDate"].iloc[0]) in forbidden
    kept_only = set(tables["Customer"]["City"].map(normalize_value)) - {
        normalize_value(v) for f in findings if f.policy != "keep" for v in tables[f.table][f.column].dropna()}
    assert kept_only and not kept_only & forbidden


def test_find_leaks_counts_planted_real_values(chinook, findings):
    spec, tables, _ = chinook
    forbidden = forbidden_values(tables, findings)
    customer = tables["Customer"]
    train = prepare_for_training("Customer", customer, findings, hash_key=None)
    synthetic = fill_synthetic("Customer", train.reset_index(drop=True), findings, n_rows=len(customer),
                               column_order=list(customer.columns), forbidden=forbidden, seed=spec.seed)
    employee = fill_synthetic("Employee", tables["Employee"].drop(columns=["BirthDate", "Email"]), findings,
                              n_rows=len(tables["Employee"]), column_order=list(tables["Employee"].columns),
                              forbidden=forbidden)
    assert find_leaks({"Customer": synthetic, "Employee": employee}, forbidden) == {}
    planted = synthetic.copy()
    planted.loc[[0, 5, 9], "Email"] = customer["Email"].iloc[[3, 4, 5]].str.upper().to_numpy()
    employee.loc[2, "BirthDate"] = tables["Employee"]["BirthDate"].iloc[6]
    leaks = find_leaks({"Customer": planted, "Employee": employee}, forbidden)
    assert leaks == {"Customer": {"Email": 3}, "Employee": {"BirthDate": 1}}
    assert find_leaks({"Customer": customer}, forbidden)["Customer"]["Email"] == len(customer)




# ---------------------------------------------------------------- free text, consistent fakes, snippets


def _notes(locale: str, n: int = 200, pii_every: int = 2) -> pd.Series:
    fake = Faker(locale)
    fake.seed_instance(7)
    values = []
    for i in range(n):
        if i % pii_every == 0:
            values.append(f"Spoke with {fake.name()} on {fake.phone_number()} about ticket {i}"
                          if i % 4 == 0 else f"Forward the receipt to {fake.email()} for ticket {i}")
        else:
            values.append(fake.sentence(nb_words=9))
    return pd.Series(values, dtype="string")


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr_FR", "pt_BR", "it_IT"])
def test_free_text_mentioning_people_is_flagged(locale):
    finding = detect_column("T", "comments", _notes(locale), "text")
    assert finding is not None and finding.kind == "free_text_pii" and finding.policy == "fake"
    assert finding.match_rate >= 0.3


def test_prose_without_pii_and_short_labels_are_not_free_text_pii():
    fake = Faker("en_US")
    fake.seed_instance(1)
    prose = pd.Series([fake.sentence(nb_words=10) for _ in range(200)], dtype="string")
    assert detect_column("T", "description", prose, "text") is None
    dates = pd.Series([f"Shipped on 2024-03-{d:02d} in {n} boxes, tracking pending" for d, n in zip(range(1, 29), range(28))] * 5)
    assert detect_column("T", "status_text", dates, "text") is None


def test_free_text_fakes_are_sentences_that_avoid_real_values():
    out = _fill(["free_text_pii"], n=300, seed=2)
    assert out["free_text_pii"].str.split().str.len().min() >= 2
    assert not out["free_text_pii"].str.contains("@").any()


def _consistent(table, column, kind):
    return PiiFinding(table=table, column=column, kind=kind, method="name", confidence=0.9, policy="fake", consistent=True)


def test_consistent_fakes_map_one_real_value_to_one_fake_across_tables():
    key = b"test-key"
    addresses = pd.Series(["12 Main St", "99 Elm Road", "12 main st ", None], dtype="string")
    customer = prepare_for_training("Customer", pd.DataFrame({"Address": addresses}), [_consistent("Customer", "Address", "street_address")], hash_key=key)
    invoice = prepare_for_training("Invoice", pd.DataFrame({"BillingAddress": addresses.iloc[::-1].reset_index(drop=True)}),
                                   [_consistent("Invoice", "BillingAddress", "street_address")], hash_key=key)
    tokens = customer["Address"]
    assert tokens[0] == tokens[2] != tokens[1] and pd.isna(tokens[3])  # normalised before keying
    assert not tokens.dropna().str.contains("main", case=False).any()
    fake_customer = fill_synthetic("Customer", customer, [_consistent("Customer", "Address", "street_address")],
                                   n_rows=4, column_order=["Address"], seed=1)
    fake_invoice = fill_synthetic("Invoice", invoice, [_consistent("Invoice", "BillingAddress", "street_address")],
                                  n_rows=4, column_order=["BillingAddress"], seed=99, locale="en_US")
    assert fake_customer["Address"][0] == fake_customer["Address"][2] == fake_invoice["BillingAddress"][1]
    assert fake_customer["Address"][1] == fake_invoice["BillingAddress"][2]
    assert fake_customer["Address"][0] != fake_customer["Address"][1]
    assert pd.isna(fake_customer["Address"][3])
    other_key = prepare_for_training("Customer", pd.DataFrame({"Address": addresses}),
                                     [_consistent("Customer", "Address", "street_address")], hash_key=b"other")
    assert other_key["Address"][0] != tokens[0]  # the key, not the value alone, decides the fake


def test_consistent_fakes_need_the_key_and_avoid_real_values():
    with pytest.raises(SpecError, match="GENESIS_HASH_KEY"):
        prepare_for_training("T", pd.DataFrame({"email": ["a@b.co"]}), [_consistent("T", "email", "email")], hash_key=None)
    tokens = pd.Series([f"{i:016x}" for i in range(50)], dtype="string")
    first = pii.consistent_fakes(tokens, "person_name")
    forbidden = set(_normalize_series(first))
    second = pii.consistent_fakes(tokens, "person_name", forbidden=forbidden)
    assert not _normalize_series(second).isin(forbidden).any()
    assert pii.consistent_fakes(tokens, "person_name", forbidden=forbidden).equals(second)  # still deterministic


def test_scan_marks_fake_columns_consistent_when_the_spec_asks(chinook):
    _, tables, schema = chinook
    spec = _chinook_spec(pii_consistent_fake=True, pii={"Customer.Company": "keep"})
    findings = scan_tables(tables, schema, spec)
    assert all(f.consistent == (f.policy == "fake") for f in findings)
    assert any(f.consistent for f in findings)


def test_text_snippets_are_stored_as_digests_and_found_in_output(chinook):
    _, real, schema = chinook
    schema = schema.model_copy(deep=True)
    notes = _notes("en_US", n=60)
    tables = {"Track": real["Track"].head(60).assign(Notes=notes.to_numpy())}
    schema.tables["Track"].columns["Notes"] = schema.tables["Track"].columns["Name"].model_copy(update={"name": "Notes", "sdtype": "text"})
    guard = pii.text_shingle_digests(tables, schema, [], salt="s")
    assert guard["width"] == pii.SHINGLE and guard["stride"] == 1 and len(guard["digests"]) > 1000
    assert not any(n[:16].casefold() in json.dumps(guard) for n in notes)
    snippet = notes[2][5:5 + pii.SHINGLE + 3]
    synthetic = {"Track": pd.DataFrame({"Notes": ["nothing real here at all, just words", f"xx {snippet.upper()} yy", None],
                                        "Other": ["a", "b", "c"]})}
    assert pii.find_text_leaks(synthetic, guard, "s") == {"Track": {"Notes": 1}}
    assert pii.find_text_leaks(synthetic, guard, "other salt") == {}
    assert pii.find_text_leaks(synthetic, None, "s") == {}


def test_text_guard_strides_when_text_is_huge(chinook, monkeypatch):
    monkeypatch.setattr(pii_leaks, "MAX_SHINGLES", 500)
    _, real, schema = chinook
    schema = schema.model_copy(deep=True)
    notes = _notes("en_US", n=60)
    schema.tables["Track"].columns["Notes"] = schema.tables["Track"].columns["Name"].model_copy(update={"name": "Notes", "sdtype": "text"})
    guard = pii.text_shingle_digests({"Track": real["Track"].head(60).assign(Notes=notes.to_numpy())}, schema, [], salt="s")
    assert guard["stride"] > 1 and guard["width"] == pii.SHINGLE - guard["stride"] + 1
    for start in (0, 3, 7):  # any 20-character snippet is still caught
        snippet = notes[4][start:start + pii.SHINGLE]
        assert pii.find_text_leaks({"T": pd.DataFrame({"c": [f"-- {snippet} --"]})}, guard, "s") == {"T": {"c": 1}}
