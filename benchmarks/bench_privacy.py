"""Quality + privacy evaluation time on 100,000 rows x 20 columns (target: under 60 s together on 2 cores).

The table is built from the Adult census extract (shared/datasets/adult; a seeded stand-in of the same shape when
absent): 15 real columns plus 5 derived ones, 200,000 rows drawn with replacement and jittered, split into
100,000 real rows (80,000 train / 20,000 holdout) and 100,000 "synthetic" rows drawn independently of the split.
Wall times depend on the host's load, so process CPU time is printed beside them.
Printed in the same run: the baseline (exact copies + DCR only, the scope of the previous privacy report), the
full privacy report (+ NNDR, MIA distance and shadow, attribute inference, singling out, linkability, k-anonymity),
the quality report, and the privacy verdicts (a fresh sample should read share ~0.5, AUC ~0.5, risks ~0).
`--failing` adds a copier (the training rows drawn again) whose DCR and membership gates fail, so the report looks
for the columns that drive them: timed beside the earlier way of finding them (every column left out re-encoded the
rows and measured the whole DCR entry), with both lists of drivers, which must agree.

    .venv/bin/python benchmarks/bench_privacy.py [--failing]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _harness import corpus_dir  # noqa: E402
from genesis_pipelines.engine.analysis.columns import evaluable_columns  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import profile_table  # noqa: E402
from genesis_pipelines.engine.core.schema import DatasetSchema  # noqa: E402
from genesis_pipelines.engine.core.spec import ThresholdSpec, parse_spec  # noqa: E402
from genesis_pipelines.engine.evaluation.fidelity import quality_report  # noqa: E402
from genesis_pipelines.engine.evaluation.privacy.audit import privacy_report  # noqa: E402
from genesis_pipelines.engine.evaluation.privacy.copies import exact_copies  # noqa: E402
from genesis_pipelines.engine.evaluation.privacy.distance import distance_to_closest_record  # noqa: E402
from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types  # noqa: E402

ROWS = 100_000


def _adult() -> pd.DataFrame:
    path = corpus_dir() / "adult" / "adult.csv"
    if path.is_file():
        return coerce_types(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS))
    rng = np.random.default_rng(0)
    n = 48_842
    return pd.DataFrame({
        **{f"num{i}": rng.gamma(2 + i, 10, n).round(1) for i in range(6)},
        **{f"cat{i}": pd.array(rng.choice([f"v{j}" for j in range(3 + 4 * i)], n), dtype="string") for i in range(9)},
    })


def build(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = _adult()
    df = base.iloc[rng.integers(0, len(base), 2 * ROWS)].reset_index(drop=True)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    for column in numeric:  # jitter, so drawn rows are new people rather than repeats
        values = df[column].astype("float64")
        df[column] = (values + rng.normal(0, 0.02 * (values.std() or 1.0), len(df))).round(2)
    df["score_a"] = (df[numeric[0]] * 0.3 + rng.normal(0, 5, len(df))).round(2)
    df["score_b"] = rng.exponential(20, len(df)).round(2)
    df["visits"] = pd.array(rng.poisson(4, len(df)), dtype="Int64")
    df["region"] = pd.array(rng.choice([f"r{i}" for i in range(12)], len(df)), dtype="string")
    df["tier"] = pd.array(rng.choice(["bronze", "silver", "gold"], len(df), p=[0.6, 0.3, 0.1]), dtype="string")
    return df


def main() -> None:
    df = build()
    train, holdout, synth = df.iloc[:80_000], df.iloc[80_000:ROWS], df.iloc[ROWS:].reset_index(drop=True)
    meta = profile_table("t", df.iloc[:ROWS], parse_spec({"name": "bench"}))
    schema = DatasetSchema(dataset="bench", tables={"t": meta}, foreign_keys=[], generation_order=["t"])
    columns = evaluable_columns(meta, set())
    print(f"table: {ROWS:,} real rows ({len(train):,} train / {len(holdout):,} holdout) x {df.shape[1]} columns "
          f"({len(columns)} evaluable), {len(synth):,} synthetic rows; {os.cpu_count()} CPUs")

    started, cpu = time.perf_counter(), time.process_time()
    exact_copies(train, synth, columns, holdout=holdout, meta=meta)
    dcr = distance_to_closest_record(train, holdout, synth, meta, columns)
    baseline, baseline_cpu = time.perf_counter() - started, time.process_time() - cpu

    started, cpu = time.perf_counter(), time.process_time()
    report = privacy_report({"t": train}, {"t": holdout}, {"t": synth}, schema, exclude={},
                                    thresholds=ThresholdSpec(), quasi_identifiers={"t": ["age", "sex", "race", "region"]},
                                    sensitive_columns={"t": ["income", "score_b"]})
    full, full_cpu = time.perf_counter() - started, time.process_time() - cpu

    started, cpu = time.perf_counter(), time.process_time()
    quality = quality_report({"t": df.iloc[:ROWS]}, {"t": synth}, schema, exclude={})
    fidelity, fidelity_cpu = time.perf_counter() - started, time.process_time() - cpu

    table = report["tables"]["t"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.1f}; CPU seconds count every thread)")
    print(f"baseline (exact copies + DCR):        {baseline:6.1f} s wall {baseline_cpu:6.1f} s CPU")
    print(f"privacy report (all attacks):         {full:6.1f} s wall {full_cpu:6.1f} s CPU")
    print(f"quality report:                       {fidelity:6.1f} s wall {fidelity_cpu:6.1f} s CPU")
    print(f"quality + privacy:                    {full + fidelity:6.1f} s wall {full_cpu + fidelity_cpu:6.1f} s CPU"
          "  (target < 60 s wall on 2 idle cores)")
    print(f"DCR share {table['dcr']['share_closer_to_train']:.3f} (baseline call {dcr['share_closer_to_train']:.3f}), "
          f"MIA AUC distance {table['mia']['distance']['auc']:.3f} shadow {table['mia']['shadow']['auc']:.3f}, "
          f"singling out {table['singling_out'].get('risk')}, linkability {table['linkability'].get('risk')}, "
          f"k {table['k_anonymity'].get('k')}, quality {quality.get('overall_score')}")


def _drivers_one_encoding_per_column(train, holdout, synth, meta, columns, report_table) -> tuple[list, list]:
    """The drivers as the report found them before one encoding was sliced (the baseline): every column left out
    re-encodes the rows and reruns the whole DCR entry and the membership attacks."""
    from genesis_pipelines.engine.evaluation.privacy.audit import _attack_inputs, _guarded, _mia_auc
    from genesis_pipelines.engine.evaluation.privacy.encoding import compact_codes
    from genesis_pipelines.engine.evaluation.privacy.membership import membership_inference

    share, auc = report_table["dcr"]["share_closer_to_train"], _mia_auc(report_table)
    dcr, mia = [], []
    for column in columns:
        rest = [c for c in columns if c != column]
        without = distance_to_closest_record(train, holdout, synth, meta, rest).get("share_closer_to_train")
        if without is not None:
            dcr.append((column, round(share - without, 6)))
        _, frames, encoded, groups = _attack_inputs(train, holdout, synth, meta, rest, 0, None)
        a = _mia_auc({"mia": _guarded(membership_inference, encoded, compact_codes(frames, meta, rest), seed=0,
                                      holdout_groups=groups)})
        if a is not None:
            mia.append((column, round(auc - a, 6)))
    return [c for c, _ in sorted(dcr, key=lambda d: -d[1])[:5]], [c for c, _ in sorted(mia, key=lambda d: -d[1])[:5]]


def failing(df: pd.DataFrame) -> None:
    train, holdout = df.iloc[:80_000], df.iloc[80_000:ROWS]
    copier = train.sample(n=len(train), replace=True, random_state=1).reset_index(drop=True)
    meta = profile_table("t", df.iloc[:ROWS], parse_spec({"name": "bench"}))
    schema = DatasetSchema(dataset="bench", tables={"t": meta}, foreign_keys=[], generation_order=["t"])
    columns = evaluable_columns(meta, set())
    started, cpu = time.perf_counter(), time.process_time()
    report = privacy_report({"t": train}, {"t": holdout}, {"t": copier}, schema, exclude={}, thresholds=ThresholdSpec())
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    table = report["tables"]["t"]
    started, cpu = time.perf_counter(), time.process_time()
    base_dcr, base_mia = _drivers_one_encoding_per_column(train, holdout, copier, meta, columns, table)
    base_wall, base_used = time.perf_counter() - started, time.process_time() - cpu
    dcr = [d["column"] for d in table["dcr"].get("driving_columns", [])]
    mia = [d["column"] for d in table.get("mia_driving_columns", [])]
    print(f"copier ({len(copier):,} rows drawn from train): gates {report['passed']}")
    print(f"privacy report with its drivers:      {wall:6.1f} s wall {used:6.1f} s CPU")
    print(f"baseline drivers alone (re-encoding): {base_wall:6.1f} s wall {base_used:6.1f} s CPU")
    print(f"drivers DCR {dcr} / baseline {base_dcr}; MIA {mia} / baseline {base_mia}; "
          f"same: {dcr == base_dcr and mia == base_mia}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--failing", action="store_true", help="also a copier whose gates fail (drivers timed)")
    if parser.parse_args().failing:
        failing(build())
    main()
