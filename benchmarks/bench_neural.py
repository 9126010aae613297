#!/usr/bin/env python
"""Time the project's CTGAN and TVAE on the Adult census table: seconds per epoch, fit and sample.

Run from the repository root:

    python benchmarks/bench_neural.py                       # 5 epochs, batch 500, ctgan and tvae, CPU
    python benchmarks/bench_neural.py --epochs 20 --sdv      # plus SDV's CTGAN / TVAE in the same run, as the baseline
    python benchmarks/bench_neural.py --device cuda --methods ctgan

Data: ../shared/datasets/adult/adult.csv (or --data), split 80/20 with a fixed seed; the models fit the 80 %
and sample as many rows. For each method it prints the mixture/encoding time (fit minus the epochs), mean
seconds per epoch, total fit and sample seconds. With --sdv, SDV 2.0's CTGANSynthesizer / TVAESynthesizer are
timed on the same split through benchmarks/sdv_generators_worker.py in the separate SDV virtualenv
(benchmarks/.venv-sdv, or --sdv-python); SDV does not report per-epoch time, so its seconds per epoch is its
fit time over the epochs (an upper bound: it includes its own transformer fit), shown next to ours on the same
basis. Early stopping is off so both run every epoch. CPU seconds (process time, all threads) are printed too:
on a shared, loaded machine they are a steadier figure than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from _harness import corpus_dir  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import profile_table  # noqa: E402
from genesis_pipelines.engine.core.spec import parse_spec  # noqa: E402
from genesis_pipelines.engine.sources.io import coerce_types  # noqa: E402
from genesis_pipelines.engine.synthesis.generators import create_generator  # noqa: E402
from genesis_pipelines.engine.synthesis.relational import split_holdout  # noqa: E402

DEFAULT_DATA = corpus_dir() / "adult" / "adult.csv"
SDV_PYTHON = REPO_ROOT / "benchmarks" / ".venv-sdv" / "bin" / "python"


def run_ours(method: str, train: pd.DataFrame, meta, args) -> dict:
    generator = create_generator(method, epochs=args.epochs, batch_size=args.batch_size, patience=None,
                                 progress=False, threads=args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    generator.fit(train, meta, device=args.device, seed=args.seed)
    t1, c1 = time.perf_counter(), time.process_time()
    synth = generator.sample(len(train), seed=args.seed)
    t2, c2 = time.perf_counter(), time.process_time()
    info = generator.describe()
    per_epoch = info["seconds_per_epoch"]
    return {"fit_s": t1 - t0, "sample_s": t2 - t1, "per_epoch_s": per_epoch, "encode_s": (t1 - t0) - per_epoch * args.epochs,
            "fit_over_epochs_s": (t1 - t0) / args.epochs, "rows": len(synth), "device": info["device"],
            "fit_cpu_s": c1 - c0, "sample_cpu_s": c2 - c1}


def run_sdv(method: str, train: pd.DataFrame, args, scratch: Path) -> dict | None:
    python = Path(args.sdv_python)
    if not python.exists():
        print(f"  (SDV baseline skipped: {python} not found)")
        return None
    train_path, out_path = scratch / "train.parquet", scratch / f"sdv_{method}.parquet"
    train.to_parquet(train_path)
    cmd = [str(python), str(REPO_ROOT / "benchmarks" / "sdv_generators_worker.py"), "fit", "--method", method,
           "--train", str(train_path), "--rows", str(len(train)), "--out", str(out_path), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)} if args.threads else {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        print(f"  (SDV baseline for {method} failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["fit_over_epochs_s"] = result["fit_s"] / args.epochs
    # CPU of the whole worker (imports and data loading included), so an upper bound on SDV's fit + sample CPU
    result["worker_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--methods", nargs="+", default=["ctgan", "tvae"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: min(cores, 8))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sdv", action="store_true", help="also time SDV's synthesizers (the baseline) in this run")
    parser.add_argument("--sdv-python", default=str(SDV_PYTHON))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    real = coerce_types(pd.read_csv(args.data))
    train, holdout = split_holdout(real, 0.2, args.seed)
    meta = profile_table("adult", train, parse_spec({"name": "adult"}))
    print(f"adult: {len(train)} training rows x {train.shape[1]} columns (holdout {len(holdout)}); epochs {args.epochs}, "
          f"batch {args.batch_size}, device {args.device}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {args.threads or min(os.cpu_count() or 1, 8)}, load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for method in args.methods:
            ours = run_ours(method, train, meta, args)
            rows.append((method, ours))
            if args.sdv:
                theirs = run_sdv(method, train, args, Path(scratch))
                if theirs:
                    rows.append((f"sdv_{method}", theirs))
    print()
    print(f"{'method':<12} {'encode s':>9} {'s/epoch':>8} {'fit/epochs s':>13} {'fit s':>8} {'sample s':>9} {'fit cpu s':>10} {'sample cpu s':>13}")
    for name, r in rows:
        encode = f"{r['encode_s']:.2f}" if "encode_s" in r else "-"
        per_epoch = f"{r['per_epoch_s']:.3f}" if "per_epoch_s" in r else "-"
        cpu = f"{r['fit_cpu_s']:>10.2f} {r['sample_cpu_s']:>13.2f}" if "fit_cpu_s" in r else \
            f"{'(worker ' + format(r['worker_cpu_s'], '.1f') + ' s, fit + sample + imports)':>24}"
        print(f"{name:<12} {encode:>9} {per_epoch:>8} {r['fit_over_epochs_s']:>13.3f} {r['fit_s']:>8.2f} {r['sample_s']:>9.2f} {cpu}")
    results = dict(rows)
    for method in args.methods:
        if f"sdv_{method}" in results:
            ratio = results[method]["fit_over_epochs_s"] / results[f"sdv_{method}"]["fit_over_epochs_s"]
            print(f"{method}: fit time per epoch {ratio:.2f}x SDV's in this run (target <= 0.5x)")


if __name__ == "__main__":
    main()
