"""Generators behind one interface; importing this package registers the built-in methods."""

from genesis_pipelines.engine.generators.base import Generator, available_methods, create_generator, load_generator
from genesis_pipelines.engine.generators.gaussian_copula import GaussianCopulaGenerator

__all__ = ["Generator", "GaussianCopulaGenerator", "available_methods", "create_generator", "load_generator"]
