"""`auto` decides on epochs and rows, never on the clock; its wall-clock fail-safe announces itself."""

from __future__ import annotations

import pytest

from genesis_pipelines.engine.synthesis.generators import create_generator
from genesis_pipelines_tests.helpers import corpus_path, people_table

CANDIDATES = ["gaussian_copula", "dp_gaussian_copula"]


def test_the_choice_and_scores_do_not_depend_on_time():
    df, meta = people_table(1500)
    infos = []
    for budget in (1800.0, 10_000.0):
        model = create_generator("auto", time_budget_s=budget, candidates=CANDIDATES)
        model.fit(df, meta, seed=3)
        infos.append(model.describe()["auto"])
    assert infos[0]["chosen_method"] == infos[1]["chosen_method"]
    assert {m: r["score"] for m, r in infos[0]["candidates"].items()} == {m: r["score"] for m, r in infos[1]["candidates"].items()}
    assert infos[0]["stopped_by_wall_clock"] is False


def test_the_fail_safe_says_it_fired():
    df, meta = people_table(1500)
    model = create_generator("auto", time_budget_s=0.0, candidates=CANDIDATES)
    with pytest.warns(RuntimeWarning, match="fail-safe"):
        model.fit(df, meta, seed=3)
    info = model.describe()["auto"]
    assert info["stopped_by_wall_clock"] is True
    assert "fail-safe" in info["candidates"]["dp_gaussian_copula"]["skipped"]


def test_neural_trials_are_a_step_budget_whatever_the_rows():
    from genesis_pipelines.engine.synthesis.generators.auto import neural_trial_settings

    small, large = neural_trial_settings(3_750), neural_trial_settings(15_000)
    assert small["epochs"] == 30 and large["epochs"] == 10  # 8 x 30 and 30 x 10 optimiser steps
    assert neural_trial_settings(10_000_000)["epochs"] == 3  # a floor of whole passes, never the clock


@pytest.mark.slow
def test_auto_picks_the_autoregressive_model_on_adult():
    """On Adult the autoregressive model scores higher than the copula on the whole table; the trial must see it."""
    import os
    from pathlib import Path

    import pandas as pd

    corpus = Path(os.environ.get("GENESIS_CORPUS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    path = corpus / "adult" / "adult.csv"
    if not path.is_file():
        pytest.skip(f"corpus table {path} not found (put the corpus at ../shared/datasets)")
    from genesis_pipelines.engine.analysis.schema_inference import profile_table
    from genesis_pipelines.engine.core.spec import DatasetSpec
    path = corpus_path("adult", "adult.csv")

    df = pd.read_csv(path)
    spec = DatasetSpec.model_validate({"name": "d", "source": {"kind": "csv_folder", "path": "."}, "tables": {"adult": {}}})
    meta = profile_table("adult", df, spec)
    model = create_generator("auto", candidates=["gaussian_copula", "autoregressive"])
    model.fit(df, meta, seed=0)
    info = model.describe()["auto"]
    scores = {m: r["score"] for m, r in info["candidates"].items()}
    assert scores["autoregressive"] > scores["gaussian_copula"] + 0.01
    assert info["chosen_method"] == "autoregressive" and info["trial_rows"] == 15_000
