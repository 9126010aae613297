"""The synthesis engine: a plain library with no Dagster imports."""
