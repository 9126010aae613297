"""The stable import path for generator plugin authors.

A plugin is a class that subclasses `BaseGenerator` and implements its hooks (`_fit`, `_sample`, `fitted`,
`describe`, `_state` / `_from_state`; see BaseGenerator), registered in process with `@register_generator("name")`
or declared by an installed package in the entry-point group `genesis_pipelines.generators`
(`name = "package.module:Class"`). A plugin that fails to import is left out with a `PluginWarning` naming the
entry point and the error type; the other generators stay available.

>>> from genesis_pipelines.plugins import BaseGenerator, register_generator
"""

from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.synthesis.generators.base import (
    ENTRY_POINT_GROUP,
    BaseGenerator,
    PluginWarning,
    available_methods,
    register_generator,
)

__all__ = ["ENTRY_POINT_GROUP", "BaseGenerator", "GenesisError", "ModelError", "PluginWarning", "TableMeta",
           "available_methods", "register_generator"]
