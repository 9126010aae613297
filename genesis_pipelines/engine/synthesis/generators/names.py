"""Entity names that are not personal data (track and film titles, product, place and company names).

Mostly-distinct names are recombined from the real column's tokens: a word count drawn from the real ones, then a
first, middle and last word each drawn from the words seen at that place ("For Those About To Rock" gives "For"
as a first word, "Rock" as a last one). Whole unique values are not stored; the vocabulary is capped to the most
frequent words. Unique real columns give unique synthetic values where the vocabulary allows.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from genesis_pipelines.engine.synthesis.generators.codes import distinct_draws

MAX_VOCABULARY = 5000  # words kept per place (first, middle, last), most frequent first
MAX_WORDS = 40
_WORD = re.compile(r"[^\W\d_]{3,}")


def word_chunks(text: str) -> list[str]:
    """The casefolded letter runs of three or more letters in a text: how tokens are compared with PII words."""
    return _WORD.findall(str(text).casefold())


def _vocabulary(counter: Counter) -> dict:
    words = sorted(counter, key=lambda w: (-counter[w], w))[:MAX_VOCABULARY]
    total = sum(counter[w] for w in words)
    return {"values": words, "probs": [counter[w] / total for w in words]}


def fit_name(series: pd.Series, excluded: frozenset[str] = frozenset()) -> dict:
    """Word counts and the words per place; a word holding one of the `excluded` words (the dataset's real PII,
    see free_text.excluded_words) is left out of every vocabulary."""
    values = series.dropna().astype(str)
    words = values.str.split()
    counts = Counter(min(len(w), MAX_WORDS) for w in words if w)
    first, middle, last = Counter(), Counter(), Counter()
    for tokens in words:
        if not tokens:
            continue
        first[tokens[0]] += 1
        if len(tokens) > 1:
            last[tokens[-1]] += 1
            middle.update(tokens[1:-1])
    if excluded:
        for counter in (first, middle, last):
            for word in [w for w in counter if any(chunk in excluded for chunk in word_chunks(w))]:
                del counter[word]
    total = sum(counts.values())
    return {"kind": "name", "null_rate": float(series.isna().mean()),
            "word_counts": {"values": sorted(counts), "probs": [counts[k] / total for k in sorted(counts)]},
            "first": _vocabulary(first or last or middle), "middle": _vocabulary(middle or last or first),
            "last": _vocabulary(last or first or middle),
            "unique": bool(len(values) > 1 and values.is_unique)}


def _draw(vocabulary: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    p = np.asarray(vocabulary["probs"], dtype="float64")
    return np.asarray(vocabulary["values"], dtype=object)[rng.choice(len(p), size=n, p=p / p.sum())]


def _sample_rows(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    sizes = np.asarray(spec["word_counts"]["values"], dtype="int64")
    p = np.asarray(spec["word_counts"]["probs"], dtype="float64")
    k = sizes[rng.choice(len(sizes), size=n, p=p / p.sum())]
    first = _draw(spec["first"], n, rng)
    last = _draw(spec["last"], n, rng)
    middle = _draw(spec["middle"], int(np.maximum(k - 2, 0).sum()), rng) if spec["middle"]["values"] else np.array([], dtype=object)
    # every row's words laid end to end (first, its middle words in draw order, last), joined in Arrow: no Python
    # per row; a row of one word has no middle or last
    inner = np.maximum(k - 2, 0) if len(middle) else np.zeros(n, dtype="int64")
    multi = k > 1
    offsets = np.concatenate([[0], np.cumsum(np.where(multi, 2 + inner, 1))])
    flat = np.empty(int(offsets[-1]), dtype=object)
    flat[offsets[:-1]] = first
    flat[offsets[1:][multi] - 1] = last[multi]
    if inner.sum():
        owner = np.repeat(np.arange(n), inner)
        within = np.arange(int(inner.sum())) - np.repeat(np.cumsum(inner) - inner, inner)
        flat[offsets[owner] + 1 + within] = middle[: int(inner.sum())]
    words = pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), pa.array(flat, type=pa.string()))
    return _balanced_all(pc.binary_join(words, " ")).to_numpy(zero_copy_only=False)


def _balanced_all(texts: pa.Array) -> pa.Array:
    """Words drawn from different titles may open a bracket or quote that none closes: such marks dropped, then the
    spaces at either end (kept when nothing else is left). Arrow kernels over every text at once; the words hold no
    whitespace, so the ends can only hold spaces."""
    for opening, closing in (("(", ")"), ("[", "]")):
        unpaired = pc.not_equal(pc.count_substring(texts, opening), pc.count_substring(texts, closing))
        texts = pc.if_else(unpaired, pc.replace_substring(pc.replace_substring(texts, opening, ""), closing, ""), texts)
    odd = pc.equal(pc.bit_wise_and(pc.count_substring(texts, '"'), 1), 1)
    texts = pc.if_else(odd, pc.replace_substring(texts, '"', ""), texts)
    stripped = pc.utf8_trim(texts, " ")
    return pc.if_else(pc.equal(pc.utf8_length(stripped), 0), texts, stripped)


def sample_name(spec: dict, n: int, rng: np.random.Generator) -> pd.Series:
    if not spec["first"]["values"]:
        return pd.Series([None] * n, dtype="string")
    if not spec["last"]["values"]:
        spec = {**spec, "last": spec["first"], "middle": spec["middle"] if spec["middle"]["values"] else spec["first"]}
    values = _sample_rows(spec, n, rng)
    if spec.get("unique"):
        values = distinct_draws(values, lambda k: _sample_rows(spec, k, rng))
    return pd.Series(values, dtype="string").mask(rng.random(n) < spec["null_rate"])


def public_name_spec() -> dict:
    """Where the real column may not be looked at (differential privacy): words of Faker's catch phrases."""
    from faker.providers.company.en_US import Provider

    words = sorted({w for group in Provider.catch_phrase_words for w in group})
    vocabulary = {"values": words, "probs": [1.0 / len(words)] * len(words)}
    return {"kind": "name", "null_rate": 0.0, "unique": False,
            "word_counts": {"values": [1, 2, 3], "probs": [0.2, 0.5, 0.3]},
            "first": vocabulary, "middle": vocabulary, "last": vocabulary}
