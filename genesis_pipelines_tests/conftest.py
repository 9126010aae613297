"""Shared fixtures (isolated data dirs, so no test touches ./data or ./.dagster_home) and the test tiers.

Every test that is not marked `slow`, `dagster` or `cli` is marked `unit` here: `./scripts/test.sh --fast` runs
those (`-m unit`), the engine's own tests (about 180 CPU seconds in all on 2 workers, see README)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pandas as pd
import pytest

from genesis_pipelines_tests.helpers import BUNDLED_SPECS, TrainedDataset, shared_trained_dataset

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """With pytest-xdist workers, each gets its share of the cores for OpenMP/BLAS (and torch, which reads
    OMP_NUM_THREADS): two workers of two threads each on two cores spin-wait on one another, about 2-3x the CPU for
    the same results. Set before the workers start (they inherit it); a value already set is kept."""
    workers = getattr(config.option, "numprocesses", None)
    if os.environ.get("PYTEST_XDIST_WORKER") or not isinstance(workers, int) or workers < 2:
        return
    threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)


@pytest.fixture
def isolated_data(tmp_path, monkeypatch) -> Path:
    """A private GENESIS_DATA_DIR (warehouse, models, exports, reports) for one test."""
    data = tmp_path / "data"
    monkeypatch.setenv("GENESIS_DATA_DIR", str(data))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)
    return data


def run_shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run sees (the run's base temp folder, parent of each worker's own);
    without xdist, this process's base temp folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def chinook_trained(tmp_path_factory) -> TrainedDataset:
    """The bundled Chinook trained once per test run (the first worker trains, the others load the saved model, see
    helpers.shared_trained_dataset); each worker reads its own copy of the model folder. Several modules test the
    same model: read it, never change it; copy `model_root` before damaging files."""
    return shared_trained_dataset(BUNDLED_SPECS / "chinook" / "dataset.yaml",
                                  run_shared_dir(tmp_path_factory) / "chinook_shared",
                                  tmp_path_factory.mktemp("chinook_model"))


@pytest.fixture(scope="session")
def chinook_synthetic(chinook_trained) -> dict[str, pd.DataFrame]:
    """Chinook's synthetic twin at scale 1, seed 0, generated once per worker (read it, never change it)."""
    from genesis_pipelines.engine.synthesis import relational

    return relational.generate_all(chinook_trained.model, chinook_trained.model_dir, scale=1.0, seed=0)


FRONT_END_MARKS = {"slow", "dagster", "cli"}


def module_marks(path: Path) -> set[str]:
    """The `pytest.mark.<name>` names of a test module's top-level `pytestmark`, read from its source (not imported)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            names |= {n.attr for n in ast.walk(node.value) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"}
    return names


def pytest_ignore_collect(collection_path: Path, config):
    """Under exactly `-m unit` (./scripts/test.sh --fast), a module whose `pytestmark` marks all of it a front-end
    test holds no unit test: it is not imported at all, so the fast tier's collection loads no Dagster or CLI."""
    if config.getoption("markexpr", "") != "unit" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return True if FRONT_END_MARKS & module_marks(collection_path) else None


# What one test costs the schedule, roughly, in seconds on an idle core: a `slow` test 10 s to 2 minutes, a Dagster or
# CLI test a few seconds, an engine unit test a fraction of one. Only the order of the modules depends on it.
SCHEDULE_COST = {"slow": 30.0, "dagster": 4.0, "cli": 4.0}
UNIT_TEST_COST = 0.3


def schedule_cost(item) -> float:
    marks = {mark.name for mark in item.iter_markers()}
    return max((SCHEDULE_COST[name] for name in marks & SCHEDULE_COST.keys()), default=UNIT_TEST_COST)


def pytest_collection_modifyitems(config, items):
    """The fast tier is what is left once the slow, Dagster and CLI tests are set aside.

    Then the modules are put heaviest first (by schedule_cost), each module's tests kept in their order:
    ./scripts/test.sh runs `--dist loadscope --no-loadscope-reorder`, so the two workers take whole modules in this
    order, the long end-to-end modules at the start and the many short ones filling in at the end (xdist's own
    order, by number of tests, leaves the long modules of one or two tests to the end, where one worker runs them
    while the other idles)."""
    for item in items:
        if not FRONT_END_MARKS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    cost = {name: sum(schedule_cost(item) for item in tests) for name, tests in modules.items()}
    items[:] = [item for name in sorted(modules, key=lambda n: -cost[n]) for item in modules[name]]


# ---------------------------------------------------------------- where the suite's time goes

TIMINGS_VARIABLE = "GENESIS_TEST_TIMINGS"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With GENESIS_TEST_TIMINGS=<folder> set, each test's setup + call + teardown is appended to
    <folder>/<worker>.jsonl: wall seconds, this process's CPU seconds and its waited-for children's, the seconds the
    test's thread was ready but queued for a core (a loaded machine), start and end times. Wall well above CPU +
    queued is a test that waits (sleeps, subprocesses, locks); the start/end times show where one worker runs alone."""
    folder = os.environ.get(TIMINGS_VARIABLE)
    if not folder:
        yield
        return
    import json
    import resource
    import time

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def runnable_wait() -> float:  # seconds this thread was ready to run but waited for a core (other load)
        try:
            return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    start, cpu, child, queued = time.time(), time.process_time(), children_cpu(), runnable_wait()
    yield
    end = time.time()
    record = {"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "start": start,
              "end": end, "wall": end - start, "cpu": time.process_time() - cpu, "children_cpu": children_cpu() - child,
              "queued": runnable_wait() - queued}
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"{record['worker']}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
