"""`genesis --help` and building the CLI's parser import none of the heavy libraries: every command imports what
it needs when it runs, so the CLI starts at once (no timing here, only which modules a fresh interpreter loads)."""

from __future__ import annotations

import os
import subprocess
import sys

from genesis_pipelines_tests.helpers import PROJECT_ROOT

HEAVY = ("torch", "great_expectations", "matplotlib", "dagster", "sklearn", "scipy", "faker", "pandas", "numpy",
         "duckdb", "pyarrow", "opacus", "jinja2")


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys\n{statement}\n"
            f"print('loaded:' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("loaded:"), done.stdout[-2000:]
    return [m for m in line.removeprefix("loaded:").split(",") if m]


def test_help_imports_no_heavy_module():
    statement = ("from genesis_pipelines import cli\n"
                 "for argv in (['--help'], ['generate', '--help'], ['export', '--help']):\n"
                 "    assert cli.main(argv) == 0")
    assert _loaded_after(statement) == []


def test_a_command_reading_its_spec_imports_no_generator_library(tmp_path):
    """A command's fixed cost (spec checks, the warehouse) stays on pandas and DuckDB: torch, scipy, Faker, sklearn,
    matplotlib, Great Expectations and Dagster load only in the steps that use them."""
    missing = tmp_path / "absent.yaml"
    statement = ("from genesis_pipelines import cli\n"
                 f"assert cli.main(['export', '--spec', {str(missing)!r}, '--format', 'csv']) == 2")
    loaded = _loaded_after(statement)
    assert not set(loaded) & {"torch", "great_expectations", "matplotlib", "dagster", "sklearn", "scipy", "faker",
                              "opacus", "jinja2"}, loaded


def test_the_parser_lists_every_export_format():
    """The CLI's choices come from one tuple, which the exporter writes."""
    from genesis_pipelines.cli import build_parser
    from genesis_pipelines.engine.sources.export import FORMATS

    export = build_parser()._subparsers._group_actions[0].choices["export"]
    assert next(a for a in export._actions if a.dest == "format").choices == FORMATS
