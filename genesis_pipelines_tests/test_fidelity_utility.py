"""Fidelity metrics, grade and advice, utility (TSTR/TRTS) and the HTML report, on constructed data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse, profile_table
from genesis_pipelines.engine.analysis.similarity import column_shape_scores, pair_trend_scores
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.evaluation import quality_report, render_html, summary_markdown
from genesis_pipelines.engine.evaluation.fidelity import (
    categorical_distribution,
    count_distribution,
    grade,
    numeric_distribution,
    recommendations,
)
from genesis_pipelines.engine.evaluation.utility import guess_target, utility_report

SPEC = parse_spec({"name": "t"})


def _schema(tables: dict[str, pd.DataFrame]) -> DatasetSchema:
    metas = {name: profile_table(name, df, SPEC) for name, df in tables.items()}
    return DatasetSchema(dataset="t", tables=metas, foreign_keys=[], generation_order=list(tables))


def _labelled(n: int, seed: int) -> pd.DataFrame:
    """A label that depends on two numbers and a category, plus noise columns."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    group = np.where(x1 + rng.normal(0, 0.5, n) > 0, "grp_up", "grp_down")
    label = np.where(1.5 * x1 + x2 + rng.normal(0, 0.7, n) > 0, "yes", "no")
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "noise": rng.uniform(0, 1, n).round(4),
                         "group": group, "tier": rng.choice(["t_a", "t_b", "t_c"], n), "label": label})


# ---------------------------------------------------------------- column metrics


def test_numeric_column_metrics():
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"v": rng.normal(0, 1, 4000)})
    meta = profile_table("t", real, SPEC)
    same = column_shape_scores(real, pd.DataFrame({"v": rng.normal(0, 1, 4000)}), meta, ["v"])["v"]
    assert same["metric"] == "ks_complement" and same["score"] > 0.95
    assert same["wasserstein"] < 0.02 and same["range_coverage"] > 0.8
    shifted = column_shape_scores(real, pd.DataFrame({"v": rng.normal(1, 1, 4000)}), meta, ["v"])["v"]
    assert shifted["score"] < 0.7 and shifted["ks_pvalue"] < 1e-6
    assert shifted["wasserstein"] == pytest.approx(1.0 / (real["v"].max() - real["v"].min()), rel=0.15)
    narrow = column_shape_scores(real, pd.DataFrame({"v": rng.uniform(0, real["v"].max(), 4000)}), meta, ["v"])["v"]
    lo, hi = real["v"].min(), real["v"].max()
    assert narrow["range_coverage"] == pytest.approx(hi / (hi - lo), abs=0.01)
    nulls = column_shape_scores(real, pd.DataFrame({"v": np.where(np.arange(4000) % 5 == 0, np.nan, real["v"])}), meta, ["v"])["v"]
    assert nulls["missing_rate_difference"] == pytest.approx(0.2)


def test_categorical_column_metrics():
    real = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50})
    meta = profile_table("t", real, SPEC)
    same = column_shape_scores(real, real.sample(frac=1, random_state=0), meta, ["c"])["c"]
    assert same["score"] == pytest.approx(1.0) and same["js_distance"] == pytest.approx(0.0, abs=1e-9)
    assert same["chi2_pvalue"] == pytest.approx(1.0) and same["category_coverage"] == 1.0
    synth = pd.DataFrame({"c": ["a"] * 700 + ["b"] * 300})  # c and d never generated
    other = column_shape_scores(real, synth, meta, ["c"])["c"]
    assert other["metric"] == "tv_complement"
    assert other["score"] == pytest.approx(1 - 0.5 * (0.2 + 0.0 + 0.15 + 0.05))
    assert other["tv_distance"] == pytest.approx(0.2)
    assert 0.2 < other["js_distance"] < 1 and other["chi2_pvalue"] < 1e-6
    assert other["category_coverage"] == pytest.approx(0.5) and other["categories_missing"] == 2


# ---------------------------------------------------------------- pair metrics


def test_pair_metrics_spearman_contingency_and_related_pairs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=3000)
    real = pd.DataFrame({"x": x, "y": np.exp(x), "c": np.where(x > 0, "p", "n"), "u": rng.normal(size=3000)})
    meta = profile_table("t", real, SPEC)
    scores = pair_trend_scores(real, real, meta, ["x", "y", "c", "u"])
    assert all(p["score"] == pytest.approx(1.0) for p in scores.values())
    xy = scores["x|y"]
    assert xy["spearman_real"] == pytest.approx(1.0) and xy["real"] < 0.9  # monotone, not linear
    assert xy["contributes"] and not scores["x|u"]["contributes"]
    assert scores["x|c"]["metric"] == "contingency_similarity" and scores["x|c"]["contributes"]
    shuffled = real.assign(y=real["y"].sample(frac=1, random_state=2).to_numpy())
    broken = pair_trend_scores(real, shuffled, meta, ["x", "y", "c", "u"])
    assert broken["x|y"]["spearman_difference"] > 0.9
    assert broken["x|y"]["score"] < 0.7 and broken["x|c"]["score"] == pytest.approx(1.0)
    report = quality_report({"t": real}, {"t": shuffled}, _schema({"t": real}), exclude={}, plots=False)
    table = report["tables"]["t"]
    # only related pairs count (x|y, x|c); the pairs with u, and y|c (Cramér's V 0.27 in 10 bins), are left out
    assert table["related_pairs"] == 2
    assert table["pair_trends"] < table["pair_trends_all_pairs"]


# ---------------------------------------------------------------- plot data: k-suppression


def test_small_bins_and_rare_categories_are_suppressed():
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(0, 1, 500), [40.0, 41.0]])  # two outliers: a person each
    dist = numeric_distribution(real, rng.normal(0, 1, 500), k=5)
    counts = np.round(np.asarray(dist["real"]) * len(real)).astype(int)
    assert counts.min() >= 5
    assert dist["edges"][-1] < 40 and dist["edges"][0] > real.min()  # no edge at a single person's value
    cats = pd.Series(["big"] * 50 + ["mid"] * 10 + ["rare1"] * 2 + ["rare2"] * 1)
    out = categorical_distribution(cats, cats, k=5)
    assert out["labels"] == ["#1", "#2", "other"] and out["labelled_by"] == "rank"
    assert out["real"][-1] == pytest.approx(3 / 63)
    named = categorical_distribution(cats, cats, k=5, public=True)
    assert named["labels"] == ["big", "mid", "other"]
    children = count_distribution(np.array([0] * 10 + [1] * 8 + [2] * 6 + [7, 9]), np.array([0, 1, 2, 3]), k=5)
    assert children["labels"][-1] == "2+" and all(v * 26 >= 5 - 1e-9 for v in children["real"])


# ---------------------------------------------------------------- grade and advice


def test_grade_and_recommendations():
    assert [grade(s) for s in (95, 90, 85, 72, 61, 59.9, None)] == ["A", "A", "B", "C", "D", "F", None]
    rng = np.random.default_rng(4)
    real = pd.DataFrame({"amount": rng.gamma(2, 10, 2000).round(2), "kind": rng.choice(["k1", "k2"], 2000)})
    synth = real.assign(amount=real["amount"] * 3)
    report = quality_report({"t": real}, {"t": synth}, _schema({"t": real}), exclude={}, plots=False)
    assert report["grade"] == grade(report["overall_score"])
    advice = report["recommendations"]
    assert advice[0]["severity"] == "high" and "t.amount" in advice[0]["text"] and "distribution differs" in advice[0]["text"]
    text = " ".join(r["text"] for r in advice)
    assert "k1" not in text and "k2" not in text
    assert recommendations({"tables": {}})[0]["severity"] == "info"
    assert "grade" in summary_markdown(report, "quality")


# ---------------------------------------------------------------- across tables


def test_parent_child_trends_and_combined_cardinality():
    spec = parse_spec({"name": "t", "tables": {"parent": {"primary_key": "pid"}, "child": {"primary_key": "cid"}},
                       "foreign_keys": [{"child": "child.pid", "parent": "parent.pid"}]})
    rng = np.random.default_rng(5)
    parent = pd.DataFrame({"pid": np.arange(300), "size": rng.choice(["small", "large"], 300)})
    pid = rng.integers(0, 300, 3000)
    amount = np.where(parent["size"].to_numpy()[pid] == "large", 100.0, 10.0) + rng.normal(0, 1, 3000)
    child = pd.DataFrame({"cid": np.arange(3000), "pid": pid, "amount": amount.round(2)})
    real = {"parent": parent, "child": child}
    schema = analyse(spec, real)
    same = quality_report(real, real, schema, exclude={}, plots=False)
    label = "child.pid -> parent.pid"
    assert same["relationships"][label]["parent_child_trends"] == pytest.approx(1.0)
    assert same["relationships"][label]["combined_score"] == pytest.approx(1.0)
    assert same["parent_child_trends"] == pytest.approx(100.0)
    broken = {"parent": parent, "child": child.assign(amount=child["amount"].sample(frac=1, random_state=0).to_numpy())}
    report = quality_report(real, broken, schema, exclude={}, plots=False)
    assert report["relationships"][label]["parent_child_trends"] < 0.7
    assert report["tables"]["child"]["column_shapes"] == pytest.approx(100.0)  # per table nothing shows
    assert report["overall_score"] < same["overall_score"]


# ---------------------------------------------------------------- utility


def test_utility_ratio_near_one_for_a_fresh_sample_and_low_for_shuffled_labels():
    train, holdout, fresh = _labelled(2500, 0), _labelled(1000, 1), _labelled(2500, 2)
    schema = _schema({"t": train})
    assert guess_target(schema, {}) == "t.label"
    good = utility_report({"t": train}, {"t": holdout}, {"t": fresh}, schema, exclude={})
    assert good["task"] == "classification" and good["target_chosen_by"] == "heuristic"
    assert set(good["models"]) == {"logistic", "random_forest", "gradient_boosting"}
    assert 0.93 < good["utility_ratio"] < 1.07
    assert good["models"]["random_forest"]["importance_rank_correlation"] > 0.5
    for m in good["models"].values():
        assert m["trtr"]["roc_auc"] > 0.85 and m["trts"]["accuracy"] > 0.7
    shuffled = fresh.assign(label=fresh["label"].sample(frac=1, random_state=3).to_numpy())
    bad = utility_report({"t": train}, {"t": holdout}, {"t": shuffled}, schema, exclude={})
    assert bad["utility_ratio"] < 0.75
    regression = utility_report({"t": train}, {"t": holdout}, {"t": fresh}, schema, exclude={}, target="t.x1")
    assert regression["task"] == "regression" and regression["primary_metric"] == "r2"
    assert regression["models"]["gradient_boosting"]["tstr"]["r2"] > 0.3


def test_target_guess_and_skips():
    df = pd.DataFrame({"workclass": ["a", "b"] * 50, "isFraud": ["y", "n"] * 50, "amount": np.arange(100.0)})
    schema = _schema({"t": df})
    assert guess_target(schema, {}) == "t.isFraud"  # "workclass" holds "class" but is no label
    assert guess_target(_schema({"t": df[["workclass", "amount"]]}), {}) is None
    assert "skipped" in utility_report({"t": df}, {"t": df}, {"t": df}, _schema({"t": df[["amount"]]}), exclude={})
    assert "skipped" in utility_report({"t": df}, {"t": df.iloc[:10]}, {"t": df}, schema, exclude={})


def test_utility_target_in_spec_is_validated():
    spec = parse_spec({"name": "t", "utility": {"target": "People.churn", "public_columns": ["People.plan"]}})
    assert spec.utility.target == "People.churn"
    with pytest.raises(SpecError, match="utility"):
        parse_spec({"name": "t", "utility": {"target": "churn"}})
    with pytest.raises(SpecError, match="utility.target"):
        parse_spec({"name": "t", "tables": {"A": {}}, "utility": {"target": "B.churn"}})


# ---------------------------------------------------------------- the HTML report


def test_html_report_has_plots_and_no_real_values():
    rng = np.random.default_rng(6)
    n = 900
    data = _labelled(n, 6)
    data["email"] = [f"person{i}.secret@example.org" for i in range(n)]
    data["city"] = rng.choice(["Springfield", "Shelbyville", "Ogdenville"], n)
    data["plan"] = rng.choice(["gold_plan", "silver_plan"], n)
    train, holdout = data.iloc[:600], data.iloc[600:]
    synth = _labelled(600, 7).assign(email=[f"fake{i}@example.net" for i in range(600)],
                                      city=rng.choice(["Springfield", "Shelbyville", "Ogdenville"], 600),
                                      plan=rng.choice(["gold_plan", "silver_plan"], 600))
    schema = _schema({"t": data})
    report = quality_report({"t": data}, {"t": synth}, schema, exclude={"t": {"email"}}, public={"t": {"plan"}},
                            train_tables={"t": train}, holdout_tables={"t": holdout})
    html = render_html(report, title="people", kind="quality")
    assert html.count("data:image/png;base64,") >= 4  # scores, per column, distributions, heatmaps
    assert "<script" not in html and "<link" not in html and "http" not in html.replace("http-equiv", "")
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", html)
    assert "Utility: train on synthetic" in text and "Recommendations" in text
    assert "email" not in report["tables"]["t"]["columns"]
    assert not [v for v in data["email"] if v in text]
    for hidden in ("Springfield", "Shelbyville", "Ogdenville", "grp_up", "t_a", "yes"):
        assert hidden not in text and hidden not in str(report), hidden
    assert report["tables"]["t"]["distributions"]["plan"]["labels"][:2] in (["gold_plan", "silver_plan"], ["silver_plan", "gold_plan"])
    assert report["tables"]["t"]["distributions"]["city"]["labels"][0] == "#1"
    privacy = {"tables": {"t": {"exact_copies": {}, "dcr": {"share_closer_to_train": 0.5, "histogram": {
        "edges": [0.0, 0.1, 0.2], "synthetic": [3, 4], "holdout": [3, 5]}},
        "mia": {"distance": {"auc": 0.51, "ci": [0.48, 0.54], "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.52, 1]}}},
        "singling_out": {"risk": 0.01, "ci": [0.0, 0.02]}, "k_anonymity": {"k": 4}}},
        "gates": {"mia_auc_max": {"value": 0.51, "threshold": 0.6, "passed": True}}}
    page = render_html(privacy, title="p", kind="privacy")
    assert page.count("data:image/png;base64,") >= 3 and "mia_auc_max" in page and "singling out" in page
    assert "<script" not in page and "k = 4" in page
    render_html({"tables": {"t": {"dcr": {}, "exact_copies": {}}}}, title="empty", kind="privacy")  # parts missing
