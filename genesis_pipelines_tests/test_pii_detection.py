"""PII found wherever it is (values under any header, derived columns, mentions, companies) and faked in keeping
with the row (locale from its country, derived values from the row's fakes); the leak check looks at PII only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.privacy.pii.normalise import _fold_series

SURNAMES_MIXED = ["Müller", "Dubois", "García", "Rossi", "Kowalski", "Johansson", "Novák", "Silva", "Jansen", "Smith",
                  "Fernández", "Moreau", "Schneider", "Bianchi", "Nowak", "Lindqvist", "Dvořák", "Santos", "Bakker",
                  "Taylor", "López", "Lefebvre", "Fischer", "Romano"]
FIRST_MIXED = ["Amélie", "Jürgen", "Lucía", "Giulia", "Piotr", "Sven", "Tomáš", "João", "Sanne", "Oliver", "Carmen",
               "Étienne", "Lukas", "Chiara", "Zofia", "Ingrid", "Jana", "Beatriz", "Daan", "Emily"]


def _scan(tables: dict[str, pd.DataFrame], primary_keys: dict[str, str], foreign_keys=(), **spec_fields):
    spec = DatasetSpec(name="t", tables={t: {"primary_key": k} for t, k in primary_keys.items()},
                       foreign_keys=[{"child": c, "parent": p} for c, p in foreign_keys], **spec_fields)
    schema = analyse(spec, tables)
    return pii.scan_tables(tables, schema, spec), schema


def _refs(findings):
    return {f.ref: f for f in findings}


def _people(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first = rng.choice(FIRST_MIXED, size=n)
    last = rng.choice(SURNAMES_MIXED, size=n)
    return pd.DataFrame({"id": np.arange(1, n + 1), "first": first, "last": last})


# ---------------------------------------------------------------- 1. detection by values, under any header


@pytest.mark.parametrize("header", ["Prénom 名前", "col_7", "c3"])
def test_names_are_found_from_values_under_any_header(header):
    people = _people(60)
    found_last = pii.detect_column("T", header, pd.Series(SURNAMES_MIXED * 3), "categorical")
    found_first = pii.detect_column("T", header, pd.Series(FIRST_MIXED * 3), "categorical")
    full = pii.detect_column("T", header, people["first"] + " " + people["last"], "categorical")
    assert (found_last.kind, found_last.method) == ("last_name", "values") and 0.5 < found_last.confidence < 1
    assert (found_first.kind, found_first.method) == ("first_name", "values")
    assert full.kind == "person_name" and full.match_rate == 1.0


@pytest.mark.parametrize("values", [
    ["Sales Manager", "Sales Support Agent", "IT Manager", "IT Staff", "General Manager", "Accountant"],  # job titles
    ["ACADEMY DINOSAUR", "ACE GOLDFINGER", "ADAPTATION HOLES", "AFFAIR PREJUDICE", "AGENT TRUMAN", "AIRPLANE SIERRA"],
    ["Rock", "Jazz", "Metal", "Alternative & Punk", "Blues", "Latin", "Reggae", "Pop", "Soundtrack", "Classical"],
    ["Lisbon", "Madrid", "Oslo", "Prague", "Vienna", "Dublin", "Warsaw", "Budapest", "Helsinki", "Stockholm"],
    ["English", "Italian", "Japanese", "Mandarin", "French", "German"],
])
def test_titles_genres_cities_and_jobs_are_not_names(values):
    assert pii.detect_column("T", "c1", pd.Series(values * 5), "categorical") is None


def test_a_surname_column_beside_first_names_is_found_though_faker_knows_few_of_them():
    people = _people(40)
    rare = ["Guiness", "Wahlberg", "Chase", "Davis", "Lollobrigida", "Nicholson", "Mostel", "Johansson", "Swank",
            "Gable", "Cage", "Berry", "Wood", "Bergen", "Olivier", "Costner", "Voight", "Torn", "Fawcett", "Tracy"]
    people["c3"] = (rare * 2)[:40]
    people["c4"] = ["Madrid", "Lisbon", "Oslo", "Prague"] * 10
    findings, _ = _scan({"P": people.rename(columns={"first": "c2"})}, {"P": "id"})
    by_ref = _refs(findings)
    assert by_ref["P.c2"].kind == "first_name" and by_ref["P.c3"].kind == "last_name"
    assert "P.c4" not in by_ref


def test_bare_phones_postcodes_and_birth_dates_are_found_beside_a_persons_record_and_nowhere_else():
    """Headerless columns that values alone cannot tell from amounts, codes and event dates: an unformatted phone
    read as a float, a 5-digit postcode and a birth date, found because the row also holds a name and an address;
    the same shapes in a table of orders (no person, no address) are left alone."""
    rng = np.random.default_rng(7)
    n = 60
    people = _people(n, seed=3).rename(columns={"first": "c2", "last": "c3"})
    people["c4"] = [f"{rng.integers(1, 999)} {rng.choice(['Oak', 'Elm', 'Mill'])} Street" for _ in range(n)]
    people["c5"] = rng.integers(10_000_000_000, 99_999_999_999, n).astype("float64")  # 1.403334e+10
    people["c6"] = rng.integers(10_000, 99_999, n).astype("float64")
    people["c7"] = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 40 * 365, n), unit="D")
    people["c8"] = pd.to_datetime("2019-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")  # signed up
    orders = pd.DataFrame({"id": np.arange(1, n + 1), "c2": rng.integers(10_000_000_000, 99_999_999_999, n),
                           "c3": rng.integers(10_000, 99_999, n),
                           "c4": pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 40 * 365, n), unit="D")})
    findings, _ = _scan({"P": people, "O": orders}, {"P": "id", "O": "id"})
    by_ref = _refs(findings)
    assert {r: by_ref[r].kind for r in ("P.c5", "P.c6", "P.c7")} == {"P.c5": "phone", "P.c6": "postal_code",
                                                                      "P.c7": "birth_date"}
    assert "P.c8" not in by_ref  # recent dates a few years apart: an event, not a birth
    assert not [f for f in findings if f.table == "O"]


# ---------------------------------------------------------------- 2. derived PII, faked with the row's fakes


def _employees() -> pd.DataFrame:
    people = _people(30, seed=1)
    return pd.DataFrame({
        "EmployeeId": people["id"], "GivenName": people["first"], "FamilyName": people["last"],
        "PhotoPath": "http://intranet/staff/" + _fold_series(people["last"]) + ".bmp",
        "Login": (_fold_series(people["first"]).str[0] + _fold_series(people["last"])),
        "Title": ["Sales Representative", "Sales Manager", "Vice President, Sales"] * 10,
    })


def test_a_path_and_a_login_built_from_the_surname_are_derived_and_follow_the_rows_fake():
    employees = _employees()
    findings, _ = _scan({"Employees": employees}, {"Employees": "EmployeeId"})
    by_ref = _refs(findings)
    for column in ("PhotoPath", "Login"):
        finding = by_ref[f"Employees.{column}"]
        assert finding.kind == "derived_pii" and finding.match_rate == 1.0
        assert {s.column for s in finding.derived_from} == {"GivenName", "FamilyName"}
    assert "Employees.Title" not in by_ref
    learned = pii.prepare_for_training("Employees", employees, findings, hash_key=None)
    assert {"GivenName", "FamilyName"}.isdisjoint(learned.columns)
    real_surnames = set(_fold_series(employees["FamilyName"]))
    assert not any(s in v for v in learned["PhotoPath"] for s in real_surnames)  # the template holds no surname
    out = pii.fill_synthetic("Employees", learned, findings, n_rows=len(employees),
                             column_order=list(employees.columns), seed=3)
    fake_last = _fold_series(out["FamilyName"])
    fake_first = _fold_series(out["GivenName"])
    assert (out["PhotoPath"] == "http://intranet/staff/" + fake_last + ".bmp").all()
    assert (out["Login"] == fake_first.str[0] + fake_last).all()
    assert not out["FamilyName"].isin(employees["FamilyName"]).any()


def test_a_child_column_built_from_its_parents_surname_follows_the_synthetic_parent():
    employees = _employees()[["EmployeeId", "GivenName", "FamilyName"]]
    orders = pd.DataFrame({"OrderId": np.arange(1, 91), "EmployeeId": np.tile(employees["EmployeeId"], 3)})
    orders["Desk"] = "desk-" + orders["EmployeeId"].map(employees.set_index("EmployeeId")["FamilyName"]).str.upper()
    tables = {"Employees": employees, "Orders": orders}
    findings, _ = _scan(tables, {"Employees": "EmployeeId", "Orders": "OrderId"},
                        [("Orders.EmployeeId", "Employees.EmployeeId")])
    desk = _refs(findings)["Orders.Desk"]
    assert desk.kind == "derived_pii" and {(s.table, s.child_key) for s in desk.derived_from} == {("Employees", "EmployeeId")}
    learned = pii.prepare_for_training("Orders", orders, findings, hash_key=None, tables=tables)
    assert not learned["Desk"].str.contains("|".join(employees["FamilyName"].str.upper())).any()
    parent = pii.fill_synthetic("Employees", employees[["EmployeeId"]], findings, n_rows=30,
                                column_order=list(employees.columns), seed=1)
    out = pii.fill_synthetic("Orders", learned, findings, n_rows=90, column_order=list(orders.columns), seed=2,
                             parents={"Employees": parent})
    expected = "desk-" + out["EmployeeId"].map(parent.set_index("EmployeeId")["FamilyName"]).str.upper()
    assert (out["Desk"] == expected).all()


# ---------------------------------------------------------------- 3. notes naming real people; companies


def test_low_cardinality_notes_naming_real_people_are_never_copied_verbatim():
    employees = _employees()[["EmployeeId", "GivenName", "FamilyName"]]
    boss = employees["GivenName"].iloc[0] + " " + employees["FamilyName"].iloc[0]
    other = employees["GivenName"].iloc[5] + " " + employees["FamilyName"].iloc[5]
    employees["Note"] = [f"Reports to {boss}.", f"Hired by {other} in spring.", "Works remotely."] * 10
    findings, _ = _scan({"Employees": employees}, {"Employees": "EmployeeId"})
    note = _refs(findings)["Employees.Note"]
    assert note.kind == "derived_pii" and note.mentions
    learned = pii.prepare_for_training("Employees", employees, findings, hash_key=None)
    assert not learned["Note"].str.contains(employees["FamilyName"].iloc[0]).any()
    assert (learned["Note"] == "Works remotely.").sum() == 10  # text without a person stays as it was
    out = pii.fill_synthetic("Employees", learned, findings, n_rows=30,
                             column_order=list(employees.columns), seed=0)
    assert out["Note"].str.startswith("Reports to ").sum() == 10
    assert not out["Note"].str.contains(boss).any() and not out["Note"].str.contains(other).any()
    assert not out["Note"].str.contains("\u27e6").any()  # every placeholder rendered
    assert pii.normalize_value(f"Reports to {boss}.") in pii.forbidden_values({"Employees": employees}, findings)
    assert "works remotely." not in pii.forbidden_values({"Employees": employees}, findings)


def test_a_company_column_of_people_is_organisation_pii_and_faked_unless_the_spec_keeps_it():
    customers = _people(24)
    customers["Company"] = (["Embraer S.A.", "JetBrains s.r.o.", None, None, "Riotur", "Telus Ltd."] * 4)
    customers["Email"] = _fold_series(customers["first"]) + "@example.org"
    findings, _ = _scan({"Customers": customers}, {"Customers": "id"})
    company = _refs(findings)["Customers.Company"]
    assert company.kind == "company" and company.policy == "fake"
    out = pii.fill_synthetic("Customers", customers[["id"]], findings, n_rows=24, column_order=list(customers.columns),
                             forbidden=pii.forbidden_values({"Customers": customers}, findings))
    assert out["Company"].notna().all() and not out["Company"].isin(customers["Company"].dropna()).any()
    kept, _ = _scan({"Customers": customers}, {"Customers": "id"}, pii={"Customers.Company": "keep"})
    assert _refs(kept)["Customers.Company"].policy == "keep"
    airlines = pd.DataFrame({"carrier": ["AA", "DL", "UA", "B6"], "name": ["American Airlines Inc.", "Delta Air Lines Inc.",
                                                                         "United Air Lines Inc.", "JetBlue Airways"]})
    assert _scan({"airlines": airlines}, {"airlines": "carrier"})[0] == []  # not tied to people: not PII


# ---------------------------------------------------------------- 4. fakes consistent with the row's country


def test_country_names_and_codes_pick_the_rows_faker_locale():
    frame = pd.DataFrame({"Country": ["Spain", "ES", "USA", "Brazil", "Atlantis", None]})
    assert list(pii.row_locales(frame, "en_GB")) == ["es_ES", "es_ES", "en_US", "pt_BR", "en_GB", "en_GB"]
    assert pii.row_locales(pd.DataFrame({"Genre": ["Rock", "Jazz"]}), "en_US") is None


def test_spanish_rows_get_spanish_phone_and_address_and_us_rows_us_ones():
    kinds = {"Name": "person_name", "Street": "street_address", "Zip": "postal_code", "Phone": "phone"}
    findings = [pii.PiiFinding(table="C", column=c, kind=k, method="name", confidence=1.0, policy="fake") for c, k in kinds.items()]
    body = pd.DataFrame({"Country": ["Spain", "USA"] * 200})
    out = pii.fill_synthetic("C", body, findings, n_rows=400, column_order=["Country", *kinds], seed=5)
    spain, usa = out[out["Country"] == "Spain"], out[out["Country"] == "USA"]
    assert spain["Phone"].str.startswith("+34").all() and not usa["Phone"].str.startswith("+34").any()
    from faker.providers.address.es_ES import Provider as SpanishAddress

    spanish_streets = "^(?:" + "|".join(SpanishAddress.street_prefixes) + ")"
    assert spain["Street"].str.contains(spanish_streets).all()
    assert not usa["Street"].str.contains(spanish_streets).any()
    assert spain["Zip"].str.fullmatch(r"\d{5}").all()
    again = pii.fill_synthetic("C", body, findings, n_rows=400, column_order=["Country", *kinds], seed=5)
    assert again.equals(out)  # one seed, one output


# ---------------------------------------------------------------- 5. the leak check looks at PII only


def test_a_job_title_inside_a_real_note_is_not_a_leak_but_the_note_is():
    employees = _employees()[["EmployeeId", "Title"]]
    employees["Notes"] = [f"Joined as {t} after a long career in retail banking and consulting." for t in employees["Title"]]
    spec = DatasetSpec(name="t", tables={"E": {"primary_key": "EmployeeId"}}, column_types={"E.Notes": "text"})
    schema = analyse(spec, {"E": employees})
    guard = pii.text_shingle_digests({"E": employees}, schema, [], salt="s")
    synthetic = {"E": pd.DataFrame({"Title": employees["Title"], "Notes": "Joined as Sales Representative after a long"})}
    assert pii.find_text_leaks(synthetic, guard, "s") == {"E": {"Notes": 30}}
    assert pii.find_text_leaks(synthetic, guard, "s", exempt=["E.Notes"]) == {}


def test_exempt_columns_are_not_checked_and_the_spec_validates_them():
    forbidden = {"andrew"}
    synthetic = {"T": pd.DataFrame({"a": ["Andrew"], "b": ["Andrew"]})}
    assert pii.find_leaks(synthetic, forbidden) == {"T": {"a": 1, "b": 1}}
    assert pii.find_leaks(synthetic, forbidden, exempt=["T.a"]) == {"T": {"b": 1}}
    spec = DatasetSpec(name="t", tables={"T": {"primary_key": "id"}}, pii_leak_exempt=["T.a"])
    assert spec.pii_leak_exempt == ["T.a"]
    with pytest.raises(ValueError, match="pii_leak_exempt"):
        DatasetSpec(name="t", pii_leak_exempt=["no_dot"])
    with pytest.raises(ValueError, match="pii_leak_exempt"):
        DatasetSpec(name="t", tables={"T": {"primary_key": "id"}}, pii_leak_exempt=["U.a"])


def test_findings_and_templates_carry_no_real_value():
    employees = _employees()
    findings, _ = _scan({"Employees": employees}, {"Employees": "EmployeeId"})
    payload = "".join(f.model_dump_json() for f in findings).casefold()
    assert not any(v.casefold() in payload for v in employees["FamilyName"])


def test_a_first_name_that_happens_to_be_a_word_of_a_non_pii_column_is_not_a_leak():
    findings = [pii.PiiFinding(table="P", column="first", kind="first_name", method="name", confidence=1.0, policy="fake"),
                pii.PiiFinding(table="C", column="city", kind="city", method="name", confidence=0.7, policy="keep")]
    forbidden = {"dolores", "dolores smith", "d.smith@mail.org"}
    synthetic = {"C": pd.DataFrame({"city": ["Dolores", "Dolores Smith"], "note": ["Dolores", "d.smith@mail.org"]}),
                 "P": pd.DataFrame({"first": ["Dolores", "Ann"]})}
    assert pii.find_leaks(synthetic, forbidden, findings=findings) == {"C": {"city": 1, "note": 1}, "P": {"first": 1}}
    assert pii.find_leaks(synthetic, forbidden) == {"C": {"city": 2, "note": 2}, "P": {"first": 1}}


def test_a_login_equal_to_the_first_name_follows_the_rows_fake_first_name():
    staff = _people(20).rename(columns={"first": "first_name", "last": "last_name"})
    staff["username"] = staff["first_name"]
    findings, _ = _scan({"staff": staff}, {"staff": "id"})
    login = _refs(findings)["staff.username"]
    assert login.kind == "derived_pii" and [s.column for s in login.derived_from] == ["first_name", "last_name"]
    learned = pii.prepare_for_training("staff", staff, findings, hash_key=None)
    out = pii.fill_synthetic("staff", learned, findings, n_rows=20, column_order=list(staff.columns), seed=4)
    assert (out["username"] == out["first_name"]).all() and not out["username"].isin(staff["first_name"]).any()


def test_value_rates_count_every_sampled_row_not_each_distinct_value():
    """Masks run once per distinct value, weighted by how many rows hold it: 7 distinct emails on 70 rows beside
    one junk token on 30 rows is a rate of 0.7 (not 7 of 8 distinct values)."""
    values = pd.Series([f"user{i % 7}@example.com" for i in range(70)] + ["n/a"] * 30).sample(frac=1, random_state=0)
    found = pii.detect_column("t", "contact_email", values.reset_index(drop=True), "categorical")
    assert found.kind == "email" and found.match_rate == 0.7 and found.method == "name+values"
