"""Evaluation of synthetic data against the real tables: fidelity, privacy and their reports.

Every result is an aggregate (score, count, rate, distance): nothing here returns a real row or value.
"""

from genesis_pipelines.engine.evaluation.fidelity import (
    cardinality_scores,
    column_shape_scores,
    evaluable_columns,
    grade,
    pair_trend_scores,
    parent_child_trends,
    quality_report,
    recommendations,
)
from genesis_pipelines.engine.evaluation.privacy import distance_to_closest_record, exact_copies, privacy_report
from genesis_pipelines.engine.evaluation.report import render_html, summary_markdown
from genesis_pipelines.engine.evaluation.utility import utility_report

__all__ = [
    "cardinality_scores",
    "column_shape_scores",
    "distance_to_closest_record",
    "evaluable_columns",
    "exact_copies",
    "grade",
    "pair_trend_scores",
    "parent_child_trends",
    "privacy_report",
    "quality_report",
    "recommendations",
    "render_html",
    "summary_markdown",
    "utility_report",
]
