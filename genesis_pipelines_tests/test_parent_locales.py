"""Fakes follow a country that sits behind foreign keys (engine/privacy/pii/parent_locales.py): customer -> address -> city ->
country, on small tables made here (sakila's shape; the corpus check is benchmarks/bench_corpus.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.privacy.pii.parent_locales import ancestors_to_read, inherited_locales
from genesis_pipelines.engine.synthesis import relational

SPEC = {
    "name": "shop",
    "seed": 0,
    "tables": {"country": {"primary_key": "country_id"}, "city": {"primary_key": "city_id"},
               "address": {"primary_key": "address_id"}, "customer": {"primary_key": "customer_id"}},
    "foreign_keys": [{"child": "city.country_id", "parent": "country.country_id"},
                     {"child": "address.city_id", "parent": "city.city_id"},
                     {"child": "customer.address_id", "parent": "address.address_id"}],
}


def _shop(n_addresses: int = 240) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    country = pd.DataFrame({"country_id": [1, 2, 3], "country": ["Spain", "United States", "Germany"]})
    city = pd.DataFrame({"city_id": np.arange(1, 31), "country_id": np.arange(30) % 3 + 1,
                         "city": [f"Town{i}" for i in range(30)]})
    city_of = rng.integers(1, 31, n_addresses)
    address = pd.DataFrame({
        "address_id": np.arange(1, n_addresses + 1), "city_id": city_of,
        "address": [f"{int(rng.integers(1, 999))} Main Street" for _ in range(n_addresses)],
        "phone": [f"{int(rng.integers(100, 999))}-{int(rng.integers(100, 999))}-{int(rng.integers(1000, 9999))}"
                  for _ in range(n_addresses)],
    })
    customer = pd.DataFrame({"customer_id": np.arange(1, n_addresses + 1), "address_id": np.arange(1, n_addresses + 1),
                             "first_name": rng.choice(["Mary", "John", "Linda", "James", "Anna", "Peter"], n_addresses),
                             "last_name": rng.choice(["Smith", "Jones", "Brown", "Miller", "Davis", "Wilson"], n_addresses)})
    return {"country": country, "city": city, "address": address, "customer": customer}


def test_locale_of_each_row_read_through_two_and_three_fk_hops():
    tables = _shop(30)
    schema = analyse(parse_spec(SPEC), tables)
    expected = tables["city"].set_index("city_id")["country_id"].map({1: "es_ES", 2: "en_US", 3: "de_DE"})
    via_city = inherited_locales(schema, "address", tables["address"], tables, "en_GB")
    assert list(via_city) == list(tables["address"]["city_id"].map(expected))
    via_address = inherited_locales(schema, "customer", tables["customer"], tables, "en_GB")
    assert list(via_address) == list(via_city)  # customer i lives at address i
    assert inherited_locales(schema, "city", tables["city"], {"country": tables["country"]}, "en_GB") is not None
    assert inherited_locales(schema, "country", tables["country"], tables, "en_GB") is None  # its own column
    assert ancestors_to_read(schema, "customer", True) == ["city", "country"]  # beyond its parent, address
    assert ancestors_to_read(schema, "customer", False) == []


def test_an_unknown_or_missing_ancestor_row_gets_the_default_locale():
    tables = _shop(30)
    schema = analyse(parse_spec(SPEC), tables)
    address = tables["address"].copy()
    address.loc[:4, "city_id"] = 999  # no such city
    locales = inherited_locales(schema, "address", address, tables, "en_GB")
    assert (locales[:5] == "en_GB").all() and (locales[5:] != "en_GB").all()


@pytest.mark.slow
def test_synthetic_addresses_and_customers_follow_the_country_behind_their_fks(tmp_path):
    tables = _shop()
    spec = parse_spec(SPEC)
    schema = analyse(spec, tables)
    findings = pii.scan_tables(tables, schema, spec)
    assert {("address", "phone"), ("address", "address")} <= {(f.table, f.column) for f in findings if f.policy == "fake"}
    relational.train(spec, schema, tables, findings, tmp_path)
    model, model_dir = relational.load_model(tmp_path)
    out = relational.generate_all(model, model_dir, seed=1)
    joined = (out["address"].merge(out["city"][["city_id", "country_id"]], on="city_id")
              .merge(out["country"][["country_id", "country"]], on="country_id"))
    spain, usa = joined[joined["country"] == "Spain"], joined[joined["country"] == "United States"]
    assert len(spain) > 20 and len(usa) > 20
    assert spain["phone"].str.startswith("+34").all() and not usa["phone"].str.startswith("+34").any()
    from faker.providers.address.es_ES import Provider as SpanishAddress

    spanish_streets = "^(?:" + "|".join(SpanishAddress.street_prefixes) + ")"
    assert spain["address"].str.contains(spanish_streets).mean() > 0.9
    assert not usa["address"].str.contains(spanish_streets).any()
