"""Imported once by the multiprocess executor's forkserver, so every step process forks with what steps import
and build already done instead of paying it per step (Great Expectations alone is ~5 CPU s, and each table's gates
step needs it). Never torch: forking it is unsafe, and only the neural generators need it.

Besides the imports, two things every step would otherwise redo (~1-2 CPU s each, per step):
- the code location: a step rebuilds its job from the run's code pointer (`genesis_pipelines.definitions:defs`),
  which scans the defs folder and builds every dataset's graph; built here once, each forked step reuses it
  (`definitions.preload_definitions`). It is built at the run's first step, from the specs, environment and stored
  plans the run itself loaded its job from.
- the Dagster instance: each step opens `DagsterInstance.from_ref`, whose storage classes import SQLAlchemy, alembic
  and Dagster's storage modules; one is opened and disposed of here (no connection is left open across the fork).
If either fails here, nothing is kept: each step then does it itself and reports the problem in its own events.

`gc.freeze()` last: the imported objects move to a permanent generation the collector never scans, so a forked
step does not touch (and copy) every page of the parent's heap on its first collection."""

import gc
import os

import dagster as dg
import duckdb  # noqa: F401
import great_expectations  # noqa: F401
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import scipy.stats  # noqa: F401
import sklearn  # noqa: F401

import genesis_pipelines.definitions
import genesis_pipelines.engine.evaluation.expectations  # noqa: F401
import genesis_pipelines.engine.evaluation.report  # noqa: F401
import genesis_pipelines.engine.pipeline  # noqa: F401
import genesis_pipelines.engine.privacy.pii.fakes  # noqa: F401
import genesis_pipelines.engine.synthesis.generators.gaussian_copula  # noqa: F401
import genesis_pipelines.engine.synthesis.relational  # noqa: F401

try:
    genesis_pipelines.definitions.preload_definitions()
except Exception:  # noqa: BLE001  (each step builds the definitions itself and fails there, with the error)
    pass

if os.environ.get("DAGSTER_HOME"):
    try:
        dg.DagsterInstance.get().dispose()
    except Exception:  # noqa: BLE001  (a warm-up only: each step opens its instance from the run's ref)
        pass

gc.freeze()
