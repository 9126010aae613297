"""Multi-table synthesis on real Chinook and nycflights: FK integrity, keys, children per parent, scale,
PII, the copy guard, seeding, regeneration of one table, model-store errors, and the small helpers.

Chinook is trained once per module and generated once per scale; every test reads those frames.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from genesis_pipelines.engine.analysis.reference_tables import REFERENCE_METHOD
from genesis_pipelines.engine.core import errors
from genesis_pipelines.engine.core.schema import ForeignKey
from genesis_pipelines.engine.core.spec import load_spec
from genesis_pipelines.engine.privacy import pii, record_guard
from genesis_pipelines.engine.sources.io import read_table, write_table
from genesis_pipelines.engine.synthesis import relational
from genesis_pipelines.engine.synthesis.relational.holdout import MIN_ROWS_FOR_HOLDOUT
from genesis_pipelines.engine.synthesis.relational.keys import apportion
from genesis_pipelines.engine.synthesis.relational.sampling import table_size
from genesis_pipelines_tests.helpers import BUNDLED_SPECS, TrainedDataset, train_dataset

CHINOOK_SPEC = BUNDLED_SPECS / "chinook" / "dataset.yaml"
NYCFLIGHTS_SPEC = BUNDLED_SPECS / "nycflights" / "dataset.yaml"

# the declared FKs, read from the bundled spec at collection time so each gets its own test id
CHINOOK_FKS = [f"{fk.child} -> {fk.parent}" for fk in load_spec(CHINOOK_SPEC).foreign_keys or []]
PII_TABLES = ("Customer", "Employee")
PII_COLUMNS = ("Email", "Phone", "FirstName", "LastName")
EMAIL = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$", re.IGNORECASE)


@pytest.fixture(scope="module")
def chinook(chinook_trained) -> TrainedDataset:
    return chinook_trained


@pytest.fixture(scope="module")
def synthetic(chinook_synthetic) -> dict[str, pd.DataFrame]:
    return chinook_synthetic


@pytest.fixture(scope="module")
def scaled(chinook) -> dict[float, dict[str, pd.DataFrame]]:
    return {s: relational.generate_all(chinook.model, chinook.model_dir, scale=s, seed=0) for s in (0.5, 2.0)}


@pytest.fixture(scope="module")
def nycflights(tmp_path_factory) -> TrainedDataset:
    return train_dataset(NYCFLIGHTS_SPEC, tmp_path_factory.mktemp("nycflights_model"))


# ---------------------------------------------------------------- helpers


def orphans(tables: dict[str, pd.DataFrame], fk: ForeignKey) -> int:
    """Non-null child values with no matching parent key."""
    child = tables[fk.child_table][fk.child_column].dropna()
    parent = tables[fk.parent_table][fk.parent_column].dropna()
    return int((~child.isin(parent)).sum())


def children_per_parent(tables: dict[str, pd.DataFrame], fk: ForeignKey) -> np.ndarray:
    """Child rows per parent key, parents without children counted as 0."""
    counts = tables[fk.child_table][fk.child_column].dropna().value_counts()
    return counts.reindex(tables[fk.parent_table][fk.parent_column].dropna().unique(), fill_value=0).to_numpy()


def assert_hierarchy_acyclic(employee: pd.DataFrame) -> None:
    """Following ReportsTo from any row reaches a root (null) within n steps."""
    boss = dict(zip(employee["EmployeeId"].tolist(), employee["ReportsTo"].tolist()))
    n = len(boss)
    for start in boss:
        node, steps = start, 0
        while not pd.isna(boss[node]):
            node = boss[node]
            steps += 1
            assert node in boss, f"ReportsTo points outside the table (from {start})"
            assert steps <= n, f"ReportsTo forms a cycle (from {start})"


def assert_integrity(trained: TrainedDataset, tables: dict[str, pd.DataFrame]) -> None:
    for fk in trained.schema.foreign_keys:
        assert orphans(tables, fk) == 0, fk.label
        if not fk.nullable:
            assert tables[fk.child_table][fk.child_column].notna().all(), f"{fk.label} has nulls"
    for name, meta in trained.schema.tables.items():
        if meta.primary_key:
            assert not tables[name][meta.primary_key].isna().any().any(), name
            assert not tables[name].duplicated(subset=meta.primary_key).any(), name
    assert_hierarchy_acyclic(tables["Employee"])


def _strings(obj):
    """Every string in a parsed JSON document, dict keys included."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


# ---------------------------------------------------------------- FK integrity and keys


def test_all_declared_fks_are_in_the_schema(chinook):
    assert len(CHINOOK_FKS) == 11
    assert len(chinook.schema.foreign_keys) == 11
    assert {fk.label for fk in chinook.schema.foreign_keys} == set(CHINOOK_FKS)


@pytest.mark.parametrize("label", CHINOOK_FKS)
def test_every_synthetic_fk_value_exists_in_its_parent(chinook, synthetic, label):
    fk = chinook.fk(label)
    child = synthetic[fk.child_table][fk.child_column]
    assert child.notna().any(), f"{label}: no values at all"
    assert orphans(synthetic, fk) == 0
    if not fk.nullable:
        assert child.notna().all(), f"{label} is required but has nulls"


def test_only_reports_to_is_nullable(chinook):
    assert [fk.label for fk in chinook.schema.foreign_keys if fk.nullable] == ["Employee.ReportsTo -> Employee.EmployeeId"]


@pytest.mark.slow
def test_reports_to_null_share_about_real(chinook, synthetic, scaled):
    real = chinook.tables["Employee"]["ReportsTo"].isna().mean()
    for frames in (synthetic, *scaled.values()):
        employee = frames["Employee"]
        share = employee["ReportsTo"].isna().mean()
        assert 1 <= employee["ReportsTo"].isna().sum(), "the hierarchy needs a root"
        assert abs(share - real) <= 1 / len(employee) + 1e-9, (share, real, len(employee))
    assert synthetic["Employee"]["ReportsTo"].isna().sum() == chinook.tables["Employee"]["ReportsTo"].isna().sum()


@pytest.mark.slow
def test_employee_hierarchy_has_no_cycles(synthetic, scaled):
    for frames in (synthetic, *scaled.values()):
        employee = frames["Employee"]
        assert not (employee["ReportsTo"] == employee["EmployeeId"]).fillna(False).any(), "someone reports to themself"
        assert_hierarchy_acyclic(employee)


def test_primary_keys_unique_and_non_null(chinook, synthetic):
    for name, meta in chinook.schema.tables.items():
        assert meta.primary_key, f"{name} has no primary key"
        keys = synthetic[name][meta.primary_key]
        assert not keys.isna().any().any(), name
        assert not keys.duplicated().any(), name


@pytest.mark.slow
def test_playlist_track_composite_key_unique(chinook, synthetic, scaled):
    assert chinook.schema.tables["PlaylistTrack"].primary_key == ["PlaylistId", "TrackId"]
    for frames in (synthetic, *scaled.values()):
        junction = frames["PlaylistTrack"]
        assert not junction.duplicated(subset=["PlaylistId", "TrackId"]).any()
        assert junction[["PlaylistId", "TrackId"]].notna().all().all()


# ---------------------------------------------------------------- children per parent


@pytest.mark.parametrize("label", [label for label in CHINOOK_FKS if label.split(".")[0] != label.split("-> ")[1].split(".")[0]])
def test_children_per_parent_close_to_real(chinook, synthetic, label):
    fk = chinook.fk(label)
    real, synth = children_per_parent(chinook.tables, fk), children_per_parent(synthetic, fk)
    assert synth.mean() == pytest.approx(real.mean(), rel=0.05)
    assert ks_2samp(real, synth).statistic <= 0.1, label
    assert synth.max() <= real.max() * 1.5 + 1


@pytest.mark.parametrize("label", ["InvoiceLine.InvoiceId -> Invoice.InvoiceId", "Track.AlbumId -> Album.AlbumId"])
@pytest.mark.slow
def test_children_per_parent_holds_at_scale_2(chinook, scaled, label):
    fk = chinook.fk(label)
    real, synth = children_per_parent(chinook.tables, fk), children_per_parent(scaled[2.0], fk)
    assert synth.mean() == pytest.approx(real.mean(), rel=0.1)
    assert ks_2samp(real, synth).statistic <= 0.15


@pytest.mark.parametrize("label", [label for label in CHINOOK_FKS if label.split(".")[0] != label.split("-> ")[1].split(".")[0]])
def test_parents_without_children_where_real_has_them(chinook, synthetic, label):
    fk = chinook.fk(label)
    real, synth = children_per_parent(chinook.tables, fk), children_per_parent(synthetic, fk)
    real_zero, synth_zero = (real == 0).mean(), (synth == 0).mean()
    if real_zero * len(synth) >= 1:
        assert synth_zero > 0, f"{label}: real has {real_zero:.0%} childless parents, synthetic none"
    assert abs(real_zero - synth_zero) <= 0.05 + 1 / len(synth), (real_zero, synth_zero)


def test_childless_parents_are_present_in_known_relations(chinook, synthetic):
    # Chinook has artists without albums, employees without customers, tracks never sold, empty playlists
    for label in ("Album.ArtistId -> Artist.ArtistId", "Customer.SupportRepId -> Employee.EmployeeId",
                  "InvoiceLine.TrackId -> Track.TrackId", "PlaylistTrack.PlaylistId -> Playlist.PlaylistId"):
        fk = chinook.fk(label)
        assert (children_per_parent(chinook.tables, fk) == 0).any(), label
        assert (children_per_parent(synthetic, fk) == 0).any(), label


# ---------------------------------------------------------------- row counts and scale


def test_row_counts_equal_real_at_scale_1(chinook, synthetic):
    assert set(synthetic) == set(chinook.tables)
    for name, real in chinook.tables.items():
        assert len(synthetic[name]) == len(real), name
        assert list(synthetic[name].columns) == list(real.columns), name


@pytest.mark.parametrize("scale", [0.5, 2.0])
@pytest.mark.slow
def test_scale_sizes_and_integrity(chinook, scaled, scale):
    frames = scaled[scale]
    order = chinook.schema.generation_order
    for name in order:
        expected = table_size(chinook.model, name, scale)
        real = len(chinook.tables[name])
        if chinook.model.tables[name].method == REFERENCE_METHOD:  # genres, media types: the vocabulary, any scale
            assert expected == len(frames[name]) == real, name
            continue
        assert expected == max(1, round(real * scale))
        if name == "PlaylistTrack":
            # a junction can only lose rows to the cap: a playlist cannot hold more distinct tracks than exist
            assert 0.5 * expected <= len(frames[name]) <= expected
            if len(frames[name]) < expected:
                per_playlist = frames[name]["PlaylistId"].value_counts()
                assert per_playlist.max() == len(frames["Track"]), "junction shrank without a playlist at the cap"
        else:
            assert len(frames[name]) == expected, name
            assert len(frames[name]) / real == pytest.approx(scale, rel=0.1, abs=1 / real), name
    # children grow with their parents: roots and children alike scale proportionally
    for child, parent in (("Album", "Artist"), ("Track", "Album"), ("Invoice", "Customer"), ("InvoiceLine", "Invoice")):
        real_ratio = len(chinook.tables[child]) / len(chinook.tables[parent])
        assert len(frames[child]) / len(frames[parent]) == pytest.approx(real_ratio, rel=0.1), (child, parent)
    assert_integrity(chinook, frames)


# ---------------------------------------------------------------- PII


def _real_pii_values(tables) -> dict[str, set[str]]:
    out = {}
    for table in PII_TABLES:
        for column in PII_COLUMNS:
            values = tables[table][column].dropna()
            out[f"{table}.{column}"] = {pii.normalize_value(v) for v in values} - {""}
    return out


@pytest.mark.slow
def test_no_real_pii_string_in_any_synthetic_table(chinook, synthetic, scaled):
    real = _real_pii_values(chinook.tables)
    forbidden = set().union(*real.values())
    assert len(real["Customer.Email"]) == 59 and len(real["Employee.LastName"]) == 8
    for frames in (synthetic, scaled[2.0]):
        hits = {}
        for name, df in frames.items():
            for column in df.columns:
                series = df[column]
                if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
                    continue
                count = int(series.dropna().map(pii.normalize_value).isin(forbidden).sum())
                if count:
                    hits[f"{name}.{column}"] = count
        assert hits == {}, f"real PII strings in synthetic output (counts only): {hits}"


def test_fake_emails_look_like_emails(chinook, synthetic):
    for table in PII_TABLES:
        emails = synthetic[table]["Email"].dropna().astype(str)
        assert len(emails) == round((1 - chinook.tables[table]["Email"].isna().mean()) * len(synthetic[table])), table
        assert emails.map(lambda e: bool(EMAIL.match(e))).all(), table
        # documented: fake addresses use example.com/.net/.org, so none can reach a real inbox
        assert emails.str.rsplit("@", n=1).str[1].isin(["example.com", "example.net", "example.org"]).all(), table
        assert emails.nunique() >= 0.9 * len(emails), table


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor names, shapes, metadata): its only text."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size].decode("utf-8"))


def test_model_directory_holds_only_json(chinook):
    """JSON, plus safetensors weights for neural generators (the spec's Track model): never a pickle."""
    files = []
    for root, dirs, names in os.walk(chinook.model_root):
        assert not any(d.startswith(".staging") for d in dirs), "a staging folder was left behind"
        files += [Path(root) / n for n in names]
    assert files
    assert (chinook.model_root / "LATEST.json") in files
    assert any(f.name == "model.json" for f in files) and any(f.name == "generator.json" for f in files)
    for path in files:
        assert path.suffix in (".json", ".safetensors"), path
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            assert _safetensors_header(path)


def test_model_holds_no_real_pii(chinook):
    tables = chinook.tables
    emails_phones = set()
    last_names = set()
    for table in PII_TABLES:
        for column in ("Email", "Phone"):
            emails_phones |= {str(v).casefold() for v in tables[table][column].dropna()}
        last_names |= {str(v) for v in tables[table]["LastName"].dropna()}
    # last names as whole words: "King" (an employee) must not be found inside "United Kingdom" (a kept country)
    last_name_rx = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(last_names, key=len, reverse=True)) + r")\b")
    for path in chinook.model_root.rglob("*"):
        if not path.is_file():
            continue
        # weights are numbers; a safetensors file's only text is its JSON header
        raw = json.dumps(_safetensors_header(path)) if path.suffix == ".safetensors" else path.read_text(encoding="utf-8")
        # parse, so escaped non-ASCII ("Gon\u00e7alves") is compared in its real spelling
        texts = [raw, *_strings(json.loads(raw))]
        for text in texts:
            folded = text.casefold()
            leaked = [v for v in emails_phones if v in folded]
            assert not leaked, f"{path.name} holds {len(leaked)} real email/phone value(s)"
            assert not last_name_rx.search(text), f"{path.name} holds a real last name"


# ---------------------------------------------------------------- the copy guard


@pytest.mark.parametrize("table", ["Invoice", "Employee"])
@pytest.mark.slow
def test_no_unique_training_record_is_reproduced(chinook, synthetic, scaled, table):
    meta = chinook.schema.tables[table]
    exclusions = record_guard.comparison_exclusions(chinook.schema, chinook.findings)
    columns = record_guard.record_columns(meta, exclusions[table])
    assert len(columns) >= 2, f"{table}: no record columns, the check would be vacuous"
    train = chinook.splits[table][0]
    counts = record_guard.row_keys(train, columns, meta).value_counts()
    unique = set(counts.index[counts.to_numpy() == 1])
    assert unique
    for scale, frames in ((1.0, synthetic), (2.0, scaled[2.0])):
        copies = int(record_guard.row_keys(frames[table], columns, meta).isin(unique).sum())
        assert copies == 0, f"{table} at scale {scale}: {copies} synthetic rows copy a unique training record"


@pytest.mark.parametrize("table", ["Invoice", "Employee"])
def test_copy_guard_recognises_training_records_after_reload(chinook, table):
    # the guard as generation uses it: schema and exclusions from the loaded model, digests from record_guard.json
    meta = chinook.model.db_schema.tables[table]
    columns = record_guard.record_columns(meta, relational.comparison_exclusions(chinook.model)[table])
    digests = record_guard.unique_record_digests(chinook.splits[table][0], columns, meta, chinook.model.pii_guard_salt)
    stored = relational.load_copy_guard(chinook.model, chinook.model_dir, table)
    assert stored and set(digests) == stored


# ---------------------------------------------------------------- seeding and regeneration


@pytest.mark.slow
def test_same_seed_same_output_different_seed_differs(chinook, synthetic):
    again = relational.generate_all(chinook.model, chinook.model_dir, scale=1.0, seed=0)
    for name in synthetic:
        pd.testing.assert_frame_equal(synthetic[name], again[name], obj=name)
    other = relational.generate_all(chinook.model, chinook.model_dir, scale=1.0, seed=1)
    differing = [name for name in synthetic if not synthetic[name].equals(other[name])]
    for name in ("Customer", "Invoice", "Track", "InvoiceLine", "PlaylistTrack"):
        assert name in differing, name
    assert_integrity(chinook, other)


def test_generate_table_with_stored_parents_keeps_integrity(chinook, synthetic):
    # parents as they come back from the warehouse: numpy dtypes, not the nullable ones generation made
    con = duckdb.connect()
    for name, df in synthetic.items():
        write_table(con, "synthetic", name, df)
    stored = {name: read_table(con, "synthetic", name) for name in synthetic}
    assert stored["Invoice"]["InvoiceId"].dtype == np.int64
    for child in ("InvoiceLine", "PlaylistTrack", "Track", "Customer"):
        fresh = relational.generate_table(chinook.model, chinook.model_dir, child, stored, seed=7)
        frames = {**stored, child: fresh}
        for fk in chinook.schema.fks_of(child):
            assert orphans(frames, fk) == 0, fk.label
            assert fresh[fk.child_column].notna().all(), fk.label
        pk = chinook.schema.tables[child].primary_key
        assert not fresh.duplicated(subset=pk).any(), child
        if child != "PlaylistTrack":
            assert len(fresh) == len(chinook.tables[child])


# ---------------------------------------------------------------- model-store errors


@pytest.fixture
def model_copy(chinook, tmp_path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(chinook.model_root, target)
    return target


def test_corrupt_model_json_says_retrain(model_copy):
    version = json.loads((model_copy / "LATEST.json").read_text())["version"]
    (model_copy / version / "model.json").write_text('{"format": "genesis.relational/1", "tables": ', encoding="utf-8")
    with pytest.raises(errors.ModelError, match="retrain"):
        relational.load_model(model_copy)


def test_model_json_of_wrong_shape_says_retrain(model_copy):
    version = json.loads((model_copy / "LATEST.json").read_text())["version"]
    (model_copy / version / "model.json").write_text('{"format": "genesis.relational/1"}', encoding="utf-8")
    with pytest.raises(errors.ModelError, match="retrain"):
        relational.load_model(model_copy)


def test_corrupt_latest_pointer_says_retrain(model_copy):
    (model_copy / "LATEST.json").write_text("not json", encoding="utf-8")
    with pytest.raises(errors.ModelError, match="retrain"):
        relational.load_model(model_copy)


def test_missing_latest_pointer_is_a_model_error(model_copy):
    (model_copy / "LATEST.json").unlink()
    with pytest.raises(errors.ModelError):
        relational.load_model(model_copy)


def test_missing_latest_pointer_says_retrain(model_copy):
    (model_copy / "LATEST.json").unlink()
    with pytest.raises(errors.ModelError, match="retrain"):
        relational.load_model(model_copy)


def test_missing_table_generator_says_retrain(chinook, model_copy):
    model, model_dir = relational.load_model(model_copy)
    shutil.rmtree(model_dir / "tables" / "Artist")
    with pytest.raises(errors.ModelError, match="retrain"):
        relational.generate_table(model, model_dir, "Artist", {})


def test_missing_parent_table_names_the_parent(chinook, synthetic):
    with pytest.raises(errors.GenesisError, match="'Artist'"):
        relational.generate_table(chinook.model, chinook.model_dir, "Album", {})
    with pytest.raises(errors.GenesisError, match="'Track'"):
        relational.generate_table(chinook.model, chinook.model_dir, "InvoiceLine", {"Invoice": synthetic["Invoice"]})


# ---------------------------------------------------------------- apportion and split_holdout


@pytest.mark.parametrize("weights,total", [
    ([1, 2, 3, 4], 100), ([1, 1, 1], 10), ([5, 0, 5], 7), ([0.2, 0.3, 0.5], 1), ([3], 17), ([1, 2, 3], 0),
])
def test_apportion_sums_exactly_and_is_proportional(weights, total):
    counts = apportion(np.asarray(weights, dtype=float), total, np.random.default_rng(0))
    exact = np.asarray(weights, dtype=float) / np.sum(weights) * total
    assert counts.sum() == total
    assert np.all(counts >= 0)
    assert np.all(np.abs(counts - exact) < 1)
    assert np.all(counts[np.asarray(weights) == 0] == 0)


def test_apportion_exact_when_divisible_and_random_weights():
    assert apportion(np.array([1, 2, 3, 4]), 100, np.random.default_rng(0)).tolist() == [10, 20, 30, 40]
    rng = np.random.default_rng(3)
    for _ in range(50):
        weights = rng.random(rng.integers(1, 40)) * rng.choice([0, 1], size=1, p=[0.1, 0.9])
        total = int(rng.integers(0, 5000))
        counts = apportion(weights, total, np.random.default_rng(1))
        assert counts.sum() == total
        base = weights if weights.sum() > 0 else np.ones_like(weights)
        assert np.all(np.abs(counts - base / base.sum() * total) < 1)
    assert apportion(np.zeros(4), 8, np.random.default_rng(0)).tolist() == [2, 2, 2, 2]
    assert apportion(np.array([]), 5, np.random.default_rng(0)).size == 0


def test_split_holdout_is_seeded_and_partitions():
    df = pd.DataFrame({"a": range(200)})
    train, holdout = relational.split_holdout(df, 0.2, seed=5)
    train2, holdout2 = relational.split_holdout(df, 0.2, seed=5)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(holdout, holdout2)
    assert len(holdout) == 40 and len(train) == 160
    assert set(train["a"]).isdisjoint(holdout["a"]) and set(train["a"]) | set(holdout["a"]) == set(range(200))
    assert train["a"].is_monotonic_increasing and holdout["a"].is_monotonic_increasing
    _, holdout3 = relational.split_holdout(df, 0.2, seed=6)
    assert set(holdout3["a"]) != set(holdout["a"])


def test_split_holdout_keeps_small_tables_whole():
    small = pd.DataFrame({"a": range(MIN_ROWS_FOR_HOLDOUT - 1)})
    train, holdout = relational.split_holdout(small, 0.5, seed=0)
    pd.testing.assert_frame_equal(train, small)
    assert holdout.empty and list(holdout.columns) == ["a"]
    big = pd.DataFrame({"a": range(100)})
    train, holdout = relational.split_holdout(big, 0.0, seed=0)
    assert len(train) == 100 and holdout.empty


def test_chinook_splits_follow_the_rules(chinook):
    followers = {"Invoice": "CustomerId", "InvoiceLine": "InvoiceId"}  # tables that hold people's rows, and theirs
    for name, (train, holdout) in chinook.splits.items():
        real = chinook.tables[name]
        assert len(train) + len(holdout) == len(real)
        if len(real) < MIN_ROWS_FOR_HOLDOUT or chinook.model.tables[name].method == REFERENCE_METHOD:
            assert holdout.empty, name
        elif name in followers:
            key = followers[name]
            assert set(train[key]).isdisjoint(holdout[key]), name
            fraction = chinook.spec.holdout_fraction
            assert 0.5 * fraction <= len(holdout) / len(real) <= 1.5 * fraction, name
        else:
            assert len(holdout) == round(len(real) * chinook.spec.holdout_fraction), name
        assert chinook.model.tables[name].train_rows == len(train)


# ---------------------------------------------------------------- nycflights


@pytest.mark.slow
def test_nycflights_integrity_nullable_tailnum_and_hub_airports(nycflights):
    synthetic = relational.generate_all(nycflights.model, nycflights.model_dir, scale=1.0, seed=0)
    real = nycflights.tables
    fks = nycflights.schema.foreign_keys
    assert len(fks) == 5
    assert sum(fk.parent_table == "airports" and fk.child_table == "flights" for fk in fks) == 2
    for fk in fks:
        assert synthetic[fk.child_table][fk.child_column].notna().any(), fk.label
        assert orphans(synthetic, fk) == 0, fk.label
        if not fk.nullable:
            assert synthetic[fk.child_table][fk.child_column].notna().all(), fk.label
    assert [fk.child_column for fk in fks if fk.nullable] == ["tailnum"]
    real_null, synth_null = real["flights"]["tailnum"].isna().mean(), synthetic["flights"]["tailnum"].isna().mean()
    assert real_null > 0 and synth_null > 0
    assert abs(real_null - synth_null) <= 0.003
    for table in ("flights", "weather"):
        real_hubs, synth_hubs = real[table]["origin"].nunique(), synthetic[table]["origin"].nunique()
        assert real_hubs == 3
        assert synth_hubs >= 2 and abs(synth_hubs - real_hubs) <= 1, (table, synth_hubs)
    assert synthetic["flights"]["dest"].nunique() == pytest.approx(real["flights"]["dest"].nunique(), rel=0.2)
    for name in real:
        assert len(synthetic[name]) == len(real[name]), name
