"""A crash is never read as a verdict: exit 3, one line naming where, the traceback in a file and no value."""

from __future__ import annotations

import pytest

from genesis_pipelines.cli import EXIT_INTERNAL, main
from genesis_pipelines.engine.analysis import schema_inference as schema_module
from genesis_pipelines_tests.helpers import write_shop

pytestmark = pytest.mark.cli


def test_an_internal_error_exits_3_and_keeps_its_message_off_the_terminal(tmp_path, monkeypatch, capsys):
    spec = write_shop(tmp_path / "shop")
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GENESIS_WAREHOUSE", raising=False)

    def broken(*args, **kwargs):
        raise ValueError("row value alice@example.com broke the analysis")

    monkeypatch.setattr(schema_module, "analyse", broken)
    assert main(["generate", "--spec", str(spec)]) == EXIT_INTERNAL == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "internal error: ValueError in" in err and "alice" not in err
    written = err.rsplit("full traceback in ", 1)[1]
    assert "alice@example.com" in open(written, encoding="utf-8").read()
    assert written.startswith(str(tmp_path / "data" / "logs"))
