"""Generation at scale: block-seeded chunks, scale up to MAX_SCALE behind a disk check, stale staging removed,
streamed exports. Small data made here."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import MAX_SCALE, parse_spec
from genesis_pipelines.engine.sources import export
from genesis_pipelines.engine.synthesis import relational, staging
from genesis_pipelines.engine.synthesis.relational.sampling import table_size

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    shops = pd.DataFrame({"shop_id": np.arange(1, 41), "region": rng.choice(["north", "south", "east"], 40),
                          "opened": pd.date_range("2020-01-01", periods=40, freq="7D")})
    n = 600
    sales = pd.DataFrame({"sale_id": np.arange(1, n + 1), "shop_id": rng.integers(1, 41, n),
                          "amount": rng.gamma(2.0, 30.0, n).round(2), "items": rng.integers(1, 9, n),
                          "channel": rng.choice(["web", "store", "phone", None], n)})
    return {"shops": shops, "sales": sales}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shop")
    (root / "src").mkdir()
    for name, df in _frames().items():
        df.to_csv(root / "src" / f"{name}.csv", index=False)
    spec = parse_spec({"name": "shop", "source": {"kind": "csv_folder", "path": "src"}, "seed": 0,
                       "tables": {"shops": {"primary_key": "shop_id"}, "sales": {"primary_key": "sale_id"}},
                       "foreign_keys": [{"child": "sales.shop_id", "parent": "shops.shop_id"}]}, spec_dir=root)
    layout = pipeline.DatasetLayout(root / "data", "shop")
    connect = pipeline.warehouse_connector(root / "data" / "warehouse.duckdb")
    trained = pipeline.train(spec, layout, connect)
    return {"root": root, "spec": spec, "layout": layout, "connect": connect, "model": trained.model,
            "model_dir": trained.model_dir}


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


def test_rows_do_not_depend_on_the_chunk_size(shop):
    model, model_dir = shop["model"], shop["model_dir"]
    shops = relational.generate_table(model, model_dir, "shops", {}, scale=3.0, seed=5)
    digests = set()
    for chunk_rows in (64, 250, 10**9):
        chunks = list(relational.generate_table_chunks(model, model_dir, "sales", {"shops": shops}, scale=3.0, seed=5,
                                                       chunk_rows=chunk_rows, block_rows=64))
        assert max(len(c) for c in chunks) < max(chunk_rows, 64) + 64  # memory: a chunk is whole blocks
        whole = pd.concat(chunks, ignore_index=True)
        assert len(whole) == 1800 and whole["sale_id"].is_unique and whole["shop_id"].isin(shops["shop_id"]).all()
        digests.add(_digest(whole))
    assert len(digests) == 1
    other_blocks = relational.generate_table(model, model_dir, "sales", {"shops": shops}, scale=3.0, seed=5, block_rows=128)
    assert _digest(other_blocks) not in digests  # the block size is what the rows depend on


def test_scale_above_ten_is_accepted_up_to_the_maximum(shop):
    spec = shop["spec"]
    assert parse_spec({**spec.model_dump(mode="json"), "scale": 250}).scale == 250
    with pytest.raises(SpecError, match="scale"):
        parse_spec({**spec.model_dump(mode="json"), "scale": MAX_SCALE + 1})
    sized = {t: table_size(shop["model"], t, 250.0) for t in shop["model"].tables}
    assert sized["sales"] == shop["model"].tables["sales"].row_count * 250
    grown = [staging.estimated_bytes(shop["model"], ["sales"], s) - staging.HEADROOM_BYTES for s in (250.0, 500.0)]
    assert grown[1] == 2 * grown[0] > 0  # linear in the rows written


def test_disk_check_refuses_what_cannot_fit_before_writing(shop, monkeypatch):
    layout, connect = shop["layout"], shop["connect"]
    pipeline.generate(shop["spec"], layout, connect, shop["model"], shop["model_dir"], scale=1.0)
    with connect() as con:
        before = con.execute(f'select count(*) from "{layout.synthetic_schema}"."sales"').fetchone()[0]
    real_usage = staging.shutil.disk_usage
    monkeypatch.setattr(staging.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=10 * 2**20))
    with pytest.raises(staging.InsufficientSpace) as info:
        pipeline.generate(shop["spec"], layout, connect, shop["model"], shop["model_dir"], scale=MAX_SCALE)
    message = str(info.value)
    assert "'shop'" in message and "bytes" in message and f"{10 * 2**20:,}" in message
    with connect() as con:  # refused before any table was touched
        assert con.execute(f'select count(*) from "{layout.synthetic_schema}"."sales"').fetchone()[0] == before
    with pytest.raises(staging.InsufficientSpace, match="'shop'"):  # one table alone (a Dagster step) too
        pipeline.generate_table(layout, connect, shop["model"], shop["model_dir"], "sales", scale=MAX_SCALE, seed=0)


_CLAIM = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from genesis_pipelines.engine.synthesis import staging
    with staging.claim({folder!r}, {stem!r}) as lock:
        lock.with_suffix(".duckdb").write_bytes(b"x" * 100)
        print("ready", flush=True)
        if {kill}:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)
""")


def _claimer(folder: Path, stem: str, *, kill: bool) -> subprocess.Popen:
    code = _CLAIM.format(root=str(PROJECT_ROOT), folder=str(folder), stem=stem, kill=kill)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_stale_staging_is_removed_and_live_staging_kept(shop, tmp_path):
    folder = tmp_path / ".staging"
    killed = _claimer(folder, "synthetic-killed", kill=True)
    killed.wait(timeout=60)
    assert sorted(p.name for p in folder.iterdir()) == ["synthetic-killed.duckdb", "synthetic-killed.lock"]
    (folder / "synthetic-old-123-456.duckdb").write_bytes(b"y")  # an older version's leftover: no lock at all
    (folder / "synthetic-old-123-456.duckdb.wal").write_bytes(b"y")
    removed = {p.name for p in staging.remove_stale(folder)}
    assert removed == {"synthetic-killed.lock", "synthetic-killed.duckdb", "synthetic-old-123-456.duckdb",
                       "synthetic-old-123-456.duckdb.wal"}
    _claimer(folder, "synthetic-killed", kill=True).wait(timeout=60)
    live = _claimer(folder, "synthetic-live", kill=False)  # its claim removed the second killed run's files
    try:
        assert sorted(p.name for p in folder.iterdir()) == ["synthetic-live.duckdb", "synthetic-live.lock"]
        assert staging.remove_stale(folder) == []  # a live run's staging is never touched
        assert sorted(p.name for p in folder.iterdir()) == ["synthetic-live.duckdb", "synthetic-live.lock"]
    finally:
        live.kill()
        live.wait(timeout=60)
    assert {p.name for p in staging.remove_stale(folder)} == {"synthetic-live.duckdb", "synthetic-live.lock"}
    # the next generation step cleans its dataset's staging before it starts, and leaves none of its own
    layout = shop["layout"]
    layout.staging.mkdir(parents=True, exist_ok=True)
    (layout.staging / "synthetic-gone-1-2.duckdb").write_bytes(b"z")
    pipeline.generate_table(layout, shop["connect"], shop["model"], shop["model_dir"], "shops", scale=1.0, seed=0)
    assert list(layout.staging.iterdir()) == []


def test_exports_stream_every_format_from_the_warehouse(shop):
    layout, connect = shop["layout"], shop["connect"]
    pipeline.generate(shop["spec"], layout, connect, shop["model"], shop["model_dir"], scale=5.0, seed=1)
    with connect() as con:
        sales = con.execute(f'select * from "{layout.synthetic_schema}"."sales"').df()
        assert [len(b) for b in export.warehouse_batches(con, layout.synthetic_schema, "sales", 2048)] == [2048, len(sales) - 2048]
    files = {p.name: p for p in (pipeline.export(layout, connect, shop["model"], fmt, batch_rows=2048)[0]
                                 for fmt in ("json", "sql", "csv", "parquet"))}
    assert set(files) == {"shops.json", "shop.sql", "shops.csv", "shops.parquet"}
    json_sales = pd.read_json(files["shops.json"].parent / "sales.json", orient="records")
    assert len(json_sales) == len(sales) and json_sales["sale_id"].tolist() == sales["sale_id"].tolist()
    pd.testing.assert_series_equal(json_sales["amount"], sales["amount"], check_dtype=False, check_names=False)
    con = duckdb.connect()
    con.execute(files["shop.sql"].read_text(encoding="utf-8"))
    assert con.execute('select count(*), sum(amount) from "sales"').fetchone() == pytest.approx(
        (len(sales), sales["amount"].sum()))
    parquet = pd.read_parquet(files["shops.parquet"].parent / "sales.parquet")
    assert _digest(parquet[list(sales.columns)]) == _digest(sales)
    # XML and Excel stream too: batch by batch gives the document the whole table gives
    streamed = pipeline.export(layout, connect, shop["model"], "xml", batch_rows=2048)[0].parent / "sales.xml"
    whole = export.export_tables({"sales": sales}, layout.root / "whole_xml", "xml")[0]
    assert streamed.read_bytes() == whole.read_bytes()
    assert len(ET.parse(streamed).getroot().findall("row")) == len(sales)
    if importlib.util.find_spec("openpyxl") is not None:
        workbook = pipeline.export(layout, connect, shop["model"], "excel", batch_rows=2048)[0]
        sheet = pd.read_excel(workbook, sheet_name="sales")
        assert sheet["sale_id"].tolist() == sales["sale_id"].tolist()
        pd.testing.assert_series_equal(sheet["amount"], sales["amount"], check_dtype=False, check_names=False)
