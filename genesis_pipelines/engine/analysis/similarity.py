"""How closely two tables of one schema agree, column by column and pair by pair: the shape and trend measures.

Every metric is a plain function registered by name, returning a dict of aggregates with a `score` in 0..1
(1 = indistinguishable). New metrics are added with `@column_metric(...)` / `@pair_metric(...)` and picked per
semantic type in `COLUMN_METRIC_FOR` / `PAIR_METRIC_FOR`. Column shapes are KS / TV complements (string shapes for
prose, codes and names), pair trends are Pearson correlation similarity (numeric pairs) and contingency similarity,
1 - TVD of the joint frequencies (other pairs, numbers cut into 10 equal-width bins), as SDMetrics' QualityReport.

They sit below privacy and synthesis because both use them on data they hold: the `auto` generator scores its
candidates on held-out rows with them; evaluation.fidelity builds the quality report from them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from genesis_pipelines.engine.analysis.columns import (
    EVALUABLE,
    NUMERIC_LIKE,
    joint_codes,
    num,
    sample_rows,
    to_float,
)
from genesis_pipelines.engine.core.schema import ColumnMeta, TableMeta
from genesis_pipelines.engine.core.spec import STRING_KINDS

MAX_PAIR_ROWS = 50_000
MAX_SHAPE_ROWS = 200_000  # KS / Wasserstein on more rows change nothing but the run time
PAIR_CATEGORY_TOP = 50  # rarer categories are pooled so contingency tables stay small
PAIR_BINS = 10  # numbers are cut into this many equal-width bins for contingency tables (as SDMetrics)
# Pairs count towards pair_trends only where the real data has a relation to keep (as SDMetrics 0.32's
# QualityReport): |Pearson| above 0.5, or Cramér's V of the contingency table above 0.3. Averaging in the
# many unrelated pairs would hide a generator that loses every real dependency.
PAIR_CORRELATION_THRESHOLD = 0.5
PAIR_ASSOCIATION_THRESHOLD = 0.3
ColumnMetric = Callable[[pd.Series, pd.Series, ColumnMeta], dict]
PairMetric = Callable[..., dict]
COLUMN_METRICS: dict[str, ColumnMetric] = {}
PAIR_METRICS: dict[str, PairMetric] = {}
COLUMN_METRIC_FOR = {"numeric": "ks_complement", "integer": "ks_complement", "datetime": "ks_complement",
                     "categorical": "tv_complement", "boolean": "tv_complement",
                     "text": "string_shape", "code": "string_shape", "name": "string_shape"}
STRING_PATTERN_TOP = 50  # character-class patterns compared one by one; rarer ones are pooled
STRING_LENGTH_BINS = 10
STRING_MAX_TOKENS = 20
PAIR_METRIC_FOR = {("num", "num"): "correlation_similarity", ("cat", "cat"): "contingency_similarity",
                   ("num", "cat"): "contingency_similarity"}


def column_metric(name: str) -> Callable[[ColumnMetric], ColumnMetric]:
    def register(fn: ColumnMetric) -> ColumnMetric:
        COLUMN_METRICS[name] = fn
        return fn
    return register


def pair_metric(name: str) -> Callable[[PairMetric], PairMetric]:
    def register(fn: PairMetric) -> PairMetric:
        PAIR_METRICS[name] = fn
        return fn
    return register


def shape_columns(meta: TableMeta, exclude: set[str]) -> list[str]:
    """Columns that get a shape score: the evaluable ones and the string kinds (prose, codes, names)."""
    return [name for name, col in meta.columns.items() if (col.sdtype in EVALUABLE or col.sdtype in STRING_KINDS)
            and name not in exclude]


# ---------------------------------------------------------------- column shapes


def _null_fallback(real_null: float, synth_null: float) -> float:
    # When one side has no values at all, only the missing-value rates can be compared.
    return 1.0 - abs(real_null - synth_null)


def _ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    # The p-value part warns on tiny samples, which are legitimate here.
    with np.errstate(all="ignore"):
        result = stats.ks_2samp(a, b, method="asymp")
    return float(result.statistic), float(result.pvalue)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    return _ks(a, b)[0]


def range_coverage(real: np.ndarray, synth: np.ndarray) -> float:
    """Share of the real range [min, max] that the synthetic values span (SDMetrics' RangeCoverage)."""
    lo, hi = float(real.min()), float(real.max())
    if hi <= lo:
        return 1.0 if np.all(synth == lo) else 0.0
    covered = min(hi, float(synth.max())) - max(lo, float(synth.min()))
    return float(np.clip(covered / (hi - lo), 0.0, 1.0))


def wasserstein_normalised(real: np.ndarray, synth: np.ndarray) -> float:
    """Earth mover's distance in units of the real range: 0 same, 1 as far apart as the real extremes."""
    lo, hi = float(real.min()), float(real.max())
    if hi <= lo:
        return 0.0 if np.allclose(synth, lo) else 1.0
    return float(min(1.0, stats.wasserstein_distance((real - lo) / (hi - lo), (synth - lo) / (hi - lo))))


@column_metric("ks_complement")
def ks_complement(real: pd.Series, synth: pd.Series, meta: ColumnMeta) -> dict:
    r, s = to_float(real, meta.sdtype), to_float(synth, meta.sdtype)
    r_null, s_null = float(np.isnan(r).mean()), float(np.isnan(s).mean())
    r, s = r[~np.isnan(r)], s[~np.isnan(s)]
    if len(r) == 0 or len(s) == 0:
        return {"score": _null_fallback(r_null, s_null), "note": "no non-null values on one side"}
    statistic, pvalue = _ks(r, s)
    return {"score": 1.0 - statistic, "ks_statistic": statistic, "ks_pvalue": pvalue,
            "wasserstein": wasserstein_normalised(r, s), "range_coverage": range_coverage(r, s)}


def _chi2_homogeneity(r_counts: np.ndarray, s_counts: np.ndarray) -> tuple[float | None, float | None]:
    """Do both samples come from one distribution? Cells expecting < 5 rows are pooled (the test's rule)."""
    table = np.vstack([r_counts, s_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    expected_min = table.sum(axis=0) * min(table.sum(axis=1)) / table.sum()
    small = expected_min < 5
    if small.any():
        table = np.hstack([table[:, ~small], table[:, small].sum(axis=1, keepdims=True)])
    if table.shape[1] < 2 or min(table.sum(axis=1)) == 0:
        return None, None
    statistic, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(pvalue)


@column_metric("tv_complement")
def tv_complement(real: pd.Series, synth: pd.Series, meta: ColumnMeta) -> dict:
    (r, s), k = joint_codes(real, synth)
    r_counts, s_counts = np.bincount(r, minlength=k), np.bincount(s, minlength=k)
    p, q = r_counts / len(r), s_counts / len(s)
    tv = 0.5 * float(np.abs(p - q).sum())
    real_null = real.isna().to_numpy()
    real_categories = np.unique(r[~real_null])
    covered = np.isin(real_categories, s[~synth.isna().to_numpy()])
    chi2, pvalue = _chi2_homogeneity(r_counts, s_counts)
    return {"score": 1.0 - tv, "tv_distance": tv, "js_distance": float(jensenshannon(p, q, base=2)),
            "chi2_statistic": chi2, "chi2_pvalue": pvalue,
            "category_coverage": float(covered.mean()) if len(covered) else 1.0,
            "categories_missing": int((~covered).sum())}


def _tv_complement_of(real: pd.Series, synth: pd.Series) -> float:
    p = real.value_counts(normalize=True)
    q = synth.value_counts(normalize=True)
    keys = p.index.union(q.index)
    return 1.0 - 0.5 * float(np.abs(p.reindex(keys, fill_value=0.0) - q.reindex(keys, fill_value=0.0)).sum())


def _class_pattern(values: pd.Series) -> pd.Series:
    """Runs of one character class collapsed: "N725MQ" -> "A9A", "Balls to the Wall" -> "Aa_a_a_Aa"."""
    out = values.str.replace(r"\d+", "9", regex=True).str.replace(r"[A-Z]+", "A", regex=True)
    return out.str.replace(r"[a-z]+", "a", regex=True).str.replace(r"\s+", "_", regex=True)


def _words(values: pd.Series) -> pd.Series:
    return values.str.lower().str.findall(r"[^\W\d_]{2,}").explode().dropna()


@column_metric("string_shape")
def string_shape(real: pd.Series, synth: pd.Series, meta: ColumnMeta) -> dict:
    """Prose, codes and names: mean of the TV complements of the length, character-class pattern and token-count
    distributions, and the vocabulary overlap (share of synthetic words that are real words, and of real word
    occurrences the synthetic words cover). Filler (lorem ipsum) keeps lengths but scores 0 on words."""
    r, s = real.dropna().astype(str), synth.dropna().astype(str)
    if len(r) == 0 or len(s) == 0:
        return {"score": _null_fallback(float(real.isna().mean()), float(synth.isna().mean())),
                "note": "no non-null values on one side"}
    r_len, s_len = r.str.len(), s.str.len()
    edges = np.unique(np.quantile(r_len, np.linspace(0, 1, STRING_LENGTH_BINS + 1)))
    inner = edges[1:-1]
    length = _tv_complement_of(pd.Series(np.searchsorted(inner, r_len, side="right")),
                               pd.Series(np.searchsorted(inner, s_len, side="right")))
    r_pattern, s_pattern = _class_pattern(r), _class_pattern(s)
    top = set(r_pattern.value_counts().index[:STRING_PATTERN_TOP])
    pattern = _tv_complement_of(r_pattern.where(r_pattern.isin(top), "\x00other"),
                                s_pattern.where(s_pattern.isin(top), "\x00other"))
    tokens = _tv_complement_of(r.str.split().str.len().clip(upper=STRING_MAX_TOKENS),
                               s.str.split().str.len().clip(upper=STRING_MAX_TOKENS))
    r_words, s_words = _words(r), _words(s)
    if len(r_words) == 0 and len(s_words) == 0:
        vocabulary = 1.0
    elif len(r_words) == 0 or len(s_words) == 0:
        vocabulary = 0.0
    else:
        vocabulary = 0.5 * (float(s_words.isin(set(r_words)).mean()) + float(r_words.isin(set(s_words)).mean()))
    parts = {"length_tv_complement": length, "pattern_tv_complement": pattern, "token_count_tv_complement": tokens,
             "vocabulary_overlap": vocabulary}
    return {"score": float(np.mean(list(parts.values()))), **parts,
            "synthetic_unique_share": float(s.nunique() / len(s)), "real_unique_share": float(r.nunique() / len(r))}


def column_shape_scores(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, columns: list[str]) -> dict[str, dict]:
    """One score per column; an empty synthetic table or a missing column scores 0 rather than failing."""
    out: dict[str, dict] = {}
    real = sample_rows(real, MAX_SHAPE_ROWS, 0) if len(real) > MAX_SHAPE_ROWS else real
    synth = sample_rows(synth, MAX_SHAPE_ROWS, 1) if len(synth) > MAX_SHAPE_ROWS else synth
    for column in columns:
        col_meta = meta.columns[column]
        metric = COLUMN_METRIC_FOR[col_meta.sdtype]
        entry = {"metric": metric, "real_null_rate": num(real[column].isna().mean()) if len(real) else None,
                 "synthetic_null_rate": None}
        if column not in synth.columns:
            entry.update(score=0.0, note="column missing from the synthetic table")
        elif len(synth) == 0 or len(real) == 0:
            entry.update(score=0.0, note="no synthetic rows" if len(synth) == 0 else "no real rows")
        else:
            entry["synthetic_null_rate"] = num(synth[column].isna().mean())
            if entry["real_null_rate"] is not None:
                entry["missing_rate_difference"] = abs(entry["synthetic_null_rate"] - entry["real_null_rate"])
            result = COLUMN_METRICS[metric](real[column], synth[column], col_meta)
            result = {k: num(v) if isinstance(v, float) else v for k, v in result.items()}
            result["score"] = float(np.clip(result["score"] or 0.0, 0.0, 1.0))
            entry.update(result)
        out[column] = entry
    return out


# ---------------------------------------------------------------- pair trends


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    # A constant column has no correlation to speak of; 0 keeps the score defined.
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0)) if denom > 0 else 0.0


def _contingency(a: np.ndarray, b: np.ndarray, ka: int, kb: int) -> np.ndarray:
    return np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(float)


def _cramers_v_table(observed: np.ndarray) -> float:
    observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
    if min(observed.shape) < 2:
        return 0.0
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return float(np.clip(np.sqrt(chi2 / n / (min(observed.shape) - 1)), 0.0, 1.0))


def _correlation_ratio(x: np.ndarray, groups: np.ndarray) -> float:
    ok = ~np.isnan(x)
    x, groups = x[ok], groups[ok]
    if len(x) < 2:
        return 0.0
    _, groups = np.unique(groups, return_inverse=True)
    counts = np.bincount(groups)
    means = np.bincount(groups, weights=x) / np.maximum(counts, 1)
    total = float(((x - x.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    between = float((counts * (means - x.mean()) ** 2).sum())
    return float(np.sqrt(np.clip(between / total, 0.0, 1.0)))


class _Encoded:
    """One column of the real and the synthetic sample, encoded once for every pair that uses it.

    Numbers keep their values (Pearson), ranks (Spearman) and 10 equal-width bins on the real range
    with open outer edges, nulls their own bin (contingency); categories get codes shared by both
    sides, the real top 50 kept and the rest pooled, nulls a category.
    """

    def __init__(self, real: pd.Series, synth: pd.Series, sdtype: str):
        self.kind = "num" if sdtype in NUMERIC_LIKE else "cat"
        if self.kind == "num":
            self.values = (to_float(real, sdtype), to_float(synth, sdtype))
            self.ranks = tuple(pd.Series(v).rank(method="average").to_numpy(dtype=float) for v in self.values)
            finite = self.values[0][~np.isnan(self.values[0])]
            edges = np.histogram_bin_edges(finite, bins=PAIR_BINS) if len(finite) else np.zeros(2)
            inner = edges[1:-1]
            self.codes = tuple(np.where(np.isnan(v), len(inner) + 1, np.searchsorted(inner, v, side="right"))
                               for v in self.values)
            self.k = len(inner) + 2
        else:
            (r, s), k = joint_codes(real, synth)
            counts = np.bincount(r, minlength=k)
            keep = np.argsort(-counts, kind="stable")[:PAIR_CATEGORY_TOP]
            remap = np.full(k, len(keep), dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            self.codes = (remap[r], remap[s])
            self.k = len(keep) + 1


def _contingency_similarity(a: _Encoded, b: _Encoded, side_n: tuple[int, int]) -> tuple[float, list[np.ndarray]]:
    tables = [_contingency(a.codes[i], b.codes[i], a.k, b.k) for i in (0, 1)]
    p, q = tables[0] / max(side_n[0], 1), tables[1] / max(side_n[1], 1)
    return 1.0 - 0.5 * float(np.abs(p - q).sum()), tables


@pair_metric("correlation_similarity")
def correlation_similarity(a: _Encoded, b: _Encoded, side_n: tuple[int, int]) -> dict:
    """Pearson similarity, 1 - |r - s| / 2 (the score); Spearman and contingency as diagnostics."""
    r, s = _pearson(a.values[0], b.values[0]), _pearson(a.values[1], b.values[1])
    rr, sr = _pearson(a.ranks[0], b.ranks[0]), _pearson(a.ranks[1], b.ranks[1])
    contingency, _ = _contingency_similarity(a, b, side_n)
    return {"score": 1.0 - abs(r - s) / 2.0, "real": r, "synthetic": s, "association": "pearson",
            "spearman_real": rr, "spearman_synthetic": sr, "spearman_difference": abs(rr - sr),
            "contingency_similarity": contingency, "contributes": abs(r) > PAIR_CORRELATION_THRESHOLD}


@pair_metric("contingency_similarity")
def contingency_similarity(a: _Encoded, b: _Encoded, side_n: tuple[int, int]) -> dict:
    """1 - TVD of the joint frequencies (the score); Cramér's V or the correlation ratio as diagnostics."""
    score, tables = _contingency_similarity(a, b, side_n)
    real_v = _cramers_v_table(tables[0])
    if a.kind == "num" or b.kind == "num":
        x, g = (a, b) if a.kind == "num" else (b, a)
        real, synth = _correlation_ratio(x.values[0], g.codes[0]), _correlation_ratio(x.values[1], g.codes[1])
        association = "correlation_ratio"
    else:
        real, synth = real_v, _cramers_v_table(tables[1])
        association = "cramers_v"
    return {"score": score, "real": real, "synthetic": synth, "association": association,
            "association_difference": abs(real - synth), "real_cramers_v": real_v,
            "contributes": real_v > PAIR_ASSOCIATION_THRESHOLD}


def _kind(meta: TableMeta, column: str) -> str:
    return "num" if meta.columns[column].sdtype in NUMERIC_LIKE else "cat"


def select_pairs(columns: list[str], *, max_pairs: int, seed: int) -> list[tuple[str, str]]:
    """All pairs, or a seeded sample of them: wide tables would otherwise cost O(columns²)."""
    pairs = list(itertools.combinations(columns, 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))]
    return pairs


def score_pairs(real: pd.DataFrame, synth: pd.DataFrame, sdtypes: Mapping[str, str],
                 pairs: list[tuple[str, str]], seed: int) -> dict[str, dict]:
    used = list(dict.fromkeys(c for pair in pairs for c in pair))
    real_rows = sample_rows(real[used], MAX_PAIR_ROWS, seed)
    synth_rows = sample_rows(synth[used], MAX_PAIR_ROWS, seed + 1)
    empty = len(synth_rows) == 0 or len(real_rows) == 0
    encoded = {} if empty else {c: _Encoded(real_rows[c], synth_rows[c], sdtypes[c]) for c in used}
    side_n = (len(real_rows), len(synth_rows))
    out: dict[str, dict] = {}
    for a, b in pairs:
        kinds = tuple(sorted(("num" if sdtypes[c] in NUMERIC_LIKE else "cat" for c in (a, b)), key=("num", "cat").index))
        metric = PAIR_METRIC_FOR[kinds]
        key = f"{a}|{b}"
        if empty:
            out[key] = {"metric": metric, "score": 0.0, "note": "no synthetic rows" if len(synth_rows) == 0 else "no real rows"}
            continue
        result = PAIR_METRICS[metric](encoded[a], encoded[b], side_n)
        out[key] = {"metric": metric, **{k: num(v) if isinstance(v, float) else v for k, v in result.items()}}
        out[key]["score"] = float(np.clip(out[key]["score"] or 0.0, 0.0, 1.0))
    return out


def pair_trend_scores(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, columns: list[str], *,
                      max_pairs: int = 200, seed: int = 0) -> dict[str, dict]:
    """Whether relations between columns survive: correlation or contingency similarity per pair."""
    columns = [c for c in columns if c in synth.columns and meta.columns[c].sdtype in EVALUABLE]
    pairs = select_pairs(columns, max_pairs=max_pairs, seed=seed)
    if not pairs:
        return {}
    return score_pairs(real, synth, {c: meta.columns[c].sdtype for c in columns}, pairs, seed)
