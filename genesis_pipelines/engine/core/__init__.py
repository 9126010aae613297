"""The bottom layer: errors, the pydantic spec, the schema model, paths and schema names, device, code version.

Imports go one way: core -> sources -> analysis -> privacy -> synthesis -> evaluation -> pipeline
(genesis_pipelines_tests/test_layers.py checks it)."""
