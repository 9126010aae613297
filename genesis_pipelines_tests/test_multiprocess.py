"""The multiprocess executor: steps forked from a forkserver that preloaded the code location, same tables as in
process (benchmarks/bench_executors.py measures it on the nycflights13 twin; this is the small shop)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genesis_pipelines.paths import PROJECT_ROOT
from genesis_pipelines_tests.helpers import write_shop

pytestmark = [pytest.mark.slow, pytest.mark.dagster]

JOB = "shop_synthetic_twin"


def twin_job():
    """Module-level: the step processes rebuild the job from this pointer (through the preloaded code location)."""
    from genesis_pipelines.definitions import code_location

    return code_location().get_job_def(JOB)


def run_twin() -> None:
    """In a fresh interpreter: the shop's twin job under GENESIS_EXECUTOR, in the instance of DAGSTER_HOME."""
    import dagster as dg

    with dg.execute_job(dg.reconstructable(twin_job), instance=dg.DagsterInstance.get()) as result:
        print(json.dumps({"success": result.success,
                          "failed": [e.step_key for e in result.all_events if e.is_step_failure]}))


def _env(tmp_path: Path, name: str, executor: str) -> dict:
    home = tmp_path / f"home-{name}"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "GENESIS_DATA_DIR": str(tmp_path / f"data-{name}"),
           "GENESIS_SPECS_DIR": str(tmp_path / "specs"), "GENESIS_EXECUTOR": executor, "GENESIS_DEVICE": "cpu",
           "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("GENESIS_WAREHOUSE", None)
    return env


def _tables(warehouse: Path) -> dict[str, str]:
    import duckdb
    import pandas as pd

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'synthetic_shop' order by 1").fetchall()]
        return {n: hashlib.sha256(pd.util.hash_pandas_object(con.execute(f'select * from synthetic_shop."{n}"').df(),
                                                             index=False).to_numpy().tobytes()).hexdigest()
                for n in names}
    finally:
        con.close()


def test_preload_builds_the_code_location_once_and_keeps_no_storage_open(tmp_path):
    write_shop(tmp_path / "specs" / "shop")
    env = _env(tmp_path, "preload", "multiprocess")
    code = ("import os, sys\n"
            "import genesis_pipelines.step_preload\n"
            "from genesis_pipelines import definitions\n"
            "assert definitions._preloaded is not None\n"
            "built = definitions._preloaded[1]\n"
            "assert definitions.code_location() is built\n"
            "jobs = sorted(j.name for j in built.resolve_all_job_defs() if not j.name.startswith('__'))\n"
            "fds = []\n"
            "for fd in os.listdir('/proc/self/fd'):\n"
            "    try:\n"
            "        fds.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
            "    except OSError:\n"
            "        pass  # the listing's own descriptor, closed by now\n"
            "print(jobs, [p for p in fds if p.startswith(os.environ['DAGSTER_HOME'])])\n"
            # a spec edited since the build (a later run in a process that kept its forkserver): built afresh
            "spec = os.path.join(os.environ['GENESIS_SPECS_DIR'], 'shop', 'dataset.yaml')\n"
            "os.utime(spec, ns=(os.stat(spec).st_atime_ns, os.stat(spec).st_mtime_ns + 10**9))\n"
            "print(definitions.code_location() is built)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # the shop's twin in the preloaded definitions, and no instance storage file left open to be shared by the forks
    assert out.stdout.strip().splitlines()[-2:] == [f"['{JOB}'] []", "False"]


def test_multiprocess_twin_has_the_tables_of_in_process(tmp_path):
    write_shop(tmp_path / "specs" / "shop")
    hashes = {}
    for executor in ("in_process", "multiprocess"):
        env = _env(tmp_path, executor, executor)
        out = subprocess.run([sys.executable, "-c", "from genesis_pipelines_tests.test_multiprocess import run_twin; "
                              "run_twin()"], env=env, capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"success": True, "failed": []}, executor
        hashes[executor] = _tables(tmp_path / f"data-{executor}" / "warehouse.duckdb")
    assert set(hashes["in_process"]) == {"customers", "orders"}
    assert hashes["multiprocess"] == hashes["in_process"]
