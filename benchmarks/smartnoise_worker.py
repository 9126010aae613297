"""Runs inside benchmarks/.venv-smartnoise (never the project's venv): one smartnoise-synth fit + sample.

    python smartnoise_worker.py --method mst|aim|dpctgan --train FILE.parquet --spec FILE.json --rows N --out FILE.parquet
                                --epsilon E [--seed 0]

spec JSON: {"categorical": [...], "continuous": [...]}; continuous bounds are found by smartnoise's own DP
preprocessor with 0.3 of epsilon (the rest goes to the synthesizer); category lists are read from the data outside
the budget, as smartnoise does. Prints one JSON line: fit / sample seconds, wall and CPU, and the epsilon spent.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    from snsynth import Synthesizer

    np.random.seed(a.seed)
    spec = json.load(open(a.spec))
    df = pd.read_parquet(a.train)
    cats, conts = spec["categorical"], spec["continuous"]
    df = df[cats + conts].copy()
    for c in cats:
        df[c] = df[c].astype(object).where(df[c].notna(), None).astype(str).where(df[c].notna(), None)
    for c in conts:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    kwargs = {"epochs": 20} if a.method == "dpctgan" else {}
    synth = Synthesizer.create(a.method, epsilon=a.epsilon, verbose=False, **kwargs)
    t0, c0 = time.perf_counter(), time.process_time()
    synth.fit(df, categorical_columns=cats, continuous_columns=conts, preprocessor_eps=0.3 * a.epsilon, nullable=True)
    t1, c1 = time.perf_counter(), time.process_time()
    out = synth.sample(a.rows)
    t2, c2 = time.perf_counter(), time.process_time()
    out = pd.DataFrame(out, columns=cats + conts)
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
        out[c] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in out[c]]
    out.to_parquet(a.out)
    print(json.dumps({"fit_s": t1 - t0, "sample_s": t2 - t1, "fit_cpu_s": c1 - c0, "sample_cpu_s": c2 - c1,
                      "epsilon_spent": a.epsilon}))


if __name__ == "__main__":
    main()
