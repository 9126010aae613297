"""Keys, foreign keys (declared and inferred), generation order and schema errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.fk_graph import generation_order
from genesis_pipelines.engine.analysis.schema_inference import analyse, infer_sdtype
from genesis_pipelines.engine.core.errors import SchemaError
from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey
from genesis_pipelines.engine.core.spec import DatasetSpec, load_spec, parse_spec
from genesis_pipelines.engine.sources.io import read_source_table
from genesis_pipelines.engine.sources.locations import source_table_names

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "resources" / "datasets"

CHINOOK_FKS = {
    ("Album", "ArtistId", "Artist", "ArtistId"),
    ("Customer", "SupportRepId", "Employee", "EmployeeId"),
    ("Employee", "ReportsTo", "Employee", "EmployeeId"),
    ("Invoice", "CustomerId", "Customer", "CustomerId"),
    ("InvoiceLine", "InvoiceId", "Invoice", "InvoiceId"),
    ("InvoiceLine", "TrackId", "Track", "TrackId"),
    ("PlaylistTrack", "PlaylistId", "Playlist", "PlaylistId"),
    ("PlaylistTrack", "TrackId", "Track", "TrackId"),
    ("Track", "AlbumId", "Album", "AlbumId"),
    ("Track", "MediaTypeId", "MediaType", "MediaTypeId"),
    ("Track", "GenreId", "Genre", "GenreId"),
}
# the Chinook FK whose column name names neither the parent key nor its table (ReportsTo is found as a hierarchy)
CHINOOK_UNNAMED = {("Customer", "SupportRepId", "Employee", "EmployeeId")}

NYC_FKS = {
    ("flights", "carrier", "airlines", "carrier"),
    ("flights", "tailnum", "planes", "tailnum"),
    ("flights", "origin", "airports", "faa"),
    ("flights", "dest", "airports", "faa"),
    ("weather", "origin", "airports", "faa"),
}
NYC_PKS = {"airlines": ["carrier"], "airports": ["faa"], "planes": ["tailnum"], "flights": [], "weather": []}


def _fk_set(schema: DatasetSchema) -> set[tuple[str, str, str, str]]:
    return {(fk.child_table, fk.child_column, fk.parent_table, fk.parent_column) for fk in schema.foreign_keys}


def _read_all(spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    return {t: read_source_table(spec, t) for t in source_table_names(spec)}


def _without_keys(spec: DatasetSpec) -> DatasetSpec:
    """The same spec with no primary keys and no foreign_keys entry, so both are inferred."""
    data = spec.model_dump(exclude={"spec_dir", "foreign_keys"})
    data["tables"] = {name: {} for name in data["tables"]}
    return parse_spec(data, spec_dir=spec.spec_dir)


@pytest.fixture(scope="module")
def chinook():
    spec = load_spec(DATASETS / "chinook" / "dataset.yaml")
    return spec, _read_all(spec)


@pytest.fixture(scope="module")
def chinook_declared(chinook) -> DatasetSchema:
    spec, tables = chinook
    return analyse(spec, tables)


@pytest.fixture(scope="module")
def chinook_inferred(chinook) -> DatasetSchema:
    spec, tables = chinook
    return analyse(_without_keys(spec), tables)


@pytest.fixture(scope="module")
def nyc_declared() -> DatasetSchema:
    spec = load_spec(DATASETS / "nycflights" / "dataset.yaml")
    return analyse(spec, _read_all(spec))


@pytest.fixture(scope="module")
def nyc_inferred() -> DatasetSchema:
    spec = load_spec(DATASETS / "nycflights_inferred" / "dataset.yaml")
    return analyse(spec, _read_all(spec))


# ---------------------------------------------------------------- Chinook, declared


def test_chinook_declared_fks(chinook_declared):
    assert len(chinook_declared.foreign_keys) == 11
    assert _fk_set(chinook_declared) == CHINOOK_FKS
    assert not any(fk.inferred for fk in chinook_declared.foreign_keys)
    assert chinook_declared.unresolved_fk_candidates == []


def test_chinook_generation_order_parents_first(chinook_declared):
    order = chinook_declared.generation_order
    assert sorted(order) == sorted(chinook_declared.tables)
    for fk in chinook_declared.foreign_keys:
        if not fk.is_self_reference:
            assert order.index(fk.parent_table) < order.index(fk.child_table), fk.label
    assert order.index("Artist") < order.index("Album") < order.index("Track") < order.index("InvoiceLine")
    assert chinook_declared.parents_of("InvoiceLine") == ["Invoice", "Track"]


def test_chinook_composite_primary_key(chinook_declared):
    meta = chinook_declared.tables["PlaylistTrack"]
    assert meta.primary_key == ["PlaylistId", "TrackId"]
    assert not meta.primary_key_inferred
    assert meta.row_count == 8715
    assert chinook_declared.key_columns("PlaylistTrack") == {"PlaylistId", "TrackId"}


def test_chinook_employee_self_reference(chinook_declared):
    (fk,) = [fk for fk in chinook_declared.foreign_keys if fk.child_column == "ReportsTo"]
    assert fk.is_self_reference and fk.nullable
    assert chinook_declared.parents_of("Employee") == []  # a self reference is not a parent
    assert chinook_declared.tables["Employee"].columns["ReportsTo"].sdtype == "id"


def test_chinook_semantic_types(chinook_declared):
    tables = chinook_declared.tables
    assert tables["Genre"].columns["Name"].sdtype == "categorical"  # declared override
    assert tables["Invoice"].columns["InvoiceDate"].sdtype == "datetime"
    assert tables["Invoice"].columns["InvoiceDate"].datetime_format == "date"
    assert tables["Invoice"].columns["Total"].sdtype == "numeric"
    assert tables["Track"].columns["Milliseconds"].sdtype == "integer"
    assert tables["Track"].columns["AlbumId"].sdtype == "id"
    assert tables["Track"].columns["TrackId"].sdtype == "id"


# ---------------------------------------------------------------- Chinook, inferred


def test_chinook_inferred_primary_keys(chinook_declared, chinook_inferred):
    for name, meta in chinook_inferred.tables.items():
        assert meta.primary_key == chinook_declared.tables[name].primary_key, name
        assert meta.primary_key_inferred
    assert chinook_inferred.tables["PlaylistTrack"].primary_key == ["PlaylistId", "TrackId"]


def test_chinook_inferred_finds_the_name_matching_fks(chinook_inferred):
    assert _fk_set(chinook_inferred) == CHINOOK_FKS - CHINOOK_UNNAMED
    assert len(chinook_inferred.foreign_keys) == 10
    assert all(fk.inferred and fk.evidence for fk in chinook_inferred.foreign_keys)


def test_chinook_inferred_reports_support_rep_as_unresolved(chinook_inferred):
    unresolved = chinook_inferred.unresolved_fk_candidates
    assert any(item.startswith("Customer.SupportRepId") for item in unresolved), unresolved
    order = chinook_inferred.generation_order
    for fk in chinook_inferred.foreign_keys:
        assert fk.is_self_reference or order.index(fk.parent_table) < order.index(fk.child_table)


# ---------------------------------------------------------------- nycflights


def test_nycflights_declared(nyc_declared):
    assert _fk_set(nyc_declared) == NYC_FKS
    assert {t: m.primary_key for t, m in nyc_declared.tables.items()} == NYC_PKS
    nullable = {fk.child_column for fk in nyc_declared.foreign_keys if fk.nullable}
    assert nullable == {"tailnum"}
    assert nyc_declared.parents_of("flights") == ["airlines", "airports", "planes"]
    order = nyc_declared.generation_order
    assert order.index("airports") < order.index("weather") and order.index("planes") < order.index("flights")


def test_nycflights_declared_and_inferred_agree(nyc_declared, nyc_inferred):
    assert _fk_set(nyc_inferred) == _fk_set(nyc_declared) == NYC_FKS
    assert {t: m.primary_key for t, m in nyc_inferred.tables.items()} == NYC_PKS
    assert all(fk.inferred for fk in nyc_inferred.foreign_keys)
    assert {fk.child_column for fk in nyc_inferred.foreign_keys if fk.nullable} == {"tailnum"}
    assert nyc_inferred.unresolved_fk_candidates == []
    assert nyc_inferred.generation_order == nyc_declared.generation_order


def test_nycflights_inferred_on_one_day_finds_tailnum():
    spec = load_spec(DATASETS / "nycflights_inferred" / "dataset.yaml")
    tables = _read_all(spec)
    tables["flights"] = tables["flights"][tables["flights"]["day"] == 1].reset_index(drop=True)
    assert ("flights", "tailnum", "planes", "tailnum") in _fk_set(analyse(spec, tables))


# ---------------------------------------------------------------- errors

SECRET = "zz-secret-7731"  # a value that must never appear in an error message
SECRET_NUMBER = 987654321


def _spec(tables: dict, fks: list | None = None, **extra) -> DatasetSpec:
    data = {"name": "scratch", "tables": tables, **extra}
    if fks is not None:
        data["foreign_keys"] = [{"child": c, "parent": p} for c, p in fks]
    return parse_spec(data)


def _shop() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({"CustomerId": pd.array([1, 2, 3], dtype="Int64"), "Code": pd.array(["a1", "b2", "c3"], dtype="string")})
    orders = pd.DataFrame(
        {
            "OrderId": pd.array([10, 11, 12, 13], dtype="Int64"),
            "CustomerId": pd.array([1, 1, 2, 3], dtype="Int64"),
            "CustomerCode": pd.array(["a1", "b2", "c3", "a1"], dtype="string"),
            "Total": [1.5, 2.5, 3.5, 4.5],
        }
    )
    return {"Customer": customers, "Order": orders}


SHOP_TABLES = {"Customer": {"primary_key": "CustomerId"}, "Order": {"primary_key": "OrderId"}}


def _raises(spec: DatasetSpec, tables: dict[str, pd.DataFrame], *needles: str) -> str:
    with pytest.raises(SchemaError) as info:
        analyse(spec, tables)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert SECRET not in message and str(SECRET_NUMBER) not in message, message
    return message


def test_valid_small_schema():
    schema = analyse(_spec(SHOP_TABLES, [("Order.CustomerId", "Customer.CustomerId")]), _shop())
    assert schema.generation_order == ["Customer", "Order"]
    assert schema.key_columns("Order") == {"OrderId", "CustomerId"}


def test_declared_fk_to_missing_column():
    spec = _spec(SHOP_TABLES, [("Order.ClientId", "Customer.CustomerId")])
    _raises(spec, _shop(), "Order.ClientId", "does not exist")


def test_declared_fk_to_missing_parent_column():
    spec = _spec(SHOP_TABLES, [("Order.CustomerId", "Customer.Nope")])
    _raises(spec, _shop(), "Customer.Nope", "parent column")


def test_declared_fk_to_table_without_data():
    spec = _spec({**SHOP_TABLES, "Ghost": {}}, [("Order.CustomerId", "Ghost.GhostId")])
    _raises(spec, _shop(), "'Ghost'")


def test_orphan_numeric_value_is_counted_not_shown():
    tables = _shop()
    tables["Order"].loc[2, "CustomerId"] = SECRET_NUMBER
    spec = _spec(SHOP_TABLES, [("Order.CustomerId", "Customer.CustomerId")])
    _raises(spec, tables, "Order.CustomerId", "Customer.CustomerId", "1 of 4")


def test_orphan_text_value_is_counted_not_shown():
    tables = _shop()
    tables["Order"].loc[3, "CustomerCode"] = SECRET
    spec = _spec(SHOP_TABLES, [("Order.CustomerCode", "Customer.Code")])
    _raises(spec, tables, "Order.CustomerCode", "broken key")


def test_parent_key_not_unique():
    tables = _shop()
    tables["Customer"]["Code"] = pd.array(["a1", SECRET, SECRET], dtype="string")
    tables["Order"]["CustomerCode"] = pd.array(["a1", "a1", SECRET, "a1"], dtype="string")
    spec = _spec(SHOP_TABLES, [("Order.CustomerCode", "Customer.Code")])
    _raises(spec, tables, "Customer.Code", "unique")


def test_declared_primary_key_duplicates_and_nulls():
    tables = _shop()
    tables["Customer"]["CustomerId"] = pd.array([SECRET_NUMBER, SECRET_NUMBER, 3], dtype="Int64")
    _raises(_spec(SHOP_TABLES), tables, "Customer.CustomerId", "not unique")
    tables = _shop()
    tables["Order"]["OrderId"] = pd.array([10, None, 12, 13], dtype="Int64")
    _raises(_spec(SHOP_TABLES), tables, "Order.OrderId", "null")


def test_declared_primary_key_missing_column():
    _raises(_spec({"Customer": {"primary_key": "Id"}, "Order": {}}), _shop(), "'Customer'", "'Id'")


def test_column_type_override_for_missing_column():
    spec = _spec(SHOP_TABLES, column_types={"Order.Colour": "categorical"})
    _raises(spec, _shop(), "Order.Colour")


def test_two_table_cycle():
    tables = {
        "A": pd.DataFrame({"AId": pd.array([1, 2], dtype="Int64"), "BRef": pd.array([1, 2], dtype="Int64")}),
        "B": pd.DataFrame({"BId": pd.array([1, 2], dtype="Int64"), "ARef": pd.array([2, 1], dtype="Int64")}),
    }
    spec = _spec({"A": {"primary_key": "AId"}, "B": {"primary_key": "BId"}}, [("A.BRef", "B.BId"), ("B.ARef", "A.AId")])
    # a cycle of required keys is broken at one of them, filled after generation (relational.keys.fill_deferred_keys)
    schema = analyse(spec, tables)
    assert sum(fk.deferred for fk in schema.foreign_keys) == 1 and sorted(schema.generation_order) == ["A", "B"]


def test_generation_order_cycle_names_its_tables():
    fks = [
        ForeignKey(child_table="Left", child_column="r", parent_table="Right", parent_column="id"),
        ForeignKey(child_table="Right", child_column="l", parent_table="Left", parent_column="id"),
    ]
    with pytest.raises(SchemaError, match="cycle") as info:
        generation_order(["Left", "Right", "Alone"], fks)
    assert "Left" in str(info.value) and "Right" in str(info.value)


def test_self_reference_is_not_a_cycle():
    fks = [ForeignKey(child_table="Node", child_column="parent", parent_table="Node", parent_column="id")]
    assert generation_order(["Node"], fks) == ["Node"]


def test_empty_table_is_analysed_with_its_columns():
    tables = _shop()
    tables["Order"] = tables["Order"].iloc[0:0]
    meta = analyse(_spec(SHOP_TABLES), tables).tables["Order"]
    assert meta.row_count == 0 and list(meta.columns) == list(tables["Order"].columns)
    assert all(c.null_rate == 0.0 for c in meta.columns.values())


# ---------------------------------------------------------------- semantic types


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([1.5, 2.25, None], name="price"), "numeric"),
        (pd.Series(pd.array([1, 2, 3], dtype="Int64"), name="count"), "integer"),
        (pd.Series(pd.array([0, 1, 1], dtype="Int64"), name="flag"), "categorical"),
        (pd.Series(pd.array([True, False], dtype="boolean"), name="ok"), "boolean"),
        (pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"]), name="day"), "datetime"),
        (pd.Series(pd.array(["x", "y", "x", "y"], dtype="string"), name="kind"), "categorical"),
        (pd.Series(pd.array([f"free text number {i}" for i in range(40)], dtype="string"), name="note"), "text"),
    ],
)
def test_infer_sdtype(values: pd.Series, expected: str):
    assert infer_sdtype(values) == expected
