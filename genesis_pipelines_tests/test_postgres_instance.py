"""resources/deploy/dagster.yaml against a real, throwaway Postgres on 127.0.0.1: runs, events and pools land there.

Skips with the reason when the Postgres server binaries (Debian's `postgresql` package) or dagster-postgres are
missing, or the server does not start.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from genesis_pipelines_tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.dagster

DEPLOY = PROJECT_ROOT / "resources" / "deploy"
DEPLOY_CONFIG = DEPLOY / "dagster.yaml"


def _validate(config_type, config: dict) -> list[str]:
    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type

    result = process_config(resolve_to_config_type(config_type), config)
    return [e.message for e in (result.errors or [])]


def test_deploy_configs_match_dagster_schemas(monkeypatch):
    """Typos in the production YAML fail here, not at the first deploy."""
    import yaml
    from dagster._core.instance.config import dagster_instance_config_schema

    for name in ("USERNAME", "PASSWORD", "HOST", "DB", "PORT"):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", "5432" if name == "PORT" else "x")
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", "logs")
    instance = yaml.safe_load(DEPLOY_CONFIG.read_text())
    assert _validate(dagster_instance_config_schema(), instance) == []
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    ecs = yaml.safe_load((DEPLOY / "ecs-run-launcher.yaml").read_text())
    assert _validate(dagster_instance_config_schema(), {**instance, **ecs}) == []
    helm = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    deployment = helm["dagster-user-deployments"]["deployments"][0]
    assert {"name": "GENESIS_EXECUTOR", "value": "k8s"} in deployment["env"]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher" and helm["concurrency"]["pools"]["defaultLimit"] == 1
    try:
        from dagster_aws.ecs import EcsRunLauncher
    except ImportError:
        return
    assert _validate(EcsRunLauncher.config_type(), ecs["run_launcher"]["config"]) == []


@pytest.mark.parametrize("choice,expected", [(None, "in_process"), ("multiprocess", "multiprocess"), ("k8s", "k8s"), ("ecs", "ecs")])
def test_executor_is_chosen_by_env(monkeypatch, choice, expected):
    from genesis_pipelines.defs.executor import EXECUTOR_ENV, genesis_executor

    if choice is None:
        monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    else:
        monkeypatch.setenv(EXECUTOR_ENV, choice)
    if choice == "k8s":
        pytest.importorskip("dagster_k8s", reason="dagster-k8s is not installed")
    if choice == "ecs":
        pytest.importorskip("dagster_aws", reason="dagster-aws is not installed")
    assert genesis_executor().name == expected


def test_unknown_executor_is_a_clear_error(monkeypatch):
    from genesis_pipelines.defs.executor import genesis_executor

    monkeypatch.setenv("GENESIS_EXECUTOR", "celery")
    with pytest.raises(dg.DagsterInvariantViolationError, match="GENESIS_EXECUTOR='celery'"):
        genesis_executor()


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parent.name)], reverse=True):
        if Path(candidate, "initdb").is_file() and Path(candidate, "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """initdb + pg_ctl in a temp dir, as a non-root user (Postgres refuses root), listening on 127.0.0.1 only."""
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (pip install dagster-postgres)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (it comes with dagster-postgres)")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("Postgres server binaries not found (apt-get install postgresql): Postgres instance test skipped")
    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="genesis-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(workdir, pg_user.pw_uid, pg_user.pw_gid)
        runner = shutil.which("runuser") or shutil.which("su")
        as_user = [runner, "-u", "postgres", "--"] if runner.endswith("runuser") else None
        if as_user is None:
            shutil.rmtree(workdir, ignore_errors=True)
            pytest.skip("running as root without runuser: cannot start Postgres as a non-root user")
    data, port = workdir / "data", _free_port()

    def run(*cmd, timeout=60):
        return subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=timeout)

    init = run(bin_dir / "initdb", "-D", data, "-U", "dagster", "--auth=trust", "-E", "UTF8", "--no-sync")
    if init.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"initdb failed, Postgres instance test skipped: {init.stderr.strip()[-300:]}")
    start = run(bin_dir / "pg_ctl", "-D", data, "-l", workdir / "server.log", "-w", "-t", "30",
                "-o", f"-h 127.0.0.1 -p {port} -k {workdir} -c fsync=off", "start")
    if start.returncode != 0:
        log = (workdir / "server.log").read_text(errors="replace")[-300:] if (workdir / "server.log").exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"Postgres did not start, test skipped: {start.stderr.strip()[-200:]} {log}")
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE dagster_test")
        con.close()
        yield {"host": "127.0.0.1", "port": port, "user": "dagster", "db": "dagster_test"}
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


@dg.asset(pool="duckdb")
def pg_probe_source() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset(deps=[pg_probe_source], pool="gpu")
def pg_probe_model() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"version": "v1"})


def test_deploy_config_stores_runs_events_and_pools_in_postgres(postgres, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {"USERNAME": postgres["user"], "PASSWORD": "unused-with-trust-auth", "HOST": postgres["host"],
                        "DB": postgres["db"], "PORT": str(postgres["port"])}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)

    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        # pools: an unset pool gets default_limit (1); explicit limits are stored in Postgres
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1

        result = dg.materialize([pg_probe_source, pg_probe_model], instance=instance, tags={"dataset": "probe"})
        assert result.success
        run_id = result.run_id
        assert instance.get_run_by_id(run_id).tags["dataset"] == "probe"
        assert instance.get_latest_materialization_event(dg.AssetKey("pg_probe_model")) is not None

    # and it really is in Postgres, not in a SQLite file under DAGSTER_HOME
    import psycopg2

    con = psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"], dbname=postgres["db"])
    try:
        cur = con.cursor()
        cur.execute("select status from runs where run_id = %s", (run_id,))
        assert cur.fetchone()[0] == "SUCCESS"
        cur.execute("select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,))
        assert cur.fetchone()[0] == 2
    finally:
        con.close()
    assert not list(home.rglob("*.db"))
