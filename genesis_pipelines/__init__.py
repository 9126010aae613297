"""Genesis Pipelines: a synthetic twin of a relational database, orchestrated by Dagster.

The Python SDK (genesis_pipelines.api) and the generator plugin decorator are importable from here; they load on
first use, so `import genesis_pipelines` stays cheap.
"""

__version__ = "0.1.0"

_API = ("Constraint", "KAnonymityResult", "MultiTableSynthesizer", "PrivacyConfig", "PrivacyEvaluator", "PrivacyReport",
        "QualityEvaluator", "QualityReport", "SyntheticGenerator", "auto_synthesize", "check_k_anonymity")
__all__ = [*_API, "register_generator", "available_methods"]


def __getattr__(name: str):
    if name in _API:
        from genesis_pipelines import api

        return getattr(api, name)
    if name in ("register_generator", "available_methods"):
        from genesis_pipelines.engine.synthesis import generators

        return getattr(generators, name)
    raise AttributeError(f"module 'genesis_pipelines' has no attribute {name!r}")
