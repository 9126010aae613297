"""Faults: a run killed mid-write, a corrupt model, two writers racing on the warehouse, no duckdb pool."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from genesis_pipelines.defs.resources import Warehouse
from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.sources import io
from genesis_pipelines.engine.synthesis.relational import load_model
from genesis_pipelines_tests.helpers import PROJECT_ROOT, dataset_defs, write_shop

pytestmark = pytest.mark.dagster

ORDERS = dg.AssetKey(["shop", "synthetic", "orders"])


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    return {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]).fetchall()}


def test_failure_after_some_chunks_keeps_the_old_table(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        io.write_table(con, "synthetic_x", "t", pd.DataFrame({"id": range(10)}))

        def chunks():
            yield pd.DataFrame({"id": range(100)})
            yield pd.DataFrame({"id": range(100, 200)})
            raise RuntimeError("generation died")

        with pytest.raises(RuntimeError):
            io.write_table(con, "synthetic_x", "t", chunks())
        assert con.execute('select count(*) from synthetic_x."t"').fetchone()[0] == 10
        assert _tables(con, "synthetic_x") == {"t"}, "no staging table leaks"
        assert io.write_table(con, "synthetic_x", "t", iter([pd.DataFrame({"id": range(5)})] * 3)) == 15
        assert con.execute('select count(*) from synthetic_x."t"').fetchone()[0] == 15


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import duckdb, pandas as pd
    from genesis_pipelines.engine.sources.io import write_table

    def chunks():
        yield pd.DataFrame({"id": range(1000)})
        print("first chunk staged", flush=True)
        time.sleep(120)
        yield pd.DataFrame({"id": range(5)})

    write_table(duckdb.connect(sys.argv[1]), "synthetic_x", "t", chunks())
""")


def test_process_killed_mid_write_leaves_the_old_table_and_the_rerun_cleans_up(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        io.write_table(con, "synthetic_x", "t", pd.DataFrame({"id": range(10)}))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db)], stdout=subprocess.PIPE, text=True,
                              cwd=PROJECT_ROOT)
    try:
        assert writer.stdout.readline().strip() == "first chunk staged"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    with duckdb.connect(str(db)) as con:
        assert con.execute('select count(*) from synthetic_x."t"').fetchone()[0] == 10, "old table still whole"
        io.write_table(con, "synthetic_x", "t", pd.DataFrame({"id": range(7)}))
        assert con.execute('select count(*) from synthetic_x."t"').fetchone()[0] == 7
        assert _tables(con, "synthetic_x") == {"t"}, "the rerun drops whatever the killed run staged"


@pytest.fixture(scope="module")
def shop_twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(root / "data"))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        defs = dataset_defs(write_shop(root / "shop"))
        instance = dg.DagsterInstance.ephemeral()
        upstream = dg.AssetSelection.assets(ORDERS).upstream()
        assert dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance,
                              selection=upstream).success
        yield defs, instance, root / "data", mp


def _run(defs, instance, selection) -> dg.ExecuteInJobResult:
    return dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=selection,
                          raise_on_error=False)


def _failure_text(result: dg.ExecuteInJobResult) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def _orders(data: Path) -> pd.DataFrame:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert "__staging_orders" not in _tables(con, "synthetic_shop")
        return con.execute('select * from synthetic_shop."orders"').df()


def test_generation_killed_mid_run_keeps_the_previous_synthetic_table(shop_twin, monkeypatch):
    defs, instance, data, _ = shop_twin
    before = _orders(data)
    real_write = io.write_table  # what the pipeline's generate_table streams into

    def dies_after_a_chunk(con, schema, table, df):
        source = [df] if isinstance(df, pd.DataFrame) else df

        def chunks():
            for chunk in source:
                yield chunk  # one chunk staged ...
                raise KeyboardInterrupt("run terminated")  # ... then the run is killed
        return real_write(con, schema, table, chunks())

    monkeypatch.setattr(io, "write_table", dies_after_a_chunk)
    with pytest.raises(KeyboardInterrupt):  # an interrupted run, not a handled failure
        dg.materialize(assets=list(defs.assets), resources=defs.resources, instance=instance, selection=[ORDERS],
                       tags={"genesis/seed": "99"})
    pd.testing.assert_frame_equal(_orders(data), before)
    monkeypatch.setattr(io, "write_table", real_write)
    assert _run(defs, instance, [ORDERS]).success
    assert len(_orders(data)) > 0


@pytest.mark.parametrize("damage", ["garbage", "format"])
def test_corrupt_or_incompatible_model_names_the_retrain_path(shop_twin, damage):
    defs, instance, data, _ = shop_twin
    root = data / "shop" / "models"
    version = json.loads((root / "LATEST.json").read_text())["version"]
    path = root / version / "model.json"
    original = path.read_text()
    try:
        if damage == "garbage":
            path.write_text(original[: len(original) // 2])
        else:
            path.write_text(json.dumps({**json.loads(original), "format": "genesis.relational/0"}))
        with pytest.raises(ModelError, match="retrain"):
            load_model(root)
        result = _run(defs, instance, [ORDERS])
        assert not result.success
        text = _failure_text(result)
        assert version in text and "materialize the asset shop/model" in text
        assert "Traceback" not in text.split("\n")[0]
    finally:
        path.write_text(original)
    assert _run(defs, instance, [dg.AssetKey(["shop", "model"]), ORDERS]).success, "retraining is the way out"


RACER = textwrap.dedent("""
    import sys, time
    import pandas as pd
    from genesis_pipelines.defs.resources import Warehouse
    from genesis_pipelines.engine.sources.io import write_table

    def chunks(n):
        for i in range(5):
            time.sleep(0.1)  # hold the file lock a while, as a real generation step does
            yield pd.DataFrame({"id": range(i * n, (i + 1) * n), "writer": sys.argv[2]})

    for round in range(2):
        with Warehouse(database=sys.argv[1]).get_connection() as con:
            write_table(con, "synthetic_race", sys.argv[2], chunks(1000))
    print("done", flush=True)
""")


def test_two_runs_racing_on_the_warehouse_do_not_corrupt_it(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(db), name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT) for name in ("a", "b")]
    outputs = [r.communicate(timeout=120) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], [err[-500:] for _, err in outputs]
    with Warehouse(database=str(db)).get_connection() as con:
        for name in ("a", "b"):
            count, distinct, writers = con.execute(
                f'select count(*), count(distinct id), count(distinct writer) from synthetic_race."{name}"').fetchone()
            assert (count, distinct, writers) == (5000, 5000, 1)
        assert _tables(con, "synthetic_race") == {"a", "b"}


def test_warehouse_steps_hold_no_pool_and_queue_for_the_writer(tmp_path):
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
    with dg.instance_for_test(overrides={"concurrency": config["concurrency"]}, temp_dir=str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    defs = dataset_defs(write_shop(tmp_path / "shop"))
    pools = {a.node_def.name: a.op.pool for a in [*defs.assets, *defs.asset_checks]
             if "warehouse" in {r.key for r in a.get_resource_requirements()}}
    assert len(pools) >= 10 and {"shop__model__orders", "shop__training_plan"} <= set(pools)
    # reads open the file read-only and writes are short commits that wait for the lock: no step is serialised
    # by a pool on a CPU machine (the "gpu" pool is only for a torch table on CUDA, see test_device)
    assert set(pools.values()) == {None}


def test_the_embedded_instance_runs_one_run_per_dataset(tmp_path):
    """Runs launched from the UI queue too: the daemon holds a second run of the same dataset until the first ends."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides={"concurrency": config["concurrency"]}, temp_dir=str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "dataset", "limit": 1, "value": {"applyLimitPerUniqueValue": True}} in limits
