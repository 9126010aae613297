"""Saved generator folders, for every generator kind: one format check (BaseGenerator) refuses a tampered folder,
another kind's folder, a missing or unreadable weights file, with a ModelError that says what and asks for a
retraining; an intact folder loads back to the same samples."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import profile_table
from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.synthesis.generators import BaseGenerator, create_generator, load_generator
from genesis_pipelines.engine.synthesis.generators.base import _BUILT_IN, MANIFEST, registered_class

BOUNDS = {"n": [0.0, 9.0]}
CATEGORIES = {"group": ["a", "b", "c"], "colour": ["red", "blue"]}
# one batch of the whole table (sample rate 1) and a small DP-autoregressive epsilon: Opacus's noise search then
# takes a fraction of a second instead of seconds; these tests judge the saved folders, not the training
NEURAL = {"epochs": 1, "batch_size": 600, "threads": 1, "progress": False}
DP = {"epsilon": 5.0, "bounds": BOUNDS, "categories": CATEGORIES}
SETTINGS = {
    "gaussian_copula": {}, "dp_gaussian_copula": DP, "dp_marginals": DP,
    "autoregressive": {"max_steps": 5, "threads": 1},
    "dp_autoregressive": {"epochs": 1, "threads": 1, "epsilon": 1.0, "bounds": BOUNDS, "categories": CATEGORIES},
    "ctgan": NEURAL, "tvae": NEURAL, "dp_ctgan": {**NEURAL, **DP}, "dp_tvae": {**NEURAL, **DP},
    "auto": {"candidates": ["gaussian_copula"]},
}
KINDS = sorted(_BUILT_IN)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = NEURAL["batch_size"]
    return pd.DataFrame({"group": pd.array(rng.choice(["a", "b", "c"], n), dtype="string"),
                         "colour": pd.array(rng.choice(["red", "blue"], n), dtype="string"),
                         "n": pd.array(rng.integers(0, 10, n), dtype="Int64")})


@pytest.fixture(scope="module")
def saved(table, tmp_path_factory):
    """One folder per generator kind, each holding a fitted model of that kind."""
    meta = profile_table("t", table, parse_spec({"name": "t"}))
    root = tmp_path_factory.mktemp("models")
    folders = {}
    for kind in KINDS:
        if kind.startswith("sdv_"):  # SDV is an optional extra: its pool is set directly, the folder is ours
            generator = registered_class(kind)(pool_rows=len(table))
            generator.pool, generator.dtypes, generator.rows_fitted = table, {c: str(t) for c, t in table.dtypes.items()}, len(table)
        else:
            generator = create_generator(kind, **SETTINGS[kind]).fit(table, meta, seed=0)
        generator.save(root / kind)
        folders[kind] = (root / kind, generator)
    return folders


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def _rewrite(folder, **changes):
    manifest = json.loads((folder / MANIFEST).read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key)
        else:
            manifest[key] = value
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_every_generator_kind_subclasses_the_base():
    for kind in KINDS:
        cls = registered_class(kind)
        assert issubclass(cls, BaseGenerator), kind
        assert kind == "auto" or cls.format.startswith("genesis.") and cls.format.rsplit("/", 1)[1].isdigit(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_an_intact_folder_loads_back(saved, kind):
    folder, generator = saved[kind]
    loaded = load_generator(folder)
    if kind != "auto":  # auto saves as the generator it chose, which load_generator returns
        assert type(loaded) is type(generator)
    pd.testing.assert_frame_equal(loaded.sample(20, seed=4), generator.sample(20, seed=4))


@pytest.mark.parametrize("kind", KINDS)
def test_another_format_version_is_refused(saved, kind, tmp_path):
    folder = _copy(saved[kind][0], tmp_path)
    actual = json.loads((folder / MANIFEST).read_text())["format"]
    _rewrite(folder, format=actual.rsplit("/", 1)[0] + "/999")
    with pytest.raises(ModelError, match=r"has format '.*/999', expected '.*': retrain it"):
        load_generator(folder)


@pytest.mark.parametrize("kind", KINDS)
def test_another_kinds_folder_is_refused(saved, kind):
    """Each class's load refuses every other kind's folder, even one sharing its format (a DP variant's)."""
    cls = registered_class(kind)
    for other in KINDS:
        folder = saved[other][0]
        saved_as = json.loads((folder / MANIFEST).read_text())["method"]
        if saved_as == cls.name or cls is registered_class("auto"):
            continue
        with pytest.raises(ModelError, match=r"(has format .* expected|was saved by generator) .*retrain it"):
            cls.load(folder)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_manifest_is_refused(saved, kind, tmp_path):
    folder = _copy(saved[kind][0], tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    _rewrite(folder, **{key: None for key in manifest if key not in ("format", "method")})  # the state gone
    with pytest.raises(ModelError, match=r"incomplete or corrupt \(\w+\): retrain it"):
        load_generator(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest)[:-20])
    with pytest.raises(ModelError, match="is corrupt: retrain"):
        load_generator(folder)
    (folder / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ModelError, match="is corrupt: retrain"):
        load_generator(folder)


@pytest.mark.parametrize("kind", [k for k in KINDS if registered_class(k).files])
def test_a_missing_or_unreadable_weights_file_is_refused(saved, kind, tmp_path):
    folder = _copy(saved[kind][0], tmp_path)
    weights = folder / registered_class(kind).files[0]
    weights.write_bytes(b"\x00garbage, not a weights file")
    with pytest.raises(ModelError, match=r"incomplete or corrupt \(\w+\): retrain it"):
        load_generator(folder)
    weights.unlink()
    with pytest.raises(ModelError, match="is missing: retrain"):
        load_generator(folder)


def test_the_base_checks_fit_sample_and_save(table, tmp_path):
    meta = profile_table("t", table, parse_spec({"name": "t"}))
    for kind in ("gaussian_copula", "dp_marginals", "autoregressive"):
        generator = create_generator(kind, **SETTINGS[kind])
        with pytest.raises(ModelError, match="has not been fitted"):
            generator.sample(3)
        with pytest.raises(ModelError, match="has not been fitted"):
            generator.save(tmp_path / kind)
        with pytest.raises(GenesisError, match="zero rows"):
            generator.fit(table.iloc[:0], meta)
    assert not any(tmp_path.iterdir()), "an unfitted generator wrote a folder"
