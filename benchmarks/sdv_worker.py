"""Runs inside the separate SDV virtualenv (never the project's): SDV HMASynthesizer and SDMetrics' multi-table
QualityReport, exchanging Parquet files with bench_relational.py. SDV, RDT, Copulas and SDMetrics are BUSL, so the
project itself never imports them.

    python sdv_worker.py hma --real DIR --metadata FILE --out DIR [--seed 0]
    python sdv_worker.py quality --real DIR --synth DIR --metadata FILE [--details]
    python sdv_worker.py detect --real DIR --keys FILE --out FILE   (bench_corpus.py: SDV's own metadata + declared keys)

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


def _plain_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes become plain numpy ones: SDV 2.0 and SDMetrics expect those."""
    df = df.copy()
    for column in df.columns:
        series = df[column]
        if isinstance(series.dtype, pd.Int64Dtype) or str(series.dtype) in ("Int64", "Int32"):
            df[column] = series.astype("float64") if series.isna().any() else series.astype("int64")
        elif str(series.dtype) == "boolean":
            df[column] = series.astype(object)
        elif str(series.dtype) in ("string", "str") or isinstance(series.dtype, pd.StringDtype):
            df[column] = series.astype(object).where(series.notna(), np.nan)
    return df


def _read_tables(folder: Path, metadata: dict) -> dict[str, pd.DataFrame]:
    out = {}
    for table, table_meta in metadata["tables"].items():
        df = pd.read_parquet(folder / f"{table}.parquet")
        out[table] = _plain_dtypes(df[[c for c in table_meta["columns"] if c in df.columns]])
    return out


def run_detect(args) -> dict:
    """SDV's detected metadata with the declared keys: `fit` (what HMA is given: detection as is, except keys) and
    `scored` (every non-key column a user sees scored: id / PII / text sdtypes become categorical or numerical).

    Keys JSON: {"primary_keys": {table: [cols]}, "foreign_keys": [{child, child_columns, parent, parent_columns}]}.
    HMA cannot express composite keys, self references or cycles: those are left out and listed in `dropped`.
    """
    from sdv.metadata import Metadata

    keys = json.loads(Path(args.keys).read_text())
    frames = {p.stem: _plain_dtypes(pd.read_parquet(p)) for p in sorted(Path(args.real).glob("*.parquet"))}
    detected = Metadata.detect_from_dataframes(frames).to_dict()
    detected["relationships"], dropped = [], []
    tables = detected["tables"]
    for table, meta in tables.items():
        meta.pop("primary_key", None)
        declared = keys["primary_keys"].get(table, [])
        if len(declared) == 1:
            meta["primary_key"] = declared[0]
            meta["columns"][declared[0]] = {"sdtype": "id"}
        elif declared:
            dropped.append(f"{table} composite primary key {'+'.join(declared)}")
    parents_of: dict[str, set[str]] = {}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(parents_of.get(node, ()))
        return False

    for fk in keys["foreign_keys"]:
        label = f"{fk['child']}({', '.join(fk['child_columns'])}) -> {fk['parent']}"
        if len(fk["child_columns"]) > 1:
            dropped.append(f"composite FK {label}")
        elif fk["child"] == fk["parent"]:
            dropped.append(f"self reference {label}")
        elif tables[fk["parent"]].get("primary_key") != fk["parent_columns"][0]:
            dropped.append(f"FK {label}: the parent column is not a single-column primary key")
        elif reaches(fk["parent"], fk["child"]):
            dropped.append(f"FK {label}: closes a cycle")
        else:
            parents_of.setdefault(fk["child"], set()).add(fk["parent"])
            tables[fk["child"]]["columns"][fk["child_columns"][0]] = {"sdtype": "id"}
            detected["relationships"].append({"parent_table_name": fk["parent"], "parent_primary_key": fk["parent_columns"][0],
                                              "child_table_name": fk["child"], "child_foreign_key": fk["child_columns"][0]})
    Metadata.load_from_dict(detected).validate()
    key_columns = {(r["child_table_name"], r["child_foreign_key"]) for r in detected["relationships"]}
    key_columns |= {(t, m["primary_key"]) for t, m in tables.items() if "primary_key" in m}
    scored = json.loads(json.dumps(detected))
    for table, meta in scored["tables"].items():
        for column, cmeta in meta["columns"].items():
            if (table, column) in key_columns or cmeta["sdtype"] in ("numerical", "categorical", "boolean", "datetime"):
                continue
            numeric = pd.api.types.is_numeric_dtype(frames[table][column])
            meta["columns"][column] = {"sdtype": "numerical" if numeric else "categorical"}
    return {"fit": detected, "scored": scored, "dropped": dropped}


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
    started, cpu = time.perf_counter(), time.process_time()
    synthesizer.fit(real)
    fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    # SDV 2.0 names it sample_scale; 1.x took sample(scale=...)
    sample_scale = getattr(synthesizer, "sample_scale", None)
    synthetic = sample_scale(scale=1.0) if sample_scale else synthesizer.sample(scale=1.0)
    sample_s, sample_cpu = time.perf_counter() - started, time.process_time() - cpu
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for table, df in synthetic.items():
        df.to_parquet(out / f"{table}.parquet", index=False)
    return {"fit_s": fit_s, "sample_s": sample_s, "cpu_s": fit_cpu + sample_cpu,
            "rows": {t: len(df) for t, df in synthetic.items()}}


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
    detect = sub.add_parser("detect")
    detect.add_argument("--real", required=True)
    detect.add_argument("--keys", required=True)
    detect.add_argument("--out", required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.command == "detect":
        result = run_detect(args)
        Path(args.out).write_text(json.dumps({k: result[k] for k in ("fit", "scored")}))
        result = {"dropped": result["dropped"]}
    else:
        result = run_hma(args) if args.command == "hma" else run_quality(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
