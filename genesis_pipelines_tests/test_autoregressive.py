"""The autoregressive generator: types, conditions, reproducibility, persistence, temperature, copies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import profile_table
from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.privacy.record_guard import row_keys
from genesis_pipelines.engine.synthesis.generators import create_generator, load_generator
from genesis_pipelines.engine.synthesis.generators.autoregressive import AutoregressiveGenerator

FAST = {"max_epochs": 60, "hidden": 32, "lr": 1e-2}


def _meta(df: pd.DataFrame, name: str = "t"):
    spec = DatasetSpec.model_validate({"name": "d", "source": {"kind": "csv_folder", "path": "."}, "tables": {name: {}}})
    return profile_table(name, df, spec)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
    age = rng.integers(18, 80, n)
    income = np.round(1000 + age * 50 + (plan == "pro") * 3000 + rng.normal(0, 400, n), 2)
    df = pd.DataFrame({
        "id": np.arange(n),
        "plan": pd.Series(plan, dtype="string"),
        "age": pd.Series(age, dtype="Int64"),
        "income": income,
        "active": pd.Series(rng.random(n) < 0.7, dtype="boolean"),
        "joined": pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")).astype("datetime64[us]"),
    })
    df.loc[rng.random(n) < 0.1, "income"] = np.nan
    df["plan"] = df["plan"].mask(rng.random(n) < 0.05)
    return df


@pytest.fixture(scope="module")
def fitted(table) -> AutoregressiveGenerator:
    generator = create_generator("autoregressive", **FAST)
    generator.fit(table, _meta(table), seed=0)
    return generator


def test_fit_sample_types_nulls_categories_bounds(table, fitted):
    out = fitted.sample(2000, seed=1)
    assert list(out.columns) == ["plan", "age", "income", "active", "joined"]  # the key column is the relational layer's
    assert str(out["age"].dtype) == "Int64" and str(out["active"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(out["joined"]) and (out["joined"].dt.normalize() == out["joined"]).all()
    assert set(out["plan"].dropna()) <= {"basic", "plus", "pro"}
    assert 0.02 < out["income"].isna().mean() < 0.2 and 0.01 < out["plan"].isna().mean() < 0.12
    assert out["age"].min() >= 18 and out["age"].max() <= 79
    assert out["income"].min() >= table["income"].min() and out["income"].max() <= table["income"].max()
    assert np.allclose(out["income"].dropna(), out["income"].dropna().round(2))
    assert abs((out["plan"] == "basic").mean() - (table["plan"] == "basic").mean()) < 0.08
    # a learnt dependency: 'pro' rows earn more
    assert out.loc[out["plan"] == "pro", "income"].mean() > out.loc[out["plan"] == "basic", "income"].mean() + 1000


def test_conditional_sampling_respects_fixed_values(fitted):
    # 'income' is late in the order, so this uses importance resampling; 'active' (few tokens) is early
    pro = fitted.sample(300, conditions={"plan": "pro"}, seed=2)
    assert (pro["plan"] == "pro").all() and len(pro) == 300
    rich = fitted.sample(300, conditions={"income": 6500.0}, seed=3)
    assert (rich["income"] == 6500.0).all()
    assert (rich["plan"] == "pro").mean() > 0.3  # the condition reaches back to earlier columns
    frame = pd.DataFrame({"plan": ["basic", "pro", "plus", "pro"], "active": [True, False, True, True]})
    out = fitted.sample(4, conditions=frame, seed=4)
    assert out["plan"].tolist() == frame["plan"].tolist() and out["active"].tolist() == frame["active"].tolist()


@pytest.mark.parametrize("conditions", [{"plan": "enterprise"}, {"age": 200}, {"nope": 1}, {"active": None}])
def test_impossible_condition_is_a_clear_error(fitted, conditions):
    with pytest.raises(GenesisError, match="condition|cannot condition"):
        fitted.sample(5, conditions=conditions, seed=0)


def test_seeded_reproducibility(table, fitted):
    a, b = fitted.sample(200, seed=7), fitted.sample(200, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(fitted.sample(200, seed=8))
    again = create_generator("autoregressive", **FAST)
    again.fit(table, _meta(table), seed=0)
    pd.testing.assert_frame_equal(again.sample(200, seed=7), a)


def test_save_load_round_trip_without_pickle(tmp_path, fitted):
    fitted.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["autoregressive.safetensors", "generator.json"]
    assert not (tmp_path / "m" / "autoregressive.safetensors").read_bytes().startswith(b"\x80")  # no pickle stream
    loaded = load_generator(tmp_path / "m")
    assert isinstance(loaded, AutoregressiveGenerator)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=5), fitted.sample(300, seed=5))
    pd.testing.assert_frame_equal(loaded.sample(50, conditions={"plan": "plus"}, seed=6),
                                  fitted.sample(50, conditions={"plan": "plus"}, seed=6))
    (tmp_path / "m" / "autoregressive.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        load_generator(tmp_path / "m")


def test_describe_is_aggregate_json(fitted):
    info = fitted.describe()
    json.dumps(info)
    assert info["method"] == "autoregressive" and info["epochs"] >= 1 and info["columns_modelled"] == 5
    assert set(info["column_order"]) == {"plan", "age", "income", "active", "joined"}
    assert "basic" not in json.dumps(info)  # no category labels, no values


def test_temperature_sharpens_the_distribution(fitted):
    def mode_share(temperature: float) -> float:
        fitted.temperature = temperature
        try:
            return float((fitted.sample(2000, seed=9)["plan"] == "basic").mean())
        finally:
            fitted.temperature = 1.0
    assert mode_share(0.3) > mode_share(1.0) + 0.1
    fitted.top_p = 0.5
    try:
        assert (fitted.sample(500, seed=9)["active"] == True).mean() > 0.95  # noqa: E712 - nucleus keeps the mode
    finally:
        fitted.top_p = 1.0


def test_no_exact_copies_of_unique_training_rows():
    rng = np.random.default_rng(1)
    n = 120  # tiny and wide enough that almost every row is unique: the memorisation-prone case
    df = pd.DataFrame({c: pd.Series(rng.choice(list("abcdefgh"), n), dtype="string") for c in ("a", "b", "c")})
    df["d"] = pd.Series(rng.integers(0, 6, n), dtype="Int64")
    meta = _meta(df)
    generator = create_generator("autoregressive", max_epochs=60, hidden=64, dropout=0.0, weight_decay=0.0, patience=1000,
                                 min_count=1, lr=2e-2)
    generator.fit(df, meta, seed=0)
    out = generator.sample(1000, seed=3)
    columns = list(df.columns)
    train_keys = row_keys(df, columns, meta)
    unique = set(train_keys[~train_keys.duplicated(keep=False)])
    assert not set(row_keys(out, columns, meta)) & unique
    unguarded = create_generator("autoregressive", max_epochs=60, hidden=64, dropout=0.0, weight_decay=0.0, patience=1000,
                                 min_count=1, lr=2e-2, guard_copies=False)
    unguarded.fit(df, meta, seed=0)
    assert set(row_keys(unguarded.sample(1000, seed=3), columns, meta)) & unique  # the guard did the work


def test_dp_variant_spends_its_epsilon_and_needs_public_bounds(tmp_path, table):
    df = table.drop(columns=["joined"]).iloc[:300]
    settings = {"epsilon": 2.0, "epochs": 2, "hidden": 16, "bounds": {"age": [18, 80], "income": [0, 10_000]}}
    generator = create_generator("dp_autoregressive", **settings)
    generator.fit(df, _meta(df), seed=0)
    info = generator.describe()
    assert info["method"] == "dp_autoregressive" and info["epsilon_spent"] <= 2.0 + 1e-6
    out = generator.sample(200, seed=1)
    assert out["age"].dropna().between(18, 80).all() and set(out["plan"].dropna()) <= {"basic", "plus", "pro", "other"}
    generator.save(tmp_path / "dp")
    pd.testing.assert_frame_equal(load_generator(tmp_path / "dp").sample(20, seed=2), generator.sample(20, seed=2))
    with pytest.raises(GenesisError, match="bounds"):
        create_generator("dp_autoregressive", epsilon=2.0, epochs=1).fit(df, _meta(df), seed=0)


def test_numeric_condition_between_seen_values_maps_to_the_nearest_token():
    from genesis_pipelines.engine.core.schema import ColumnMeta
    from genesis_pipelines.engine.synthesis.generators._ar_codec import NumericCodec
    codec = NumericCodec.fit(pd.Series([1, 2, 2, 3, 3, 3, 10] * 10), ColumnMeta(name="x", sdtype="integer", dtype="Int64",
                                                                              null_rate=0.0, cardinality=4), 100, 5)
    assert codec.size == 4 and codec.encode(pd.Series([1, 2.4, 2.6, 7])).tolist() == [0, 1, 2, 3]


def test_same_model_on_a_loaded_machine(table, fitted):
    """Training ends on epochs and validation, never on the clock: two processes burning both cores beside the fit
    change nothing. The wall-clock fail-safe, when it does fire, is said in the metadata."""
    import multiprocessing

    burners = [multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) for _ in range(2)]
    for burner in burners:
        burner.start()
    try:
        loaded = create_generator("autoregressive", **FAST)
        loaded.fit(table, _meta(table), seed=0)
    finally:
        for burner in burners:
            burner.terminate()
    pd.testing.assert_frame_equal(loaded.sample(200, seed=7), fitted.sample(200, seed=7))
    assert loaded.describe()["stopped_by_wall_clock"] is False
    with pytest.warns(RuntimeWarning, match="fail-safe"):
        capped = create_generator("autoregressive", **{**FAST, "max_training_seconds": 0.0})
        capped.fit(table, _meta(table), seed=0)
    assert capped.describe()["stopped_by_wall_clock"] is True


def _burn() -> None:
    while True:
        pass
