"""The synthesis engine: a plain library with no Dagster imports.

Its rooms are layers whose imports go one way: core -> sources -> analysis -> privacy -> synthesis -> evaluation ->
pipeline (genesis_pipelines_tests/test_layers.py fails on an import against that order)."""
