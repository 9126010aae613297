"""`auto` decides on epochs and rows, never on the clock; its wall-clock fail-safe announces itself."""

from __future__ import annotations

import pytest

from genesis_pipelines.engine.generators import create_generator
from genesis_pipelines_tests.test_auto_and_dp_copula import _table

CANDIDATES = ["gaussian_copula", "dp_gaussian_copula"]


def test_the_choice_and_scores_do_not_depend_on_time():
    df, meta = _table(1500)
    infos = []
    for budget in (1800.0, 10_000.0):
        model = create_generator("auto", time_budget_s=budget, candidates=CANDIDATES)
        model.fit(df, meta, seed=3)
        infos.append(model.describe()["auto"])
    assert infos[0]["chosen_method"] == infos[1]["chosen_method"]
    assert {m: r["score"] for m, r in infos[0]["candidates"].items()} == {m: r["score"] for m, r in infos[1]["candidates"].items()}
    assert infos[0]["stopped_by_wall_clock"] is False


def test_the_fail_safe_says_it_fired():
    df, meta = _table(1500)
    model = create_generator("auto", time_budget_s=0.0, candidates=CANDIDATES)
    with pytest.warns(RuntimeWarning, match="fail-safe"):
        model.fit(df, meta, seed=3)
    info = model.describe()["auto"]
    assert info["stopped_by_wall_clock"] is True
    assert "fail-safe" in info["candidates"]["dp_gaussian_copula"]["skipped"]
