"""Issue 5: stratified copula sampling, plausible parent combinations, columns drawn once per parent, and copies
of unique real records resolved by exchanging values between rows (marginals kept)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis_pipelines.engine.analysis.schema_inference import analyse
from genesis_pipelines.engine.core.spec import parse_spec
from genesis_pipelines.engine.privacy import record_guard
from genesis_pipelines.engine.synthesis.generators import GaussianCopulaGenerator
from genesis_pipelines.engine.synthesis.relational.sampling import _swap_copies


def _meta(frame: pd.DataFrame):
    return analyse(parse_spec({"name": "t"}), {"t": frame}).tables["t"]


def test_stratified_copula_follows_the_learned_shares_without_sampling_noise():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"country": rng.choice(list("ABCDEFGH"), 400, p=[.3, .2, .15, .1, .1, .05, .05, .05]),
                          "x": rng.normal(size=400)})
    meta = _meta(frame)
    shares = frame["country"].value_counts(normalize=True)
    generator = GaussianCopulaGenerator()
    generator.fit(frame, meta, seed=0)
    for seed in range(3):  # every category within one row of its share of 60
        counts = generator.sample(60, seed=seed)["country"].value_counts().reindex(shares.index, fill_value=0)
        assert (counts - shares * 60).abs().max() <= 1.01
    # the ranks, hence the dependence, are untouched: a conditional draw still follows its condition
    frame["y"] = frame["x"] * 2 + rng.normal(scale=0.1, size=400)
    generator = GaussianCopulaGenerator()
    generator.fit(frame, _meta(frame), seed=0)
    high = generator.sample(200, conditions=pd.DataFrame({"x": np.full(200, 1.5)}), seed=1)
    assert high["y"].mean() > 2.0


def test_swapping_resolves_copies_and_keeps_every_marginal():
    """Ten customers, six with no company: (no company, a one-customer country) is a unique real record."""
    real = pd.DataFrame({"company": [None] * 6 + ["Acme", "Bolt", "Cole", "Dyne"], "country": list("AABBCDEFGH")})
    meta = _meta(real)
    columns = ["company", "country"]
    digests = set(record_guard.unique_record_digests(real, columns, meta, "salt"))
    body = real.astype("string").sample(frac=1.0, random_state=1).reset_index(drop=True)

    def copies(frame):
        return int(record_guard.copy_mask(frame, columns, meta, "salt", digests).sum())

    assert copies(body) == 6  # the rows with a one-customer country or a company
    swapped = _swap_copies(body, columns, meta, "salt", digests, columns, np.random.default_rng(0))
    assert copies(swapped) <= 2  # what no exchange can fix is left to the redraw
    for column in columns:
        assert sorted(swapped[column].fillna("-")) == sorted(body[column].fillna("-"))


@pytest.fixture(scope="module")
def chinook(chinook_trained, chinook_synthetic):
    return {"real": chinook_trained.tables, "model": chinook_trained.model, "synth": chinook_synthetic}


def test_billing_columns_are_one_per_customer(chinook):
    relation = next(r for r in chinook["model"].relations if r.fk.label.startswith("Invoice.CustomerId"))
    assert "BillingCity" in relation.constant
    invoices = chinook["synth"]["Invoice"]
    per_customer = invoices.groupby("CustomerId")["BillingCity"].nunique(dropna=False)
    assert (per_customer <= 1).mean() >= 0.95


def test_several_parents_are_chosen_jointly(chinook):
    """Video tracks go with the video genres (TV shows, drama, sci-fi), as in the real store; chosen independently,
    a genre would be as likely for a video track as for any other."""
    shares = []
    for frames in (chinook["real"], chinook["synth"]):
        tracks = frames["Track"].merge(frames["MediaType"], on="MediaTypeId", suffixes=("", "_media"))
        tracks = tracks.merge(frames["Genre"], on="GenreId", suffixes=("", "_genre"))
        video = tracks["Name_media"].astype(str).str.contains("video")
        top = tracks.loc[video, "Name_genre"].astype(str).value_counts().index[:3]
        shares.append(float(tracks.loc[video, "Name_genre"].astype(str).isin(top).mean()))
        overall = float(tracks["Name_genre"].astype(str).isin(top).mean())
        assert shares[-1] > overall + 0.3
    assert shares[1] >= 0.6
