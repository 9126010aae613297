"""engine.export: every format reads back, SQL quoting survives hostile text, errors name table and column."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.core.schema import ColumnMeta, DatasetSchema, ForeignKey, TableMeta
from genesis_pipelines.engine.sources.export import (
    FORMATS,
    ExportError,
    current_version,
    export_tables,
    parse_s3_uri,
    publish_versioned,
    s3_table_key,
    sql_literal,
    versions_dir,
    write_sql,
)

HAS_OPENPYXL = importlib.util.find_spec("openpyxl") is not None  # the `export` extra; without it Excel is skipped


def _tables() -> dict[str, pd.DataFrame]:
    parents = pd.DataFrame({
        "id": pd.array([1, 2, 3], dtype="Int64"),
        "name": pd.array(["O'Brien", 'say "hi"; DROP TABLE x; --', None], dtype="string"),
        "score": [1.5, np.nan, -2e-7],
        "active": pd.array([True, False, None], dtype="boolean"),
        "joined": pd.to_datetime(["2024-01-02 03:04:05", None, "1999-12-31 00:00:00"]),
    })
    children = pd.DataFrame({
        "child_id": pd.array([10, 11, 12, 13], dtype="Int64"),
        "parent_id": pd.array([1, 1, 3, None], dtype="Int64"),
        "note": pd.array(["ünïcödé ✓", "line\nbreak", "back\\slash", ""], dtype="string"),
    })
    return {"parent": parents, "child": children}


def _schema() -> DatasetSchema:
    def meta(name, df, pk):
        return TableMeta(name=name, row_count=len(df), primary_key=pk, columns={
            c: ColumnMeta(name=c, sdtype="text", dtype=str(df[c].dtype), null_rate=0.0, cardinality=1) for c in df.columns})
    tables = _tables()
    return DatasetSchema(
        dataset="t", tables={"parent": meta("parent", tables["parent"], ["id"]), "child": meta("child", tables["child"], ["child_id"])},
        foreign_keys=[ForeignKey(child_table="child", child_column="parent_id", parent_table="parent", parent_column="id", nullable=True)],
        generation_order=["parent", "child"],
    )


def test_sql_literals_quote_and_escape():
    assert sql_literal("O'Brien") == "'O''Brien'"
    assert sql_literal(None) == sql_literal(pd.NA) == sql_literal(np.nan) == sql_literal(pd.NaT) == "NULL"
    assert sql_literal(float("inf")) == "NULL"
    assert sql_literal(np.int64(7)) == "7"
    assert sql_literal(True) == "TRUE"
    assert sql_literal(pd.Timestamp("2024-01-02 03:04:05")) == "'2024-01-02 03:04:05'"
    with pytest.raises(ExportError, match="table 't': column 'c'"):
        sql_literal("a\x00b", table="t", column="c")


@pytest.mark.parametrize("loader", ["sqlite", "duckdb"])
def test_sql_script_loads_with_keys_and_exact_text(tmp_path, loader):
    tables = _tables()
    path = write_sql(tables, tmp_path / "t.sql", schema=_schema())
    script = path.read_text(encoding="utf-8")
    assert "PRIMARY KEY" in script and "FOREIGN KEY" in script
    if loader == "sqlite":
        con = sqlite3.connect(":memory:")
        con.execute("PRAGMA foreign_keys = ON")
        con.executescript(script)
        fetch = con.execute
    else:
        con = duckdb.connect()
        con.execute(script)
        fetch = con.execute
    assert fetch('select count(*) from "parent"').fetchone()[0] == 3
    assert fetch('select count(*) from "child"').fetchone()[0] == 4
    names = [r[0] for r in fetch('select name from "parent" order by id').fetchall()]
    assert names == ["O'Brien", 'say "hi"; DROP TABLE x; --', None]
    notes = [r[0] for r in fetch('select note from "child" order by child_id').fetchall()]
    assert notes == list(tables["child"]["note"])
    assert fetch('select count(*) from "child" where parent_id is null').fetchone()[0] == 1


def test_every_format_reads_back(tmp_path):
    tables = _tables()
    formats = [f for f in FORMATS if f != "excel" or HAS_OPENPYXL]
    written = {fmt: export_tables(tables, tmp_path / fmt, fmt, name="t", schema=_schema()) for fmt in formats}
    assert pd.read_csv(written["csv"][0]).shape == (3, 5)
    back = pd.read_parquet(tmp_path / "parquet" / "child.parquet")
    pd.testing.assert_frame_equal(back, tables["child"])
    records = json.loads((tmp_path / "json" / "parent.json").read_text(encoding="utf-8"))
    assert records[0]["name"] == "O'Brien" and records[1]["score"] is None and records[0]["joined"].startswith("2024-01-02T03:04:05")
    if HAS_OPENPYXL:
        sheets = pd.read_excel(written["excel"][0], sheet_name=None)
        assert set(sheets) == {"parent", "child"} and len(sheets["child"]) == 4
    root = ET.parse(tmp_path / "xml" / "child.xml").getroot()
    assert root.tag == "child" and len(root.findall("row")) == 4
    assert root.findall("row")[0].find("note").text == "ünïcödé ✓"
    assert [p.name for p in written["sql"]] == ["t.sql"]
    assert not list(tmp_path.rglob(".*"))  # no staging files left behind


def test_bad_names_and_characters_name_table_and_column(tmp_path):
    with pytest.raises(ExportError, match="table 'x': column '1st col'"):
        export_tables({"x": pd.DataFrame({"1st col": [1]})}, tmp_path, "xml")
    with pytest.raises(ExportError, match="table 'x': column 'c'") as info:
        export_tables({"x": pd.DataFrame({"c": ["secret\x01value"]})}, tmp_path, "xml")
    assert "secret" not in str(info.value)
    with pytest.raises(ExportError, match="unknown export format"):
        export_tables({}, tmp_path, "yaml")


def test_excel_without_openpyxl_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openpyxl(name, *args, **kwargs):
        if name.startswith("openpyxl"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openpyxl)
    with pytest.raises(ExportError, match="pip install"):
        export_tables(_tables(), tmp_path, "excel")


def test_s3_uri_parsing():
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    assert s3_table_key("a/b", "shop", "orders") == "a/b/shop/orders.parquet"
    assert s3_table_key("", "shop", "orders") == "shop/orders.parquet"
    with pytest.raises(ExportError):
        parse_s3_uri("https://bucket/x")


@pytest.mark.skipif(not HAS_OPENPYXL, reason="openpyxl (the `export` extra) is not installed")
def test_excel_refuses_a_table_over_a_sheet_and_keeps_the_old_file(tmp_path, monkeypatch):
    """A table over a sheet's rows is refused naming the table, whether its size is known up front or found while
    streaming; the workbook already there is untouched."""
    from genesis_pipelines.engine.sources import export

    [workbook] = export_tables(_tables(), tmp_path, "excel", name="t")
    before = workbook.read_bytes()
    monkeypatch.setattr(export, "EXCEL_MAX_ROWS", 3)
    with pytest.raises(ExportError, match="table 'child': 4 rows do not fit one Excel sheet"):
        export_tables(_tables(), tmp_path, "excel", name="t")
    batches = {"parent": [_tables()["parent"]], "child": [_tables()["child"].iloc[:2], _tables()["child"].iloc[2:]]}
    with pytest.raises(ExportError, match="table 'child': 4 rows do not fit"):
        export._write_excel(batches, workbook)  # the size found while streaming
    bad = {"parent": [_tables()["parent"]], "child": [_tables()["child"].iloc[:2].assign(note="secret\x01value")]}
    with pytest.raises(ExportError, match="table 'child': column 'note' holds control characters") as info:
        export._write_excel(bad, workbook)
    assert "secret" not in str(info.value)
    assert workbook.read_bytes() == before and not list(tmp_path.glob(".*"))
    sheets = pd.read_excel(workbook, sheet_name=None)
    assert list(sheets["parent"].columns) == list(_tables()["parent"].columns) and len(sheets["child"]) == 4


# ---------------------------------------------------------------- atomic publication


def _listing(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def _write_set(tag: str, fail_after: int | None = None):
    def write(folder: Path) -> list[Path]:
        written = []
        for i, name in enumerate(("a.csv", "b.csv", "c.csv")):
            if fail_after is not None and i == fail_after:
                raise KeyboardInterrupt("killed mid-export")
            (folder / name).write_text(f"{tag}:{name}")
            written.append(folder / name)
        return written
    return write


def test_a_publication_killed_midway_leaves_the_previous_complete_set(tmp_path):
    target = tmp_path / "synthetic"
    paths = publish_versioned(target, _write_set("one"))
    assert paths == [target / "a.csv", target / "b.csv", target / "c.csv"] and target.is_symlink()
    before, version = _listing(target), current_version(target)
    with pytest.raises(KeyboardInterrupt):
        publish_versioned(target, _write_set("two", fail_after=2))
    assert _listing(target) == before and current_version(target) == version
    assert [p.name for p in versions_dir(target).iterdir() if not p.name.startswith(".lock")] == [version]
    publish_versioned(target, _write_set("three"))
    assert set(_listing(target).values()) == {"three:a.csv", "three:b.csv", "three:c.csv"}


def test_stale_staging_and_link_files_are_removed_and_old_versions_pruned(tmp_path):
    target = tmp_path / "synthetic"
    publish_versioned(target, _write_set("one"))
    staged = versions_dir(target) / ".staging-killed"  # what a SIGKILLed publication leaves
    staged.mkdir()
    (staged / "a.csv").write_text("half")
    (staged / ".a.csv.tmp123").write_text("half")
    link = tmp_path / ".synthetic.link-dead"
    link.symlink_to("nowhere")
    for i in range(5):
        publish_versioned(target, _write_set(f"n{i}"))
    assert not staged.exists() and not link.is_symlink()
    kept = sorted(p.name for p in versions_dir(target).iterdir() if p.is_dir())
    assert len(kept) == 3 and current_version(target) == kept[-1]


def test_a_plain_folder_is_adopted_only_when_it_is_ours(tmp_path):
    ours = tmp_path / "synthetic"
    ours.mkdir()
    (ours / "old.csv").write_text("legacy")
    publish_versioned(ours, _write_set("new"), adopt_existing=True)
    assert ours.is_symlink() and "old.csv" not in _listing(ours)
    assert any((p / "old.csv").is_file() for p in versions_dir(ours).iterdir())
    theirs = tmp_path / "somebody_elses"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a published set"):
        publish_versioned(theirs, _write_set("new"))
    assert (theirs / "notes.txt").read_text() == "keep me"
