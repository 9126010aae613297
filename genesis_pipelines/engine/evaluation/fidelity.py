"""How closely synthetic tables follow the real ones: column shapes, pair trends, children per parent.

Every metric is a plain function registered by name, returning a dict of aggregates with a `score` in
0..1 (1 = indistinguishable). New metrics are added with `@column_metric(...)` / `@pair_metric(...)`
and picked per semantic type in `COLUMN_METRIC_FOR` / `PAIR_METRIC_FOR`. Nothing here returns a real
row or category label (plot data labels categories by rank unless a column is declared public, and
suppresses bins with fewer than k real rows): reports built from these dicts are safe to publish.

The headline scores follow SDMetrics' QualityReport so the two can be compared (benchmarks/
bench_fidelity_agreement.py): column shapes are KS / TV complements, pair trends are Pearson correlation
similarity (numeric pairs) and contingency similarity, 1 - TVD of the joint frequencies (other pairs,
numbers cut into 10 equal-width bins). Spearman, Cramér's V, correlation ratio, Wasserstein, JS, chi²
and coverage figures are reported next to them as diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import (
    NUMERIC_LIKE,
    category_keys,
    evaluable_columns,
    joint_codes,
    mean_or_none,
    num,
    sample_rows,
    to_float,
)
from genesis_pipelines.engine.analysis.similarity import (
    MAX_PAIR_ROWS,
    MAX_SHAPE_ROWS,
    column_shape_scores,
    ks_statistic,
    pair_trend_scores,
    score_pairs,
    shape_columns,
)
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta, child_keys, parent_keys
from genesis_pipelines.engine.evaluation.utility import utility_report

DEFAULT_K = 5  # plots and histograms never show a bin or category with fewer real rows than this
MAX_PLOT_COLUMNS = 30
MAX_PARENT_CHILD_PAIRS = 60
HIST_BINS = 20
GRADES = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"))


# ---------------------------------------------------------------- plot data (aggregates, k-suppressed)


def _merge_small(real_counts: np.ndarray, synth_counts: np.ndarray, edges: np.ndarray, k: int):
    """Merge each bin holding fewer than k real rows into its neighbour, so no bin describes < k people."""
    r, s, e = list(real_counts), list(synth_counts), list(edges)
    i = 0
    while len(r) > 1 and i < len(r):
        if r[i] >= k:
            i += 1
            continue
        j = i + 1 if i + 1 < len(r) and (i == 0 or r[i + 1] <= r[i - 1]) else i - 1
        lo, hi = min(i, j), max(i, j)
        r[lo] += r[hi]
        s[lo] += s[hi]
        del r[hi], s[hi], e[hi]
        i = lo
    return np.asarray(r), np.asarray(s), np.asarray(e)


def numeric_distribution(real: np.ndarray, synth: np.ndarray, *, k: int = DEFAULT_K, bins: int = HIST_BINS) -> dict | None:
    """Shares per bin, real vs synthetic. The range runs from the k-th smallest to the k-th largest real
    value (values beyond fall into the end bins), so no edge is a single person's extreme value."""
    real, synth = real[~np.isnan(real)], synth[~np.isnan(synth)]
    if len(real) < 2 * k:
        return None
    ordered = np.sort(real)
    lo, hi = float(ordered[k - 1]), float(ordered[-k])
    if hi <= lo:
        return None
    edges = np.linspace(lo, hi, bins + 1)
    inner = edges[1:-1]
    r_counts = np.bincount(np.searchsorted(inner, real, side="right"), minlength=bins)
    s_counts = np.bincount(np.searchsorted(inner, synth, side="right"), minlength=bins) if len(synth) else np.zeros(bins)
    r_counts, s_counts, edges = _merge_small(r_counts, s_counts, edges, k)
    return {"kind": "numeric", "edges": [float(x) for x in edges],
            "real": [float(x) for x in r_counts / len(real)],
            "synthetic": [float(x) for x in (s_counts / max(len(synth), 1))]}


def categorical_distribution(real: pd.Series, synth: pd.Series, *, k: int = DEFAULT_K, public: bool = False,
                             top: int = 20) -> dict | None:
    """Shares of the categories with at least k real rows (at most `top`), the rest pooled as "other".

    Bars are labelled by rank ("#1" = the most frequent real category) unless the column is public.
    """
    (r, s), n = joint_codes(real.dropna(), synth.dropna())
    if len(r) == 0:
        return None
    r_counts, s_counts = np.bincount(r, minlength=n), np.bincount(s, minlength=n)
    order = [i for i in np.argsort(-r_counts, kind="stable") if r_counts[i] >= k][:top]
    if not order:
        return None
    labels = [f"#{i + 1}" for i in range(len(order))]
    if public:
        (keys,) = category_keys(pd.concat([real.dropna(), synth.dropna()], ignore_index=True))
        names = pd.factorize(keys, use_na_sentinel=False)[1]
        labels = [str(names[i]) for i in order]
    other_r, other_s = len(r) - r_counts[order].sum(), len(s) - s_counts[order].sum()
    real_shares = list(r_counts[order] / len(r)) + [other_r / len(r)]
    synth_shares = list(s_counts[order] / max(len(s), 1)) + [other_s / max(len(s), 1)]
    return {"kind": "categorical", "labels": labels + ["other"], "labelled_by": "value" if public else "rank",
            "real": [float(x) for x in real_shares], "synthetic": [float(x) for x in synth_shares]}


def column_distributions(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, columns: list[str], *,
                         k: int = DEFAULT_K, public: set[str] = frozenset(), seed: int = 0) -> dict[str, dict]:
    real = sample_rows(real[columns], MAX_SHAPE_ROWS, seed)
    synth = sample_rows(synth[[c for c in columns if c in synth.columns]], MAX_SHAPE_ROWS, seed + 1)
    out = {}
    for column in columns:
        if column not in synth.columns:
            continue
        sdtype = meta.columns[column].sdtype
        if sdtype in NUMERIC_LIKE:
            dist = numeric_distribution(to_float(real[column], sdtype), to_float(synth[column], sdtype), k=k)
            if dist is not None and sdtype == "datetime":
                dist["unit"] = "seconds since 1970-01-01"
        else:
            dist = categorical_distribution(real[column], synth[column], k=k, public=column in public)
        if dist is not None:
            out[column] = dist
    return out


def count_distribution(real_counts: np.ndarray, synth_counts: np.ndarray, *, k: int = DEFAULT_K) -> dict | None:
    """Children-per-parent shares; a count held by fewer than k real parents is merged with its neighbour."""
    if len(real_counts) < k:
        return None
    top = int(real_counts.max())
    r = np.bincount(real_counts, minlength=top + 1)
    s = np.bincount(np.minimum(synth_counts, top), minlength=top + 1) if len(synth_counts) else np.zeros(top + 1)
    rr, ss, ee = _merge_small(r, s, np.arange(top + 2), k)
    labels = []
    for j in range(len(rr)):
        a, b = int(ee[j]), int(ee[j + 1]) - 1
        labels.append(f"{a}+" if j == len(rr) - 1 else (str(a) if a == b else f"{a}-{b}"))
    return {"labels": labels, "real": [float(x) for x in rr / len(real_counts)],
            "synthetic": [float(x) for x in ss / max(len(synth_counts), 1)]}


# ---------------------------------------------------------------- cardinality


def _children_per_parent(child: pd.DataFrame, parent: pd.DataFrame, fk) -> tuple[np.ndarray, dict]:
    if not set(fk.child_columns) <= set(child.columns) or not set(fk.parent_columns) <= set(parent.columns):
        raise KeyError("key column missing")
    child_values, parent_values = child_keys(fk, child), parent_keys(fk, parent)  # composite keys: tuple codes
    (parent_codes, child_codes), k = joint_codes(parent_values, child_values)
    child_null = child_values.isna().to_numpy()
    parent_ok = ~parent_values.isna().to_numpy()
    parent_codes = parent_codes[parent_ok]
    linked = ~child_null & np.isin(child_codes, parent_codes)
    per_code = np.bincount(child_codes[linked], minlength=k)
    counts = per_code[parent_codes]
    non_null = int((~child_null).sum())
    extra = {"null_rate": num(child_null.mean()) if len(child) else None,
             "orphan_rate": num((non_null - int(linked.sum())) / non_null) if non_null else 0.0}
    return counts, extra


def _count_summary(counts: np.ndarray) -> dict:
    if len(counts) == 0:
        return {"parents": 0, "mean_children": None, "max_children": None, "share_childless": None}
    return {"parents": int(len(counts)), "mean_children": num(counts.mean()), "max_children": int(counts.max()),
            "share_childless": num((counts == 0).mean())}


def cardinality_scores(real_tables: Mapping[str, pd.DataFrame], synth_tables: Mapping[str, pd.DataFrame],
                       schema: DatasetSchema, *, k: int = DEFAULT_K) -> dict[str, dict]:
    """Children-per-parent distributions: per-table scores cannot see a parent that hoards every child.

    `score` compares the distributions per parent, `child_weighted_score` per child (each child carries
    its family size); `combined_score`, their mean, is what the dataset's cardinality component averages.
    """
    out: dict[str, dict] = {}
    for fk in schema.foreign_keys:
        entry: dict = {"metric": "children_per_parent_ks_complement"}
        needed = (fk.child_table, fk.parent_table)
        if any(t not in real_tables for t in needed):
            out[fk.label] = {**entry, "score": None, "note": "real table missing"}
            continue
        try:
            real_counts, real_extra = _children_per_parent(real_tables[fk.child_table], real_tables[fk.parent_table], fk)
        except KeyError:
            out[fk.label] = {**entry, "score": None, "note": "key column missing from the real tables"}
            continue
        entry["real"] = {**_count_summary(real_counts), **real_extra}
        try:
            if any(t not in synth_tables for t in needed):
                raise KeyError("synthetic table missing")
            synth_counts, synth_extra = _children_per_parent(synth_tables[fk.child_table], synth_tables[fk.parent_table], fk)
        except KeyError:
            out[fk.label] = {**entry, "score": 0.0, "combined_score": 0.0, "note": "synthetic table or key column missing"}
            continue
        entry["synthetic"] = {**_count_summary(synth_counts), **synth_extra}
        if len(real_counts) == 0:
            entry.update(score=None, note="no real parents")
        elif len(synth_counts) == 0:
            entry.update(score=0.0, combined_score=0.0, note="no synthetic parents")
        else:
            entry["score"] = 1.0 - ks_statistic(real_counts, synth_counts)
            # Seen from the children (each child carries its family size): where most parents are childless,
            # the per-parent score barely notices one parent hoarding every child; this one does.
            real_sizes, synth_sizes = np.repeat(real_counts, real_counts), np.repeat(synth_counts, synth_counts)
            if len(real_sizes) and len(synth_sizes):
                entry["child_weighted_score"] = 1.0 - ks_statistic(real_sizes, synth_sizes)
            else:
                entry["child_weighted_score"] = float(len(real_sizes) == len(synth_sizes))
            entry["combined_score"] = (entry["score"] + entry["child_weighted_score"]) / 2.0
            entry["distribution"] = count_distribution(real_counts, synth_counts, k=k)
        out[fk.label] = entry
    return out


def _joined(child: pd.DataFrame, parent: pd.DataFrame, fk, child_cols: list[str], parent_cols: list[str],
            seed: int) -> pd.DataFrame:
    """Each child row next to its parent's columns (children sampled first; orphans dropped)."""
    child = sample_rows(child, MAX_PAIR_ROWS, seed)
    child_values, parent_values = child_keys(fk, child), parent_keys(fk, parent)
    (parent_codes, child_codes), _ = joint_codes(parent_values, child_values)
    ok = ~parent_values.isna().to_numpy()
    position = pd.Series(np.flatnonzero(ok), index=parent_codes[ok])
    position = position[~position.index.duplicated()]
    rows = position.reindex(child_codes).to_numpy(dtype=float, copy=True)
    rows[child_values.isna().to_numpy()] = np.nan
    linked = ~np.isnan(rows)
    left = child.loc[linked, child_cols].reset_index(drop=True)
    right = parent.iloc[rows[linked].astype(np.int64)][parent_cols].reset_index(drop=True)
    return pd.concat([right.add_prefix("parent."), left], axis=1)


def parent_child_trends(real_tables: Mapping[str, pd.DataFrame], synth_tables: Mapping[str, pd.DataFrame],
                        schema: DatasetSchema, exclude: Mapping[str, set[str]], *, seed: int = 0) -> dict[str, dict]:
    """Pair trends between a parent's columns and its children's, real join vs synthetic join, per FK."""
    out: dict[str, dict] = {}
    for fk in schema.foreign_keys:
        if fk.is_self_reference or any(t not in real_tables or t not in synth_tables for t in (fk.child_table, fk.parent_table)):
            continue
        tables = {t: (real_tables[t], synth_tables[t]) for t in (fk.child_table, fk.parent_table)}
        cols = {}
        for t in (fk.child_table, fk.parent_table):
            skip = set(exclude.get(t, set())) | schema.key_columns(t)
            cols[t] = [c for c in evaluable_columns(schema.tables[t], skip)
                       if c in tables[t][0].columns and c in tables[t][1].columns]
        if not cols[fk.child_table] or not cols[fk.parent_table]:
            continue
        keys_ok = all(set(fk.child_columns) <= set(tables[fk.child_table][i].columns)
                      and set(fk.parent_columns) <= set(tables[fk.parent_table][i].columns) for i in (0, 1))
        if not keys_ok or len(tables[fk.child_table][0]) == 0:
            continue
        pairs = [(f"parent.{p}", c) for p in cols[fk.parent_table] for c in cols[fk.child_table]]
        if len(pairs) > MAX_PARENT_CHILD_PAIRS:
            rng = np.random.default_rng(seed)
            pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=MAX_PARENT_CHILD_PAIRS, replace=False))]
        joined = [_joined(tables[fk.child_table][i], tables[fk.parent_table][i], fk, cols[fk.child_table],
                          cols[fk.parent_table], seed + i) for i in (0, 1)]
        sdtypes = {c: schema.tables[fk.child_table].columns[c].sdtype for c in cols[fk.child_table]}
        sdtypes.update({f"parent.{c}": schema.tables[fk.parent_table].columns[c].sdtype for c in cols[fk.parent_table]})
        scores = score_pairs(joined[0], joined[1], sdtypes, pairs, seed) if len(joined[0]) else {}
        out[fk.label] = {"score": mean_or_none(p["score"] for p in scores.values()), "pairs": scores}
    return out


# ---------------------------------------------------------------- grade and recommendations


def grade(score: float | None) -> str | None:
    """A for 90 and above, then B, C, D by tens; F below 60."""
    if score is None:
        return None
    return next((letter for floor, letter in GRADES if score >= floor), "F")


def recommendations(report: dict, *, column_floor: float = 0.8, pair_floor: float = 0.8, limit: int = 12) -> list[dict]:
    """Plain-language advice computed from the scores (names of tables and columns, never their values)."""
    out: list[dict] = []
    for table, t in report.get("tables", {}).items():
        for column, c in sorted((t.get("columns") or {}).items(), key=lambda kv: kv[1].get("score") or 0.0):
            score = c.get("score")
            if c.get("note") == "column missing from the synthetic table":
                out.append({"severity": "high", "text": f"{table}.{column} is missing from the synthetic table."})
            elif score is not None and score < column_floor:
                out.append({"severity": "high" if score < 0.6 else "medium",
                            "text": f"{table}.{column}: the distribution differs (shape score {score:.2f}); consider "
                                    "more epochs, another generator for this table, or a column type override."})
            if (c.get("missing_rate_difference") or 0.0) > 0.05:
                out.append({"severity": "medium", "text": f"{table}.{column}: the share of missing values differs by "
                            f"{100 * c['missing_rate_difference']:.0f} points; check how nulls are modelled."})
            if c.get("category_coverage") is not None and c["category_coverage"] < 0.8:
                out.append({"severity": "low", "text": f"{table}.{column}: {c.get('categories_missing')} real categories "
                            "never appear; rare categories may be lost (more rows, or fewer rare categories)."})
            if c.get("range_coverage") is not None and c["range_coverage"] < 0.8:
                out.append({"severity": "low", "text": f"{table}.{column}: synthetic values cover "
                            f"{100 * c['range_coverage']:.0f}% of the real range; the tails are under-represented."})
        weak = [(p, v) for p, v in (t.get("pairs") or {}).items() if (v.get("score") or 0.0) < pair_floor]
        if weak:
            worst, v = min(weak, key=lambda kv: kv[1]["score"])
            a, b = worst.split("|", 1)
            out.append({"severity": "medium", "text": f"{table}: {len(weak)} column pair(s) lose their relation, worst "
                        f"{a} and {b} (score {v['score']:.2f}); a generator that models dependencies (e.g. ctgan) may help."})
    for label, r in (report.get("relationships") or {}).items():
        score = r.get("combined_score")
        if score is not None and score < 0.8:
            out.append({"severity": "medium", "text": f"{label}: children per parent differ (score {score:.2f}); check the "
                        "foreign key and the children-per-parent model."})
        trends = r.get("parent_child_trends")
        if trends is not None and trends < 0.8:
            out.append({"severity": "low", "text": f"{label}: parent and child columns relate differently than in the real data "
                        f"(score {trends:.2f}); the child table is generated without its parent's values."})
    utility = report.get("utility") or {}
    ratio = utility.get("utility_ratio")
    if ratio is not None and ratio < 0.9:
        out.append({"severity": "high" if ratio < 0.75 else "medium",
                    "text": f"Models trained on synthetic data reach {100 * ratio:.0f}% of the real-trained score on "
                            f"{utility.get('target')}; the target's relations to the other columns are weakened."})
    order = {"high": 0, "medium": 1, "low": 2}
    out.sort(key=lambda r: order[r["severity"]])
    if not out:
        out.append({"severity": "info", "text": "No issue found: every score is above the advice thresholds."})
    return out[:limit]


# ---------------------------------------------------------------- the report


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def table_quality(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta, exclude: set[str], *,
                  max_pairs: int = 200, seed: int = 0, k: int = DEFAULT_K, public: set[str] = frozenset(),
                  plots: bool = True) -> dict:
    scored = [c for c in shape_columns(meta, exclude) if c in real.columns]
    columns = [c for c in evaluable_columns(meta, exclude) if c in real.columns]
    entry: dict = {"row_count_real": int(len(real)), "row_count_synthetic": int(len(synth))}
    if not scored:
        return {**entry, "skipped": "no evaluable columns", "column_shapes": None, "pair_trends": None,
                "columns": {}, "pairs": {}}
    if len(real) == 0:
        return {**entry, "skipped": "no real rows", "column_shapes": None, "pair_trends": None, "columns": {}, "pairs": {}}
    shapes = column_shape_scores(real, synth, meta, scored)
    pairs = pair_trend_scores(real, synth, meta, columns, max_pairs=max_pairs, seed=seed)
    related = [p["score"] for p in pairs.values() if p.get("contributes")]
    entry.update(
        column_shapes=_pct(mean_or_none(c["score"] for c in shapes.values())),
        # pairs with a real relation; when the real data has none, every pair counts
        pair_trends=_pct(mean_or_none(related) if related else mean_or_none(p["score"] for p in pairs.values())),
        pair_trends_all_pairs=_pct(mean_or_none(p["score"] for p in pairs.values())),
        related_pairs=len(related),
        columns=shapes,
        pairs=pairs,
    )
    if plots and len(synth):
        # the worst-scoring columns are the ones worth a picture; shown in table order
        worst = sorted(columns, key=lambda c: shapes[c]["score"])[:MAX_PLOT_COLUMNS]  # plots: typed columns only
        entry["distributions"] = column_distributions(real, synth, meta, [c for c in columns if c in worst],
                                                      k=k, public=public, seed=seed)
    return entry


def quality_report(real_tables: Mapping[str, pd.DataFrame], synth_tables: Mapping[str, pd.DataFrame],
                   schema: DatasetSchema, *, exclude: Mapping[str, set[str]], max_pairs: int = 200,
                   seed: int = 0, k: int = DEFAULT_K, public: Mapping[str, set[str]] | None = None,
                   train_tables: Mapping[str, pd.DataFrame] | None = None,
                   holdout_tables: Mapping[str, pd.DataFrame] | None = None,
                   utility_target: str | None = None, plots: bool = True) -> dict:
    """Scores 0..100 per table and for the dataset; the overall score feeds the quality gate.

    Component scores are means over tables (each table counts once, however wide); a synthetic
    table that is missing counts as empty and scores 0. `overall_score` is the mean of the fidelity
    components that could be evaluated (column shapes, pair trends, cardinality, parent-child trends),
    None only when nothing at all could. Utility (TSTR/TRTS) runs when train and holdout tables are
    given; it is reported next to the score, not inside it. `public` names columns whose category
    labels may appear in plots; other categories are labelled by rank.
    """
    public = public or {}
    tables: dict[str, dict] = {}
    for name, meta in schema.tables.items():
        if name not in real_tables:
            continue
        skip = set(exclude.get(name, set())) | schema.key_columns(name)
        synth = synth_tables.get(name)
        if synth is None:
            synth = pd.DataFrame(columns=real_tables[name].columns)
        tables[name] = table_quality(real_tables[name], synth, meta, skip, max_pairs=max_pairs, seed=seed, k=k,
                                     public=set(public.get(name, set())) - skip, plots=plots)
    relationships = cardinality_scores(real_tables, synth_tables, schema, k=k)
    for label, trends in parent_child_trends(real_tables, synth_tables, schema, exclude, seed=seed).items():
        relationships.setdefault(label, {})
        relationships[label]["parent_child_trends"] = trends["score"]
        relationships[label]["parent_child_pairs"] = trends["pairs"]
    components = {
        "column_shapes": _pct(mean_or_none(t["column_shapes"] / 100 if t["column_shapes"] is not None else None
                                           for t in tables.values())),
        "pair_trends": _pct(mean_or_none(t["pair_trends"] / 100 if t["pair_trends"] is not None else None
                                         for t in tables.values())),
        "cardinality": _pct(mean_or_none(r.get("combined_score", r.get("score")) for r in relationships.values()
                                         if "metric" in r)),
        "parent_child_trends": _pct(mean_or_none(r.get("parent_child_trends") for r in relationships.values())),
    }
    overall = mean_or_none(components.values())
    report = {
        "overall_score": None if overall is None else round(overall, 2),
        "grade": grade(None if overall is None else round(overall, 2)),
        **components,
        "k": int(k),
        "tables": tables,
        "relationships": relationships,
    }
    if train_tables is not None and holdout_tables is not None:
        report["utility"] = utility_report(train_tables, holdout_tables, synth_tables, schema, exclude=exclude,
                                           target=utility_target, seed=seed)
    report["recommendations"] = recommendations(report)
    return report
