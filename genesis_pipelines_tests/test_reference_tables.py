"""Reference tables (genres, languages, airlines): found from the data, kept as they are, children generated against
them; switched on or off in the spec; never in the copy gate; tables with personal data never qualify. And a key part
that numbers rows within the rest of its composite key (episodes within a series) is numbered so again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.reference_tables import REFERENCE_METHOD, find_reference_tables
from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.evaluation.privacy.audit import privacy_report
from genesis_pipelines.engine.privacy import pii
from genesis_pipelines.engine.synthesis import relational

GENRES = ["Rock", "Jazz", "Metal", "Alternative & Punk", "Blues", "Latin", "Reggae", "Pop", "Soundtrack", "Bossa Nova",
          "Easy Listening", "Heavy Metal", "R&B/Soul", "Electronica/Dance", "World", "Hip Hop/Rap", "Science Fiction",
          "TV Shows", "Sci Fi & Fantasy", "Drama", "Comedy", "Alternative", "Classical", "Opera", "Rock And Roll"]
FIRST = ["Luis", "Leonie", "François", "Bjørn", "Helena", "Daan", "Kara", "Eduardo", "Alexandre", "Roberto", "Fernanda",
         "Mark", "Jennifer", "Frank", "Jack", "Michelle", "Tim", "Dan", "Kathy", "Heather", "John", "Robert", "Edward"]
LAST = ["Gonçalves", "Köhler", "Tremblay", "Hansen", "Holý", "Peeters", "Nielsen", "Martins", "Rocha", "Almeida",
        "Philips", "Peterson", "Harris", "Gordon", "Mitchell", "Miller", "Goyer", "Brooks", "Smith", "Taylor"]


LONG = [GENRES.index("TV Shows") + 1, GENRES.index("Drama") + 1]


def _database(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """25 genres shared by 600 tracks with skewed popularity, and 40 listeners (people) with 200 plays."""
    popularity = rng.dirichlet(np.full(len(GENRES), 0.4))
    popularity[np.array(LONG) - 1] = 0.08  # common enough that the child model sees them
    popularity /= popularity.sum()
    genre_of = rng.choice(len(GENRES), 600, p=popularity) + 1
    listeners = pd.DataFrame({"listener_id": np.arange(1, 41),
                              "first_name": rng.choice(FIRST, 40), "last_name": rng.choice(LAST, 40),
                              "age": rng.integers(18, 80, 40)})
    return {
        "genre": pd.DataFrame({"genre_id": np.arange(1, len(GENRES) + 1), "name": GENRES,
                               "added": pd.Timestamp("2020-01-01")}),
        "track": pd.DataFrame({"track_id": np.arange(1, 601), "genre_id": genre_of,
                               # episodes of TV shows and dramas run 40 minutes, songs about four
                               "seconds": np.round(rng.gamma(4.0, 60.0, 600) + 2400 * np.isin(genre_of, LONG))}),
        "listener": listeners,
        "play": pd.DataFrame({"play_id": np.arange(1, 201), "listener_id": rng.integers(1, 41, 200),
                              "track_id": rng.integers(1, 601, 200)}),
    }


def _spec(**tables) -> dict:
    return {"name": "music", "seed": 0,
            "tables": {"genre": {"primary_key": "genre_id", **tables.get("genre", {})}, "track": {"primary_key": "track_id"},
                       "listener": {"primary_key": "listener_id", **tables.get("listener", {})},
                       "play": {"primary_key": "play_id"}},
            "foreign_keys": [{"child": "track.genre_id", "parent": "genre.genre_id"},
                             {"child": "play.listener_id", "parent": "listener.listener_id"},
                             {"child": "play.track_id", "parent": "track.track_id"}]}


def _analysed(document: dict, tables: dict):
    spec = parse_spec(document)
    schema = analyse(spec, tables)
    return spec, schema, pii.scan_tables(tables, schema, spec)


def test_a_small_table_shared_by_many_rows_is_reference_data_and_people_never_are():
    tables = _database(np.random.default_rng(0))
    spec, schema, findings = _analysed(_spec(), tables)
    found = find_reference_tables(schema, tables, findings, {t: s.reference for t, s in spec.tables.items()})
    assert list(found) == ["genre"]  # listeners have 5 plays each but hold names; tracks have < 1 play each
    assert "24.0 rows of track.genre_id -> genre.genre_id per row" in found["genre"]
    # switched off in the spec; declared on a table of people: a clear error naming table and column, no value
    spec, schema, findings = _analysed(_spec(genre={"reference": False}), tables)
    assert find_reference_tables(schema, tables, findings, {t: s.reference for t, s in spec.tables.items()}) == {}
    spec, schema, findings = _analysed(_spec(listener={"reference": True}), tables)
    with pytest.raises(SpecError, match=r"table 'listener' is declared reference data, but its column '\w+_name'") as err:
        find_reference_tables(schema, tables, findings, {t: s.reference for t, s in spec.tables.items()})
    assert not any(name in str(err.value) for name in FIRST + LAST)


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    tables = _database(np.random.default_rng(1))
    spec, schema, findings = _analysed(_spec(), tables)
    root = tmp_path_factory.mktemp("reference_model")
    trained, splits = relational.train(spec, schema, tables, findings, root)
    model, model_dir = relational.load_model(root)
    return {"real": tables, "model": model, "splits": splits, "synth": relational.generate_all(model, model_dir, seed=0),
            "scaled": relational.generate_all(model, model_dir, seed=0, scale=2.0)}


def test_reference_rows_are_kept_and_children_follow_each_ones_real_popularity(music):
    real, synth, model = music["real"], music["synth"], music["model"]
    assert model.tables["genre"].method == REFERENCE_METHOD
    assert model.db_schema.tables["genre"].columns["name"].sdtype == "categorical"
    assert music["splits"]["genre"][1].empty  # nothing held out of what is kept by design
    pd.testing.assert_frame_equal(synth["genre"].reset_index(drop=True), real["genre"], check_dtype=False)
    assert len(music["scaled"]["genre"]) == len(GENRES)  # the vocabulary does not grow with the scale
    assert len(music["scaled"]["track"]) == 2 * len(real["track"])
    assert synth["track"]["genre_id"].isin(real["genre"]["genre_id"]).all()
    per_genre = [df["genre_id"].value_counts().reindex(real["genre"]["genre_id"], fill_value=0) for df in (real["track"], synth["track"])]
    assert np.corrcoef(per_genre[0], per_genre[1])[0, 1] > 0.95
    # the child is conditioned on its genre: tracks of the long genres stay longer (the copula's binary indicators
    # keep the direction, not the full 10x gap)
    long = [df["seconds"][df["genre_id"].isin(LONG)].median() for df in (real["track"], synth["track"])]
    short = [df["seconds"][~df["genre_id"].isin(LONG)].median() for df in (real["track"], synth["track"])]
    assert long[0] > 10 * short[0] and long[1] > 1.5 * short[1]


def test_a_reference_table_is_reported_and_left_out_of_the_copy_gate(music):
    model, synth, splits = music["model"], music["synth"], music["splits"]
    report = privacy_report({t: s[0] for t, s in splits.items()}, {t: s[1] for t, s in splits.items()}, synth,
                            model.db_schema, exclude={}, thresholds={"exact_copies_max": 0},
                            model_describe={t: m.describe for t, m in model.tables.items()})
    genre = report["tables"]["genre"]
    assert genre["in_copy_gate"] is False and "rows of track.genre_id" in genre["reference_table"]
    assert genre["exact_copies"]["copies"] == len(GENRES)  # every row is a copy, by design, and counted as one


def test_a_key_part_numbering_rows_within_the_rest_of_the_key_is_numbered_so_again(tmp_path):
    """Episodes are 1..k within their series (a composite key): synthetic ones too, not 1..n over the table, and the
    composite FK from their ratings still resolves."""
    rng = np.random.default_rng(4)
    per_series = rng.integers(6, 11, 12)
    episodes = pd.DataFrame({"series": np.repeat(np.arange(1, 13), per_series),
                             "episode": np.concatenate([np.arange(1, k + 1) for k in per_series])})
    episodes["viewers"] = np.round(rng.gamma(5.0, 1.0, len(episodes)) + episodes["episode"] * 0.3, 2)
    tables = {"series": pd.DataFrame({"series": np.arange(1, 13), "channel": rng.choice(["BBC Two", "BBC One"], 12)}),
              "episodes": episodes,
              "ratings": episodes[["series", "episode"]].assign(share=np.round(rng.uniform(5, 30, len(episodes)), 1))}
    document = {"name": "show", "seed": 0,
                "tables": {"series": {"primary_key": "series"}, "episodes": {"primary_key": ["series", "episode"]},
                           "ratings": {"primary_key": ["series", "episode"]}},
                "foreign_keys": [{"child": "episodes.series", "parent": "series.series"},
                                 {"child": ["ratings.series", "ratings.episode"],
                                  "parent": ["episodes.series", "episodes.episode"]}]}
    spec, schema, findings = _analysed(document, tables)
    relational.train(spec, schema, tables, findings, tmp_path)
    model, model_dir = relational.load_model(tmp_path)
    assert model.tables["episodes"].key_stats["episode"].within == ["series"]
    synth = relational.generate_all(model, model_dir, seed=0)
    numbers = synth["episodes"].groupby("series")["episode"]
    assert (numbers.min() == 1).all() and (numbers.max() == numbers.size()).all()
    assert synth["episodes"]["episode"].max() <= 2 * episodes["episode"].max()
    assert not synth["episodes"].duplicated(["series", "episode"]).any()
    pairs = set(map(tuple, synth["episodes"][["series", "episode"]].astype("int64").to_numpy().tolist()))
    assert all(p in pairs for p in map(tuple, synth["ratings"][["series", "episode"]].astype("int64").to_numpy().tolist()))
