"""Shared fixtures (isolated data dirs, so no test touches ./data or ./.dagster_home) and the test tiers.

Every test that is not marked `slow`, `dagster` or `cli` is marked `unit` here: `./scripts/test.sh --fast` runs
those (`-m unit`), the engine's own tests (about 270-290 CPU seconds of tests, see README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genesis_pipelines_tests.helpers import BUNDLED_SPECS, TrainedDataset, train_dataset


@pytest.fixture
def isolated_data(tmp_path, monkeypatch) -> Path:
    """A private GENESIS_DATA_DIR (warehouse, models, exports, reports) for one test."""
    data = tmp_path / "data"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(data))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    return data


@pytest.fixture(scope="session")
def chinook_trained(tmp_path_factory) -> TrainedDataset:
    """The bundled Chinook trained once per worker: several modules test the same model (read it, never change it;
    copy `model_root` before damaging files)."""
    return train_dataset(BUNDLED_SPECS / "chinook" / "dataset.yaml", tmp_path_factory.mktemp("chinook_model"))


@pytest.fixture(scope="session")
def chinook_synthetic(chinook_trained) -> dict[str, pd.DataFrame]:
    """Chinook's synthetic twin at scale 1, seed 0, generated once per worker (read it, never change it)."""
    from genesis_pipelines.engine.synthesis import relational

    return relational.generate_all(chinook_trained.model, chinook_trained.model_dir, scale=1.0, seed=0)


FRONT_END_MARKS = {"slow", "dagster", "cli"}


def pytest_collection_modifyitems(config, items):
    """The fast tier is what is left once the slow, Dagster and CLI tests are set aside."""
    for item in items:
        if not FRONT_END_MARKS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
