"""gaussian_copula at scale: fit and sample 1,000,000 rows x 20 columns; seconds and peak memory.

    python benchmarks/bench_copula_scale.py [--rows 1000000]

Each phase runs in its own process so its peak RSS is its own. Baseline (same run): making the input frame with
numpy and writing it to Parquet. Then the copula phase reads that file, fits, samples the same number of rows (the
generator samples in chunks) and writes them to Parquet. Target (issue 4): fit + sample < 60 s, peak < 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _harness import Clock, peak_rss_mib


def peak_rss_gib() -> float:
    return peak_rss_mib() / 1024


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """12 correlated real columns, 4 integer columns, 4 categorical columns (5 to 200 categories), some nulls."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((rows, 4)).astype("float32")
    data: dict[str, object] = {}
    for i in range(12):
        weights = rng.normal(size=4)
        x = latent @ weights + rng.standard_normal(rows) * 0.5
        data[f"num_{i}"] = np.round(np.exp(x / 3) * 100, 2) if i % 3 == 0 else np.round(x * 10, 3)
    for i in range(4):
        data[f"int_{i}"] = np.clip(np.round(latent[:, i % 4] * 15 + 40), 0, None).astype("int64")
    for i, k in enumerate((5, 12, 50, 200)):
        codes = np.clip(((latent[:, i] + 3) / 6 * k).astype(int), 0, k - 1)
        data[f"cat_{i}"] = pd.Categorical.from_codes(codes, [f"c{i}_{j}" for j in range(k)]).astype(str)
    df = pd.DataFrame(data)
    df.loc[rng.random(rows) < 0.05, "num_1"] = np.nan
    return df


def meta_for(df: pd.DataFrame):
    from genesis_pipelines.engine.core.schema import ColumnMeta, TableMeta

    def sdtype(c: str) -> str:
        return "numeric" if c.startswith("num") else "integer" if c.startswith("int") else "categorical"
    columns = {c: ColumnMeta(name=c, sdtype=sdtype(c), dtype=str(df[c].dtype), null_rate=0.0, cardinality=0) for c in df.columns}
    return TableMeta(name="scale", row_count=len(df), columns=columns)


def phase_baseline(rows: int, path: Path) -> dict:
    with Clock() as clock:
        df = make_frame(rows)
        df.to_parquet(path, index=False)
    return {"seconds": clock.wall_s, "cpu_s": clock.cpu_s, "peak_gib": peak_rss_gib()}


def phase_copula(path: Path, out: Path) -> dict:
    from genesis_pipelines.engine.synthesis.generators import create_generator

    df = pd.read_parquet(path)
    meta = meta_for(df)
    loaded = peak_rss_gib()
    generator = create_generator("gaussian_copula")
    with Clock() as fit:
        generator.fit(df, meta, seed=0)
    rows = len(df)
    del df
    with Clock() as sample:
        synth = generator.sample(rows, seed=1)
    with Clock() as write:
        synth.to_parquet(out, index=False)
    return {"fit_s": fit.wall_s, "sample_s": sample.wall_s, "fit_cpu_s": fit.cpu_s, "sample_cpu_s": sample.cpu_s,
            "write_s": write.wall_s, "peak_gib": peak_rss_gib(),
            "peak_after_load_gib": loaded, "rows": len(synth), "columns": synth.shape[1],
            "rows_fitted": generator.describe()["rows_fitted"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=["baseline", "copula"])
    parser.add_argument("--path")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.phase == "baseline":
        print(json.dumps(phase_baseline(args.rows, Path(args.path))))
        return
    if args.phase == "copula":
        print(json.dumps(phase_copula(Path(args.path), Path(args.out))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "input.parquet", Path(tmp) / "synthetic.parquet"

        def run(*extra: str) -> dict:
            result = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--path", str(path), "--out", str(out),
                                     *extra], capture_output=True, text=True, check=True)
            return json.loads(result.stdout.strip().splitlines()[-1])
        base = run("--phase", "baseline")
        cop = run("--phase", "copula")
    total = cop["fit_s"] + cop["sample_s"]
    print(f"\n{args.rows:,} rows x 20 columns (12 real, 4 integer, 4 categorical)\n")
    print(f"{'phase':44} {'seconds':>8} {'CPU s':>8} {'peak RSS GiB':>13}")
    print(f"{'baseline: make frame (numpy) + write Parquet':44} {base['seconds']:8.2f} {base['cpu_s']:8.2f} {base['peak_gib']:13.2f}")
    print(f"{'gaussian_copula fit':44} {cop['fit_s']:8.2f} {cop['fit_cpu_s']:8.2f} {'':>13}")
    print(f"{'gaussian_copula sample (chunked)':44} {cop['sample_s']:8.2f} {cop['sample_cpu_s']:8.2f} {'':>13}")
    print(f"{'gaussian_copula fit + sample':44} {total:8.2f} {cop['fit_cpu_s'] + cop['sample_cpu_s']:8.2f} "
          f"{cop['peak_gib']:13.2f}")
    print(f"{'(write synthetic Parquet, not counted)':44} {cop['write_s']:8.2f}")
    print(f"\nrows fitted {cop['rows_fitted']:,} (max_fit_rows subsample), rows sampled {cop['rows']:,}; peak RSS after "
          f"reading the input {cop['peak_after_load_gib']:.2f} GiB")
    cpu = cop["fit_cpu_s"] + cop["sample_cpu_s"]
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time suffers when it is "
          f"above the CPU count; CPU seconds do not)")
    print(f"Target fit + sample < 60 s: {'MET' if total < 60 else 'NOT MET'} ({total:.1f} s wall, {cpu:.1f} s CPU); "
          f"peak < 4 GiB: {'MET' if cop['peak_gib'] < 4 else 'NOT MET'} ({cop['peak_gib']:.2f} GiB)")


if __name__ == "__main__":
    main()
