"""Neural generators (CTGAN, TVAE, DP variants) and their data transformer: small data, few epochs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from genesis_pipelines.engine.analysis.schema_inference import profile_table
from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.synthesis.generators import create_generator, load_generator
from genesis_pipelines.engine.synthesis.generators.data_transformer import DataTransformer
from genesis_pipelines.engine.synthesis.generators.neural import WEIGHTS

SPEC = parse_spec({"name": "t"})
FAST = {"epochs": 2, "batch_size": 200, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 1000
    x = np.concatenate([rng.normal(10, 1, n // 2), rng.normal(40, 3, n - n // 2)])
    group = np.where(x > 25, "high", "low")
    price = np.round(np.exp(rng.normal(1, 0.5, n)), 2)
    price[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "id": np.arange(n),
        "x": x,
        "count": pd.array(rng.integers(0, 200, n), dtype="Int64"),
        "group": pd.array(group, dtype="string"),
        "colour": pd.array(rng.choice(["red", "green", "blue", None], n, p=[0.5, 0.3, 0.15, 0.05]), dtype="string"),
        "price": price,
        "when": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "flag": pd.array(rng.random(n) < 0.3, dtype="boolean"),
        "note": pd.array([" ".join(["word"] * int(k)) + str(i) for i, k in enumerate(rng.integers(3, 9, n))], dtype="string"),
    })


@pytest.fixture(scope="module")
def meta(table):
    meta = profile_table("t", table, SPEC)
    meta.columns["id"].sdtype = "id"
    meta.columns["note"].sdtype = "text"
    return meta


def _check_shape(synth: pd.DataFrame, table: pd.DataFrame, n: int) -> None:
    assert list(synth.columns) == [c for c in table.columns if c != "id"]
    assert len(synth) == n
    assert str(synth["count"].dtype) == "Int64"
    assert pd.api.types.is_datetime64_any_dtype(synth["when"])
    assert str(synth["flag"].dtype) == "boolean"
    assert set(synth["group"].dropna()) <= {"high", "low"}
    assert set(synth["colour"].dropna()) <= {"red", "green", "blue"}
    assert synth["x"].min() >= table["x"].min() and synth["x"].max() <= table["x"].max()


def test_transformer_round_trip(table, meta):
    transformer = DataTransformer().fit(table, meta, seed=0)
    matrix = transformer.transform(table, seed=0)
    assert matrix.shape == (len(table), transformer.dim) and matrix.dtype == np.float32
    back = transformer.inverse_transform(matrix, seed=0)
    assert "id" not in back.columns
    for column in ("group", "colour", "flag"):
        pd.testing.assert_series_equal(back[column], table[column], check_names=False)
    assert (back["count"] == table["count"]).mean() > 0.99 and str(back["count"].dtype) == "Int64"
    assert np.allclose(back["x"], table["x"], atol=0.05 * table["x"].std())
    assert back["price"].isna().equals(table["price"].isna())
    assert np.allclose(back["price"].dropna(), back["price"].dropna().round(2))
    assert (back["when"] - table["when"]).abs().max() <= pd.Timedelta(days=3)
    # JSON state reproduces the encoding exactly
    reloaded = DataTransformer.from_dict(json.loads(json.dumps(transformer.to_dict(), sort_keys=True)))
    assert np.array_equal(reloaded.transform(table, seed=0), matrix)


def test_transformer_groups_rare_categories_and_bounds_decoding(meta, table):
    rare = table.assign(colour=pd.array([f"c{i}" if i < 300 else "red" for i in range(len(table))], dtype="string"))
    transformer = DataTransformer().fit(rare, meta, seed=0)
    assert transformer.codecs["colour"]["values"] == ["red"] and len(transformer.codecs["colour"]["tail"]) == 300
    wild = np.random.default_rng(0).normal(0, 5, (200, transformer.dim)).astype("float32")
    out = transformer.inverse_transform(wild, seed=1)
    assert out["x"].min() >= table["x"].min() and out["x"].max() <= table["x"].max()


@pytest.fixture(scope="module")
def fitted(table, meta):
    models = {}
    for method in ("ctgan", "tvae"):
        generator = create_generator(method, **FAST)
        generator.fit(table, meta, seed=0)
        models[method] = generator
    return models


@pytest.mark.parametrize("method", ["ctgan", "tvae"])
def test_fit_and_sample_types(fitted, table, method):
    generator = fitted[method]
    synth = generator.sample(300, seed=1)
    _check_shape(synth, table, 300)
    info = generator.describe()
    assert info["epochs_run"] >= 1 and info["parameters"] > 0 and info["device"] == "cpu"
    json.dumps(info)


@pytest.mark.parametrize("method", ["ctgan", "tvae"])
def test_save_load_round_trip(fitted, tmp_path, method):
    generator = fitted[method]
    generator.save(tmp_path / method)
    assert not list(tmp_path.glob("**/*.pkl")) and not list(tmp_path.glob("**/*.pt"))
    load_file(str(tmp_path / method / WEIGHTS))  # plain safetensors, no pickle
    loaded = load_generator(tmp_path / method)
    pd.testing.assert_frame_equal(loaded.sample(100, seed=5), generator.sample(100, seed=5))
    assert not generator.sample(100, seed=5).equals(generator.sample(100, seed=6))


@pytest.mark.parametrize("method", ["ctgan", "tvae"])
def test_conditional_sampling(fitted, method):
    generator = fitted[method]
    synth = generator.sample(200, conditions={"group": "high"}, seed=2)
    assert len(synth) == 200 and (synth["group"] == "high").all()
    numeric = generator.sample(20, conditions={"x": 12.0, "colour": "red"}, seed=2)
    assert (numeric["x"] == 12.0).all() and (numeric["colour"] == "red").all()
    frame = pd.DataFrame({"group": ["high", "low", "high"]})
    per_row = generator.sample(3, conditions=frame, seed=3)
    assert per_row["group"].tolist() == ["high", "low", "high"]


@pytest.mark.parametrize("method", ["ctgan", "tvae"])
def test_impossible_condition(fitted, method):
    generator = fitted[method]
    with pytest.raises(GenesisError, match="'group'") as err:
        generator.sample(10, conditions={"group": "nonexistent"})
    assert "nonexistent" not in str(err.value)
    with pytest.raises(GenesisError, match="'x'"):
        generator.sample(10, conditions={"x": 1e9})
    with pytest.raises(GenesisError, match="'note'"):
        generator.sample(10, conditions={"note": "word"})


def test_training_is_reproducible(table, meta):
    runs = []
    for _ in range(2):
        generator = create_generator("tvae", **{**FAST, "epochs": 1})
        generator.fit(table, meta, seed=4)
        runs.append(generator.sample(50, seed=0))
    pd.testing.assert_frame_equal(runs[0], runs[1])


PUBLIC = {"bounds": {"x": [0, 60], "count": [0, 200], "price": [0, 20], "when": ["2020-01-01", "2021-01-01"]},
          "categories": {"group": ["high", "low"], "colour": ["red", "green", "blue"]}}


@pytest.mark.parametrize("method", [pytest.param("dp_tvae", marks=pytest.mark.slow), "dp_ctgan"])
def test_dp_generators_spend_at_most_the_target(table, meta, tmp_path, method):
    generator = create_generator(method, epsilon=2.0, epochs=1, batch_size=100, progress=False, **PUBLIC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(table, meta, seed=0)
    info = generator.describe()
    assert 0 < info["epsilon_spent"] <= 2.0 and info["epsilon_preprocessing"] == 0.0
    assert info["delta_spent"] <= 1 / (10 * len(table)) + 1e-12
    assert "differential privacy" in info["dp_guarantee"]
    synth = generator.sample(200, seed=1)
    assert set(synth["colour"].dropna()) <= {"red", "green", "blue"}
    assert synth["x"].min() >= 0 and synth["x"].max() <= 60
    generator.save(tmp_path / method)
    assert load_generator(tmp_path / method).describe()["epsilon_spent"] == info["epsilon_spent"]


@pytest.mark.slow
def test_dp_estimates_missing_bounds_with_a_budget_share(table, meta):
    # 1,000 rows at epsilon 0.025 per column cannot pay for private bounds: a clear error, not exploded bounds
    too_small = create_generator("dp_tvae", epsilon=1.0, epochs=1, batch_size=100, progress=False,
                                 categories=PUBLIC["categories"])
    with pytest.raises(GenesisError, match="column '(x|count|price|when)'.*declare"):
        too_small.fit(table, meta, seed=0)
    generator = create_generator("dp_tvae", epsilon=8.0, epochs=1, batch_size=100, progress=False,
                                 categories=PUBLIC["categories"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.fit(table, meta, seed=0)
    info = generator.describe()
    assert set(info["dp_estimated_columns"]) == {"x", "count", "price", "when"}
    assert info["epsilon_preprocessing"] == pytest.approx(0.8) and info["epsilon_spent"] <= 8.0


def test_bad_settings_name_the_column(table, meta):
    generator = create_generator("dp_tvae", epochs=1, bounds={"nope": [0, 1]}, progress=False)
    with pytest.raises(GenesisError, match="'nope'"):
        generator.fit(table, meta)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_loads_on_cpu(table, meta, tmp_path):
    for method in ("ctgan", "tvae"):
        generator = create_generator(method, **FAST)
        generator.fit(table, meta, device="cuda", seed=0)
        assert generator.describe()["device"].startswith("cuda")
        generator.save(tmp_path / method)
        loaded = type(generator).load(tmp_path / method, device="cpu")
        _check_shape(loaded.sample(100, seed=1), table, 100)


def _rdp_epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """Opacus' RDP accountant, fed by hand: what `steps` subsampled Gaussian steps cost."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize("method", ["dp_ctgan", "dp_tvae"])
def test_dp_sgd_stops_at_its_step_budget_with_the_stated_epsilon_spent(table, meta, method):
    """A DP-SGD step budget: training takes exactly `steps` Poisson-sampled steps (7, mid-epoch: 10 batches of 100 rows
    per epoch), the noise is calibrated for exactly those steps, the epsilon stated is the RDP accountant's for them
    (recomputed here from the noise multiplier, sample rate and step count), at most the target and within Opacus'
    calibration tolerance of it; the same seed trains the same weights."""
    fits = []
    for _ in range(2):
        generator = create_generator(method, epsilon=2.0, epochs=50, steps=7, batch_size=100, progress=False, **PUBLIC)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            generator.fit(table, meta, seed=3)
        fits.append(generator)
    info = fits[0].describe()
    assert info["steps"] == 7 and fits[0].training["steps_run"] == 7 and fits[0].training["epochs_run"] == 1
    assert sum(step[2] for step in info["rdp_history"]) == 7
    recomputed = _rdp_epsilon(info["rdp_history"][0][0], info["rdp_history"][0][1], 7, info["delta_sgd"])
    assert info["epsilon_sgd"] == pytest.approx(recomputed, rel=1e-12)
    assert 2.0 - 0.02 <= info["epsilon_spent"] <= 2.0  # the budget is spent, not a loose bound of it
    assert "7 steps" in info["dp_guarantee"]
    first, second = (dict(g.net.state_dict()) for g in fits)
    assert all(torch.equal(first[k], second[k]) for k in first)
    pd.testing.assert_frame_equal(fits[0].sample(50, seed=1), fits[1].sample(50, seed=1))
    with pytest.raises(GenesisError, match="steps"):
        create_generator(method, steps=0)


def test_dp_autoregressive_stops_at_its_step_budget_with_the_stated_epsilon_spent(table, meta):
    df = table.drop(columns=["id"])
    settings = {"epsilon": 2.0, "epochs": 50, "steps": 5, "hidden": 16, "batch_size": 100,
                "bounds": PUBLIC["bounds"], "categories": PUBLIC["categories"]}
    models = []
    for _ in range(2):
        generator = create_generator("dp_autoregressive", **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            generator.fit(df, meta, seed=3)
        models.append(generator)
    stats = models[0].stats
    assert stats["steps"] == 5 and sum(step[2] for step in stats["rdp_history"]) == 5
    recomputed = _rdp_epsilon(stats["noise_multiplier"], stats["sample_rate"], 5, stats["dp_delta"])
    assert stats["epsilon_sgd"] == pytest.approx(recomputed, rel=1e-12)
    target_sgd = 2.0 * (1 - 0.1)
    assert target_sgd - 0.02 <= stats["epsilon_sgd"] <= target_sgd
    first, second = (m.model.state_dict() for m in models)
    assert all(torch.equal(first[k], second[k]) for k in first)
