"""The Dagster layer: thin wrappers that read inputs, call one engine function and report metadata."""
