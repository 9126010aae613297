"""Rules that span two parents of a row (engine/analysis/rules/): a column bounded by both parents, a minimum of children
that only a full cross product meets, and an approximate child == parent share where most parents hold one value.
Small data made here; the corpus check is benchmarks/bench_corpus.py on bakeoff and sakila."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis import rules
from genesis_pipelines.engine.analysis.rules import children
from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.schema import ForeignKey, key_values
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.synthesis import relational


def _bound_rules() -> list[Rule]:
    """A shift's grade at least its worker's lowest grade and at most its job's top grade."""
    common = {"kind": "parent_order", "table": "shifts", "columns": ["grade"], "share": 1.0, "step": 1.0}
    return [Rule(id="low", parent_table="workers", parent_column="min_grade", fk_column="worker_id",
                 parent_key="worker_id", parent_is_low=True, **common),
            Rule(id="high", parent_table="jobs", parent_column="max_grade", fk_column="job_id",
                 parent_key="job_id", parent_is_low=False, **common)]


def _fks() -> list[ForeignKey]:
    return [ForeignKey(child_table="shifts", child_column="worker_id", parent_table="workers", parent_column="worker_id"),
            ForeignKey(child_table="shifts", child_column="job_id", parent_table="jobs", parent_column="job_id")]


def test_parents_whose_bounds_cross_are_exchanged_and_every_parent_keeps_its_children():
    rng = np.random.default_rng(0)
    workers = pd.DataFrame({"worker_id": np.arange(40), "min_grade": rng.integers(1, 6, 40)})
    jobs = pd.DataFrame({"job_id": np.arange(30), "max_grade": rng.integers(3, 9, 30)})
    keys = {"worker_id": pd.Series(rng.integers(0, 40, 600), dtype="Int64"),
            "job_id": pd.Series(rng.integers(0, 30, 600), dtype="Int64")}
    low = workers["min_grade"].to_numpy()[keys["worker_id"].to_numpy(dtype=int)]
    high = jobs["max_grade"].to_numpy()[keys["job_id"].to_numpy(dtype=int)]
    assert (low > high).sum() > 20  # the independent choice leaves no room in many rows
    before = {c: v.value_counts().sort_index() for c, v in keys.items()}
    left = children.room_between_parents(_bound_rules(), _fks(), keys, {"workers": workers, "jobs": jobs}, [], rng)
    low = workers["min_grade"].to_numpy()[keys["worker_id"].to_numpy(dtype=int)]
    high = jobs["max_grade"].to_numpy()[keys["job_id"].to_numpy(dtype=int)]
    assert left == 0 and (low <= high).all()
    for column, counts in before.items():  # exchanges only: children per parent unchanged
        pd.testing.assert_series_equal(keys[column].value_counts().sort_index(), counts)


def test_parents_short_of_their_fewest_children_get_rows_with_a_free_rest_of_the_key():
    """Every player has a result in each of the 3 rounds of their league (min_children 3), but the rounds asked for
    2 rows each: rows are added, one per round a short player has no row in, and the key stays unique."""
    players = pd.DataFrame({"league": [1] * 4 + [2] * 3, "player": list("abcdxyz")})
    rounds = pd.DataFrame({"league": [1, 1, 1, 2, 2, 2], "round": [1, 2, 3, 1, 2, 3]})
    fks = [ForeignKey(child_table="results", child_columns=["league", "round"], parent_table="rounds",
                      parent_columns=["league", "round"]),
           ForeignKey(child_table="results", child_columns=["league", "player"], parent_table="players",
                      parent_columns=["league", "player"])]
    planned = pd.DataFrame({"league": [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2], "round": [1, 1, 2, 2, 3, 3] * 2,
                            "player": list("ababcd") + list("xyxyzz")[:5] + ["x"]})
    planned = planned.drop_duplicates(["league", "round", "player"]).reset_index(drop=True)
    keys = {c: planned[c].astype("Int64" if c != "player" else "string") for c in planned.columns}
    keys["league+round"] = key_values(planned, ["league", "round"]).astype(object)
    keys["league+player"] = key_values(planned, ["league", "player"]).astype(object)
    rule = Rule(id="m", kind="min_children", table="results", columns=["league+player"], share=1.0,
                parent_table="players", parent_column="league+player", min_count=3)
    added = children.fill_min_children([rule], fks, keys, {"players": players, "rounds": rounds},
                                    ["league", "round", "player"], np.random.default_rng(0))
    out = pd.DataFrame({c: keys[c] for c in ("league", "round", "player")})
    assert added == len(out) - len(planned) > 0
    assert not out.duplicated().any()
    assert out.groupby(["league", "player"]).size().reindex(pd.MultiIndex.from_frame(players), fill_value=0).min() == 3
    assert (key_values(out, ["league", "player"]).to_numpy() == keys["league+player"].to_numpy()).all()


def test_rows_without_room_take_the_null_the_real_data_has_there():
    """No parent pair leaves room (every job caps below every worker's floor in some rows): the grade is empty
    there, as in real rows, and as many empty rows that have room take a grade, so the null share is kept."""
    workers = pd.DataFrame({"worker_id": [0, 1], "min_grade": [2, 6]})
    jobs = pd.DataFrame({"job_id": [0, 1], "max_grade": [8, 4]})
    body = pd.DataFrame({"worker_id": [0, 1, 1, 0, 0, 1] * 20, "job_id": [0, 1, 0, 1, 0, 1] * 20,
                         "grade": [3.0, 5.0, np.nan, np.nan, 4.0, 6.0] * 20})
    found = [r.model_copy(update={"child_nulls": True}) for r in _bound_rules()]
    fixed = rules.enforce(found, body.copy(), {"workers": workers, "jobs": jobs}, np.random.default_rng(1))
    assert all(v["violations"] == 0 for v in rules.violations(found, {"shifts": fixed, "workers": workers, "jobs": jobs}))
    crossed = (fixed["worker_id"] == 1) & (fixed["job_id"] == 1)
    assert fixed.loc[crossed, "grade"].isna().all()
    assert fixed["grade"].isna().sum() == body["grade"].isna().sum()


def test_an_approximate_equal_share_comes_down_where_most_parents_hold_one_value():
    """A child column repeats its parent's value in 30% of real rows; most parents hold 1 and the generator wrote
    1 into half the rows. Exchanges alone would hand the equality on; the share ends within 5 points."""
    rng = np.random.default_rng(3)
    parents = pd.DataFrame({"pid": np.arange(100), "stars": np.where(rng.random(100) < 0.85, 1, 0)})
    body = pd.DataFrame({"pid": rng.integers(0, 100, 300),
                         "score": np.where(rng.random(300) < 0.5, 1.0, np.round(rng.uniform(2, 15, 300), 2))})
    rule = Rule(id="eq", kind="parent_equal", table="child", columns=["score"], share=0.3, parent_table="parents",
                parent_column="stars", parent_key="pid", fk_column="pid")
    assert rules.violations([rule], {"child": body, "parents": parents})[0]["synthetic_share"] > 0.4
    fixed = rules.enforce([rule], body.copy(), {"parents": parents}, np.random.default_rng(0))
    assert abs(rules.violations([rule], {"child": fixed, "parents": parents})[0]["synthetic_share"] - 0.3) <= 0.05


def _tournament(seed: int = 4) -> dict[str, pd.DataFrame]:
    """Leagues with players and rounds; every player has a result in every round of their league (a full cross
    product). A result's rank is at least the player's best rank and at most the players left in the round; a
    player who is out has no rank (null), so the bounds never cross on a ranked row."""
    rng = np.random.default_rng(seed)
    players, rounds, results = [], [], []
    for league in range(1, 9):
        size = int(rng.integers(7, 11))
        best = rng.permutation(np.arange(1, size + 1))
        out_after = rng.permutation(np.arange(1, size + 1))  # the round a player leaves in
        n_rounds = size - 2
        for i in range(size):
            players.append({"league": league, "player": f"P{league}-{i}", "best": int(best[i]),
                            "worst": int(min(size, best[i] + rng.integers(2, 6)))})
        for r in range(1, n_rounds + 1):
            left = int((out_after >= r).sum())
            rounds.append({"league": league, "round": r, "players_left": left})
            for i in range(size):
                playing = out_after[i] >= r and best[i] <= left
                rank = float(rng.integers(best[i], min(left, players[-size + i]["worst"]) + 1)) if playing else np.nan
                results.append({"league": league, "round": r, "player": f"P{league}-{i}", "rank": rank})
    return {"players": pd.DataFrame(players), "rounds": pd.DataFrame(rounds), "results": pd.DataFrame(results)}


@pytest.mark.slow
def test_two_parent_bounds_and_cross_product_minimum_hold_end_to_end(tmp_path):
    tables = _tournament()
    spec = parse_spec({"name": "league", "seed": 0,
                       "tables": {"players": {"primary_key": ["league", "player"]}, "rounds": {"primary_key": ["league", "round"]},
                                  "results": {"primary_key": ["league", "round", "player"]}},
                       "foreign_keys": [{"child": ["results.league", "results.round"], "parent": ["rounds.league", "rounds.round"]},
                                        {"child": ["results.league", "results.player"], "parent": ["players.league", "players.player"]}]})
    schema = analyse(spec, tables)
    relational.train(spec, schema, tables, pii.scan_tables(tables, schema, spec), tmp_path)
    model, model_dir = relational.load_model(tmp_path)
    kept = [r for t in model.tables.values() for r in t.rules]
    ids = {r.id for r in kept}
    assert any(i.startswith("parent_order:players.best<=results.rank") for i in ids), ids
    assert any(i.startswith("parent_order:results.rank<=rounds.players_left") for i in ids), ids
    minimum = next(r for r in kept if r.id.startswith("min_children:players->results"))
    assert minimum.min_count >= 5  # a result in every round
    for seed in range(2):
        synthetic = relational.generate_all(model, model_dir, seed=seed)
        assert not synthetic["results"].duplicated(["league", "round", "player"]).any()
        for result in rules.violations(kept, synthetic):
            if result["real_share"] >= 1:
                assert result["violations"] == 0, (seed, result)
            else:
                assert abs(result["synthetic_share"] - result["real_share"]) <= 0.05, (seed, result)
