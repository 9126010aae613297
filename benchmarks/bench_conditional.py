"""Conditional generation on Adult: rows conditioned on the minority class of `income` (>50K).

    python benchmarks/bench_conditional.py [--ar-epochs 8] [--seed 0]

Adult (../shared/datasets/adult) is split 80/20 (seeded); each generator (gaussian_copula, autoregressive) is
trained through the pipeline on the 80% (holdout_fraction 0), then:
- shapes: SDMetrics' Column Shapes (QualityReport property, run in benchmarks/.venv-sdmetrics: `python -m venv
  benchmarks/.venv-sdmetrics && benchmarks/.venv-sdmetrics/bin/pip install sdmetrics pyarrow`) of rows conditioned
  on income = >50K (engine.conditions, as many as the real minority rows) against the real minority training rows;
  baselines from the same run: the twin's unconditioned rows that happen to be >50K, and the real minority rows of
  the 20% holdout (what sampling noise alone gives);
- utility: HistGradientBoosting trained on the real 80% alone, and on the real 80% plus conditioned >50K rows up to
  balance (the rows `--condition income=>50K --rows K` makes), scored on the real 20%: minority recall (at 0.5) and AUC.
Prints the table, CPU seconds beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import recall_score, roc_auc_score

from _harness import Clock, corpus_dir, split_80_20, tstr_scores

HERE = Path(__file__).resolve().parent
ADULT = corpus_dir() / "adult" / "adult.csv"
SDM_PYTHON = Path(os.environ.get("SDMETRICS_PYTHON", HERE / ".venv-sdmetrics" / "bin" / "python"))
TARGET, MINORITY = "income", ">50K"

SHAPES_WORKER = r"""
import json, sys
import numpy as np, pandas as pd
from sdmetrics.reports.single_table import QualityReport
real = pd.read_parquet(sys.argv[1])
meta = {"columns": {c: {"sdtype": "numerical"} if pd.api.types.is_numeric_dtype(real[c]) else {"sdtype": "categorical"}
                    for c in real.columns}}
out = {}
for path in sys.argv[2:]:
    synth = pd.read_parquet(path)[real.columns]
    for c in real.columns:
        if pd.api.types.is_numeric_dtype(real[c]):
            synth[c] = pd.to_numeric(synth[c], errors="coerce")
        else:
            synth[c] = synth[c].astype(object).where(synth[c].notna(), np.nan)
    report = QualityReport()
    report.generate(real, synth, meta, verbose=False)
    props = report.get_properties()
    out[path] = float(props.loc[props["Property"] == "Column Shapes", "Score"].iloc[0])
print(json.dumps(out))
"""


def plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[c] = s.astype(object).where(s.notna(), None)
    return out


def split(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_80_20(pd.read_csv(ADULT), seed)


def classifier(train: pd.DataFrame, test: pd.DataFrame) -> tuple[float, float]:
    """Recall and ROC AUC on the real test rows of HistGradientBoosting trained on `train`."""
    y_test, proba = tstr_scores(train, test, TARGET, lambda s: s.astype(str) == MINORITY)
    return float(recall_score(y_test, proba >= 0.5)), float(roc_auc_score(y_test, proba))


def run_method(method: str, train: pd.DataFrame, tmp: Path, seed: int, ar_epochs: int) -> dict:
    from genesis_pipelines.engine import pipeline
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.synthesis import conditions

    folder = tmp / method
    (folder / "src").mkdir(parents=True)
    train.to_csv(folder / "src" / "adult.csv", index=False)
    settings = {"autoregressive": {"max_epochs": ar_epochs}} if method == "autoregressive" else {}
    spec = parse_spec({"name": "adult", "source": {"kind": "csv_folder", "path": "src"}, "holdout_fraction": 0.0,
                       "seed": seed, "generator": {"default": method, "settings": settings}}, spec_dir=folder)
    layout = pipeline.DatasetLayout(folder / "data", "adult")
    connect = pipeline.warehouse_connector(folder / "data" / "warehouse.duckdb")
    with Clock() as fit:
        pipeline.train(spec, layout, connect)
    with Clock() as cond:
        model, model_dir = pipeline.load_model(layout)
        real_minority = int((train[TARGET] == MINORITY).sum())
        top_up = int((train[TARGET] != MINORITY).sum()) - real_minority
        condition = [conditions.parse_condition(f"{TARGET}={MINORITY}", model, "adult")]
        p = conditions.plan(model, model_dir, "adult", conditions=condition, rows=max(real_minority, top_up), seed=seed)
        rows, summary = conditions.generate_rows(model, model_dir, "adult", {}, p, seed=seed + 1)
    twin = pipeline.generate(spec, layout, connect, model, model_dir, seed=seed + 2)
    twin_rows = pd.read_parquet(layout.synthetic / "adult.parquet")
    return {"fit_s": fit.wall_s, "fit_cpu_s": fit.cpu_s, "cond_s": cond.wall_s, "cond_cpu_s": cond.cpu_s,
            "conditioned": rows, "share_on_condition": float((rows[TARGET] == MINORITY).mean()),
            "twin_minority": twin_rows[twin_rows[TARGET].astype(str) == MINORITY], "top_up": top_up,
            "real_minority": real_minority, "restored": summary["restored"], "twin_tables": twin.tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ar-epochs", type=int, default=8)
    parser.add_argument("--methods", default="gaussian_copula,autoregressive")
    args = parser.parse_args()
    train, test = split(args.seed)
    real_minority_train = train[train[TARGET] == MINORITY].drop(columns=[TARGET])
    real_minority_holdout = test[test[TARGET] == MINORITY].drop(columns=[TARGET])
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files: dict[str, Path] = {}
        real_path = tmp / "real_minority.parquet"
        plain(real_minority_train).to_parquet(real_path, index=False)
        files["real holdout minority (noise)"] = tmp / "holdout_minority.parquet"
        plain(real_minority_holdout).to_parquet(files["real holdout minority (noise)"], index=False)
        for method in args.methods.split(","):
            print(f"... {method}", file=sys.stderr, flush=True)
            r = run_method(method, train, tmp, args.seed, args.ar_epochs)
            results[method] = r
            cond = r["conditioned"].head(r["real_minority"]).drop(columns=[TARGET])
            files[f"{method} conditioned"] = tmp / f"{method}_cond.parquet"
            plain(cond).to_parquet(files[f"{method} conditioned"], index=False)
            files[f"{method} twin filtered"] = tmp / f"{method}_twin.parquet"
            plain(r["twin_minority"].drop(columns=[TARGET])).to_parquet(files[f"{method} twin filtered"], index=False)
            augmented = pd.concat([train, r["conditioned"].head(r["top_up"])[train.columns]], ignore_index=True)
            r["recall"], r["auc"] = classifier(augmented, test)
        shapes: dict[str, float] = {}
        if SDM_PYTHON.is_file():
            out = subprocess.run([str(SDM_PYTHON), "-c", SHAPES_WORKER, str(real_path), *map(str, files.values())],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                by_path = json.loads(out.stdout.strip().splitlines()[-1])
                shapes = {label: by_path[str(path)] for label, path in files.items()}
            else:
                print(out.stderr[-2000:], file=sys.stderr)
        else:
            print(f"no SDMetrics at {SDM_PYTHON}: shapes left out", file=sys.stderr)
    base_recall, base_auc = classifier(train, test)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"Adult, seed {args.seed}: {len(train)} real training rows ({int((train[TARGET] == MINORITY).sum())} "
          f"{MINORITY}), {len(test)} real holdout rows")
    print()
    print("column shapes (SDMetrics) vs the real >50K training rows, income left out")
    print(f"{'rows':<44} {'n':>6} {'shapes':>7}")
    print(f"{'real holdout >50K (sampling noise)':<44} {len(real_minority_holdout):>6} {fmt(shapes.get('real holdout minority (noise)')):>7}")
    for method, r in results.items():
        print(f"{method + ': twin rows that are >50K (baseline)':<44} {len(r['twin_minority']):>6} {fmt(shapes.get(f'{method} twin filtered')):>7}")
        print(f"{method + ': conditioned on income=>50K':<44} {r['real_minority']:>6} {fmt(shapes.get(f'{method} conditioned')):>7}")
    print()
    print("HistGradientBoosting on the real holdout; augmented = real + conditioned >50K rows up to balance")
    print(f"{'training rows':<44} {'added':>6} {'recall':>7} {'AUC':>7} {'fit s':>7} {'fit CPU s':>9} {'cond s':>7} {'cond CPU s':>10}")
    print(f"{'real alone (baseline)':<44} {0:>6} {base_recall:>7.3f} {base_auc:>7.3f} {'-':>7} {'-':>9} {'-':>7} {'-':>10}")
    for method, r in results.items():
        print(f"{'real + ' + method:<44} {r['top_up']:>6} {r['recall']:>7.3f} {r['auc']:>7.3f} {r['fit_s']:>7.1f} "
              f"{r['fit_cpu_s']:>9.1f} {r['cond_s']:>7.1f} {r['cond_cpu_s']:>10.1f}")
    print()
    for method, r in results.items():
        s = shapes.get(f"{method} conditioned")
        print(f"target shapes >= 0.9, {method}: {'met' if s is not None and s >= 0.9 else 'NOT met'} ({fmt(s)}); "
              f"rows on the condition {r['share_on_condition']:.3f}, cells restored after rules {r['restored']}")


if __name__ == "__main__":
    main()
