"""`genesis` on plain files (cli_files.py), end to end through subprocess: an adult sample (CSV and Parquet), a
chinook folder, another tool's output (SDV, where installed), --json, and the exit codes (the verdicts and usage
errors through cli.main in process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from genesis_pipelines.cli_files import read_input
from genesis_pipelines_tests.helpers import PROJECT_ROOT as ROOT
from genesis_pipelines_tests.helpers import corpus_dir, needs_corpus

CORPUS = corpus_dir()
pytestmark = [pytest.mark.cli, needs_corpus("adult")]


def genesis(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENESIS_DATA_DIR": str(cwd / "data")}
    return subprocess.run([sys.executable, "-m", "genesis_pipelines.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900)


@pytest.fixture
def in_process(tmp_path, isolated_data, monkeypatch, capsys):
    """`genesis ARGS` through cli.main in this process, from tmp_path: (exit code, stdout, stderr). main's return is
    what `python -m genesis_pipelines.cli` exits with, which genesis() runs for real; verdicts and usage errors are
    checked here, without a fresh interpreter each."""
    from genesis_pipelines.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture(scope="module")
def adult_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adult")
    tables, _, _ = read_input(CORPUS / "adult" / "adult.csv")
    df = tables["adult"].sample(n=900, random_state=11).reset_index(drop=True)
    df.iloc[:600].to_csv(folder / "real.csv", index=False)
    df.iloc[600:].to_csv(folder / "holdout.csv", index=False)
    df.iloc[:600].to_parquet(folder / "real.parquet", index=False)
    return folder


def test_read_input_names_the_file(tmp_path):
    from genesis_pipelines.engine.core.errors import SourceError

    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(SourceError, match="bad.csv line 3"):
        read_input(tmp_path / "bad.csv")
    (tmp_path / "x.txt").write_text("a\n")
    with pytest.raises(SourceError, match="not a .csv or .parquet"):
        read_input(tmp_path / "x.txt")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pd.DataFrame({"a": [1]}).to_csv(mixed / "t.csv", index=False)
    pd.DataFrame({"a": [1]}).to_parquet(mixed / "u.parquet")
    with pytest.raises(SourceError, match="mixes"):
        read_input(mixed)


@pytest.mark.slow
def test_generate_evaluate_audit_on_adult(adult_files, tmp_path, in_process):
    done = genesis("generate", "-i", adult_files / "real.csv", "-o", tmp_path / "syn.parquet", "-n", 700, "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["rows"] == {"real": 700} and result["methods"] == {"real": "gaussian_copula"}
    synthetic = pd.read_parquet(tmp_path / "syn.parquet")
    assert len(synthetic) == 700 and list(synthetic.columns) == list(pd.read_csv(adult_files / "real.csv").columns)
    assert "\r" not in done.stderr  # no progress bar when stderr is not a terminal

    ev = genesis("evaluate", "-r", adult_files / "real.parquet", "-s", tmp_path / "syn.parquet", "--target", "income",
                 "--holdout", adult_files / "holdout.csv", "--out", tmp_path / "reports", "--json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    scores = json.loads(ev.stdout)
    assert scores["fidelity_score"] > 70 and scores["utility_score"] > 50 and scores["met"]
    assert (tmp_path / "reports" / "quality_report.html").is_file()
    code, _, err = in_process("evaluate", "-r", adult_files / "real.csv", "-s", tmp_path / "syn.parquet", "--strict",
                              "--quality-min", 99.9)
    assert code == 1 and "NOT met" in err

    audit = genesis("privacy-audit", "-r", adult_files / "real.csv", "-s", tmp_path / "syn.parquet", "--holdout",
                    adult_files / "holdout.csv", "--sensitive", "income,capital-gain", "--json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr[-2000:]
    verdict = json.loads(audit.stdout)
    assert verdict["passed"] and "mia_auc_max" in verdict["gates"] and verdict["copies"] == 0
    code, out, _ = in_process("privacy-audit", "-r", adult_files / "real.csv", "-s", adult_files / "real.csv", "--json")
    assert code == 1 and "exact_copies_max" in json.loads(out)["failed_gates"]


@pytest.mark.slow
def test_generate_a_chinook_folder_and_automl(tmp_path, in_process):
    done = genesis("generate", "-i", CORPUS / "chinook", "-o", tmp_path / "twin", "--scale", 0.5, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.stem for p in (CORPUS / "chinook").glob("*.csv")}
    assert {p.stem for p in (tmp_path / "twin").glob("*.csv")} == names
    album, artist = (pd.read_csv(tmp_path / "twin" / f"{t}.csv") for t in ("Album", "Artist"))
    assert album["ArtistId"].isin(artist["ArtistId"]).all()
    code, _, err = in_process("generate", "-i", CORPUS / "chinook", "-o", tmp_path / "twin")
    assert code == 2 and "not an empty folder" in err
    auto = genesis("automl", "-i", CORPUS / "chinook" / "Genre.csv", "-o", tmp_path / "genre.csv", "--json",
                   cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert (tmp_path / "genre.csv").is_file()


def test_usage_and_bad_input_exit_2(tmp_path, in_process):
    assert in_process("generate")[0] == 2
    code, _, err = in_process("evaluate", "-r", tmp_path / "nope.csv", "-s", tmp_path / "nope.csv")
    assert code == 2 and "nope.csv does not exist" in err
    code, _, err = in_process("generate", "--spec", "x.yaml", "-i", "y.csv", "-o", "z.csv")
    assert code == 2 and "either --spec" in err
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = in_process("generate", "-i", tmp_path / "t.csv", "-o", tmp_path / "out.txt")
    assert code == 2 and ".csv or .parquet" in err
    assert in_process("export", "--format", "csv")[0] == 2


@pytest.mark.slow
def test_audit_sdv_output(adult_files, tmp_path):
    sdv = pytest.importorskip("sdv", reason="the optional extra genesis-pipelines[sdv] is not installed")
    from sdv.metadata import SingleTableMetadata
    from sdv.single_table import GaussianCopulaSynthesizer

    real = pd.read_csv(adult_files / "real.csv")
    metadata = SingleTableMetadata()
    metadata.detect_from_dataframe(real)
    model = GaussianCopulaSynthesizer(metadata)
    model.fit(real)
    model.sample(600).to_csv(tmp_path / "sdv.csv", index=False)
    audit = genesis("privacy-audit", "-r", adult_files / "real.csv", "-s", tmp_path / "sdv.csv", "--holdout",
                    adult_files / "holdout.csv", "--json", cwd=tmp_path)
    assert audit.returncode in (0, 1), audit.stderr[-2000:]
    assert "privacy_score" in json.loads(audit.stdout) and sdv
