"""Dagster Components of this project."""

from genesis_pipelines.components.synthetic_twin import SyntheticTwinComponent

__all__ = ["SyntheticTwinComponent"]
