"""Genesis Pipelines: a synthetic twin of a relational database, orchestrated by Dagster."""

__version__ = "0.1.0"
