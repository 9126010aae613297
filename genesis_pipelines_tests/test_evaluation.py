"""Evaluation metrics: behaviour on known cases, robustness to awkward data, and no real values in reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.columns import evaluable_columns
from genesis_pipelines.engine.analysis.schema_inference import analyse, profile_table
from genesis_pipelines.engine.analysis.similarity import column_shape_scores, pair_trend_scores
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import ThresholdSpec, parse_spec
from genesis_pipelines.engine.evaluation import (
    cardinality_scores,
    distance_to_closest_record,
    exact_copies,
    privacy_report,
    quality_report,
    render_html,
    summary_markdown,
)
from genesis_pipelines_tests.helpers import read_corpus_csv

SPEC = parse_spec({"name": "t"})


def _schema(tables: dict[str, pd.DataFrame]) -> DatasetSchema:
    metas = {name: profile_table(name, df, SPEC) for name, df in tables.items()}
    return DatasetSchema(dataset="t", tables=metas, foreign_keys=[], generation_order=list(tables))


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return read_corpus_csv("adult", "adult", rows=16_000)  # nullable dtypes (Int64, string), as the pipeline reads it


@pytest.fixture(scope="module")
def adult_meta(adult):
    return profile_table("adult", adult, SPEC)


def _adult_schema(adult_meta) -> DatasetSchema:
    return DatasetSchema(dataset="t", tables={"adult": adult_meta}, foreign_keys=[], generation_order=["adult"])


# ---------------------------------------------------------------- fidelity


def test_identical_data_scores_100(adult, adult_meta):
    report = quality_report({"adult": adult}, {"adult": adult.copy()}, _adult_schema(adult_meta), exclude={})
    assert report["overall_score"] == pytest.approx(100.0)
    assert report["column_shapes"] == pytest.approx(100.0)
    assert report["pair_trends"] == pytest.approx(100.0)
    assert report["cardinality"] is None  # no foreign keys: not part of the overall score
    table = report["tables"]["adult"]
    assert set(table["columns"]) == set(adult.columns)
    assert all(c["score"] == pytest.approx(1.0) for c in table["columns"].values())
    assert len(table["pairs"]) == len(adult.columns) * (len(adult.columns) - 1) // 2
    json.dumps(report, allow_nan=False)


def test_independently_shuffled_columns_lower_pair_trends(adult, adult_meta):
    rng = np.random.default_rng(1)
    shuffled = pd.DataFrame({c: adult[c].to_numpy()[rng.permutation(len(adult))] for c in adult.columns})
    report = quality_report({"adult": adult}, {"adult": shuffled}, _adult_schema(adult_meta), exclude={})
    assert report["column_shapes"] == pytest.approx(100.0)
    # contingency similarity is 1 - TVD of the joint frequencies (as SDMetrics), gentler than an
    # association difference: most Adult pairs are weakly related, so shuffling costs only a few points
    assert report["pair_trends"] < 94
    pairs = report["tables"]["adult"]["pairs"]
    # education and education-num are the same thing: the correlation ratio is 1 in real data
    assert pairs["education|education-num"]["score"] < 0.3
    assert pairs["education|education-num"]["association_difference"] > 0.9
    assert pairs["relationship|sex"]["metric"] == "contingency_similarity"
    assert pairs["relationship|sex"]["score"] < 0.8
    assert pairs["relationship|sex"]["association"] == "cramers_v"
    assert pairs["relationship|sex"]["association_difference"] > 0.5
    assert pairs["age|hours-per-week"]["metric"] == "correlation_similarity"
    assert report["overall_score"] < 100


def test_shifted_column_lowers_its_shape_score(adult, adult_meta):
    synth = adult.copy()
    synth["age"] = synth["age"] + 20
    synth["sex"] = synth["sex"].where(synth.index % 10 != 0, pd.NA)  # 10% more nulls
    scores = column_shape_scores(adult, synth, adult_meta, list(adult.columns))
    assert scores["age"]["metric"] == "ks_complement"
    assert scores["age"]["score"] < 0.6
    assert scores["sex"]["metric"] == "tv_complement"
    assert 0.85 < scores["sex"]["score"] < 0.95
    assert scores["sex"]["synthetic_null_rate"] == pytest.approx(0.1, abs=0.01)
    assert scores["sex"]["real_null_rate"] == 0.0
    untouched = [c for c in adult.columns if c not in ("age", "sex")]
    assert all(scores[c]["score"] == pytest.approx(1.0) for c in untouched)


def test_evaluable_columns_skip_ids_text_and_excluded():
    df = pd.DataFrame({
        "id": range(30),
        "name": [f"person number {i} with a long unique name" for i in range(30)],
        "age": np.arange(30) % 7,
        "city": ["a", "b", "c"] * 10,
        "email": [f"x{i}@example.org" for i in range(30)],
    })
    meta = profile_table("people", df, SPEC)
    assert meta.columns["id"].sdtype == "id" and meta.columns["name"].sdtype == "text"
    assert evaluable_columns(meta, {"email"}) == ["age", "city"]


def test_pair_metrics_on_known_relations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    real = pd.DataFrame({"x": x, "y": 2 * x + 1, "c": np.where(x > 0, "p", "n"), "d": np.where(x > 0, "u", "v")})
    independent = pd.DataFrame({c: real[c].to_numpy()[rng.permutation(len(real))] for c in real.columns})
    meta = profile_table("t", real, SPEC)
    same = pair_trend_scores(real, real, meta, ["x", "y", "c", "d"])
    assert all(p["score"] == pytest.approx(1.0) for p in same.values())
    scores = pair_trend_scores(real, independent, meta, ["x", "y", "c", "d"])
    assert scores["x|y"]["metric"] == "correlation_similarity"
    assert scores["x|y"]["score"] == pytest.approx(0.5, abs=0.05)  # 1 - |1 - 0| / 2
    assert scores["c|d"]["metric"] == "contingency_similarity"
    assert scores["c|d"]["score"] == pytest.approx(0.5, abs=0.05)  # 1 - TVD of (.5, 0, 0, .5) vs (.25, ...)
    assert scores["c|d"]["association_difference"] > 0.9  # Cramér's V 1 -> 0
    assert scores["x|c"]["metric"] == "contingency_similarity"  # mixed pairs: x cut into 10 bins
    assert scores["x|c"]["score"] < 0.7
    assert scores["x|c"]["association"] == "correlation_ratio" and scores["x|c"]["association_difference"] > 0.7


def test_pair_sampling_is_bounded_and_deterministic(adult, adult_meta):
    columns = list(adult.columns)
    first = pair_trend_scores(adult, adult.iloc[::-1], adult_meta, columns, max_pairs=10, seed=3)
    again = pair_trend_scores(adult, adult.iloc[::-1], adult_meta, columns, max_pairs=10, seed=3)
    assert len(first) == 10
    assert first == again


def test_datetime_and_nullable_columns():
    dates = pd.Series(pd.date_range("2020-01-01", periods=200, freq="D")).astype("datetime64[us]")
    real = pd.DataFrame({
        "when": dates.where(np.arange(200) % 9 != 0),
        "n": pd.array(np.where(np.arange(200) % 5 == 0, None, np.arange(200) % 13), dtype="Int64"),
        "flag": pd.array([True, False, None, True] * 50, dtype="boolean"),
        "label": pd.array(["a", "b", None, "c"] * 50, dtype="string"),
        "empty": pd.Series([np.nan] * 200),
    })
    meta = profile_table("t", real, SPEC)
    synth = real.copy()
    synth["when"] = synth["when"].astype("datetime64[ns]")  # another unit, same instants
    synth["n"] = synth["n"].astype("float64")
    synth["flag"] = synth["flag"].astype(object)
    synth["label"] = synth["label"].astype(object)
    columns = evaluable_columns(meta, set())
    assert set(columns) == {"when", "n", "flag", "label", "empty"}
    scores = column_shape_scores(real, synth, meta, columns)
    assert all(s["score"] == pytest.approx(1.0) for s in scores.values()), scores
    later = synth.assign(when=synth["when"] + pd.Timedelta(days=400))
    assert column_shape_scores(real, later, meta, ["when"])["when"]["score"] == pytest.approx(0.0)
    pairs = pair_trend_scores(real, synth, meta, columns)
    assert len(pairs) == 10 and all(p["score"] == pytest.approx(1.0) for p in pairs.values())


def test_empty_single_row_and_missing_synthetic_tables():
    real = pd.DataFrame({"x": [1.5, 2.5, 3.5, 9.0], "c": ["a", "b", "a", "b"], "k": pd.array([1, 2, None, 4], dtype="Int64")})
    single = pd.DataFrame({"v": [1.25], "w": ["z"]})
    schema = _schema({"t": real, "s": single, "gone": real})
    empty = real.iloc[0:0]
    report = quality_report({"t": real, "s": single, "gone": real}, {"t": empty, "s": single.copy()}, schema, exclude={})
    assert report["tables"]["t"]["column_shapes"] == 0.0
    assert report["tables"]["t"]["pair_trends"] == 0.0
    assert report["tables"]["t"]["row_count_synthetic"] == 0
    assert report["tables"]["gone"]["column_shapes"] == 0.0
    assert report["tables"]["s"]["column_shapes"] == pytest.approx(100.0)
    assert 0 < report["overall_score"] < 100
    json.dumps(report, allow_nan=False)
    render_html(report, title="edge cases", kind="quality")


def test_table_with_only_free_text_gets_a_shape_score():
    """Free text is scored by its shape (lengths, character classes, words), not skipped; it has no pairs."""
    df = pd.DataFrame({"id": range(40), "bio": [f"a long free text number {i} about someone" for i in range(40)]})
    schema = _schema({"t": df})
    report = quality_report({"t": df}, {"t": df}, schema, exclude={})
    assert report["tables"]["t"]["columns"]["bio"]["metric"] == "string_shape"
    assert report["tables"]["t"]["column_shapes"] == pytest.approx(100.0)
    assert report["tables"]["t"]["pair_trends"] is None
    assert "t" in summary_markdown(report, "quality")
    skipped = quality_report({"t": df}, {"t": df}, schema, exclude={"t": {"bio"}})
    assert skipped["tables"]["t"]["skipped"] == "no evaluable columns" and skipped["overall_score"] is None


# ---------------------------------------------------------------- cardinality


def _relational(counts: list[int], offset: int = 0) -> dict[str, pd.DataFrame]:
    parent = pd.DataFrame({"pid": np.arange(len(counts)) + offset, "size": np.arange(len(counts)) % 3})
    child_parent = np.repeat(parent["pid"].to_numpy(), counts)
    child = pd.DataFrame({"cid": np.arange(len(child_parent)) + 10 * offset, "pid": child_parent,
                          "amount": np.arange(len(child_parent)) % 11 * 1.5})
    return {"parent": parent, "child": child}


def test_cardinality_identical_structure_scores_one():
    spec = parse_spec({"name": "t", "tables": {"parent": {"primary_key": "pid"}, "child": {"primary_key": "cid"}},
                       "foreign_keys": [{"child": "child.pid", "parent": "parent.pid"}]})
    counts = [0, 1, 2, 3, 5, 0, 1, 8] * 5
    real = _relational(counts)
    schema = analyse(spec, real)
    synth = _relational(list(reversed(counts)), offset=1000)  # other ids, same children-per-parent distribution
    scores = cardinality_scores(real, synth, schema)
    entry = scores["child.pid -> parent.pid"]
    assert entry["score"] == pytest.approx(1.0)
    assert entry["real"]["mean_children"] == pytest.approx(entry["synthetic"]["mean_children"])
    assert entry["real"]["max_children"] == entry["synthetic"]["max_children"] == 8
    assert entry["real"]["share_childless"] == pytest.approx(0.25)
    assert entry["synthetic"]["orphan_rate"] == 0.0
    assert entry["child_weighted_score"] == pytest.approx(1.0)

    hoarded = _relational([sum(counts)] + [0] * (len(counts) - 1))
    assert cardinality_scores(real, hoarded, schema)["child.pid -> parent.pid"]["score"] < 0.5
    # mostly childless parents: per parent the hoarding barely shows, per child it does
    sparse = _relational([0] * 95 + [2, 3, 4, 2, 3])
    sparse_hoarded = _relational([0] * 99 + [14])
    scores = cardinality_scores(sparse, sparse_hoarded, analyse(spec, sparse))["child.pid -> parent.pid"]
    assert scores["score"] > 0.9
    assert scores["child_weighted_score"] == pytest.approx(0.0)

    report = quality_report(real, synth, schema, exclude={})
    assert report["cardinality"] == pytest.approx(100.0)
    assert "pid" not in report["tables"]["child"]["columns"]  # keys are not compared as values
    empty_children = {"parent": synth["parent"], "child": synth["child"].iloc[0:0]}
    assert cardinality_scores(real, empty_children, schema)["child.pid -> parent.pid"]["score"] < 0.5
    assert cardinality_scores(real, {}, schema)["child.pid -> parent.pid"]["score"] == 0.0


# ---------------------------------------------------------------- privacy


def test_exact_copies_counts_unique_records():
    train = pd.DataFrame({
        "a": pd.array([1, 1, 2, 3, None, 4], dtype="Int64"),
        "b": pd.array(["x", "x", "y", "z", "w", None], dtype="string"),
    })
    # rows 0/1 are the same (common) record; rows 2..5 are unique, two of them with nulls
    synth = pd.DataFrame({
        "a": [1.0, 2.0, 2.0, np.nan, 4.0, 7.0, 3.0],
        "b": ["x", "y", "y", "w", None, "x", "q"],
    })
    result = exact_copies(train, synth, ["a", "b"])
    assert result["synthetic_rows"] == 7
    assert result["copies"] == 5  # (1,x) (2,y) (2,y) (null,w) (4,null)
    assert result["unique_record_copies"] == 4  # all but the common (1,x)
    assert result["unique_records_copied"] == 3
    assert result["copy_rate"] == pytest.approx(5 / 7)
    holdout = pd.DataFrame({"a": pd.array([2, 9], dtype="Int64"), "b": pd.array(["y", "y"], dtype="string")})
    with_baseline = exact_copies(train, synth, ["a", "b"], holdout=holdout)
    assert with_baseline["holdout_baseline_rate"] == pytest.approx(0.5)
    assert exact_copies(train, synth, ["a"])["copies"] == 6  # only 7 is new on `a` alone
    assert exact_copies(train, synth.iloc[0:0], ["a", "b"])["copies"] == 0
    assert "skipped" in exact_copies(train, synth, [])


def _split(adult: pd.DataFrame):
    return adult.iloc[:5000], adult.iloc[5000:10000], adult.iloc[10000:14000]


def test_dcr_fresh_sample_is_near_half(adult, adult_meta):
    train, holdout, fresh = _split(adult)
    result = distance_to_closest_record(train, holdout, fresh, adult_meta, list(adult.columns))
    assert 0.44 < result["share_closer_to_train"] < 0.56
    assert result["dcr_synthetic_median"] == pytest.approx(result["dcr_holdout_median"], rel=0.2)
    assert result["rows_used"] == {"train": 5000, "holdout": 5000, "synthetic": 2000}


def test_dcr_copies_of_train_are_near_one(adult, adult_meta):
    train, holdout, _ = _split(adult)
    copies = train.sample(n=3000, random_state=2)
    result = distance_to_closest_record(train, holdout, copies, adult_meta, list(adult.columns))
    assert result["share_closer_to_train"] > 0.97
    assert result["dcr_synthetic_median"] == 0.0
    assert result["dcr_holdout_median"] > 0


def test_dcr_skips_when_it_cannot_measure(adult, adult_meta):
    train, holdout, fresh = _split(adult)
    assert "skipped" in distance_to_closest_record(train, holdout.iloc[:19], fresh, adult_meta, list(adult.columns))
    assert "skipped" in distance_to_closest_record(train, holdout, fresh, adult_meta, [])
    assert "skipped" in distance_to_closest_record(train, holdout, fresh.iloc[0:0], adult_meta, list(adult.columns))


@pytest.mark.slow
def test_privacy_report_gates(adult, adult_meta):
    train, holdout, fresh = _split(adult)
    schema = _adult_schema(adult_meta)
    copied = privacy_report({"adult": train}, {"adult": holdout}, {"adult": train.sample(n=2000, random_state=3)},
                            schema, exclude={}, thresholds=ThresholdSpec())
    assert copied["unique_record_copies"] > 1900
    assert copied["passed"] == {"exact_copies_max": False, "dcr_share_max": False, "mia_auc_max": False}
    assert copied["all_passed"] is False

    report = privacy_report({"adult": train}, {"adult": holdout}, {"adult": fresh}, schema, exclude={},
                            thresholds=ThresholdSpec(exact_copies_max=100))
    assert report["passed"] == {"exact_copies_max": True, "dcr_share_max": True, "mia_auc_max": True}
    table = report["tables"]["adult"]
    assert table["exact_copies"]["holdout_baseline_rate"] is not None
    json.dumps(report, allow_nan=False)

    assert report["unique_record_copies_baseline"] == pytest.approx(
        table["exact_copies"]["holdout_unique_record_rate"] * len(fresh))

    no_holdout = privacy_report({"adult": train}, {}, {"adult": fresh}, schema, exclude={"adult": set(adult.columns[2:])},
                                thresholds=ThresholdSpec())
    assert no_holdout["tables"]["adult"]["columns_compared"] == 2
    assert "dcr_share_max" in no_holdout["skipped_gates"]
    assert "exact_copies_max" in no_holdout["passed"]

    # one column: repeating a value is not copying a record, so it stays out of the gate
    one_column = privacy_report({"adult": train}, {"adult": holdout}, {"adult": train}, schema,
                                exclude={"adult": set(adult.columns[1:])}, thresholds=ThresholdSpec())
    assert one_column["tables"]["adult"]["in_copy_gate"] is False
    assert one_column["unique_record_copies"] == 0
    assert "exact_copies_max" in one_column["skipped_gates"]


def test_privacy_on_awkward_tables():
    n = 120
    dates = pd.Series(pd.date_range("2021-03-01", periods=n, freq="h")).astype("datetime64[us]")
    real = pd.DataFrame({
        "when": dates.where(np.arange(n) % 7 != 0),
        "n": pd.array(np.where(np.arange(n) % 5 == 0, None, np.arange(n) % 17), dtype="Int64"),
        "flag": pd.array([True, None, False] * (n // 3), dtype="boolean"),
        "label": pd.array(["a", None, "b", "c"] * (n // 4), dtype="string"),
        "empty": pd.Series([np.nan] * n),
    })
    single = pd.DataFrame({"v": [1.25], "w": ["z"]})
    schema = _schema({"t": real, "one": single})
    train, holdout = real.iloc[:80], real.iloc[80:]
    synth = real.iloc[::-1].astype({"when": "datetime64[ns]", "n": "float64", "label": object}).reset_index(drop=True)
    report = privacy_report({"t": train, "one": single}, {"t": holdout, "one": single.iloc[0:0]},
                            {"t": synth, "one": single.iloc[0:0]}, schema, exclude={}, thresholds=ThresholdSpec())
    t = report["tables"]["t"]
    assert t["columns_compared"] == 5
    assert t["exact_copies"]["copies"] == 80  # every training row is in synth; dtypes differ, values do not
    assert t["dcr"]["rows_used"]["holdout"] == 40
    # synth copies holdout rows as much as train rows: no preference for train, so the (rescaled) share is neutral
    assert t["dcr"]["share_closer_to_train"] == pytest.approx(0.5, abs=0.05)
    assert t["dcr"]["share_synthetic_at_zero_distance"] == pytest.approx(80 / 120)
    one = report["tables"]["one"]
    assert one["exact_copies"]["synthetic_rows"] == 0 and "skipped" in one["dcr"]
    json.dumps(report, allow_nan=False)
    assert "| one |" in summary_markdown(report, "privacy")
    render_html(report, title="edge cases", kind="privacy")


# ---------------------------------------------------------------- reports


def _strip_images(html: str) -> str:
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", html)


@pytest.mark.slow
def test_html_reports_carry_no_real_values(adult, adult_meta):
    train, holdout, fresh = _split(adult)
    schema = _adult_schema(adult_meta)
    quality = quality_report({"adult": train}, {"adult": fresh}, schema, exclude={})
    privacy = privacy_report({"adult": train}, {"adult": holdout}, {"adult": fresh}, schema, exclude={},
                             thresholds=ThresholdSpec())
    categories = set()
    for column, meta in adult_meta.columns.items():
        if meta.sdtype == "categorical":
            categories.update(str(v) for v in adult[column].dropna().unique() if len(str(v)) >= 4)
    assert {"Bachelors", "Married-civ-spouse", "United-States"} <= categories
    for kind, report in (("quality", quality), ("privacy", privacy)):
        html = render_html(report, title=f"adult {kind}", kind=kind)
        assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
        assert "<style>" in html and "<link" not in html and "<script" not in html  # self-contained
        text = _strip_images(html)
        leaked = sorted(v for v in categories if v in text)
        assert not leaked, leaked
        summary = summary_markdown(report, kind)
        assert "| adult |" in summary
        assert not [v for v in categories if v in summary]
        for value in categories:
            assert value not in json.dumps(report)
    assert "ks_complement" in render_html(quality, title="q", kind="quality", charts=False)
    assert "Unique-record copies" in render_html(privacy, title="p", kind="privacy_report")  # asset names work too


def test_unknown_report_kind_is_an_error():
    with pytest.raises(ValueError):
        summary_markdown({}, "utility")
    with pytest.raises(ValueError):
        render_html({}, title="t", kind="utility")


def test_evaluation_package_does_not_import_dagster():
    root = Path(__file__).resolve().parents[1] / "genesis_pipelines" / "engine" / "evaluation"
    for path in root.rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+dagster", path.read_text(), re.M), path
