"""A spec reads only inside its dataset folder or an allowed root: `..`, absolute paths and file names that escape
are refused naming the field (issue 13 item 6)."""

from __future__ import annotations

import pytest

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import load_spec


def _spec(folder, source: str, tables: str = "") -> object:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dataset.yaml"
    path.write_text(f"name: shop\nsource: {source}\n{tables}", encoding="utf-8")
    return path


def test_paths_inside_the_dataset_folder_load(tmp_path):
    spec = load_spec(_spec(tmp_path / "shop", "{kind: csv_folder, path: data}"))
    assert spec.source_path == tmp_path / "shop" / "data"


@pytest.mark.parametrize("source", ["{kind: csv_folder, path: ../elsewhere}", "{kind: duckdb, path: /etc/passwd}"])
def test_paths_elsewhere_are_refused(tmp_path, source):
    with pytest.raises(SpecError, match="field 'source.path'.*outside the dataset folder"):
        load_spec(_spec(tmp_path / "shop", source))


def test_an_allowed_root_opens_a_folder_elsewhere(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "db"
    shared.mkdir(parents=True)
    spec = load_spec(_spec(tmp_path / "shop", f"{{kind: csv_folder, path: {shared}, allowed_roots: [{tmp_path / 'shared'}]}}"))
    assert spec.source_path == shared
    monkeypatch.setenv("GENESIS_SOURCE_ROOTS", str(tmp_path / "shared"))
    assert load_spec(_spec(tmp_path / "other", f"{{kind: csv_folder, path: {shared}}}")).source_path == shared


@pytest.mark.parametrize("file", ["../../etc/passwd", "/etc/passwd"])
def test_a_table_file_stays_in_the_source_folder(tmp_path, file):
    with pytest.raises(SpecError, match="tables.Orders.file"):
        load_spec(_spec(tmp_path / "shop", "{kind: csv_folder, path: data}", f"tables:\n  Orders: {{file: '{file}'}}\n"))
