"""Growth of training and generation cost with rows, output scale and width, in ONE run.

    python benchmarks/bench_scale.py [--quick] [--only rows|scale|width] [--widths 300,1000]

Each point runs in its own child process (so its peak RSS is its own): analyse + PII scan + relational.train, then
generate_all at the point's output scale. Rows: nycflights13 flights (../shared/datasets/nycflights13 or
GENESIS_CORPUS_DIR), a seeded subsample, trained as one table. Width: adult's rows (5,000) with its columns repeated,
each copy shuffled on its own. Printed per point: wall s beside CPU s (the child's user + system), peak RSS, rows/s;
per growth, the fitted exponent (log-log slope of CPU s on the grown quantity: 1.0 is linear). The baseline of the
same run is the first point of each growth. SDV HMA on the 30k flights subset runs as a reference only when
benchmarks/.venv-sdv exists (see bench_corpus.py --make-sdv-venv); otherwise the reason is printed.
Not yet measured here: evaluate and privacy audit growth.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _harness import corpus_dir

ROOT = Path(__file__).resolve().parents[1]
CORPUS = corpus_dir()


def flights(rows: int) -> pd.DataFrame:
    df = pd.read_csv(CORPUS / "nycflights13" / "flights.csv", na_values=["", "NA"], keep_default_na=False)
    return df.sample(rows, random_state=0).reset_index(drop=True) if rows < len(df) else df


def wide(columns: int, rows: int = 5000) -> pd.DataFrame:
    adult = pd.read_csv(CORPUS / "adult" / "adult.csv", nrows=rows)
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    copy = 0
    while len(out) < columns:
        for c in adult.columns[: columns - len(out)]:
            values = adult[c].to_numpy()
            out[f"{c}_{copy}" if copy else c] = values[rng.permutation(len(values))] if copy else values
        copy += 1
    return pd.DataFrame(out)


def child(kind: str, size: int, scale: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from genesis_pipelines.engine.analysis.schema_inference import analyse
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.synthesis import relational

    df = flights(size) if kind == "rows" else wide(size)
    with tempfile.TemporaryDirectory() as tmp:
        tables = {"t": df}
        spec = parse_spec({"name": "scale", "source": {"kind": "csv_folder", "path": tmp},
                           "tables": {"t": {"primary_key": "flight_id"} if kind == "rows" else {}}, "seed": 0})
        c0, t0 = time.process_time(), time.perf_counter()
        schema = analyse(spec, tables)
        findings = pii.scan_tables(tables, schema, spec)
        c1, t1 = time.process_time(), time.perf_counter()
        relational.train(spec, schema, tables, findings, Path(tmp) / "model")
        c2, t2 = time.process_time(), time.perf_counter()
        model, model_dir = relational.load_model(Path(tmp) / "model")
        out = relational.generate_all(model, model_dir, scale=scale, seed=0)
        c3, t3 = time.process_time(), time.perf_counter()
    return {"rows": len(df), "columns": df.shape[1], "scan_cpu": c1 - c0, "scan_wall": t1 - t0,
            "train_cpu": c2 - c1, "train_wall": t2 - t1, "gen_cpu": c3 - c2, "gen_wall": t3 - t2,
            "gen_rows": int(len(out["t"])), "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_point(kind: str, size: int, scale: float, limit: float) -> dict | None:
    try:
        done = subprocess.run([sys.executable, __file__, "--child", kind, str(size), str(scale)], capture_output=True,
                              text=True, timeout=limit, check=True)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(x: list[float], y: list[float]) -> float:
    ok = [(a, b) for a, b in zip(x, y) if a > 0 and b > 0]
    return float(np.polyfit(np.log([a for a, _ in ok]), np.log([b for _, b in ok]), 1)[0]) if len(ok) >= 2 else float("nan")


def table(title: str, grown: str, points: list[tuple[float, dict | None]], phase: str) -> None:
    print(f"\n{title}")
    print(f"{grown:>10} {'rows':>9} {'cols':>5} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9} {'rows/s':>10}")
    xs, ys = [], []
    for x, p in points:
        if p is None:
            print(f"{x:>10g}  over the time limit")
            continue
        rows = p["gen_rows"] if phase == "gen" else p["rows"]
        cpu, wall = p[f"{phase}_cpu"], p[f"{phase}_wall"]
        print(f"{x:>10g} {rows:>9,} {p['columns']:>5} {wall:>8.2f} {cpu:>8.2f} {p['peak_gib']:>9.2f} {rows / max(wall, 1e-9):>10,.0f}")
        xs.append(x)
        ys.append(cpu)
    print(f"fitted exponent (CPU s ~ {grown}^k): k = {slope(xs, ys):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller grid")
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--limit", type=float, default=900, help="seconds per point (fail-safe)")
    parser.add_argument("--only", choices=["rows", "scale", "width"], action="append",
                        help="run only this growth (repeatable); default: all three")
    parser.add_argument("--widths", help="comma-separated column counts for the width growth, e.g. 300,1000")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), float(args.child[2]))))
        return
    rows = [10_000, 30_000, 100_000] if args.quick else [10_000, 30_000, 100_000, 336_776]
    scales = [1, 3, 10] if args.quick else [1, 10, 100]
    widths = [15, 60, 150, 300] if args.quick else [15, 60, 150, 300, 1000]
    if args.widths:
        widths = [int(w) for w in args.widths.split(",")]
    only = set(args.only or ["rows", "scale", "width"])
    by_rows = [(r, run_point("rows", r, 1.0, args.limit)) for r in rows] if "rows" in only else []
    by_scale = [(s, run_point("rows", 10_000, s, args.limit)) for s in scales] if "scale" in only else []
    by_width = [(w, run_point("width", w, 1.0, args.limit)) for w in widths] if "width" in only else []
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall suffers above the CPU count; CPU s do not)")
    if by_rows:
        table("train (relational.train, gaussian_copula) by rows of flights", "rows", by_rows, "train")
        table("generate (generate_all, scale 1) by rows of flights", "rows", by_rows, "gen")
    if by_scale:
        table("generate by output scale (10,000 flights trained)", "scale", by_scale, "gen")
    if by_width:
        table("analyse + PII scan by width (5,000 adult rows)", "columns", by_width, "scan")
        table("train by width (5,000 adult rows)", "columns", by_width, "train")
        table("generate by width (5,000 adult rows, scale 1)", "columns", by_width, "gen")
    if (ROOT / "benchmarks" / ".venv-sdv").exists():
        print("\nSDV HMA reference: run `python benchmarks/bench_corpus.py --only nycflights13 --flights 30000`")
    else:
        print("\nSDV HMA reference skipped: benchmarks/.venv-sdv does not exist (bench_corpus.py --make-sdv-venv)")


if __name__ == "__main__":
    main()
