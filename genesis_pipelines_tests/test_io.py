"""Reading typed source tables, atomic writes (warehouse tables and files), and polling a source for new data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from genesis_pipelines.engine.core.errors import GenesisError, SourceError
from genesis_pipelines.engine.core.spec import load_spec, parse_spec
from genesis_pipelines.engine.sources.io import (
    atomic_path,
    coerce_types,
    export_table,
    parse_dates,
    parse_numbers,
    read_source_table,
    read_table,
    staged_folder,
    table_exists,
    write_json,
    write_table,
)
from genesis_pipelines.engine.sources.locations import source_table_names
from genesis_pipelines.engine.sources.watch import load_cursor, poll

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "resources" / "datasets"


@pytest.fixture(scope="module")
def chinook_spec():
    return load_spec(DATASETS / "chinook" / "dataset.yaml")


def _folder_spec(folder: Path, **extra):
    return parse_spec({"name": "scratch", "source": {"kind": "csv_folder", "path": str(folder)}, **extra})


# ---------------------------------------------------------------- typed reading


def test_chinook_codes_with_leading_zeros_stay_text(chinook_spec):
    customer = read_source_table(chinook_spec, "Customer")
    assert pd.api.types.is_string_dtype(customer["PostalCode"])
    assert "0171" in set(customer["PostalCode"].dropna())
    invoice = read_source_table(chinook_spec, "Invoice")
    assert pd.api.types.is_string_dtype(invoice["BillingPostalCode"])
    assert "0171" in set(invoice["BillingPostalCode"].dropna())


def test_chinook_dates_ids_and_numbers_are_typed(chinook_spec):
    invoice = read_source_table(chinook_spec, "Invoice")
    assert pd.api.types.is_datetime64_any_dtype(invoice["InvoiceDate"])
    assert invoice["InvoiceDate"].min() == pd.Timestamp("2021-01-01")
    assert str(invoice["InvoiceId"].dtype) == "Int64"
    assert str(invoice["CustomerId"].dtype) == "Int64"
    assert invoice["Total"].dtype == "float64"
    employee = read_source_table(chinook_spec, "Employee")
    assert pd.api.types.is_datetime64_any_dtype(employee["BirthDate"])
    # the general manager reports to nobody: a nullable integer, not a float
    assert str(employee["ReportsTo"].dtype) == "Int64"
    assert int(employee["ReportsTo"].isna().sum()) == 1


def test_chinook_row_counts_and_utf8(chinook_spec):
    counts = {t: len(read_source_table(chinook_spec, t)) for t in source_table_names(chinook_spec)}
    assert sum(counts.values()) == 15607
    assert counts["PlaylistTrack"] == 8715
    customer = read_source_table(chinook_spec, "Customer")
    assert "Luís" in set(customer["FirstName"])  # non-ASCII text survives


def test_nycflights_typed_reading():
    spec = load_spec(DATASETS / "nycflights" / "dataset.yaml")
    flights = read_source_table(spec, "flights")
    assert len(flights) == 4973
    assert pd.api.types.is_datetime64_any_dtype(flights["time_hour"])
    assert flights["time_hour"].dt.tz is None  # UTC 'Z' stamps become naive UTC
    assert str(flights["dep_delay"].dtype) == "Int64"
    assert int(flights["tailnum"].isna().sum()) == 8  # 'NA' tokens are nulls
    airports = read_source_table(spec, "airports")
    assert pd.api.types.is_string_dtype(airports["faa"])
    assert airports["lat"].dtype == "float64"


def test_coerce_types_rules():
    raw = pd.DataFrame(
        {
            "code": ["007", "010", None],
            "count": ["1", "2", None],
            "ratio": ["1", "2.5", "3"],
            "flag": ["true", "False", "yes"],
            "when": ["2024-01-02T03:04:05Z", "2024-01-03T00:00:00+01:00", None],
            "word": ["a", "b", "c"],
            "blank": [None, None, None],
        },
        dtype=object,
    )
    typed = coerce_types(raw)
    assert pd.api.types.is_string_dtype(typed["code"]) and typed["code"].iloc[0] == "007"
    assert str(typed["count"].dtype) == "Int64"
    assert typed["ratio"].dtype == "float64"
    assert str(typed["flag"].dtype) == "boolean" and list(typed["flag"]) == [True, False, True]
    assert pd.api.types.is_datetime64_any_dtype(typed["when"])
    assert typed["when"].iloc[1] == pd.Timestamp("2024-01-02T23:00:00")  # converted to UTC, naive
    assert pd.api.types.is_string_dtype(typed["word"])
    assert typed["blank"].isna().all()


def test_declared_file_name_is_used(tmp_path: Path):
    (tmp_path / "people_export.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    spec = _folder_spec(tmp_path, tables={"people": {"primary_key": "id", "file": "people_export.csv"}})
    assert len(read_source_table(spec, "people")) == 2


def test_undeclared_tables_are_discovered(tmp_path: Path):
    for name in ("b", "a"):
        (tmp_path / f"{name}.csv").write_text("x\n1\n", encoding="utf-8")
    assert source_table_names(_folder_spec(tmp_path)) == ["a", "b"]


# ---------------------------------------------------------------- bad sources


BAD_FILES = {
    "ragged": (b"id,name\n1,a\n2,b,extra\n3,c\n", "line 3 has 3 fields"),
    "unclosed_quote": (b'id,name\n1,"open\n', "not well-formed CSV"),
    "latin1": ("id,name\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    "empty": (b"", "empty"),
    "nameless_column": (b"id,,name\n1,2,3\n", "no header name"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_raises_source_error_naming_table(tmp_path: Path, case: str):
    content, expected = BAD_FILES[case]
    (tmp_path / "Orders.csv").write_bytes(content)
    with pytest.raises(SourceError) as info:
        read_source_table(_folder_spec(tmp_path), "Orders")
    message = str(info.value)
    assert "'Orders'" in message and expected in message, message
    # errors carry no values from the file
    for value in ("extra", "open", "caf"):
        assert value not in message


def test_short_ragged_row_raises_source_error(tmp_path: Path):
    (tmp_path / "Orders.csv").write_bytes(b"id,name,total\n1,a,2\n2\n3,c,4\n")
    with pytest.raises(SourceError, match="'Orders'"):
        read_source_table(_folder_spec(tmp_path), "Orders")


def test_missing_file_raises_source_error_naming_table(tmp_path: Path):
    with pytest.raises(SourceError, match="'Ghost'.*does not exist"):
        read_source_table(_folder_spec(tmp_path), "Ghost")


def test_missing_folder_and_empty_folder(tmp_path: Path):
    with pytest.raises(SourceError, match="does not exist"):
        source_table_names(_folder_spec(tmp_path / "absent"))
    with pytest.raises(SourceError, match="no .csv files"):
        source_table_names(_folder_spec(tmp_path))


def test_corrupt_parquet_raises_source_error(tmp_path: Path):
    (tmp_path / "Orders.parquet").write_bytes(b"not parquet at all")
    spec = parse_spec({"name": "scratch", "source": {"kind": "parquet_folder", "path": str(tmp_path)}})
    with pytest.raises(SourceError, match="'Orders'"):
        read_source_table(spec, "Orders")


def test_duckdb_source(tmp_path: Path):
    db = tmp_path / "src.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create table people as select 1 as id, 'a' as name")
    spec = parse_spec({"name": "scratch", "source": {"kind": "duckdb", "path": str(db)}})
    assert source_table_names(spec) == ["people"]
    assert len(read_source_table(spec, "people")) == 1
    with pytest.raises(SourceError, match="'ghost'"):
        read_source_table(spec, "ghost")


# ---------------------------------------------------------------- warehouse writes


@pytest.fixture()
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def _frame(start: int, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"id": list(range(start, start + n)), "label": [f"row{i}" for i in range(start, start + n)]})


def test_write_table_creates_and_replaces(con):
    assert write_table(con, "synthetic", "t", _frame(0)) == 3
    assert read_table(con, "synthetic", "t")["id"].tolist() == [0, 1, 2]
    assert write_table(con, "synthetic", "t", _frame(10, 2)) == 2
    assert read_table(con, "synthetic", "t")["id"].tolist() == [10, 11]
    assert not table_exists(con, "synthetic", "__staging_t")


def test_write_table_from_chunks(con):
    rows = write_table(con, "synthetic", "t", iter([_frame(0), _frame(3), _frame(6)]))
    assert rows == 9
    assert read_table(con, "synthetic", "t")["id"].tolist() == list(range(9))


def test_failing_chunk_iterator_leaves_previous_table(con):
    write_table(con, "synthetic", "t", _frame(0))

    def chunks():
        yield _frame(100)
        raise RuntimeError("generator crashed mid-way")

    with pytest.raises(RuntimeError, match="crashed"):
        write_table(con, "synthetic", "t", chunks())
    assert read_table(con, "synthetic", "t")["id"].tolist() == [0, 1, 2]
    assert not table_exists(con, "synthetic", "__staging_t")
    # the connection is still usable and a later write succeeds
    assert write_table(con, "synthetic", "t", _frame(5)) == 3
    assert read_table(con, "synthetic", "t")["id"].tolist() == [5, 6, 7]


def test_incompatible_chunk_leaves_previous_table(con):
    write_table(con, "synthetic", "t", _frame(0))
    bad = pd.DataFrame({"other": ["x"]})  # a chunk with a different shape cannot be appended
    with pytest.raises(duckdb.Error):
        write_table(con, "synthetic", "t", iter([_frame(100), bad]))
    assert read_table(con, "synthetic", "t")["id"].tolist() == [0, 1, 2]
    assert not table_exists(con, "synthetic", "__staging_t")


def test_read_missing_warehouse_table(con):
    with pytest.raises(SourceError, match="'nope'.*materialize"):
        read_table(con, "synthetic", "nope")


# ---------------------------------------------------------------- file writes


def test_atomic_path_replaces_on_success(tmp_path: Path):
    target = tmp_path / "out" / "report.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.txt"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "report.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written", encoding="utf-8")
            raise ValueError("failed while writing")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]  # no temp file left behind


def test_staged_folder_appears_whole_or_not_at_all(tmp_path: Path):
    target = tmp_path / "twin"
    with pytest.raises(ValueError):
        with staged_folder(target) as staging:
            (staging / "a.csv").write_text("x", encoding="utf-8")
            raise ValueError("failed half way")
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging folder is left
    target.mkdir()  # an empty folder may be filled
    with staged_folder(target) as staging:
        assert staging.parent == tmp_path and staging != target and not any(staging.iterdir())
        (staging / "a.csv").write_text("x", encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["twin"] and (target / "a.csv").read_text(encoding="utf-8") == "x"
    with pytest.raises(GenesisError, match="not an empty folder"):
        with staged_folder(target):
            pass
    assert [p.name for p in target.iterdir()] == ["a.csv"]


def test_write_json_and_export_table(tmp_path: Path):
    write_json(tmp_path / "meta.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "meta.json").read_text(encoding="utf-8")) == {"a": [1, 2], "b": 1}
    paths = export_table(_frame(0), tmp_path / "export", "t")
    assert [p.name for p in paths] == ["t.parquet", "t.csv"]
    assert pd.read_parquet(paths[0])["id"].tolist() == [0, 1, 2]
    assert pd.read_csv(paths[1])["label"].tolist() == ["row0", "row1", "row2"]
    with pytest.raises(ValueError, match="xlsx"):
        export_table(_frame(0), tmp_path / "export", "t", formats=("xlsx",))
    assert not (tmp_path / "export" / "t.xlsx").exists()


def test_parsing_counts_rows_not_distinct_values():
    """Text is parsed once per distinct value and counted per row: the layout most rows parse in wins (not the
    one most distinct values parse in), impossible dates count every row holding one, nulls stay null in place."""
    values = pd.Series(["03/04/2020"] * 6 + ["2020-04-05", "2020-04-06", "2021-02-30", "2021-02-30", None],
                       index=range(100, 111), dtype=object)
    stamps, layout, impossible = parse_dates(values)
    assert layout == "%d/%m/%Y" and impossible == 2 and list(stamps.index) == list(values.index)
    assert stamps.notna().sum() == 6 and stamps.iloc[-1] is pd.NaT and stamps.iloc[0] == pd.Timestamp("2020-04-03")
    numbers = parse_numbers(pd.Series([" 5 ", "007", "5", None, "inf"], index=list("abcde"), dtype=object))
    assert numbers["a"] == numbers["c"] == 5.0 and pd.isna(numbers["b"])  # a zero-led code is no number
    assert pd.isna(numbers["d"]) and numbers["e"] == float("inf") and list(numbers.index) == list("abcde")


def test_dates_mixing_offsets_and_plain_times_are_read(tmp_path: Path):
    """A timestamp column mixing offsets ("+02:00", "Z") with plain times (pandas refuses such a column: "Mixed
    timezones") is read as dates, offsets applied, plain times taken as UTC: typed on read, by majority with an
    exception, as rule numbers and as column floats."""
    from genesis_pipelines.engine.analysis.columns import to_float
    from genesis_pipelines.engine.analysis.rules.core import numbers
    from genesis_pipelines.engine.sources.io import majority_kind

    mixed = ["2021-01-01T10:00:00+02:00", "2021-01-02 10:00:00", "2021-03-01T00:00:00Z", "2021-01-05"] * 5
    expected = pd.to_datetime(["2021-01-01 08:00", "2021-01-02 10:00", "2021-03-01 00:00", "2021-01-05 00:00"] * 5)
    (tmp_path / "events.csv").write_text("id,at\n" + "".join(f"{i},{v}\n" for i, v in enumerate(mixed)))
    spec = parse_spec({"name": "mixed_tz", "source": {"kind": "csv_folder", "path": "."}, "tables": {"events": {"primary_key": "id"}}},
                      spec_dir=tmp_path)
    read = read_source_table(spec, "events")
    assert pd.api.types.is_datetime64_any_dtype(read["at"]) and (read["at"].to_numpy() == expected.to_numpy()).all()
    stamps, layout, impossible = parse_dates(pd.Series(mixed + ["2021-02-30"], dtype=object))
    assert layout == "ISO8601" and impossible == 1 and (stamps[:20].to_numpy() == expected.to_numpy()).all()
    kind, exceptions = majority_kind(pd.Series(mixed + ["soon"], dtype=object))
    assert kind == "datetime" and exceptions.sum() == 1
    seconds = (expected - pd.Timestamp(0)).total_seconds().to_numpy()
    assert (to_float(pd.Series(mixed), "datetime") == seconds).all()
    assert (numbers(pd.Series(mixed, dtype="string")) == seconds).all()


# ---------------------------------------------------------------- watching a source for new data


def test_duckdb_source_file_change_refreshes_every_table(tmp_path, isolated_data):
    db = tmp_path / "src.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create table a as select range as id, range % 3 as x from range(30)")
        con.execute("create table b as select range as id, range % 30 as a_id from range(90)")
    spec = parse_spec({"name": "duck", "source": {"kind": "duckdb", "path": str(db)}})
    tables = source_table_names(spec)
    result = poll(spec, tables, load_cursor(None))
    result = poll(spec, tables, result.cursor)
    assert result.changed_tables == ["a", "b"]
    assert not poll(spec, tables, result.cursor).changed_tables
    with duckdb.connect(str(db)) as con:
        con.execute("insert into b select 1000 + range, 1 from range(5)")
    again = poll(spec, tables, poll(spec, tables, result.cursor).cursor)
    assert again.changed_tables == ["a", "b"]  # one file holds every table
