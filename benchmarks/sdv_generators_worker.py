"""Runs inside the separate SDV virtualenv (never the project's), for bench_generators.py: SDV 2.0 single-table
synthesizers and SDMetrics' QualityReport. SDV, RDT, Copulas and SDMetrics are BUSL, so the project never imports them.

    python sdv_generators_worker.py fit --method gaussian_copula|ctgan|tvae --train T.parquet --rows N --out S.parquet
                                        [--epochs 20 --batch-size 500 --seed 0]
    python sdv_generators_worker.py quality --real R.parquet --synth A.parquet [B.parquet ...]

Each command prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def _metadata(df: pd.DataFrame) -> dict:
    columns = {c: {"sdtype": "numerical"} if pd.api.types.is_numeric_dtype(df[c]) else {"sdtype": "categorical"}
               for c in df.columns}
    return {"tables": {"t": {"columns": columns}}, "relationships": [], "METADATA_SPEC_VERSION": "V1"}


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
            out[c] = s.astype("float64") if s.isna().any() else s.astype("int64" if pd.api.types.is_integer_dtype(s) else "float64")
        else:
            out[c] = s.astype(object).where(s.notna(), np.nan)
    return out


def fit(args) -> dict:
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    train = _plain(pd.read_parquet(args.train))
    metadata = Metadata.load_from_dict(_metadata(train))
    if args.method == "gaussian_copula":
        model = GaussianCopulaSynthesizer(metadata)
    else:
        cls = CTGANSynthesizer if args.method == "ctgan" else TVAESynthesizer
        model = cls(metadata, epochs=args.epochs, batch_size=args.batch_size, enable_gpu=False)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit({"t": train})
    t1, c1 = time.perf_counter(), time.process_time()
    synth = model.sample(args.rows)
    t2, c2 = time.perf_counter(), time.process_time()
    synth = synth["t"] if isinstance(synth, dict) else synth
    synth.to_parquet(args.out, index=False)
    return {"fit_s": t1 - t0, "sample_s": t2 - t1, "fit_cpu_s": c1 - c0, "sample_cpu_s": c2 - c1, "rows": len(synth)}


def quality(args) -> dict:
    from sdmetrics.reports.single_table import QualityReport

    real = _plain(pd.read_parquet(args.real))
    meta = _metadata(real)["tables"]["t"]
    scores = {}
    for path in args.synth:
        synth = _plain(pd.read_parquet(path))[real.columns]
        for c in real.columns:  # same dtypes as the real table, so SDMetrics compares like with like
            if pd.api.types.is_numeric_dtype(real[c]):
                synth[c] = pd.to_numeric(synth[c], errors="coerce")
            else:
                synth[c] = synth[c].astype(object).where(synth[c].notna(), np.nan)
        report = QualityReport()
        report.generate(real, synth, meta, verbose=False)
        scores[path] = report.get_score()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--method", required=True)
    f.add_argument("--train", required=True)
    f.add_argument("--rows", type=int, required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--batch-size", type=int, default=500)
    f.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("quality")
    q.add_argument("--real", required=True)
    q.add_argument("--synth", nargs="+", required=True)
    args = parser.parse_args()
    print(json.dumps(fit(args) if args.command == "fit" else quality(args)))


if __name__ == "__main__":
    main()
