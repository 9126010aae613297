"""Real databases of the corpus, first time, end to end through Dagster from a spec declaring only source and keys.

The corpus lives outside the repository (`<repo>/../shared/datasets`, or GENESIS_CORPUS_DIR); without it these
tests skip. The spec conversion (schema.yaml -> declared keys, composite FKs grouped) is bench_corpus.py's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dagster as dg
import pytest
import yaml

from genesis_pipelines_tests.helpers import PROJECT_ROOT, corpus_dir, materialize_all

pytestmark = [pytest.mark.dagster, pytest.mark.slow]


def _bench_corpus():
    location = importlib.util.spec_from_file_location("bench_corpus", PROJECT_ROOT / "benchmarks" / "bench_corpus.py")
    module = importlib.util.module_from_spec(location)
    location.loader.exec_module(module)
    return module


bench = _bench_corpus()
CORPUS = corpus_dir()


# sakila: junction tables, dates, two FKs to one parent, and a cycle of required keys (store <-> staff);
# bakeoff: composite primary and foreign keys, two composite FKs of one table sharing a column
@pytest.mark.parametrize("database", ["sakila", "bakeoff"])
def test_database_first_time_through_dagster(database: str, tmp_path: Path, monkeypatch):
    folder = CORPUS / database
    if not folder.is_dir():
        pytest.skip(f"corpus database {folder} not found (set GENESIS_CORPUS_DIR or put the corpus at ../shared/datasets)")
    schema = yaml.safe_load((folder / "schema.yaml").read_text())
    spec_path = tmp_path / database / "dataset.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(yaml.safe_dump(bench.spec_document(database, folder, schema), allow_unicode=True), encoding="utf-8")
    data_dir = tmp_path / "data"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(data_dir))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    result = materialize_all(spec_path, dg.DagsterInstance.ephemeral())
    assert result.success
    blocking = [e for e in result.get_asset_check_evaluations() if e.check_name in bench.BLOCKING_CHECKS]
    assert len(blocking) == 2 * len(schema["tables"]) + 1
    assert [f"{e.asset_key.path[-1]}:{e.check_name}" for e in blocking if not e.passed] == []
    synthetic = bench.warehouse_tables(data_dir, database, schema["tables"])
    assert set(synthetic) == set(schema["tables"])
    assert bench.fk_integrity(synthetic, bench.declared_foreign_keys(schema)) == 100.0
