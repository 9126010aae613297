#!/usr/bin/env python
"""Time a dataset's synthetic-twin pipeline end to end, and the engine per table against a plain copy.

Run from the repository root:

    python benchmarks/bench_demo.py                                  # chinook, one repetition
    python benchmarks/bench_demo.py --dataset nycflights --repeat 3
    python benchmarks/bench_demo.py --dataset chinook --dataset nycflights --scale 2

For each dataset it prints:

1. Dagster: the wall time of one in-process `dagster.materialize` of every asset and asset check of the
   dataset (ephemeral instance, GENESIS_DATA_DIR in a fresh temp dir), and each step's duration read from
   the run's event log (STEP_START -> STEP_SUCCESS/STEP_FAILURE).
2. Engine: `relational.train` once, then `relational.generate_table` per table in generation order (as
   `relational.generate_all` does), each table next to a baseline measured in the same run: the real table
   copied through the same warehouse path (`io.read_source_table` -> `io.write_table` into a DuckDB file ->
   `io.export_table` to Parquet + CSV). Also training time and the process's peak RSS.
3. A one-line summary per dataset.

With --repeat N every figure is measured N times, each time in a fresh temp dir, and the median is shown
(with min and max where it helps). Only the standard library and the project's own dependencies are used.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# `python benchmarks/bench_demo.py` puts benchmarks/ on sys.path, not the repo root; the project is normally
# pip-installed (editable), this only helps when it is not
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

from _harness import peak_rss_mib, print_table  # noqa: E402

# ---------------------------------------------------------------- small helpers


def _fmt_num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _rate(rows: float, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def genesis_env(data_dir: Path):
    """Point GENESIS_DATA_DIR (and the warehouse beneath it) at `data_dir`, restoring the environment after."""
    saved = {k: os.environ.get(k) for k in ("GENESIS_DATA_DIR", "GENESIS_WAREHOUSE")}
    os.environ["GENESIS_DATA_DIR"] = str(data_dir)
    os.environ["GENESIS_WAREHOUSE"] = str(data_dir / "warehouse.duckdb")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_dataset_spec(name_or_path: str, scale: float | None):
    """A dataset name under GENESIS_SPECS_DIR (resources/datasets) or a path to a dataset.yaml."""
    from genesis_pipelines import paths
    from genesis_pipelines.engine.core.spec import load_spec, parse_spec

    candidate = Path(name_or_path)
    path = candidate if candidate.suffix in (".yaml", ".yml") else paths.specs_dir() / name_or_path / "dataset.yaml"
    spec = load_spec(path)
    if scale is not None and scale != spec.scale:
        # re-validate so an out-of-range --scale fails like a bad spec would
        spec = parse_spec({**spec.model_dump(mode="json"), "scale": scale}, origin=f"{path} (--scale {scale})",
                          spec_dir=spec.spec_dir)
    return spec, path


# ---------------------------------------------------------------- 1. the whole graph through Dagster


@dataclass
class DagsterRun:
    success: bool
    definitions_seconds: float  # build_dataset_defs (reads the source tables to plan generation)
    wall_seconds: float  # dagster.materialize(...) call
    run_seconds: float  # RUN_START -> RUN_SUCCESS/RUN_FAILURE in the event log
    steps: dict[str, float]  # step key -> seconds, in execution order
    synthetic_rows: dict[str, int]
    checks_passed: int
    checks_failed: list[str]
    failed_steps: list[str] = field(default_factory=list)


def run_dagster(spec, data_dir: Path) -> DagsterRun:
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources

    with genesis_env(data_dir):
        started = time.perf_counter()
        defs = build_dataset_defs(spec)
        definitions_seconds = time.perf_counter() - started
        resources = default_resources()  # reads GENESIS_DATA_DIR now
        instance = dg.DagsterInstance.ephemeral()
        started = time.perf_counter()
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            instance=instance,
            resources=resources,
            selection=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
            raise_on_error=False,
            tags={"dataset": spec.name, "benchmark": "bench_demo"},
            # the console logger would print every event; errors still show
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        wall_seconds = time.perf_counter() - started

    types = dg.DagsterEventType
    records = instance.all_logs(result.run_id, of_type={
        types.STEP_START, types.STEP_SUCCESS, types.STEP_FAILURE, types.RUN_START, types.RUN_SUCCESS, types.RUN_FAILURE,
    })
    instance.dispose()
    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    failed_steps: list[str] = []
    run_start = run_end = None
    for record in sorted(records, key=lambda r: r.timestamp):
        kind = record.dagster_event_type
        if kind == types.RUN_START:
            run_start = record.timestamp
        elif kind in (types.RUN_SUCCESS, types.RUN_FAILURE):
            run_end = record.timestamp
        elif kind == types.STEP_START:
            starts[record.step_key] = record.timestamp
        elif record.step_key in starts:
            steps[record.step_key] = record.timestamp - starts[record.step_key]
            if kind == types.STEP_FAILURE:
                failed_steps.append(record.step_key)
    synthetic_rows = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key.path
        if len(key) == 3 and key[1] == "synthetic":
            count = event.materialization.metadata.get("dagster/row_count")
            synthetic_rows[key[2]] = int(count.value) if count is not None else 0
    evaluations = result.get_asset_check_evaluations()
    return DagsterRun(
        success=result.success,
        definitions_seconds=definitions_seconds,
        wall_seconds=wall_seconds,
        run_seconds=(run_end - run_start) if run_start is not None and run_end is not None else float("nan"),
        steps=steps,
        synthetic_rows=synthetic_rows,
        checks_passed=sum(e.passed for e in evaluations),
        checks_failed=[f"{'/'.join(e.asset_key.path)}:{e.check_name}" for e in evaluations if not e.passed],
        failed_steps=failed_steps,
    )


def report_dagster(runs: list[DagsterRun]) -> None:
    many = len(runs) > 1
    walls = [r.wall_seconds for r in runs]
    print(f"\n[1] Whole graph: dagster.materialize, in-process executor, ephemeral instance ({len(runs)} run(s))")
    last = runs[-1]
    status = "SUCCESS" if all(r.success for r in runs) else "FAILURE"
    print(f"  run status: {status}; steps: {len(last.steps)}; asset checks: {last.checks_passed} passed, "
          f"{len(last.checks_failed)} failed" + (f" ({', '.join(last.checks_failed)})" if last.checks_failed else ""))
    if last.failed_steps:
        print(f"  failed steps: {', '.join(last.failed_steps)}")
    print(f"  build_dataset_defs: {_median([r.definitions_seconds for r in runs]):.2f} s"
          + (" (median)" if many else ""))
    print(f"  materialize wall time: {_median(walls):.2f} s" + (
        f" (median; min {min(walls):.2f}, max {max(walls):.2f}; each: {', '.join(f'{w:.2f}' for w in walls)})" if many else ""))
    print(f"  run time in event log (RUN_START -> end): {_median([r.run_seconds for r in runs]):.2f} s"
          + (" (median)" if many else ""))
    order = list(last.steps)  # execution order of the last run
    for run in runs:
        order += [k for k in run.steps if k not in order]
    header = ["step", "median s", "min s", "max s"] if many else ["step", "seconds"]
    rows = []
    for key in order:
        values = [r.steps[key] for r in runs if key in r.steps]
        rows.append([key, f"{_median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"] if many
                    else [key, f"{values[0]:.3f}"])
    total = [sum(r.steps.values()) for r in runs]
    overhead = [r.wall_seconds - sum(r.steps.values()) for r in runs]
    rows.append(["(sum of steps)", f"{_median(total):.3f}", f"{min(total):.3f}", f"{max(total):.3f}"] if many
                else ["(sum of steps)", f"{total[0]:.3f}"])
    rows.append(["(wall minus steps: Dagster overhead)", f"{_median(overhead):.3f}", f"{min(overhead):.3f}",
                 f"{max(overhead):.3f}"] if many else ["(wall minus steps: Dagster overhead)", f"{overhead[0]:.3f}"])
    print()
    print_table(header, rows)


# ---------------------------------------------------------------- 2. the engine per table, against a plain copy


@dataclass
class EngineRun:
    read_seconds: float  # all source tables: read_source_table + into the warehouse + read back
    analyse_seconds: float
    pii_scan_seconds: float
    train_seconds: float
    guard_seconds: float  # load_pii_guard, once before generation
    order: list[str]
    synthetic_rows: dict[str, int]
    generate_seconds: dict[str, float]  # load_copy_guard + generate_table
    write_seconds: dict[str, float]  # the synthetic table through write_table + export_table (not in gen rows/s)
    real_rows: dict[str, int]
    copy_seconds: dict[str, float]  # baseline: read_source_table + write_table + export_table of the real table


def run_engine(spec, data_dir: Path) -> EngineRun:
    import duckdb

    from genesis_pipelines.engine.analysis.schema_inference import analyse
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.sources import io
    from genesis_pipelines.engine.synthesis import relational

    warehouse = data_dir / "warehouse.duckdb"
    copy_dir, synthetic_dir = data_dir / spec.name / "copy", data_dir / spec.name / "synthetic"
    model_root = data_dir / spec.name / "models"
    data_dir.mkdir(parents=True, exist_ok=True)
    real_rows, copy_seconds = {}, {}
    with duckdb.connect(str(warehouse)) as con:
        # baseline first: the real table copied through the warehouse path the synthetic tables take
        for table in io.source_table_names(spec):
            started = time.perf_counter()
            df = io.read_source_table(spec, table)
            io.write_table(con, f"copy_{spec.name}", table, df)
            io.export_table(df, copy_dir, table)
            copy_seconds[table] = time.perf_counter() - started
            real_rows[table] = len(df)

        # the model asset trains on the tables as the warehouse gives them back
        started = time.perf_counter()
        tables = {}
        for table in io.source_table_names(spec):
            io.write_table(con, f"source_{spec.name}", table, io.read_source_table(spec, table))
            tables[table] = io.read_table(con, f"source_{spec.name}", table)
        read_seconds = time.perf_counter() - started

        started = time.perf_counter()
        schema = analyse(spec, tables)
        analyse_seconds = time.perf_counter() - started
        started = time.perf_counter()
        findings = pii.scan_tables(tables, schema, spec)
        pii_scan_seconds = time.perf_counter() - started

        started = time.perf_counter()
        model, _ = relational.train(spec, schema, tables, findings, model_root, hash_key=pii.hash_key_from_env())
        train_seconds = time.perf_counter() - started
        del tables

        model, model_dir = relational.load_model(model_root)
        started = time.perf_counter()
        guard = relational.load_pii_guard(model, model_dir)
        guard_seconds = time.perf_counter() - started

        # as relational.generate_all: parents first, each table given the generated tables so far
        out, generate_seconds, write_seconds = {}, {}, {}
        for table in model.db_schema.generation_order:
            started = time.perf_counter()
            out[table] = relational.generate_table(
                model, model_dir, table, out, scale=spec.scale, seed=spec.seed, locale=spec.pii_locale,
                forbidden=guard, copy_guard=relational.load_copy_guard(model, model_dir, table))
            generate_seconds[table] = time.perf_counter() - started
            started = time.perf_counter()
            io.write_table(con, f"synthetic_{spec.name}", table, out[table])
            io.export_table(out[table], synthetic_dir, table)
            write_seconds[table] = time.perf_counter() - started

    return EngineRun(
        read_seconds=read_seconds, analyse_seconds=analyse_seconds, pii_scan_seconds=pii_scan_seconds,
        train_seconds=train_seconds, guard_seconds=guard_seconds, order=list(model.db_schema.generation_order),
        synthetic_rows={t: len(df) for t, df in out.items()}, generate_seconds=generate_seconds,
        write_seconds=write_seconds, real_rows=real_rows, copy_seconds=copy_seconds,
    )


def report_engine(runs: list[EngineRun], scale: float) -> None:
    many = len(runs) > 1
    suffix = " (median)" if many else ""
    last = runs[-1]

    def med(attr: str) -> float:
        return _median([getattr(r, attr) for r in runs])

    print(f"\n[2] Engine per table (scale {scale:g}), in generation order, next to a plain copy of the real table"
          + (f"; medians of {len(runs)} runs" if many else ""))
    print(f"  read sources into DuckDB and back: {med('read_seconds'):.2f} s; analyse: {med('analyse_seconds'):.2f} s; "
          f"pii scan: {med('pii_scan_seconds'):.2f} s")
    trains = [r.train_seconds for r in runs]
    print(f"  relational.train (all tables): {_median(trains):.2f} s{suffix}"
          + (f" (min {min(trains):.2f}, max {max(trains):.2f})" if many else ""))
    print(f"  load_pii_guard: {med('guard_seconds'):.3f} s{suffix}")
    rows = []
    totals = {"syn": 0, "gen": 0.0, "write": 0.0, "real": 0, "copy": 0.0}
    for table in last.order:
        syn = last.synthetic_rows[table]
        gen = _median([r.generate_seconds[table] for r in runs])
        write = _median([r.write_seconds[table] for r in runs])
        real = last.real_rows.get(table, 0)
        copy = _median([r.copy_seconds[table] for r in runs if table in r.copy_seconds])
        gen_rate, copy_rate = _rate(syn, gen), _rate(real, copy)
        rows.append([table, _fmt_num(syn), f"{gen:.3f}", _fmt_num(gen_rate), f"{write:.3f}",
                     _fmt_num(real), f"{copy:.3f}", _fmt_num(copy_rate), f"{gen_rate / copy_rate:.2f}"])
        totals["syn"] += syn
        totals["gen"] += gen
        totals["write"] += write
        totals["real"] += real
        totals["copy"] += copy
    gen_rate, copy_rate = _rate(totals["syn"], totals["gen"]), _rate(totals["real"], totals["copy"])
    rows.append(["(all tables)", _fmt_num(totals["syn"]), f"{totals['gen']:.3f}", _fmt_num(gen_rate),
                 f"{totals['write']:.3f}", _fmt_num(totals["real"]), f"{totals['copy']:.3f}", _fmt_num(copy_rate),
                 f"{gen_rate / copy_rate:.2f}"])
    print()
    print_table(["table", "syn rows", "gen s", "gen rows/s", "write s", "real rows", "copy s", "copy rows/s", "gen/copy"],
                rows)
    print("  gen s = load_copy_guard + generate_table (in memory); write s = that synthetic table through write_table +")
    print("  export_table (not in gen rows/s); copy s = baseline: read_source_table + write_table + export_table of the")
    print("  real table; gen/copy = gen rows/s / copy rows/s (below 1: generating is slower than copying)")


# ---------------------------------------------------------------- driver


def bench_dataset(name: str, repeat: int, scale: float | None, keep: bool) -> tuple[str, bool]:
    spec, path = load_dataset_spec(name, scale)
    print(f"\n=== {spec.name}: {path} (scale {spec.scale:g}, seed {spec.seed}, {repeat} repetition(s)) ===")
    dagster_runs, engine_runs = [], []
    for index in range(repeat):
        root = Path(tempfile.mkdtemp(prefix=f"genesis-bench-{spec.name}-"))
        try:
            dagster_runs.append(run_dagster(spec, root / "dagster"))
            rss_after_dagster = peak_rss_mib()
            engine_runs.append(run_engine(spec, root / "engine"))
            rss_after_engine = peak_rss_mib()
        finally:
            if keep:
                print(f"  (kept outputs of repetition {index + 1} under {root})")
            else:
                shutil.rmtree(root, ignore_errors=True)
    report_dagster(dagster_runs)
    report_engine(engine_runs, spec.scale)
    print(f"\n  peak RSS of this process (ru_maxrss, high-water mark since start): {rss_after_dagster:,.0f} MiB after the"
          f" Dagster run(s), {rss_after_engine:,.0f} MiB after the engine run(s)")
    wall = _median([r.wall_seconds for r in dagster_runs])
    rows = sum(dagster_runs[-1].synthetic_rows.values())
    ok = all(r.success for r in dagster_runs)
    summary = (f"{spec.name}: {'ok' if ok else 'RUN FAILED'}, total wall {wall:.2f} s (dagster.materialize"
               f"{', median of ' + str(repeat) if repeat > 1 else ''}), {rows:,} synthetic rows in "
               f"{len(dagster_runs[-1].synthetic_rows)} tables, {_rate(rows, wall):,.0f} rows/s overall")
    return summary, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", metavar="NAME",
                        help="dataset name under resources/datasets (or a path to a dataset.yaml); repeatable; "
                             "default: chinook")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="measure N times, report medians (default 1)")
    parser.add_argument("--scale", type=float, default=None, metavar="F",
                        help="synthetic rows per real row (default: the spec's scale)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders with the outputs, and say where")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    import dagster
    import duckdb
    import pandas

    print(f"bench_demo: Python {platform.python_version()}, dagster {dagster.__version__}, duckdb {duckdb.__version__}, "
          f"pandas {pandas.__version__}; {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}")
    summaries, all_ok = [], True
    started = time.perf_counter()
    from genesis_pipelines.engine.core.errors import GenesisError

    for name in args.dataset or ["chinook"]:
        try:
            summary, ok = bench_dataset(name, args.repeat, args.scale, args.keep)
        except GenesisError as exc:  # bad spec or bad data: the message names the field, table or column
            print(f"bench_demo: {name}: {exc}", file=sys.stderr)
            summary, ok = f"{name}: ERROR ({exc.__class__.__name__}, see above)", False
        summaries.append(summary)
        all_ok &= ok
    print(f"\nSummary ({time.perf_counter() - started:.1f} s for the whole benchmark)")
    for line in summaries:
        print(f"  {line}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
