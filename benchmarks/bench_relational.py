"""Whole-database synthesis: this project against SDV's HMASynthesizer, same data, same run.

For each dataset it prints total fit + sample time, SDMetrics' multi-table QualityReport (column shapes, column
pair trends, cardinality, intertable trends) and FK integrity. SDV and SDMetrics are BUSL and never enter the
project's virtualenv: they run in a separate one (default benchmarks/.venv-sdv, made on first use with
`--make-sdv-venv`) as a subprocess that exchanges Parquet files. Both sides are scored by the same SDMetrics
call on the same metadata, which describes what HMA can express (see `sdv_metadata`).

    python benchmarks/bench_relational.py                         # chinook and nycflights
    python benchmarks/bench_relational.py --dataset chinook --skip-sdv
    python benchmarks/bench_relational.py --hma-cache /tmp/hma    # keep HMA output and timings, reuse next run
    python benchmarks/bench_relational.py --dataset chinook --skip-hma --details   # where quality points are lost
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis_pipelines.engine.analysis.schema_inference import analyse  # noqa: E402
from genesis_pipelines.engine.core.schema import DatasetSchema  # noqa: E402
from genesis_pipelines.engine.core.spec import load_spec  # noqa: E402
from genesis_pipelines.engine.privacy import pii  # noqa: E402
from genesis_pipelines.engine.sources.io import read_source_table  # noqa: E402
from genesis_pipelines.engine.sources.locations import source_table_names  # noqa: E402
from genesis_pipelines.engine.synthesis import relational  # noqa: E402

SDV_VENV = ROOT / "benchmarks" / ".venv-sdv"
WORKER = ROOT / "benchmarks" / "sdv_worker.py"
_SDTYPE = {"numeric": "numerical", "integer": "numerical", "categorical": "categorical", "boolean": "boolean",
           "datetime": "datetime"}
PROPERTIES = ("Column Shapes", "Column Pair Trends", "Cardinality", "Intertable Trends")


def sdv_metadata(schema: DatasetSchema, findings: list[pii.PiiFinding]) -> tuple[dict, list[str]]:
    """SDV metadata of what HMA can express, and the list of what had to be dropped.

    PII columns that are not kept and free text are `unknown` (SDMetrics does not score them: neither side learns
    their values). Self references are dropped with their column; composite keys are left undeclared.
    """
    dropped: list[str] = []
    pii_columns = {(f.table, f.column) for f in findings if f.policy != "keep"}
    tables: dict[str, dict] = {}
    self_refs = {(fk.child_table, fk.child_column) for fk in schema.foreign_keys if fk.is_self_reference}
    for name, meta in schema.tables.items():
        key_columns = schema.key_columns(name)
        columns = {}
        for column, cmeta in meta.columns.items():
            if (name, column) in self_refs:
                continue
            if column in key_columns:
                columns[column] = {"sdtype": "id"}
            elif (name, column) in pii_columns or cmeta.sdtype not in _SDTYPE:
                columns[column] = {"sdtype": "unknown", "pii": True}
            else:
                columns[column] = {"sdtype": _SDTYPE[cmeta.sdtype]}
        table = {"columns": columns}
        if len(meta.primary_key) == 1:
            table["primary_key"] = meta.primary_key[0]
        elif len(meta.primary_key) > 1:
            dropped.append(f"{name} composite key {'+'.join(meta.primary_key)} not declared (pair uniqueness not enforced)")
        tables[name] = table
    relationships = []
    for fk in schema.foreign_keys:
        if fk.is_self_reference:
            dropped.append(f"self reference {fk.child_table}.{fk.child_column} dropped with its column")
            continue
        relationships.append({"parent_table_name": fk.parent_table, "parent_primary_key": fk.parent_column,
                              "child_table_name": fk.child_table, "child_foreign_key": fk.child_column})
    return {"METADATA_SPEC_VERSION": "V1", "tables": tables, "relationships": relationships}, dropped


def fk_integrity(frames: dict[str, pd.DataFrame], relationships: list[dict]) -> float:
    """Share of non-null FK values (all relationships pooled) that resolve to a parent key."""
    resolved = total = 0
    for rel in relationships:
        child = frames[rel["child_table_name"]][rel["child_foreign_key"]].dropna()
        parent = frames[rel["parent_table_name"]][rel["parent_primary_key"]].dropna()
        if pd.api.types.is_numeric_dtype(child) and pd.api.types.is_numeric_dtype(parent):
            child, parent = child.astype("float64"), parent.astype("float64")
        else:
            child, parent = child.astype(str), parent.astype(str)
        resolved += int(child.isin(set(parent)).sum())
        total += len(child)
    return 100.0 * resolved / total if total else 100.0


def write_parquet(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)


def read_parquet(folder: Path, names) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names}


def run_worker(python: Path, *args: str) -> dict:
    done = subprocess.run([str(python), str(WORKER), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sdv_worker {args[0]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_sdv_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n")
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", "torch==2.13.0"], check=True)
    subprocess.run([str(pip), "install", "-q", "sdv==2.0.0", "pyarrow"], check=True)


def sdv_python(args) -> Path | None | int:
    """The SDV venv's interpreter (made with --make-sdv-venv when missing), None with --skip-sdv, 2 when absent."""
    if args.skip_sdv:
        return None
    venv = Path(args.sdv_venv)
    if not (venv / "bin" / "python").exists():
        if not args.make_sdv_venv:
            print(f"no SDV virtualenv at {venv}: pass --make-sdv-venv, --sdv-venv PATH or --skip-sdv", file=sys.stderr)
            return 2
        make_sdv_venv(venv)
    return venv / "bin" / "python"


def bench_dataset(name: str, args, python: Path | None) -> dict:
    spec_path = Path(name) if name.endswith(".yaml") else ROOT / "resources" / "datasets" / name / "dataset.yaml"
    # HMA fits every real row, so ours does too: the pipeline's holdout is for its privacy report, not this contest
    spec = load_spec(spec_path).model_copy(update={"holdout_fraction": 0.0})
    real = {t: read_source_table(spec, t) for t in source_table_names(spec)}
    started = time.perf_counter()
    schema = analyse(spec, real)
    findings = pii.scan_tables(real, schema, spec)
    prep_s = time.perf_counter() - started
    metadata, dropped = sdv_metadata(schema, findings)
    result = {"dataset": spec.name, "tables": len(real), "rows": sum(len(df) for df in real.values()),
              "prep_s": prep_s, "dropped": dropped}
    with tempfile.TemporaryDirectory(prefix="bench_relational_") as tmp:
        tmp = Path(tmp)
        started, cpu = time.perf_counter(), time.process_time()
        relational.train(spec, schema, real, findings, tmp / "models")
        fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        model, model_dir = relational.load_model(tmp / "models")
        started, cpu = time.perf_counter(), time.process_time()
        ours = relational.generate_all(model, model_dir, scale=1.0, seed=spec.seed, locale=spec.pii_locale)
        sample_s, sample_cpu = time.perf_counter() - started, time.process_time() - cpu
        full_relationships = [{"parent_table_name": fk.parent_table, "parent_primary_key": fk.parent_column,
                               "child_table_name": fk.child_table, "child_foreign_key": fk.child_column}
                              for fk in schema.foreign_keys]
        result["ours"] = {"fit_s": fit_s, "sample_s": sample_s, "cpu_s": fit_cpu + sample_cpu,
                          "fk_pct": fk_integrity(ours, full_relationships),
                          "rows": sum(len(df) for df in ours.values())}
        if python is None:
            return result
        (tmp / "metadata.json").write_text(json.dumps(metadata))
        write_parquet(real, tmp / "real")
        write_parquet(ours, tmp / "ours")
        result["ours"]["quality"] = run_worker(python, "quality", "--real", str(tmp / "real"), "--synth", str(tmp / "ours"),
                                               "--metadata", str(tmp / "metadata.json"),
                                               *(["--details"] if args.details else []))
        cache = Path(args.hma_cache) / spec.name if args.hma_cache else None
        if args.skip_hma and not (cache and (cache / "timings.json").is_file()):
            return result
        if cache and (cache / "timings.json").is_file():
            hma = json.loads((cache / "timings.json").read_text())
            hma_dir, hma["cached"] = cache, True
        else:
            hma_dir = cache or tmp / "hma"
            hma = run_worker(python, "hma", "--real", str(tmp / "real"), "--metadata", str(tmp / "metadata.json"),
                             "--out", str(hma_dir), "--seed", str(spec.seed))
            if cache:
                (cache / "timings.json").write_text(json.dumps(hma))
        hma_frames = read_parquet(hma_dir, real)
        hma["fk_pct"] = fk_integrity(hma_frames, metadata["relationships"])
        hma["rows"] = sum(len(df) for df in hma_frames.values())
        hma["quality"] = run_worker(python, "quality", "--real", str(tmp / "real"), "--synth", str(hma_dir),
                                    "--metadata", str(tmp / "metadata.json"))
        result["hma"] = hma
    return result


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def print_table(r: dict) -> None:
    ours, hma = r["ours"], r.get("hma")
    print(f"\n=== {r['dataset']}: {r['tables']} tables, {r['rows']:,} real rows "
          f"(schema analysis + PII scan {r['prep_s']:.2f} s, not counted) ===")
    rows = [("fit s", ours["fit_s"], hma and hma["fit_s"]),
            ("sample s", ours["sample_s"], hma and hma["sample_s"]),
            ("fit + sample s", ours["fit_s"] + ours["sample_s"], hma and hma["fit_s"] + hma["sample_s"]),
            ("fit + sample CPU s", ours.get("cpu_s"), None)]
    if hma:
        rows.append(("speed-up vs HMA (x)", (hma["fit_s"] + hma["sample_s"]) / (ours["fit_s"] + ours["sample_s"]), None))
    for label, key in (("quality score (SDMetrics)", None), *((f"  {p.lower()}", p) for p in PROPERTIES)):
        q_ours = ours.get("quality")
        q_hma = hma and hma.get("quality")
        def pick(q, key=key):
            return q and (q["score"] if key is None else q["properties"].get(key))

        rows.append((label, pick(q_ours), pick(q_hma)))
    rows.append(("FK integrity %", ours["fk_pct"], hma and hma["fk_pct"]))
    rows.append(("synthetic rows", ours["rows"], hma and hma["rows"]))
    width = max(len(label) for label, *_ in rows)
    print(f"{'':<{width}}  {'genesis (this project)':>24}  {'SDV HMASynthesizer 2.0':>24}")
    for label, a, b in rows:
        digits = 2 if "s" == label.split()[-1] or label.startswith("speed") or "%" in label else 3
        print(f"{label:<{width}}  {_fmt(a, digits):>24}  {_fmt(b, digits) if hma else 'not run':>24}")
    print("genesis models every FK (self reference and composite keys included); FK integrity over all of them.")
    print("Both fit every real row (the pipeline itself trains on its 80% split and keeps 20% for the privacy report).")
    print("CPU s: this process's CPU time over fit + sample (threads summed); wall time moves with other load.")
    if hma:
        note = " (figures from --hma-cache)" if hma.get("cached") else ""
        print(f"HMA{note}: schema-complexity refusal switched off (>5 tables / depth >2); "
              + ("; ".join(r["dropped"]) or "nothing dropped") + ".")
        print("Both scored by one SDMetrics QualityReport on HMA's metadata: non-kept PII and free text are not scored.")


def print_details(r: dict, worst: int = 12) -> None:
    """Where the quality points are lost: per-table scores and the lowest column pairs (scores only, no values)."""
    details = r["ours"].get("quality", {}).get("details")
    if not details:
        return
    print(f"\n--- {r['dataset']}: per table (mean score, number scored) ---")
    for table, props in details["tables"].items():
        cells = "  ".join(f"{p.lower()} {_fmt(v[0])} ({v[1]})" for p, v in props.items() if v[1])
        print(f"  {table:<16} {cells}")
    shapes = sorted((p for p in details.get("shapes", []) if p["score"] is not None), key=lambda p: p["score"])
    print(f"--- lowest column shapes ({len(shapes)} scored) ---")
    for p in shapes[:worst]:
        print(f"  {p['score']:.3f}  {p['table']}: {p['columns'][0]} ({p['metric']})")
    pairs = sorted((p for p in details["pairs"] if p["score"] is not None), key=lambda p: p["score"])
    print(f"--- lowest column pair trends ({len(pairs)} scored) ---")
    for p in pairs[:worst]:
        print(f"  {p['score']:.3f}  {p['table']}: {' / '.join(map(str, p['columns']))} ({p['metric']})")
    inter = sorted((p for p in details["intertable"] if p["score"] is not None), key=lambda p: p["score"])
    print(f"--- lowest intertable trends ({len(inter)} scored) ---")
    for p in inter[:worst]:
        print(f"  {p['score']:.3f}  {p['parent']} -> {p['child']} via {p['fk']}: {' / '.join(map(str, p['columns']))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", help="spec name under resources/datasets or a dataset.yaml")
    parser.add_argument("--skip-sdv", action="store_true", help="time this project only")
    parser.add_argument("--skip-hma", action="store_true", help="score this project with SDMetrics, but run no HMA "
                                                                 "(figures from --hma-cache are still shown)")
    parser.add_argument("--sdv-venv", default=str(SDV_VENV), help="virtualenv with sdv==2.0.0 (never the project's)")
    parser.add_argument("--make-sdv-venv", action="store_true", help="create --sdv-venv if it does not exist")
    parser.add_argument("--hma-cache", help="folder keeping HMA output and timings; reused when present")
    parser.add_argument("--details", action="store_true", help="also print per-table scores and the lowest column "
                                                                "pairs of this project's quality report")
    args = parser.parse_args()
    python = sdv_python(args)
    if python == 2:
        return 2
    print(f"bench_relational: Python {sys.version.split()[0]}, pandas {pd.__version__}; {os.cpu_count()} CPUs")
    status = 0
    for name in args.dataset or ["chinook", "nycflights"]:
        try:
            result = bench_dataset(name, args, python)
            print_table(result)
            if args.details:
                print_details(result)
        except Exception as exc:  # one bad dataset must not hide the others' figures
            print(f"\n=== {name}: failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
            status = 1
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
