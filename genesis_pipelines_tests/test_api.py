"""The Python SDK (genesis_pipelines.api) on DataFrames: fit / generate / save / load, conditions, DP, constraints,
multi-table with inferred keys, and the evaluators, on adult and chinook from the shared corpus."""

from __future__ import annotations

import gc
import json
import re

import numpy as np
import pandas as pd
import pytest

import genesis_pipelines as gp
from genesis_pipelines.engine.core.errors import GenesisError, SpecError
from genesis_pipelines_tests.helpers import PROJECT_ROOT as ROOT
from genesis_pipelines_tests.helpers import corpus_dir, corpus_path, needs_corpus

CORPUS = corpus_dir()
needs_corpus = needs_corpus("adult")


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    from genesis_pipelines.cli_files import read_input

    tables, _, _ = read_input(corpus_path("adult", "adult.csv"))
    return tables["adult"].sample(n=800, random_state=3).reset_index(drop=True)


def people(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    first = ["Maria", "John", "Aiko", "Pedro", "Fatima", "Lars"]
    return pd.DataFrame({
        "name": [f"{first[i % 6]} Smithson{i}" for i in range(n)],
        "email": [f"person{i}@example.org" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        "spend": np.round(rng.gamma(2.0, 30.0, n), 2),
    })


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, genesis_pipelines; print('genesis_pipelines.api' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True).stdout.split()
    assert out == ["False", "False"]


def test_fit_generate_infers_pii_and_types_and_is_deterministic():
    df = people()
    gen = gp.SyntheticGenerator(seed=4).fit(df)
    a, b = gen.generate(200), gen.generate(200)
    assert len(a) == 200 and list(a.columns) == list(df.columns)
    pd.testing.assert_frame_equal(a, b)  # same model and seed -> same rows
    assert not set(a["email"]) & set(df["email"])  # PII faked by default, as in the pipeline
    assert not set(a["name"]) & set(df["name"])
    assert set(a["plan"]) <= set(df["plan"]) and a["age"].between(18, 89).all()
    assert gen.metadata["columns"]["plan"]["sdtype"] == "categorical"
    assert not gen.generate(50, seed=9).equals(gen.generate(50, seed=10))
    assert gen.describe()["method"] == "gaussian_copula"


def test_in_memory_model_folder_is_removed(tmp_path):
    gen = gp.SyntheticGenerator().fit(people(60))
    root = gen._fitted.root
    assert (root / "LATEST.json").is_file()
    del gen
    gc.collect()
    assert not root.exists()


def test_save_load_round_trip_json_and_weights(tmp_path):
    gen = gp.SyntheticGenerator(seed=2).fit(people())
    saved = gen.save(tmp_path / "model")
    files = {p.suffix for p in saved.rglob("*") if p.is_file()}
    assert ".json" in files and not files & {".pkl", ".pickle"}
    loaded = gp.SyntheticGenerator.load(saved)
    pd.testing.assert_frame_equal(gen.generate(80, seed=5), loaded.generate(80, seed=5))
    with pytest.raises(GenesisError, match="not an empty folder"):
        gen.save(saved)
    with pytest.raises(GenesisError, match="sdk.json"):
        gp.SyntheticGenerator.load(tmp_path)


def test_conditions_values_and_frame_and_unknown_column():
    gen = gp.SyntheticGenerator(seed=1).fit(people(300))
    pro = gen.generate(100, conditions={"plan": "team"})
    assert (pro["plan"] == "team").all() and len(pro) == 100
    frame = pd.DataFrame({"plan": ["free", "pro"] * 20})
    out = gen.generate(conditions=frame)
    assert list(out["plan"]) == list(frame["plan"])
    with pytest.raises(GenesisError, match="no column 'colour'"):
        gen.generate(10, conditions={"colour": "red"})
    with pytest.raises(GenesisError, match="'email'.*replaced PII"):
        gen.generate(10, conditions={"email": "x@example.org"})


def test_constraints_and_pii_policy_reach_the_engine():
    df = people(200)
    gen = gp.SyntheticGenerator(constraints=[gp.Constraint.range("spend", low=10, high=100),
                                             gp.Constraint.positive("age")], pii={"email": "drop"}).fit(df)
    out = gen.generate(300)
    assert out["spend"].between(10, 100).all()
    assert "email" not in out.columns
    with pytest.raises(GenesisError, match="column 'no_such' does not exist"):
        gp.SyntheticGenerator(constraints=[gp.Constraint.positive("no_such")]).fit(df)


def test_privacy_config_trains_the_dp_variant():
    gen = gp.SyntheticGenerator(privacy=gp.PrivacyConfig(enable_differential_privacy=True, epsilon=2.0)).fit(people(600))  # enough rows for private bounds at epsilon 2
    describe = gen.describe()
    assert describe["method"] == "dp_gaussian_copula"
    assert "2.0" in json.dumps(describe["generator"])  # the epsilon spent is in the model metadata
    with pytest.raises(SpecError, match="no differentially private variant"):
        gp.PrivacyConfig(True).method_and_settings("auto", {})


@needs_corpus
@pytest.mark.slow
def test_multi_table_infers_keys_on_chinook():
    from genesis_pipelines.cli_files import read_input

    tables, _, _ = read_input(CORPUS / "chinook")
    small = {t: tables[t] for t in ("Artist", "Album", "Customer", "Invoice")}
    synth = gp.MultiTableSynthesizer(small, seed=3).fit()
    fks = synth.keys["foreign_keys"]
    assert "Album.ArtistId -> Artist.ArtistId" in fks and "Invoice.CustomerId -> Customer.CustomerId" in fks
    out = synth.sample(scale=0.5)
    assert len(out["Artist"]) == round(len(small["Artist"]) * 0.5)
    assert out["Album"]["ArtistId"].isin(out["Artist"]["ArtistId"]).all()
    assert out["Invoice"]["CustomerId"].isin(out["Customer"]["CustomerId"]).all()
    assert not set(out["Customer"]["Email"]) & set(small["Customer"]["Email"])


def test_multi_table_declared_keys_and_save_load(tmp_path):
    users = pd.DataFrame({"uid": range(1, 51), "tier": ["a", "b", "c", "a", "b"] * 10})
    orders = pd.DataFrame({"oid": range(1, 201), "uid": [1 + i % 50 for i in range(200)],
                           "amount": [float(3 + i % 23) for i in range(200)]})
    synth = gp.MultiTableSynthesizer({"users": users, "orders": orders}, primary_keys={"users": "uid", "orders": "oid"},
                                     foreign_keys=[("orders.uid", "users.uid")], seed=1).fit()
    loaded = gp.MultiTableSynthesizer.load(synth.save(tmp_path / "m"))
    a, b = synth.sample(seed=7), loaded.sample(seed=7)
    for table in ("users", "orders"):
        pd.testing.assert_frame_equal(a[table], b[table])
    with pytest.raises(GenesisError):
        gp.SyntheticGenerator.load(tmp_path / "m")


@needs_corpus
@pytest.mark.slow
def test_quality_evaluator_ranks_good_above_broken(adult, tmp_path):
    real, holdout = adult.iloc[:600], adult.iloc[600:]
    good = gp.SyntheticGenerator(seed=0).fit_generate(real, 600)
    broken = good.copy()
    for column in broken.columns:  # every column shuffled on its own: shapes kept, relations gone
        broken[column] = broken[column].sample(frac=1.0, random_state=len(column)).to_numpy()
    good_report = gp.QualityEvaluator(real, good, holdout).evaluate(target_column="income")
    broken_report = gp.QualityEvaluator(real, broken, holdout).evaluate(target_column="income")
    assert good_report.fidelity_score > broken_report.fidelity_score
    assert good_report.utility_score > broken_report.utility_score
    assert good_report.details["utility"]["target"] == "data.income"
    assert good_report.privacy_score is not None and "fidelity" in good_report.summary()
    path = good_report.to_html(tmp_path / "q.html")
    assert path.read_text().lstrip().lower().startswith("<!doctype html")
    assert json.loads(good_report.to_json())["fidelity_score"] == good_report.fidelity_score
    with pytest.raises(SpecError, match="target column"):
        gp.QualityEvaluator(real, good).evaluate(target_column="salary")


@needs_corpus
@pytest.mark.slow
def test_privacy_evaluator_flags_copies_and_passes_a_model(adult):
    real, holdout = adult.iloc[:600], adult.iloc[600:]
    copied = gp.PrivacyEvaluator(real, real.sample(frac=1.0, random_state=1), holdout, sensitive=["income"]).evaluate()
    assert not copied.passed and copied.details["copies"] > 0 and copied.privacy_score < 10
    synthetic = gp.SyntheticGenerator(seed=0).fit_generate(real, 600)
    fair = gp.PrivacyEvaluator(real, synthetic, holdout, sensitive=["income"]).evaluate()
    assert fair.privacy_score > copied.privacy_score
    assert "mia_auc_max" in fair.gates and "attribute_inference" in fair.details["tables"]["data"]
    with pytest.raises(SpecError, match="no column 'ssn'"):
        gp.PrivacyEvaluator(real, synthetic, sensitive=["ssn"]).evaluate()


def test_check_k_anonymity_counts_classes():
    df = pd.DataFrame({"zip": ["01", "01", "01", "02", "02", "03"], "sex": ["f", "f", "f", "m", "m", "m"],
                       "disease": ["a", "b", "a", "c", "c", "a"]})
    result = gp.check_k_anonymity(df, ["zip", "sex"], k=2, sensitive=["disease"])
    assert (result.k, result.classes, result.satisfied) == (1, 3, False)
    assert result.share_rows_below_k == pytest.approx(1 / 6)
    assert result.l_diversity["disease"]["l"] == 1
    assert gp.check_k_anonymity(df.iloc[:5], ["zip", "sex"], k=2).satisfied
    with pytest.raises(SpecError, match="no column 'age'"):
        gp.check_k_anonymity(df, ["age"])


@needs_corpus
def test_auto_synthesize(adult):
    out = gp.auto_synthesize(adult.iloc[:300], n_samples=120, trial_rows=300, candidates=["gaussian_copula"])
    assert len(out) == 120 and list(out.columns) == list(adult.columns)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip() and not line.startswith("#")]) <= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert isinstance(namespace["synthetic"], pd.DataFrame) and len(namespace["synthetic"]) == 1000
    assert namespace["report"].fidelity_score is not None


def test_docstring_examples_run():
    import doctest

    from genesis_pipelines import api
    from genesis_pipelines.engine.synthesis.generators import base

    for module in (api, base):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
