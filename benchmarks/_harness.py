"""What the benchmark scripts share: the corpus folder, the seeded 80/20 split, TSTR scoring, wall + CPU clocks,
peak memory and table printing. One copy, so every script splits, scores and measures the same way.

Scripts run as `python benchmarks/bench_x.py`, so this folder is on sys.path and `import _harness` works.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    """GENESIS_CORPUS_DIR (or GENESIS_SHARED_DATASETS), else `shared/datasets` beside the checkout or beside its
    parent (a git worktree)."""
    env = os.environ.get("GENESIS_CORPUS_DIR") or os.environ.get("GENESIS_SHARED_DATASETS")
    if env:
        return Path(env)
    candidates = [base / "shared" / "datasets" for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def split_80_20(df: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded shuffle cut into 80 % training and 20 % holdout rows (both re-indexed)."""
    order = np.random.default_rng(seed).permutation(len(df))
    cut = int(round(0.8 * len(df)))
    return df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]].reset_index(drop=True)


def tstr_scores(train: pd.DataFrame, test: pd.DataFrame, target: str,
                positive: Callable[[pd.Series], pd.Series]) -> tuple[np.ndarray, np.ndarray] | None:
    """Train on `train` (synthetic or real), score the real `test` rows: (true labels, predicted probabilities) of
    HistGradientBoosting with native categories; None when `train` has one class only."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y_train = np.asarray(positive(train[target]), dtype=bool)
    if y_train.all() or not y_train.any():
        return None
    features = [c for c in test.columns if c != target]

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=frame.index)
        for c in features:
            if pd.api.types.is_numeric_dtype(test[c]):
                out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
            else:
                cats = sorted(set(test[c].dropna().astype(str)) | set(train[c].dropna().astype(str)))
                out[c] = pd.Categorical(frame[c].astype(object).where(frame[c].notna(), None), categories=cats)
        return out

    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(encode(train), y_train)
    return np.asarray(positive(test[target]), dtype=bool), model.predict_proba(encode(test))[:, 1]


def tstr_auc(train: pd.DataFrame, test: pd.DataFrame, target: str,
             positive: Callable[[pd.Series], pd.Series]) -> float | None:
    """TSTR ROC AUC: trained on `train`, scored on the real `test` rows (None when `train` has one class)."""
    from sklearn.metrics import roc_auc_score

    scores = tstr_scores(train, test, target, positive)
    return None if scores is None else float(roc_auc_score(*scores))


class Clock:
    """Wall and CPU seconds of a `with` block; CPU beside wall because the machine may be loaded."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s, self.cpu_s = time.perf_counter() - self._wall, time.process_time() - self._cpu


def fit_and_sample(generator, train: pd.DataFrame, meta, seed: int) -> tuple[dict, pd.DataFrame]:
    """Fit on `train` (seed), sample as many rows (seed + 1); wall and CPU seconds of each step beside the rows."""
    with Clock() as fit:
        generator.fit(train, meta, seed=seed)
    with Clock() as sample:
        synth = generator.sample(len(train), seed=seed + 1)
    return {"fit_s": fit.wall_s, "fit_cpu_s": fit.cpu_s, "sample_s": sample.wall_s, "sample_cpu_s": sample.cpu_s}, synth


def peak_rss_mib() -> float:
    """High-water mark of this process's resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def print_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None, indent: str = "  ",
                sep: str = "  ") -> None:
    """Columns padded to their widest cell, a rule under the header; `align` has one 'l' or 'r' per column (default:
    first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return indent + sep.join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)).rstrip()

    print(line(cells[0]))
    print(indent + sep.join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
