"""The stored train/holdout split: which model versions it serves, and a half-rewritten one is not trusted."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from genesis_pipelines.engine.core.errors import ModelError
from genesis_pipelines.engine.synthesis.splits import read_splits, stored_split_version, write_splits


def _model(version: str, fingerprint: str = "f1", seed: int = 0):
    return SimpleNamespace(version=version, source_fingerprint=fingerprint,
                           settings={"seed": seed, "holdout_fraction": 0.2, "holdout_by_parent": True})


def _splits(n: int) -> dict:
    rows = pd.DataFrame({"id": range(n), "x": [float(i) for i in range(n)]})
    return {"t": (rows.iloc[: n - 2], rows.iloc[n - 2:])}


def test_split_serves_models_of_the_same_snapshot_and_settings_only():
    con = duckdb.connect()
    write_splits(con, "ds", _model("v2"), _splits(10))
    assert stored_split_version(con, "ds")[0] == "v2"
    train, holdout = read_splits(con, "ds", _model("v1"), ["t"], retrain_hint="retrain")  # same snapshot and seed
    assert len(train["t"]) == 8 and len(holdout["t"]) == 2
    for other in (_model("v0", fingerprint="f0"), _model("v0", seed=7)):
        with pytest.raises(ModelError, match=r"model version v0 .* \(model version v2\).*retrain"):
            read_splits(con, "ds", other, ["t"], retrain_hint="retrain")


def test_a_split_rewrite_that_fails_leaves_no_trusted_split():
    con = duckdb.connect()
    write_splits(con, "ds", _model("v1"), _splits(10))

    class Broken(dict):
        def items(self):
            yield "t", _splits(12)["t"]
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_splits(con, "ds", _model("v2", fingerprint="f2"), Broken())
    assert stored_split_version(con, "ds") is None
    with pytest.raises(ModelError, match="no complete train/holdout split"):
        read_splits(con, "ds", _model("v1"), ["t"], retrain_hint="retrain")
