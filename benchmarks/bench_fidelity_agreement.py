#!/usr/bin/env python
"""Do our column-shape and pair-trend scores agree with SDMetrics' QualityReport? (target: within 3 points)

Run from the repository root with the project's virtualenv:

    python benchmarks/bench_fidelity_agreement.py                 # Adult, gaussian_copula, 20,000 rows
    python benchmarks/bench_fidelity_agreement.py --rows 48842    # all of Adult

It fits our gaussian_copula on Adult (/work/shared/datasets/adult or $GENESIS_SHARED_DATASETS), samples a
synthetic table of the same size, and scores three synthetic tables -- the copula's, a fresh real sample
(should score near 100) and the real rows with every column shuffled independently (pair trends should
collapse) -- with our `quality_report` and with SDMetrics' single-table QualityReport. SDMetrics is BUSL and
never imported here: it runs in benchmarks/.venv-sdv (`python -m venv benchmarks/.venv-sdv &&
benchmarks/.venv-sdv/bin/pip install sdmetrics pyarrow`) as a subprocess, exchanging Parquet files.
Exit status 1 when a property differs by more than --tolerance points, 2 when SDMetrics is unavailable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _harness import corpus_dir  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import profile_table  # noqa: E402
from genesis_pipelines.engine.core.schema import DatasetSchema  # noqa: E402
from genesis_pipelines.engine.core.spec import parse_spec  # noqa: E402
from genesis_pipelines.engine.evaluation import quality_report  # noqa: E402
from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types  # noqa: E402
from genesis_pipelines.engine.synthesis.generators import create_generator  # noqa: E402

SDV_PYTHON = REPO_ROOT / "benchmarks" / ".venv-sdv" / "bin" / "python"
SDTYPE_TO_SDMETRICS = {"numeric": "numerical", "integer": "numerical", "datetime": "datetime",
                       "categorical": "categorical", "boolean": "boolean"}

# Runs in the SDMetrics virtualenv: read Parquet, plain numpy dtypes, QualityReport, one JSON line out.
WORKER = r"""
import json, sys, warnings
import numpy as np, pandas as pd
from sdmetrics.reports.single_table import QualityReport
warnings.simplefilter("ignore")
folder, cases = sys.argv[1], sys.argv[2].split(",")
metadata = json.load(open(f"{folder}/metadata.json"))
def read(name):
    df = pd.read_parquet(f"{folder}/{name}.parquet")
    for c in df.columns:
        s = df[c]
        if str(s.dtype) in ("Int64", "Int32", "Float64"):
            df[c] = s.astype("float64")
        elif str(s.dtype) in ("string", "str", "boolean") or isinstance(s.dtype, pd.StringDtype):
            df[c] = s.astype(object).where(s.notna(), np.nan)
    return df
real = read("real")
out = {}
for case in cases:
    report = QualityReport()
    report.generate(real, read(case), metadata, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    out[case] = {"column_shapes": 100 * float(props["Column Shapes"]), "pair_trends": 100 * float(props["Column Pair Trends"]),
                 "columns": {r["Column"]: float(r["Score"]) for _, r in shapes.iterrows()}}
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="real rows used (Adult has 48,842)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=3.0, help="max allowed difference, points")
    args = parser.parse_args()

    path = corpus_dir() / "adult" / "adult.csv"
    started = time.perf_counter()
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS)
    real = coerce_types(raw).sample(n=min(args.rows, len(raw)), random_state=args.seed).reset_index(drop=True)
    read_s = time.perf_counter() - started
    meta = profile_table("adult", real, parse_spec({"name": "adult"}))
    schema = DatasetSchema(dataset="adult", tables={"adult": meta}, foreign_keys=[], generation_order=["adult"])

    t = time.perf_counter()
    generator = create_generator("gaussian_copula")
    generator.fit(real, meta, seed=args.seed)
    copula = generator.sample(len(real), seed=args.seed)
    fit_s = time.perf_counter() - t
    fresh = coerce_types(raw).sample(n=min(args.rows, len(raw)), random_state=args.seed + 1).reset_index(drop=True)
    rng = np.random.default_rng(args.seed)
    shuffled = pd.DataFrame({c: real[c].to_numpy()[rng.permutation(len(real))] for c in real.columns})
    cases = {"gaussian_copula": copula, "fresh_real_sample": fresh, "shuffled_columns": shuffled}

    ours, our_s = {}, {}
    for name, synth in cases.items():
        t = time.perf_counter()
        report = quality_report({"adult": real}, {"adult": synth}, schema, exclude={}, seed=args.seed, plots=False)
        our_s[name] = time.perf_counter() - t
        ours[name] = {"column_shapes": report["column_shapes"], "pair_trends": report["pair_trends"],
                      "columns": {c: v["score"] for c, v in report["tables"]["adult"]["columns"].items()}}

    print(f"bench_fidelity_agreement: Adult, {len(real):,} real rows x {real.shape[1]} columns, seed {args.seed}")
    print(f"  read csv {read_s:.2f} s (baseline); gaussian_copula fit + sample {fit_s:.2f} s; "
          f"our quality_report {', '.join(f'{k} {v:.2f} s' for k, v in our_s.items())}")
    if not SDV_PYTHON.exists():
        print(f"  SDMetrics virtualenv not found at {SDV_PYTHON}: create it with `python -m venv benchmarks/.venv-sdv && "
              "benchmarks/.venv-sdv/bin/pip install sdmetrics pyarrow`; our scores:")
        for name, o in ours.items():
            print(f"  {name:20s} column shapes {o['column_shapes']:6.2f}  pair trends {o['pair_trends']:6.2f}")
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        real.to_parquet(Path(tmp) / "real.parquet")
        for name, synth in cases.items():
            synth.to_parquet(Path(tmp) / f"{name}.parquet")
        metadata = {"columns": {c: {"sdtype": SDTYPE_TO_SDMETRICS[m.sdtype]} for c, m in meta.columns.items()
                                if m.sdtype in SDTYPE_TO_SDMETRICS}}
        (Path(tmp) / "metadata.json").write_text(json.dumps(metadata))
        t = time.perf_counter()
        done = subprocess.run([str(SDV_PYTHON), "-c", WORKER, tmp, ",".join(cases)], capture_output=True, text=True)
        sdm_s = time.perf_counter() - t
    if done.returncode != 0:
        print("  SDMetrics worker failed:\n" + done.stderr[-3000:])
        return 2
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  SDMetrics QualityReport (subprocess, all cases) {sdm_s:.2f} s\n")

    worst = 0.0
    print(f"  {'synthetic':20s} {'property':14s} {'ours':>7s} {'SDMetrics':>9s} {'diff':>6s}")
    for name in cases:
        for prop in ("column_shapes", "pair_trends"):
            diff = ours[name][prop] - theirs[name][prop]
            worst = max(worst, abs(diff))
            print(f"  {name:20s} {prop:14s} {ours[name][prop]:7.2f} {theirs[name][prop]:9.2f} {diff:+6.2f}")
    print("\n  per column (gaussian_copula), ours vs SDMetrics shape score:")
    for column, score in ours["gaussian_copula"]["columns"].items():
        other = theirs["gaussian_copula"]["columns"].get(column)
        if other is not None:
            print(f"    {column:16s} {score:.4f} {other:.4f} {score - other:+.4f}")
    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"\n  largest difference {worst:.2f} points (tolerance {args.tolerance}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
