"""Generators behind one interface. Built-in methods are imported on first use (create_generator, load_generator),
so importing this package loads neither torch, sklearn nor scipy and Faker (the copula's); their classes are still
importable from here."""

import importlib

from genesis_pipelines.engine.synthesis.generators.base import (
    BaseGenerator,
    available_methods,
    create_generator,
    load_generator,
    register_generator,
)

_CLASSES = {
    "GaussianCopulaGenerator": "gaussian_copula",
    "AutoregressiveGenerator": "autoregressive", "DPGaussianCopulaGenerator": "dp_copula", "AutoGenerator": "auto",
    "CTGANGenerator": "ctgan", "TVAEGenerator": "tvae", "DPCTGANGenerator": "dp_neural", "DPTVAEGenerator": "dp_neural",
    "SdvGaussianCopula": "sdv_backend", "DPMarginalsGenerator": "dp_marginals",
}


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BaseGenerator", "GaussianCopulaGenerator", "available_methods", "create_generator", "load_generator",
           "register_generator"]
