"""Errors the engine raises for bad input; messages name tables and columns, never values."""


class GenesisError(Exception):
    """Base class for every error the engine raises on bad input or configuration."""


class SpecError(GenesisError):
    """The dataset spec is invalid."""


class SourceError(GenesisError):
    """A source table is missing, unreadable or empty."""


class SchemaError(GenesisError):
    """Keys or foreign keys are inconsistent (unknown columns, broken keys, cycles)."""


class ModelError(GenesisError):
    """A stored model is missing, corrupt or incompatible."""
