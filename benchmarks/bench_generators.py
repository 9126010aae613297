"""This project's generators next to SDV 2.0 on Adult, in ONE run on the same 80/20 split, one table printed.

    python benchmarks/bench_generators.py [--epochs 20] [--batch-size 500] [--only gaussian_copula,sdv_gaussian_copula]
                                          [--seeds 0,1,2]

Per method: fit seconds, sample seconds (as many rows as the training split), SDMetrics QualityReport score against
the training split, and TSTR ROC AUC: a HistGradientBoostingClassifier trained on the synthetic rows, scored on the
real 20 % (target `income`), next to the same classifier trained on the real 80 %. Epoch-based methods also get
seconds per epoch. With several --seeds (each one its own split and fit seed) a table per seed is printed, then
their means, which the targets use. SDV and SDMetrics are BUSL: they run in a separate virtualenv (benchmarks/.venv-sdv, made with
`python -m venv benchmarks/.venv-sdv && benchmarks/.venv-sdv/bin/pip install torch==2.13.0 sdv==2.0.0`), called as a
subprocess (sdv_generators_worker.py) with Parquet files in a temp dir; the project never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _harness import corpus_dir, fit_and_sample, split_80_20
from _harness import tstr_auc as _tstr_auc

HERE = Path(__file__).resolve().parent
ADULT = corpus_dir() / "adult" / "adult.csv"
SDV_PYTHON = Path(os.environ.get("SDV_PYTHON", HERE / ".venv-sdv" / "bin" / "python"))
TARGET = "income"
# targets of issue 4 (2 CPU cores); SDV's figures are the ones measured in the same run
OURS = ["gaussian_copula", "dp_gaussian_copula", "tvae", "ctgan", "dp_ctgan"]
SDV = ["sdv_gaussian_copula", "sdv_tvae", "sdv_ctgan"]


def split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_80_20(pd.read_csv(ADULT), seed)


def tstr_auc(train: pd.DataFrame, test: pd.DataFrame) -> float | None:
    """ROC AUC on the real test rows of a classifier trained on `train` (synthetic or real)."""
    return _tstr_auc(train, test, TARGET, lambda s: s.astype(str) == ">50K")


def run_ours(method: str, train: pd.DataFrame, epochs: int, batch: int, seed: int) -> tuple[dict, pd.DataFrame]:
    from genesis_pipelines.engine.analysis.schema_inference import profile_table
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.synthesis.generators import available_methods, create_generator

    for module in ("ctgan", "tvae", "dp_neural"):  # registered by import, if the neural generators are present
        try:
            importlib.import_module(f"genesis_pipelines.engine.synthesis.generators.{module}")
        except ImportError:
            pass
    if method not in available_methods():
        raise LookupError(f"{method} is not available in this checkout")
    settings = {"dp_gaussian_copula": {"epsilon": 1.0}, "dp_ctgan": {"epsilon": 1.0, "epochs": epochs, "batch_size": batch,
                                                                      "progress": False},
                "ctgan": {"epochs": epochs, "batch_size": batch, "patience": None, "progress": False},
                "tvae": {"epochs": epochs, "batch_size": batch, "patience": None, "progress": False}}.get(method, {})
    meta = profile_table("adult", train, parse_spec({"name": "adult"}))
    generator = create_generator(method, **settings)
    row, synth = fit_and_sample(generator, train, meta, seed)
    info = generator.describe()
    if "epochs" in settings:
        row["epochs"] = info.get("epochs_run", settings["epochs"])
    if "epsilon_spent" in info:
        row["epsilon_spent"] = info["epsilon_spent"]
    return row, synth


def run_sdv(method: str, train_path: Path, rows: int, out: Path, epochs: int, batch: int, seed: int) -> dict:
    result = subprocess.run([str(SDV_PYTHON), str(HERE / "sdv_generators_worker.py"), "fit", "--method",
                             method.removeprefix("sdv_"), "--train", str(train_path), "--rows", str(rows), "--out", str(out),
                             "--epochs", str(epochs), "--batch-size", str(batch), "--seed", str(seed)],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    row = json.loads(result.stdout.strip().splitlines()[-1])
    if method != "sdv_gaussian_copula":
        row["epochs"] = epochs
    return row


def run_seed(methods: list[str], seed: int, epochs: int, batch: int) -> tuple[dict, dict, float]:
    """Every method on the split of one seed (the seed also seeds each fit): rows, quality, train-on-real AUC."""
    train, test = split(seed)
    rows: dict[str, dict] = {}
    quality: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_path = tmp / "train.parquet"
        train.to_parquet(train_path, index=False)
        synth_paths: dict[str, Path] = {}
        for method in methods:
            print(f"... seed {seed} {method}", file=sys.stderr, flush=True)
            out = tmp / f"{method}.parquet"
            try:
                if method.startswith("sdv_"):
                    row = run_sdv(method, train_path, len(train), out, epochs, batch, seed)
                    synth = pd.read_parquet(out)
                else:
                    row, synth = run_ours(method, train, epochs, batch, seed)
                    synth.to_parquet(out, index=False)
            except (LookupError, RuntimeError) as exc:
                rows[method] = {"note": str(exc).strip().splitlines()[-1][:80]}
                continue
            row["tstr_auc"] = tstr_auc(synth, test)
            rows[method], synth_paths[method] = row, out
            print(f"... seed {seed} {method} done: "
                  f"{json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})}", file=sys.stderr, flush=True)
        if synth_paths and SDV_PYTHON.is_file():
            result = subprocess.run([str(SDV_PYTHON), str(HERE / "sdv_generators_worker.py"), "quality", "--real",
                                     str(train_path), "--synth", *map(str, synth_paths.values())], capture_output=True, text=True)
            if result.returncode == 0:
                by_path = json.loads(result.stdout.strip().splitlines()[-1])
                quality = {m: by_path[str(p)] for m, p in synth_paths.items()}
            else:
                print(result.stderr[-2000:], file=sys.stderr)
    return rows, quality, tstr_auc(train, test)


def mean_rows(per_seed: list[tuple[dict, dict, float]], methods: list[str]) -> tuple[dict, dict]:
    """Per method, the mean of each figure over the seeds where it ran."""
    rows, quality = {}, {}
    for method in methods:
        ran = [r[method] for r, _, _ in per_seed if "fit_s" in r.get(method, {})]
        if not ran:
            rows[method] = next((r[method] for r, _, _ in per_seed if method in r), {})
            continue
        rows[method] = {k: float(np.mean([r[k] for r in ran if r.get(k) is not None]))
                        for k in ran[0] if isinstance(ran[0][k], (int, float)) and any(r.get(k) is not None for r in ran)}
        scores = [q[method] for _, q, _ in per_seed if method in q]
        if scores:
            quality[method] = float(np.mean(scores))
    return rows, quality


def print_table(methods: list[str], rows: dict, quality: dict, real_auc: float, label: str) -> None:
    header = (f"{label:8} {'method':22} {'fit s':>8} {'sample s':>9} {'s/epoch':>8} {'fit cpu s':>10} {'cpu s/epoch':>11} "
              f"{'quality':>8} {'TSTR AUC':>9}  note")
    print(header)
    print("-" * len(header))
    for method in methods:
        r = rows.get(method, {})
        if "fit_s" not in r:
            print(f"{label:8} {method:22} {'-':>8} {'-':>9} {'-':>8} {'-':>10} {'-':>11} {'-':>8} {'-':>9}  {r.get('note', '')}")
            continue
        per_epoch = f"{r['fit_s'] / r['epochs']:.2f}" if r.get("epochs") else "-"
        cpu_epoch = f"{r['fit_cpu_s'] / r['epochs']:.2f}" if r.get("epochs") else "-"
        q = f"{quality[method]:.3f}" if method in quality else "-"
        auc = f"{r['tstr_auc']:.3f}" if r.get("tstr_auc") is not None else "-"
        note = f"epsilon spent {r['epsilon_spent']:.3g}" if "epsilon_spent" in r else ""
        print(f"{label:8} {method:22} {r['fit_s']:8.2f} {r['sample_s']:9.2f} {per_epoch:>8} {r['fit_cpu_s']:10.2f} {cpu_epoch:>11} "
              f"{q:>8} {auc:>9}  {note}")
    print(f"{label:8} {'train on real':22} {'':>8} {'':>9} {'':>8} {'':>10} {'':>11} {'':>8} {real_auc:9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default="", help="comma-separated seeds (split and fit), e.g. 0,1,2; the targets use "
                                                     "the means over them (default: --seed alone)")
    parser.add_argument("--only", default="", help="comma-separated methods (default: all)")
    args = parser.parse_args()
    methods = [m for m in OURS + SDV if not args.only or m in args.only.split(",")]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or [args.seed]
    per_seed = [run_seed(methods, seed, args.epochs, args.batch_size) for seed in seeds]
    train, test = split(seeds[0])
    print(f"\nAdult: {len(train)} training rows, {len(test)} test rows; {args.epochs} epochs, batch {args.batch_size}; "
          f"{os.cpu_count()} CPUs; seeds {','.join(map(str, seeds))}\n")
    for seed, (rows, quality, real_auc) in zip(seeds, per_seed):
        print_table(methods, rows, quality, real_auc, f"seed {seed}")
        print()
    rows, quality = mean_rows(per_seed, methods)
    if len(seeds) > 1:
        print_table(methods, rows, quality, float(np.mean([a for _, _, a in per_seed])), "mean")
    targets(rows, quality)


def targets(rows: dict, quality: dict) -> None:
    """The issue's targets, met or not, from the figures above."""
    def get(m, k):
        return rows.get(m, {}).get(k)
    lines = []
    ours, theirs = rows.get("gaussian_copula", {}), rows.get("sdv_gaussian_copula", {})
    if "fit_s" in ours and "fit_s" in theirs:
        speedup = (theirs["fit_cpu_s"] + theirs["sample_cpu_s"]) / (ours["fit_cpu_s"] + ours["sample_cpu_s"])
        ok = speedup >= 10 and quality.get("gaussian_copula", 0) >= quality.get("sdv_gaussian_copula", 1)
        lines.append(f"gaussian_copula fit+sample {speedup:.1f}x less CPU time than SDV (target >= 10x faster), quality "
                     f"{quality.get('gaussian_copula', float('nan')):.3f} vs {quality.get('sdv_gaussian_copula', float('nan')):.3f}"
                     f" (target >=): {'MET' if ok else 'NOT MET'}")
    for m in ("ctgan", "tvae"):
        if get(m, "fit_s") and get(f"sdv_{m}", "fit_s"):
            # CPU seconds: wall time is unreliable when other work shares the cores
            ratio = (get(m, "fit_cpu_s") / get(m, "epochs")) / (get(f"sdv_{m}", "fit_cpu_s") / get(f"sdv_{m}", "epochs"))
            ok = ratio <= 0.5 and quality.get(m, 0) >= quality.get(f"sdv_{m}", 1)
            lines.append(f"{m}: CPU time per epoch {ratio:.2f}x SDV's (target <= 0.5x), quality {quality.get(m, float('nan')):.3f} "
                         f"vs {quality.get(f'sdv_{m}', float('nan')):.3f} (target >=): {'MET' if ok else 'NOT MET'}")
    if get("dp_ctgan", "fit_s"):
        eps = get("dp_ctgan", "epsilon_spent")
        lines.append(f"dp_ctgan at epsilon 1: quality {quality.get('dp_ctgan', float('nan')):.3f}, TSTR "
                     f"{get('dp_ctgan', 'tstr_auc') or float('nan'):.3f}, epsilon spent {eps} (target <= 1): "
                     f"{'MET' if eps is not None and eps <= 1.0 + 1e-9 else 'NOT MET'}")
    if lines:
        print("\nTargets:")
        for line in lines:
            print("  " + line)


if __name__ == "__main__":
    main()
