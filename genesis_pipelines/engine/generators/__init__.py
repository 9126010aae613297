"""Generators behind one interface; importing this package registers the built-in methods."""

from genesis_pipelines.engine.generators.base import Generator, available_methods, create_generator, load_generator
from genesis_pipelines.engine.generators.gaussian_copula import GaussianCopulaGenerator
from genesis_pipelines.engine.generators.autoregressive import AutoregressiveGenerator  # noqa: F401
from genesis_pipelines.engine.generators.dp_copula import DPGaussianCopulaGenerator  # noqa: F401
from genesis_pipelines.engine.generators.dp_marginals import DPMarginalsGenerator  # noqa: F401
from genesis_pipelines.engine.generators.auto import AutoGenerator  # noqa: F401
from genesis_pipelines.engine.generators.ctgan import CTGANGenerator  # noqa: F401
from genesis_pipelines.engine.generators.tvae import TVAEGenerator  # noqa: F401
from genesis_pipelines.engine.generators.dp_neural import DPCTGANGenerator, DPTVAEGenerator  # noqa: F401
from genesis_pipelines.engine.generators.sdv_backend import SdvGaussianCopula  # noqa: F401  (SDV itself loads at fit only)

__all__ = ["Generator", "GaussianCopulaGenerator", "available_methods", "create_generator", "load_generator"]
