"""Evaluation of synthetic data against the real tables: fidelity, privacy and their reports.

Every result is an aggregate (score, count, rate, distance): nothing here returns a real row or value.
"""

import importlib

# names by submodule, imported on first access: a privacy report needs neither matplotlib (report)
# nor sklearn (utility, attacks)
_NAMES = {
    "cardinality_scores": "fidelity", "grade": "fidelity", "parent_child_trends": "fidelity",
    "quality_report": "fidelity", "recommendations": "fidelity",
    "distance_to_closest_record": "privacy.distance", "exact_copies": "privacy.copies", "privacy_report": "privacy.audit",
    "render_html": "report", "summary_markdown": "report", "utility_report": "utility",
}


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "cardinality_scores",
    "distance_to_closest_record",
    "exact_copies",
    "grade",
    "parent_child_trends",
    "privacy_report",
    "quality_report",
    "recommendations",
    "render_html",
    "summary_markdown",
    "utility_report",
]
