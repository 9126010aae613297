"""Runs inside the separate SDV virtualenv (never the project's): SDV HMASynthesizer and SDMetrics' multi-table
QualityReport, exchanging Parquet files with bench_relational.py. SDV, RDT, Copulas and SDMetrics are BUSL, so the
project itself never imports them.

    python sdv_worker.py hma --real DIR --metadata FILE --out DIR [--seed 0]
    python sdv_worker.py quality --real DIR --synth DIR --metadata FILE [--details]

Each command prints one JSON line on stdout (timings, or scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _read_tables(folder: Path, metadata: dict) -> dict[str, pd.DataFrame]:
    """Nullable pandas dtypes become plain numpy ones: SDV 2.0 and SDMetrics expect those."""
    out = {}
    for table, table_meta in metadata["tables"].items():
        df = pd.read_parquet(folder / f"{table}.parquet")
        df = df[[c for c in table_meta["columns"] if c in df.columns]]
        for column in df.columns:
            series = df[column]
            if isinstance(series.dtype, pd.Int64Dtype) or str(series.dtype) in ("Int64", "Int32"):
                df[column] = series.astype("float64") if series.isna().any() else series.astype("int64")
            elif str(series.dtype) == "boolean":
                df[column] = series.astype(object)
            elif str(series.dtype) in ("string", "str") or isinstance(series.dtype, pd.StringDtype):
                df[column] = series.astype(object).where(series.notna(), np.nan)
        out[table] = df
    return out


def run_hma(args) -> dict:
    from sdv.metadata import Metadata
    from sdv.multi_table import HMASynthesizer

    # SDV 2.0's free HMASynthesizer refuses > 5 tables or depth > 2; switched off to time the algorithm anyway
    HMASynthesizer._validate_schema_complexity = lambda self: None
    metadata_dict = json.loads(Path(args.metadata).read_text())
    metadata = Metadata.load_from_dict(metadata_dict)
    real = _read_tables(Path(args.real), metadata_dict)
    np.random.seed(args.seed)
    synthesizer = HMASynthesizer(metadata, verbose=False)
    started = time.perf_counter()
    synthesizer.fit(real)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    # SDV 2.0 names it sample_scale; 1.x took sample(scale=...)
    sample_scale = getattr(synthesizer, "sample_scale", None)
    synthetic = sample_scale(scale=1.0) if sample_scale else synthesizer.sample(scale=1.0)
    sample_s = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for table, df in synthetic.items():
        df.to_parquet(out / f"{table}.parquet", index=False)
    return {"fit_s": fit_s, "sample_s": sample_s, "rows": {t: len(df) for t, df in synthetic.items()}}


def run_quality(args) -> dict:
    from sdmetrics.reports.multi_table import QualityReport

    metadata = json.loads(Path(args.metadata).read_text())
    real = _read_tables(Path(args.real), metadata)
    synth = _read_tables(Path(args.synth), metadata)
    report = QualityReport()
    started = time.perf_counter()
    report.generate(real, synth, metadata, verbose=False)
    properties = report.get_properties()
    result = {
        "score": float(report.get_score()),
        "properties": {row["Property"]: float(row["Score"]) for _, row in properties.iterrows()},
        "seconds": time.perf_counter() - started,
    }
    if args.details:
        result["details"] = _details(report, metadata)
    return result


def _details(report, metadata: dict) -> dict:
    """Scores only (no values): per table for each property, and the lowest-scoring column pairs."""
    out: dict = {"tables": {}, "shapes": [], "pairs": [], "intertable": []}
    for table in metadata["tables"]:
        row = {}
        for prop in ("Column Shapes", "Column Pair Trends", "Cardinality"):
            try:
                scores = report.get_details(property_name=prop, table_name=table)["Score"].dropna()
            except Exception:
                continue
            row[prop] = [float(scores.mean()) if len(scores) else None, int(len(scores))]
        out["tables"][table] = row
    for _, r in report.get_details(property_name="Column Shapes").iterrows():
        out["shapes"].append({"table": r.get("Table"), "columns": [r.get("Column")], "metric": r.get("Metric"),
                              "score": None if r.get("Score") != r.get("Score") else float(r["Score"])})
    pairs = report.get_details(property_name="Column Pair Trends")
    for _, r in pairs.iterrows():
        out["pairs"].append({"table": r.get("Table"), "columns": [r.get("Column 1"), r.get("Column 2")],
                             "metric": r.get("Metric"), "score": None if r.get("Score") != r.get("Score") else float(r["Score"])})
    inter = report.get_details(property_name="Intertable Trends")
    for _, r in inter.iterrows():
        out["intertable"].append({"parent": r.get("Parent Table"), "child": r.get("Child Table"),
                                  "fk": r.get("Foreign Key"), "columns": [r.get("Column 1"), r.get("Column 2")],
                                  "metric": r.get("Metric"),
                                  "score": None if r.get("Score") != r.get("Score") else float(r["Score"])})
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    hma = sub.add_parser("hma")
    hma.add_argument("--real", required=True)
    hma.add_argument("--metadata", required=True)
    hma.add_argument("--out", required=True)
    hma.add_argument("--seed", type=int, default=0)
    quality = sub.add_parser("quality")
    quality.add_argument("--real", required=True)
    quality.add_argument("--synth", required=True)
    quality.add_argument("--metadata", required=True)
    quality.add_argument("--details", action="store_true", help="add per-table and per-pair scores")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    result = run_hma(args) if args.command == "hma" else run_quality(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
