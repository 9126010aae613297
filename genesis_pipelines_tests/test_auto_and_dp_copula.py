"""The DP copula (budget, guarantee text, no rare value released, save/load) and `auto` (choice and reasons)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.synthesis.generators import create_generator, load_generator
from genesis_pipelines.engine.synthesis.generators.auto import AutoGenerator
from genesis_pipelines.engine.synthesis.generators.dp_copula import _gaussian_sigma, _quantile_function
from genesis_pipelines_tests.helpers import people_table


@pytest.fixture(scope="module")
def people():
    return people_table()


def test_dp_copula_spends_no_more_than_the_budget_and_says_what_it_covers(people, tmp_path):
    df, meta = people
    model = create_generator("dp_gaussian_copula", epsilon=1.0, delta=1e-6)
    model.fit(df, meta, seed=0)
    info = model.describe()
    assert info["epsilon_spent"] <= 1.0 + 1e-9 and info["delta_spent"] <= 1e-6
    assert sum(info["budget"].values()) == pytest.approx(info["epsilon_spent"])
    assert "differential privacy" in info["dp_guarantee"] and "Not covered" in info["dp_guarantee"]
    synth = model.sample(2000, seed=1)
    assert "Zanzibar-secret" not in set(synth["city"].dropna())
    assert set(synth["city"].dropna()) <= {"Paris", "Lyon", "Nice"}
    assert synth["age"].dtype == "Int64" and synth["member"].dtype == "boolean"
    assert 0.02 < synth["income"].isna().mean() < 0.2
    assert np.corrcoef(synth.dropna()["age"].astype(float), synth.dropna()["income"])[0, 1] > 0.5  # correlation kept
    model.save(tmp_path)
    again = load_generator(tmp_path)
    assert type(again).__name__ == "DPGaussianCopulaGenerator" and again.describe()["epsilon_spent"] == info["epsilon_spent"]
    pd.testing.assert_frame_equal(again.sample(50, seed=3), model.sample(50, seed=3))
    assert json.loads((tmp_path / "generator.json").read_text())["dp"]["epsilon_target"] == 1.0


def test_public_bounds_and_categories_skip_the_selection_budget(people):
    df, meta = people
    model = create_generator("dp_gaussian_copula", epsilon=2.0,
                             bounds={"age": [18, 80], "income": [-20000, 120000], "hours": [0, 80]},
                             categories={"city": ["Paris", "Lyon", "Nice"]})
    model.fit(df, meta, seed=0)
    info = model.describe()
    assert info["budget"]["selection"] == 0 and info["columns_with_dp_bounds"] == 0
    assert info["delta_spent"] == pytest.approx(0.5e-6)  # only the correlation's Gaussian mechanism spends delta
    synth = model.sample(1000, seed=0)
    assert synth["age"].between(18, 80).all()


def test_dp_copula_rejects_bad_settings(people):
    df, meta = people
    with pytest.raises(SpecError, match="epsilon"):
        create_generator("dp_gaussian_copula", epsilon=0)
    with pytest.raises(SpecError, match="does not have"):
        create_generator("dp_gaussian_copula", bounds={"ghost": [0, 1]}).fit(df, meta)


def test_gaussian_mechanism_and_point_masses():
    assert _gaussian_sigma(1.0, 1.0, 1e-6) > _gaussian_sigma(1.0, 10.0, 1e-6) > 0
    quantiles = _quantile_function(np.array([0.0, 10.0]), np.array([0.5, 0.0]), np.linspace(0, 10, 11), np.full(10, 0.05))
    assert (quantiles[: len(quantiles) // 2 - 1] == 0.0).all() and quantiles[-1] == pytest.approx(10.0)


def test_auto_compares_candidates_and_explains_its_choice(people, tmp_path):
    df, meta = people
    model = create_generator("auto", time_budget_s=20, candidates=["gaussian_copula", "dp_gaussian_copula"],
                             trial_settings={"dp_gaussian_copula": {"epsilon": 0.05}})
    model.fit(df, meta, seed=0)
    info = model.describe()["auto"]
    assert info["chosen_method"] == "gaussian_copula"  # the noisy DP trial cannot beat it
    assert set(info["candidates"]) == {"gaussian_copula", "dp_gaussian_copula"}
    assert 0 <= info["candidates"]["gaussian_copula"]["score"] <= 1
    # at epsilon 0.05 a small table cannot pay for private bounds: the DP trial says so instead of scoring garbage
    dp_trial = info["candidates"]["dp_gaussian_copula"]
    assert ("score" in dp_trial and 0 <= dp_trial["score"] <= 1) or "declare" in dp_trial["error"]
    assert info["trial_rows"] + info["holdout_rows"] == len(df) and "holdout score" in info["reason"]
    assert model.describe()["method"] == "auto"
    model.save(tmp_path)
    assert type(load_generator(tmp_path)).__name__ == "GaussianCopulaGenerator"
    assert AutoGenerator.load(tmp_path).describe()["auto"]["chosen_method"] == "gaussian_copula"
    assert len(model.sample(10, seed=0)) == 10


def test_auto_skips_what_does_not_fit_the_table(people):
    df, meta = people
    small = df.iloc[:150]
    model = create_generator("auto", candidates=["gaussian_copula", "ctgan", "no_such_method"], min_rows_neural=2000)
    model.fit(small, meta, seed=0)
    info = model.describe()["auto"]
    assert info["chosen_method"] == "gaussian_copula" and info["reason"] == "only candidate"
    assert info["not_tried"]["no_such_method"] == "not registered in this installation"
    assert "ctgan" in info["not_tried"]
