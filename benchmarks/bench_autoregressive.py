"""Adult benchmark for the `autoregressive` generator against the copula, SDV and MOSTLY AI's TabularARGN.

ONE run, one seeded 80/20 split, one printed table per table size (full Adult, and 1,000 training rows where
overfitting is the risk). Every method fits and samples in its own subprocess (so peak memory is its own):
the project's generators in this virtualenv, SDV in benchmarks/.venv-sdv, mostlyai-engine in
benchmarks/.venv-mostly. They exchange Parquet files. SDMetrics' QualityReport (SDV-detected metadata) is
computed in the SDV virtualenv for every method's output; TSTR (HistGradientBoosting trained on synthetic,
ROC AUC on the real 20%) and the privacy gates (copies of unique training rows, DCR share on equal-size
train and holdout) here, with the engine's own metrics. The BUSL / heavy packages never enter the project
venv.

    . .venv/bin/activate
    python benchmarks/bench_autoregressive.py                       # everything
    python benchmarks/bench_autoregressive.py --methods autoregressive,gaussian_copula --no-small

This file is also its own worker: `--worker KIND` runs one step inside whichever interpreter calls it.
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

import numpy as np
import pandas as pd

from _harness import corpus_dir, peak_rss_mib, split_80_20
from _harness import tstr_auc as _tstr_auc

ROOT = Path(__file__).resolve().parents[1]
ADULT = corpus_dir() / "adult" / "adult.csv"
SDV_PY = ROOT / "benchmarks" / ".venv-sdv" / "bin" / "python"
MOSTLY_PY = ROOT / "benchmarks" / ".venv-mostly" / "bin" / "python"
TARGET = "income"
QUOTED_ARGN = {"fit_sample_s": 107.0, "quality": 0.982, "shapes": 0.989, "pairs": 0.975, "tstr": 0.921}
ALL_METHODS = ["autoregressive", "gaussian_copula", "sdv_gaussian_copula", "sdv_tvae", "sdv_ctgan", "mostly_tabular_argn"]


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes -> numpy ones: SDV, SDMetrics and mostlyai-engine expect those."""
    df = df.copy()
    for column in df.columns:
        s, dtype = df[column], str(df[column].dtype)
        if dtype in ("Int64", "Int32"):
            df[column] = s.astype("float64") if s.isna().any() else s.astype("int64")
        elif dtype == "boolean":
            df[column] = s.astype(object)
        elif dtype in ("string", "str") or isinstance(s.dtype, pd.StringDtype):
            df[column] = s.astype(object).where(s.notna(), np.nan)
    return df


# ---------------------------------------------------------------- workers (run in any of the three venvs)


def worker_fit(args) -> dict:
    train = pd.read_parquet(args.train)
    n = len(train)
    epochs = None
    if args.method in ("autoregressive", "gaussian_copula"):
        from genesis_pipelines.engine.synthesis.generators import create_generator
        meta = _adult_meta(train)
        # BENCH_AR_SETTINGS='{"threads": 2}' tries other settings of the autoregressive generator
        settings = json.loads(os.environ.get("BENCH_AR_SETTINGS", "{}")) if args.method == "autoregressive" else {}
        generator = create_generator(args.method, **settings)
        started, cpu = time.perf_counter(), time.process_time()
        generator.fit(train, meta, seed=args.seed)
        fit_s = time.perf_counter() - started
        synth = generator.sample(n, seed=args.seed + 1)
        epochs = generator.describe().get("epochs")
    elif args.method.startswith("sdv_"):
        from sdv.metadata import Metadata
        from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer
        real = _plain(train)
        metadata = Metadata.detect_from_dataframes({"adult": real})
        cls = {"sdv_gaussian_copula": GaussianCopulaSynthesizer, "sdv_tvae": TVAESynthesizer, "sdv_ctgan": CTGANSynthesizer}[args.method]
        kwargs = {} if args.method == "sdv_gaussian_copula" else {"epochs": 20}
        np.random.seed(args.seed)
        synthesizer = cls(metadata, **kwargs)
        started, cpu = time.perf_counter(), time.process_time()
        synthesizer.fit({"adult": real})  # SDV 2.0: data as {table name: frame}
        fit_s = time.perf_counter() - started
        synth = synthesizer.sample(n)
        synth = synth["adult"] if isinstance(synth, dict) else synth
    elif args.method == "mostly_tabular_argn":
        from mostlyai.engine import TabularARGN
        workspace = tempfile.mkdtemp(prefix="argn_")
        model = TabularARGN(max_epochs=100, max_training_time=20.0, device="cpu", workspace_dir=workspace,
                            random_state=args.seed, verbose=0)
        started, cpu = time.perf_counter(), time.process_time()
        model.fit(_plain(train))
        fit_s = time.perf_counter() - started
        synth = model.sample(n_samples=n)
    else:
        raise SystemExit(f"unknown method {args.method}")
    total = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    _plain(synth).to_parquet(args.out, index=False)
    return {"fit_s": fit_s, "fit_sample_s": total, "cpu_s": cpu_s, "peak_mb": peak_rss_mib(), "epochs": epochs}


def worker_quality(args) -> dict:
    """SDMetrics QualityReport for each synthetic file, metadata detected by SDV from the real table."""
    from sdmetrics.reports.single_table import QualityReport
    from sdv.metadata import Metadata
    real = _plain(pd.read_parquet(args.train))
    metadata = Metadata.detect_from_dataframes({"adult": real}).to_dict()["tables"]["adult"]
    out = {}
    for item in args.synth:
        name, path = item.split("=", 1)
        synth = _plain(pd.read_parquet(path))[list(real.columns)]
        for column in real.columns:  # SDMetrics compares like with like
            if real[column].dtype.kind in "if":
                synth[column] = pd.to_numeric(synth[column], errors="coerce")
            else:
                synth[column] = synth[column].astype(object).where(synth[column].notna(), np.nan)
        report = QualityReport()
        report.generate(real, synth, metadata, verbose=False)
        props = report.get_properties().set_index("Property")["Score"]
        out[name] = {"quality": float(report.get_score()), "shapes": float(props["Column Shapes"]),
                     "pairs": float(props["Column Pair Trends"])}
    return out


# ---------------------------------------------------------------- the driver (project venv)


def _adult_meta(train: pd.DataFrame):
    from genesis_pipelines.engine.analysis.schema_inference import profile_table
    from genesis_pipelines.engine.core.spec import DatasetSpec
    spec = DatasetSpec.model_validate({"name": "adult", "source": {"kind": "csv_folder", "path": "."}, "tables": {"adult": {}}})
    meta = profile_table("adult", train, spec)
    for column in meta.columns.values():  # Adult has no key: a unique-looking column is data here
        if column.sdtype == "id":
            column.sdtype = "integer" if "int" in column.dtype.lower() else "categorical"
    meta.primary_key = []
    return meta


def load_split(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from genesis_pipelines.engine.sources.io import coerce_types
    raw = pd.read_csv(ADULT, dtype=str, keep_default_na=False, na_values=["", "?"])
    df = coerce_types(raw)
    return split_80_20(df, seed)


def tstr_auc(synth: pd.DataFrame, test: pd.DataFrame) -> float | None:
    """TSTR ROC AUC of the income class, the same scorer as the other benchmarks (benchmarks/_harness.py)."""
    return _tstr_auc(_plain(synth)[list(test.columns)], _plain(test), TARGET, lambda s: s.astype(str).str.contains(">"))


def privacy(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, meta) -> tuple[int, float | None]:
    from genesis_pipelines.engine.evaluation.privacy.copies import exact_copies
    from genesis_pipelines.engine.evaluation.privacy.distance import distance_to_closest_record
    columns = list(train.columns)
    synth = synth[columns].copy()
    for column in columns:  # other tools' outputs back to this project's types
        if meta.columns[column].sdtype in ("integer", "numeric"):
            synth[column] = pd.to_numeric(synth[column], errors="coerce")
        else:
            synth[column] = synth[column].astype("string")
    copies = exact_copies(train, synth, columns, holdout=holdout, meta=meta)["unique_record_copies"]
    dcr = distance_to_closest_record(train, holdout, synth, meta, columns)  # train subsampled to the holdout's size
    return int(copies), dcr.get("share_closer_to_train")


def _run_json(cmd: list[str], timeout: float) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip().splitlines()[-1][:300] if (proc.stderr or proc.stdout).strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_size(label: str, train: pd.DataFrame, test: pd.DataFrame, holdout: pd.DataFrame, methods: list[str],
             work: Path, seed: int, timeout: float) -> None:
    meta = _adult_meta(train)
    train_path = work / f"{label}_train.parquet"
    train.to_parquet(train_path, index=False)
    rows, synth_paths, notes = {}, {}, []
    for method in methods:
        python = {"sdv": SDV_PY, "mostly": MOSTLY_PY}.get(method.split("_")[0], Path(sys.executable))
        if not python.exists():
            notes.append(f"{method}: not run, {python.parent.parent.name} does not exist")
            continue
        out = work / f"{label}_{method}.parquet"
        print(f"  [{label}] {method} ...", file=sys.stderr, flush=True)
        try:
            rows[method] = _run_json([str(python), __file__, "--worker", "fit", "--method", method, "--train", str(train_path),
                                      "--out", str(out), "--seed", str(seed)], timeout)
            synth_paths[method] = out
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            notes.append(f"{method}: failed ({exc.__class__.__name__}: {str(exc)[:200]})")
    quality: dict = {}
    if SDV_PY.exists() and synth_paths:
        try:
            quality = _run_json([str(SDV_PY), __file__, "--worker", "quality", "--train", str(train_path), "--synth",
                                 *[f"{m}={p}" for m, p in synth_paths.items()]], timeout * 2)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            notes.append(f"SDMetrics QualityReport failed ({exc})")
    else:
        notes.append("SDMetrics QualityReport not computed: benchmarks/.venv-sdv does not exist")
    for method, path in synth_paths.items():
        synth = pd.read_parquet(path)
        rows[method]["tstr"] = tstr_auc(synth, test)
        rows[method]["copies"], rows[method]["dcr"] = privacy(train, holdout, synth, meta)
        rows[method].update(quality.get(method, {}))
    if "mostly_tabular_argn" in methods and "mostly_tabular_argn" not in rows and len(train) > 10_000:
        rows["mostly_tabular_argn (quoted from issue 8)"] = dict(QUOTED_ARGN)
    real_auc = tstr_auc(train, test)
    print_table(label, train, test, holdout, rows, real_auc, notes)


def _f(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(label, train, test, holdout, rows, real_auc, notes) -> None:
    load = os.getloadavg()[0]
    print(f"\n=== {label}: train {len(train)} rows, TSTR test {len(test)} rows, DCR holdout {len(holdout)} rows; "
          f"train-on-real AUC {_f(real_auc, '.3f')}; load average {load:.1f} on {os.cpu_count()} cores ===")
    header = f"| {'method':<42} | fit+sample s | CPU s | peak MB | quality | shapes | pairs | TSTR AUC | unique copies | DCR share |"
    print(header)
    print("|" + "|".join("-" * (len(p)) for p in header.split("|")[1:-1]) + "|")
    for method, r in rows.items():
        print(f"| {method:<42} | {_f(r.get('fit_sample_s'), '12.1f')} | {_f(r.get('cpu_s'), '5.1f')} | "
              f"{_f(r.get('peak_mb'), '7.0f')} | {_f(r.get('quality'), '7.3f')} | {_f(r.get('shapes'), '6.3f')} | "
              f"{_f(r.get('pairs'), '5.3f')} | {_f(r.get('tstr'), '8.3f')} | {_f(r.get('copies'), '13d')} | "
              f"{_f(r.get('dcr'), '9.3f')} |")
    if "autoregressive" in rows and len(train) > 10_000:
        r = rows["autoregressive"]
        checks = [("quality >= 0.98", r.get("quality") is not None and r["quality"] >= 0.98),
                  ("TSTR AUC >= 0.92", r.get("tstr") is not None and r["tstr"] >= 0.92),
                  ("fit+sample <= 35 s", r["fit_sample_s"] <= 35.0),
                  ("0 unique-record copies", r.get("copies") == 0),
                  ("DCR share <= 0.55", r.get("dcr") is not None and r["dcr"] <= 0.55)]
        print("targets (autoregressive): " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))
    for method, r in rows.items():
        if r.get("epochs"):
            print(f"note: {method} trained {r['epochs']} epochs")
    for note in notes:
        print(f"note: {note}")
    print(flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["fit", "quality"])
    parser.add_argument("--method")
    parser.add_argument("--train")
    parser.add_argument("--out")
    parser.add_argument("--synth", nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--no-small", action="store_true", help="skip the 1,000-row run")
    parser.add_argument("--no-full", action="store_true", help="skip the full-Adult run")
    parser.add_argument("--small-rows", type=int, default=1000)
    parser.add_argument("--workdir", help="keep the Parquet files here instead of a temp folder")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per method")
    args = parser.parse_args()
    if args.worker:
        import warnings
        warnings.filterwarnings("ignore")
        result = worker_fit(args) if args.worker == "fit" else worker_quality(args)
        print(json.dumps(result))
        return 0
    methods = [m for m in args.methods.split(",") if m]
    train, test = load_split(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_ar_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.no_full:
            run_size("Adult", train, test, test, methods, work, args.seed, args.timeout)
        if not args.no_small:
            rng = np.random.default_rng(args.seed + 7)
            small = train.iloc[np.sort(rng.choice(len(train), args.small_rows, replace=False))].reset_index(drop=True)
            holdout = test.iloc[np.sort(rng.choice(len(test), args.small_rows, replace=False))].reset_index(drop=True)
            run_size(f"Adult {args.small_rows} rows", small, test, holdout, methods, work, args.seed, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
