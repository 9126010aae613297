"""Gaussian copula and column transforms: marginals, nulls, bounds, correlations, conditions, persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import profile_table
from genesis_pipelines.engine.core.errors import GenesisError, ModelError, SpecError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.synthesis.generators import create_generator, load_generator
from genesis_pipelines.engine.synthesis.generators.base import sample_columns

SPEC = parse_spec({"name": "t"})


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(50, 10, n)
    group = np.where(x + rng.normal(0, 5, n) > 50, "high", "low")
    price = np.round(np.exp(rng.normal(1, 0.5, n)), 2)
    price[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": x,
        "y": 2 * x + rng.normal(0, 5, n),
        "count": pd.array(rng.poisson(3, n), dtype="Int64"),
        "group": pd.array(group, dtype="string"),
        "price": price,
        "when": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "flag": pd.array(rng.random(n) < 0.3, dtype="boolean"),
    })


def _fit(df: pd.DataFrame, method: str = "gaussian_copula"):
    meta = profile_table("t", df, SPEC)
    generator = create_generator(method)
    generator.fit(df, meta, seed=0)
    return generator, meta


def test_marginals_nulls_and_types_survive(mixed):
    generator, _ = _fit(mixed)
    synth = generator.sample(4000, seed=1)
    assert list(synth.columns) == list(mixed.columns)
    assert abs(synth["x"].mean() - mixed["x"].mean()) < 1.0
    assert abs(synth["price"].isna().mean() - mixed["price"].isna().mean()) < 0.03
    # bounds hold and integers stay integers
    assert synth["x"].min() >= mixed["x"].min() and synth["x"].max() <= mixed["x"].max()
    assert str(synth["count"].dtype) == "Int64"
    assert set(synth["group"].dropna()) <= {"high", "low"}
    assert pd.api.types.is_datetime64_any_dtype(synth["when"])
    assert (synth["when"].dt.normalize() == synth["when"]).all(), "date-only column gained a time of day"
    # prices keep their two decimals
    assert np.allclose(synth["price"].dropna(), synth["price"].dropna().round(2))


def test_correlations_are_kept(mixed):
    generator, _ = _fit(mixed)
    synth = generator.sample(4000, seed=2)
    assert synth["x"].corr(synth["y"]) > 0.8
    high_x = synth.loc[synth["group"] == "high", "x"].mean()
    low_x = synth.loc[synth["group"] == "low", "x"].mean()
    assert high_x > low_x + 5


def test_seeded_sampling_is_reproducible(mixed):
    generator, _ = _fit(mixed)
    pd.testing.assert_frame_equal(generator.sample(100, seed=3), generator.sample(100, seed=3))
    assert not generator.sample(100, seed=3).equals(generator.sample(100, seed=4))


def test_conditional_sampling(mixed):
    generator, _ = _fit(mixed)
    synth = generator.sample(500, conditions={"group": "high"}, seed=5)
    assert (synth["group"] == "high").all()
    assert synth["x"].mean() > mixed.loc[mixed["group"] == "high", "x"].mean() - 3
    with pytest.raises(GenesisError, match="impossible condition on column 'group'"):
        generator.sample(5, conditions={"group": "never-seen"})
    with pytest.raises(GenesisError, match="'nope'"):
        generator.sample(5, conditions={"nope": 1})


def test_conditions_per_row(mixed):
    generator, _ = _fit(mixed)
    conditions = pd.DataFrame({"group": ["high", "low", "high"]})
    synth = generator.sample(3, conditions=conditions, seed=1)
    assert synth["group"].tolist() == ["high", "low", "high"]


def test_sample_columns_draws_the_columns_asked_for_as_whole_rows_have_them(mixed):
    generator, _ = _fit(mixed)
    whole = generator.sample(4000, seed=1)
    part = generator.sample_columns(4000, ["y", "x", "price"], seed=1)
    assert list(part.columns) == ["x", "y", "price"]  # the model's column order, nothing else drawn
    assert part.dtypes.equals(whole[["x", "y", "price"]].dtypes)
    assert abs(part["x"].mean() - whole["x"].mean()) < 1.0 and part["x"].corr(part["y"]) > 0.8
    assert abs(part["price"].isna().mean() - whole["price"].isna().mean()) < 0.03
    # given per-row conditions, the columns asked for follow them; the conditioned column is not returned
    given = pd.DataFrame({"x": whole["x"].to_numpy()})
    drawn = generator.sample_columns(4000, ["y"], conditions=given, seed=2)
    assert list(drawn.columns) == ["y"] and np.corrcoef(given["x"], drawn["y"].to_numpy())[0, 1] > 0.8
    # conditioned columns keep the caller's values in the model's dtype
    with_x = generator.sample(4000, conditions=given, seed=2)
    assert (with_x["x"].to_numpy() == given["x"].to_numpy()).all() and with_x["x"].dtype == whole["x"].dtype

    class Plain:  # a generator without sample_columns: whole rows drawn, then the columns selected
        def sample(self, n, *, conditions=None, seed=None):
            return generator.sample(n, conditions=conditions, seed=seed)

    pd.testing.assert_frame_equal(sample_columns(Plain(), 50, ["y", "x", "nope"], seed=3),
                                  generator.sample(50, seed=3)[["y", "x"]])


def test_save_load_roundtrip_is_json_only(mixed, tmp_path):
    generator, _ = _fit(mixed)
    generator.save(tmp_path / "g")
    files = list((tmp_path / "g").iterdir())
    assert [f.name for f in files] == ["generator.json"]
    json.loads(files[0].read_text())  # plain JSON, nothing executable
    loaded = load_generator(tmp_path / "g")
    pd.testing.assert_frame_equal(loaded.sample(50, seed=9), generator.sample(50, seed=9))
    assert loaded.describe() == generator.describe()


def test_copula_matrices_saved_exactly_and_old_list_form_still_loads(mixed, tmp_path):
    """Correlation matrices go to the manifest as base64 float64 (exact); a model saved as nested lists loads."""
    generator, _ = _fit(mixed)
    generator.save(tmp_path / "g")
    state = json.loads((tmp_path / "g" / "generator.json").read_text())
    assert set(state["corr"]) == {"dtype", "shape", "base64"}
    assert np.array_equal(load_generator(tmp_path / "g").corr, generator.corr)
    state["corr"] = generator.corr.tolist()
    for subs in state["per_class"].values():
        for sub in subs.values():
            sub["corr"] = _unpacked(sub["corr"]).tolist()
    (tmp_path / "g" / "generator.json").write_text(json.dumps(state))
    old = load_generator(tmp_path / "g")
    assert np.array_equal(old.corr, generator.corr)
    pd.testing.assert_frame_equal(old.sample(50, seed=9), generator.sample(50, seed=9))


def _unpacked(stored: dict) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(stored["base64"]), dtype="<f8").reshape(stored["shape"])


def test_corrupt_and_missing_models_are_clear(tmp_path):
    with pytest.raises(ModelError, match="missing"):
        load_generator(tmp_path / "absent")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "generator.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        load_generator(tmp_path / "bad")
    (tmp_path / "bad" / "generator.json").write_text(json.dumps({"method": "gaussian_copula", "format": "other/9"}))
    with pytest.raises(ModelError, match="retrain"):
        load_generator(tmp_path / "bad")


def test_unknown_method_and_bad_settings():
    with pytest.raises(SpecError, match="unknown"):
        create_generator("no_such_method")
    with pytest.raises(SpecError, match="bad settings"):
        create_generator("gaussian_copula", nonsense=1)


def test_free_text_is_never_copied():
    rng = np.random.default_rng(0)
    titles = [f"Secret title number {i} of the catalogue" for i in range(300)]
    df = pd.DataFrame({"title": pd.array(titles, dtype="string"), "n": rng.integers(0, 10, 300)})
    generator, meta = _fit(df)
    assert meta.columns["title"].sdtype == "text"
    synth = generator.sample(300, seed=0)
    assert not set(synth["title"]) & set(titles)
    assert not synth["title"].str.contains("Secret").any()


def test_describe_is_aggregate_only(mixed):
    generator, _ = _fit(mixed)
    described = json.dumps(generator.describe())
    assert "high" not in described and "low" not in described


def test_many_categories_are_pooled():
    values = [f"c{i}" for i in range(1500)] * 2
    df = pd.DataFrame({"cat": pd.array(values, dtype="string"), "v": np.arange(3000)})
    meta = profile_table("t", df, SPEC)
    meta.columns["cat"].sdtype = "categorical"
    generator = create_generator("gaussian_copula")
    generator.fit(df, meta)
    synth = generator.sample(2000, seed=0)
    assert synth["cat"].notna().all() and synth["cat"].isin(set(values)).all()
    assert "__tail__" not in set(synth["cat"])


def test_large_table_samples_in_chunks():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.integers(0, 100, 5000)})
    generator, _ = _fit(df)
    synth = generator.sample(450_000, seed=0)
    assert len(synth) == 450_000 and synth["a"].notna().all()
