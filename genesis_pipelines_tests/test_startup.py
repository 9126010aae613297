"""Start-up cost: the CLI and the engine modules a training or generation step imports load no heavy library they
do not use (torch, Dagster, Great Expectations, plotting, sklearn). Checked by module presence, not by timing."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.cli

HEAVY = ("torch", "dagster", "great_expectations", "matplotlib", "plotly", "sklearn")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_cli_import_loads_no_heavy_library():
    assert _loaded_after("import genesis_pipelines.cli") == []


@pytest.mark.parametrize("module", ["genesis_pipelines.engine.synthesis.relational", "genesis_pipelines.engine.pipeline",
                                    "genesis_pipelines.engine.synthesis.generators", "genesis_pipelines.engine.evaluation"])
def test_engine_modules_load_no_heavy_library(module):
    assert _loaded_after(f"import {module}") == []


def test_generators_load_on_first_use():
    """A method's module (and torch) loads when the method is asked for; the list of methods needs neither."""
    code = ("from genesis_pipelines.engine.synthesis.generators import available_methods, create_generator\n"
            "assert 'tvae' in available_methods() and 'sdv_gaussian_copula' in available_methods()\n"
            "create_generator('tvae')")
    assert "torch" in _loaded_after(code)
    assert _loaded_after("from genesis_pipelines.engine.evaluation import render_html") == ["matplotlib"]


def test_code_location_load_reads_no_data_stack(tmp_path):
    """Loading the code location (every bundled spec) builds asset definitions only: no pandas, numpy, pyarrow, torch,
    sklearn or Great Expectations, which the steps import when they run. The first load of a dataset whose keys are
    inferred plans it from its source once (and stores the plan); the load after it reads no data, neither building the
    definitions nor taking the repository snapshot a code server sends the webserver."""
    code = ("import os, sys\n"
            f"os.environ['GENESIS_DATA_DIR'] = {str(tmp_path)!r}\n"
            "from genesis_pipelines.definitions import build_definitions\n"
            "from dagster._core.remote_representation.external_data import RepositorySnap\n"
            "defs = build_definitions()\n"
            "assert defs.resolve_all_job_defs()\n"
            "assert RepositorySnap.from_def(defs.get_repository_def()).job_datas\n"
            "print(' '.join(m for m in ('pandas', 'numpy', 'pyarrow', 'torch', 'sklearn', 'scipy', 'great_expectations', "
            "'matplotlib', 'faker') if m in sys.modules))")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pandas" in first.stdout.split(), "the inferred-keys demo is planned from its source on its first load"
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert again.stdout.split() == []
