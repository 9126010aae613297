"""The DCR share: 0.5 for a generator that never saw the split (also on discrete columns full of ties), and how much
of a reading chance alone explains."""

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.core.schema import ColumnMeta, DatasetSchema, TableMeta
from genesis_pipelines.engine.core.spec import ThresholdSpec
from genesis_pipelines.engine.evaluation.privacy.audit import privacy_report
from genesis_pipelines.engine.evaluation.privacy.distance import distance_to_closest_record


def _meta(sdtypes: dict[str, str]) -> TableMeta:
    return TableMeta(name="t", row_count=0, columns={
        c: ColumnMeta(name=c, sdtype=s, dtype="object", null_rate=0.0, cardinality=0) for c, s in sdtypes.items()})


def _draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
    z = rng.normal(size=n)
    return pd.DataFrame({
        "level": np.round(z * 2).astype(int),
        "letter": pd.Series(np.array(list("abcdefghi"))[rng.integers(0, 9, n) * (rng.random(n) < 0.5)], dtype="string"),
        "flag": pd.Series(np.where(z > 1, "x", "y"), dtype="string"),
    })


@pytest.mark.parametrize("columns", [["level", "letter", "flag"], ["letter", "flag"]])
def test_fresh_rows_from_the_population_read_one_half_despite_ties(columns):
    meta = _meta({"level": "integer", "letter": "categorical", "flag": "categorical"})
    rng = np.random.default_rng(7)
    shares = []
    for _ in range(6):
        real = _draw(rng, 1500)
        train, holdout = real.iloc[:1200], real.iloc[1200:]
        result = distance_to_closest_record(train, holdout, _draw(rng, 1500), meta, columns)
        shares.append(result["share_closer_to_train"])
    # counting ties as the neutral share read ~0.56 here
    assert abs(float(np.mean(shares)) - 0.5) < 0.03, shares


def test_a_copier_of_discrete_rows_still_reads_near_one():
    meta = _meta({"level": "integer", "letter": "categorical", "flag": "categorical"})
    rng = np.random.default_rng(3)
    real = _draw(rng, 1500)
    train, holdout = real.iloc[:1200], real.iloc[1200:]
    copied = train.sample(1500, replace=True, random_state=0).reset_index(drop=True)
    share = distance_to_closest_record(train, holdout, copied, meta, ["level", "letter", "flag"])["share_closer_to_train"]
    # every copied row ties with the real rows of its combination; the train side holds the copied one
    assert share > 0.5



def _line(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Three numbers on a line: real rows have no spread off it."""
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": x + 0.02 * rng.normal(size=n), "z": -x + 0.02 * rng.normal(size=n)})


def test_chance_spread_grows_when_synthetic_rows_crowd_onto_few_real_rows():
    meta = _meta({"x": "numeric", "y": "numeric", "z": "numeric"})
    rng = np.random.default_rng(0)
    real = _line(rng, 600)
    train, holdout = real.iloc[:480], real.iloc[480:]
    on_line = distance_to_closest_record(train, holdout, _line(rng, 600), meta, list("xyz"))
    off_line = distance_to_closest_record(train, holdout, pd.DataFrame({c: rng.normal(size=600) for c in "xyz"}),
                                          meta, list("xyz"))
    # rows off the line all sit nearest to a few real rows at its ends: their vote is a few coin flips
    assert off_line["distinct_nearest_real_rows"] < 0.5 * on_line["distinct_nearest_real_rows"]
    assert off_line["share_chance_sd"] > 0.1 > on_line["share_chance_sd"]


def test_dcr_share_too_noisy_to_judge_is_reported_not_gated():
    meta = _meta({"x": "numeric", "y": "numeric", "z": "numeric"})
    schema = DatasetSchema(dataset="t", tables={"t": meta}, foreign_keys=[], generation_order=["t"])
    rng = np.random.default_rng(1)
    real = _line(rng, 600)
    off_line = pd.DataFrame({c: rng.normal(size=600) for c in "xyz"})
    report = privacy_report({"t": real.iloc[:480]}, {"t": real.iloc[480:]}, {"t": off_line}, schema, exclude={},
                            thresholds=ThresholdSpec())
    dcr = report["tables"]["t"]["dcr"]
    assert dcr["gated"] is False and dcr["share_chance_sd"] > 0.05
    assert "dcr_share_max" not in report["gates"]
    assert "by chance alone" in report["skipped_gates"]["dcr_share_max"]
