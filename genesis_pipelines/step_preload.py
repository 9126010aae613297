"""Imported once by the multiprocess executor's forkserver, so every step process forks with what steps import
already loaded instead of paying it per step (Great Expectations alone is ~5 CPU s, and each table's gates step
needs it). Never torch: forking it is unsafe, and only the neural generators need it.

`gc.freeze()` last: the imported objects move to a permanent generation the collector never scans, so a forked
step does not touch (and copy) every page of the parent's heap on its first collection."""

import gc

import duckdb  # noqa: F401
import great_expectations  # noqa: F401
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import scipy.stats  # noqa: F401
import sklearn  # noqa: F401

import genesis_pipelines.definitions  # noqa: F401
import genesis_pipelines.engine.evaluation.expectations  # noqa: F401
import genesis_pipelines.engine.evaluation.report  # noqa: F401
import genesis_pipelines.engine.pipeline  # noqa: F401
import genesis_pipelines.engine.privacy.pii.fakes  # noqa: F401
import genesis_pipelines.engine.synthesis.generators.gaussian_copula  # noqa: F401
import genesis_pipelines.engine.synthesis.relational  # noqa: F401

gc.freeze()
