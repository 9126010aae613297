#!/usr/bin/env python
"""DP synthesizers in ONE run: this project's DP methods next to smartnoise-synth's MST, AIM and DPCTGAN (issue 16).

    python benchmarks/bench_dp.py [--quick] [--make-smartnoise-venv] [--epsilons 0.5,1,4] [--only dp_marginals,mst]
                                  [--limit-s 600]

Tables: Adult (80/20 split, target income) and sakila's film (1,000 rows, 80/20 split, target rating R or NC-17;
its one column that is null in every row is dropped). Per table, epsilon and method: fit and sample seconds (wall,
and CPU beside it), quality (the project's quality_report: mean of column shapes and pair trends, the
SDMetrics-equivalent scorer that bench_fidelity_agreement.py validates; SDMetrics itself is BUSL and
benchmarks/.venv-sdv may not exist), shapes, pairs, TSTR ROC AUC (HistGradientBoosting trained on synthetic,
scored on the real 20 %, beside the real-trained baseline), exact copies of training rows, DCR share (share of
synthetic rows closer to a training row than to a holdout row, 0.5 = no closer to train), the epsilon spent, and
values outside the real domain (numbers outside the training min..max, categories the training rows lack).
Category lists are public for every method (smartnoise reads them from the data outside the budget; here they
are given as `categories`); `dp_marginals (private sets)` finds them inside the budget. Numeric bounds are found
privately by every method. smartnoise runs in benchmarks/.venv-smartnoise (--make-smartnoise-venv creates it) by
smartnoise_worker.py, each fit in a subprocess with --limit-s (printed "did not finish").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from _harness import corpus_dir, fit_and_sample, split_80_20, tstr_auc  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import profile_table  # noqa: E402
from genesis_pipelines.engine.core.schema import DatasetSchema  # noqa: E402
from genesis_pipelines.engine.core.spec import parse_spec  # noqa: E402
from genesis_pipelines.engine.evaluation import quality_report  # noqa: E402
from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types  # noqa: E402
from genesis_pipelines.engine.synthesis.generators import create_generator  # noqa: E402

SN_VENV = HERE / ".venv-smartnoise"
SN_PYTHON = SN_VENV / "bin" / "python"
OURS = ["dp_marginals", "dp_marginals (private sets)", "dp_gaussian_copula", "dp_autoregressive", "dp_ctgan", "dp_tvae"]
THEIRS = ["mst", "aim", "dpctgan"]


def load(name: str, seed: int = 0):
    if name == "adult":
        path, target = corpus_dir() / "adult" / "adult.csv", ("income", lambda s: s.astype(str) == ">50K")
    else:
        path, target = corpus_dir() / "sakila" / "film.csv", ("rating", lambda s: s.astype(str).isin(["R", "NC-17"]))
    df = coerce_types(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS))
    df = df[[c for c in df.columns if df[c].notna().any()]]
    meta = profile_table(name, df, parse_spec({"name": name}))
    keep = [c for c, m in meta.columns.items() if m.sdtype in ("numeric", "integer", "categorical", "boolean")]
    df = df[keep]
    meta = profile_table(name, df, parse_spec({"name": name}))
    train, holdout = split_80_20(df, seed)
    return train, holdout, meta, target


def tstr(train: pd.DataFrame, test: pd.DataFrame, target) -> float | None:
    column, positive = target
    return tstr_auc(train, test, column, positive)


def _matrix(frames, train):
    parts = []
    for c in train.columns:
        if pd.api.types.is_numeric_dtype(train[c]):
            x = [pd.to_numeric(f[c], errors="coerce").astype("float64") for f in frames]
            lo, hi = float(train[c].min()), float(train[c].max())
            parts.append([((v - lo) / ((hi - lo) or 1.0)).fillna(-1.0).to_numpy()[:, None] for v in x])
        else:
            cats = sorted(train[c].dropna().astype(str).unique())
            parts.append([np.stack([(f[c].astype(str) == k).to_numpy(float) for k in cats], axis=1) * 0.7071 for f in frames])
    return [np.hstack([p[i] for p in parts]) for i in range(len(frames))]


def privacy(train, holdout, synth, seed=0):
    def key(frame):
        return pd.util.hash_pandas_object(frame[train.columns].astype(str), index=False)

    copies = int(key(synth).isin(set(key(train))).sum())
    rng = np.random.default_rng(seed)
    s = synth.iloc[rng.permutation(len(synth))[:2000]].reset_index(drop=True)
    tr = train.iloc[rng.permutation(len(train))[:len(holdout)]].reset_index(drop=True)  # as many train as holdout rows
    a, b, c = _matrix([tr, holdout, s], train)
    d_train = NearestNeighbors(n_neighbors=1).fit(a).kneighbors(c)[0][:, 0]
    d_hold = NearestNeighbors(n_neighbors=1).fit(b).kneighbors(c)[0][:, 0]
    share = float(np.mean(np.where(d_train == d_hold, 0.5, d_train < d_hold)))
    return copies, share


def out_of_domain(train, synth, meta) -> int:
    count = 0
    for c, m in meta.columns.items():
        if c not in synth.columns:
            continue
        if m.sdtype in ("numeric", "integer"):
            x = pd.to_numeric(synth[c], errors="coerce")
            count += int(((x < train[c].min()) | (x > train[c].max())).sum())
        else:
            count += int((~synth[c].dropna().astype(str).isin(set(train[c].dropna().astype(str)))).sum())
    return count


def run_ours(method, train, meta, eps, seed):
    cats = {c: sorted(train[c].dropna().astype(str).unique()) for c, m in meta.columns.items() if m.sdtype == "categorical"}
    base = method.split(" ")[0]
    settings = {"epsilon": eps}
    if method != "dp_marginals (private sets)":
        settings["categories"] = cats
    if base in ("dp_ctgan", "dp_tvae"):
        settings.update(epochs=20, batch_size=500, progress=False)
    if base == "dp_autoregressive":
        settings.update(epochs=5)
    g = create_generator(base, **settings)
    timings, synth = fit_and_sample(g, train, meta, seed)
    return {**timings, "epsilon_spent": g.describe().get("epsilon_spent")}, synth


def run_theirs(method, train, meta, eps, seed, limit_s):
    with tempfile.TemporaryDirectory() as tmp:
        train.to_parquet(f"{tmp}/train.parquet")
        cats = [c for c, m in meta.columns.items() if m.sdtype in ("categorical", "boolean")]
        conts = [c for c, m in meta.columns.items() if m.sdtype in ("numeric", "integer")]
        Path(f"{tmp}/spec.json").write_text(json.dumps({"categorical": cats, "continuous": conts}))
        cmd = [str(SN_PYTHON), str(HERE / "smartnoise_worker.py"), "--method", method, "--train", f"{tmp}/train.parquet",
               "--spec", f"{tmp}/spec.json", "--rows", str(len(train)), "--out", f"{tmp}/out.parquet",
               "--epsilon", str(eps), "--seed", str(seed)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s)
        except subprocess.TimeoutExpired:
            return {"note": f"did not finish in {limit_s} s"}, None
        if done.returncode != 0:
            return {"note": "failed: " + done.stderr.strip().splitlines()[-1][:80]}, None
        row = json.loads(done.stdout.strip().splitlines()[-1])
        synth = pd.read_parquet(f"{tmp}/out.parquet")
    for c, m in meta.columns.items():
        if m.sdtype == "integer":
            synth[c] = pd.to_numeric(synth[c], errors="coerce").round().astype("Int64")
        elif m.sdtype == "boolean":
            synth[c] = synth[c].map({"True": True, "False": False}).astype("boolean")
    return row, synth


def score(name, train, holdout, synth, meta, target, seed):
    schema = DatasetSchema(dataset=name, tables={name: meta}, foreign_keys=[], generation_order=[name])
    rep = quality_report({name: train}, {name: synth[train.columns]}, schema, exclude={}, seed=seed, plots=False)
    copies, dcr = privacy(train, holdout, synth[train.columns], seed)
    return {"shapes": rep["column_shapes"], "pairs": rep["pair_trends"],
            "quality": (rep["column_shapes"] + rep["pair_trends"]) / 200.0, "tstr": tstr(synth[train.columns], holdout, target),
            "copies": copies, "dcr": dcr, "ood": out_of_domain(train, synth, meta)}


def fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="epsilon 1 only, no DP-SGD methods, AIM limited to 300 s")
    p.add_argument("--epsilons", default="0.5,1,4")
    p.add_argument("--only", default="")
    p.add_argument("--tables", default="adult,film")
    p.add_argument("--limit-s", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--make-smartnoise-venv", action="store_true")
    a = p.parse_args()
    if a.make_smartnoise_venv and not SN_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SN_VENV)], check=True)
        # the CPU build of torch first (smartnoise-synth needs opacus, hence torch): else pip pulls a multi-GB CUDA build
        subprocess.run([str(SN_VENV / "bin" / "pip"), "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(SN_VENV / "bin" / "pip"), "install", "-q", "smartnoise-synth", "pyarrow", "packaging"], check=True)
    epsilons = [1.0] if a.quick else [float(e) for e in a.epsilons.split(",")]
    methods = OURS + THEIRS
    if a.quick:
        methods = ["dp_marginals", "dp_marginals (private sets)", "dp_gaussian_copula", "mst", "aim"]
    if a.only:
        methods = [m for m in methods if m.split(" ")[0] in a.only.split(",") or m in a.only.split(",")]
    limit = min(a.limit_s, 300) if a.quick else a.limit_s
    print(f"bench_dp: seed {a.seed}, epsilons {epsilons}, smartnoise venv {'present' if SN_PYTHON.exists() else 'absent'}; "
          "quality = our SDMetrics-equivalent scorer (shapes + pairs) / 2")
    for name in a.tables.split(","):
        train, holdout, meta, target = load(name, a.seed)
        base = tstr(train, holdout, target)
        print(f"\n{name}: train {train.shape}, holdout {holdout.shape}; TSTR baseline (trained on real) {base:.3f}")
        print("| eps | method | fit s (CPU) | sample s (CPU) | quality | shapes | pairs | TSTR | copies | DCR share | eps spent | out of domain | note |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for eps in epsilons:
            for method in methods:
                note = ""
                if method in THEIRS and not SN_PYTHON.exists():
                    row, synth = {"note": "smartnoise venv absent (--make-smartnoise-venv)"}, None
                elif method in THEIRS:
                    row, synth = run_theirs(method, train, meta, eps, a.seed, limit)
                else:
                    try:
                        row, synth = run_ours(method, train, meta, eps, a.seed)
                    except Exception as exc:  # noqa: BLE001 - the table reports the refusal
                        row, synth = {"note": f"{type(exc).__name__}: {str(exc)[:90]}"}, None
                note = row.get("note", "")
                s = score(name, train, holdout, synth, meta, target, a.seed) if synth is not None else {}
                print(f"| {eps:g} | {method} | {fmt(row.get('fit_s'), '.1f')} ({fmt(row.get('fit_cpu_s'), '.1f')}) | "
                      f"{fmt(row.get('sample_s'), '.1f')} ({fmt(row.get('sample_cpu_s'), '.1f')}) | {fmt(s.get('quality'), '.3f')} | "
                      f"{fmt(s.get('shapes'), '.1f')} | {fmt(s.get('pairs'), '.1f')} | {fmt(s.get('tstr'), '.3f')} | "
                      f"{fmt(s.get('copies'), 'd')} | {fmt(s.get('dcr'), '.3f')} | {fmt(row.get('epsilon_spent'), '.3g')} | "
                      f"{fmt(s.get('ood'), 'd')} | {note} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
