"""Free-text columns: lorem sentences whose word counts follow the real column, so no real words are ever produced."""

from __future__ import annotations

import numpy as np
import pandas as pd
from faker.providers.lorem.la import Provider as _Lorem

_WORDS = np.asarray(sorted(set(_Lorem.word_list)), dtype=object)
# used where the real column may not be looked at (differential privacy): a data-independent length profile
PUBLIC_TEXT_SPEC = {"null_rate": 0.0, "words": np.linspace(1.0, 12.0, 21).tolist()}


def fit_text(series: pd.Series) -> dict:
    """Null rate and 21 quantiles of the word count: aggregates only."""
    words = series.dropna().astype(str).str.split().str.len()
    return {"null_rate": float(series.isna().mean()),
            "words": np.quantile(words, np.linspace(0, 1, 21)).tolist() if len(words) else [1.0, 1.0]}


def sample_text(spec: dict, n: int, rng: np.random.Generator) -> pd.Series:
    counts = np.maximum(1, np.round(np.interp(rng.random(n), np.linspace(0, 1, len(spec["words"])), spec["words"]))).astype(int)
    words = _WORDS[rng.integers(0, len(_WORDS), int(counts.sum()))]
    ends = np.cumsum(counts)
    texts = [" ".join(words[e - c:e]).capitalize() for c, e in zip(counts, ends)]
    series = pd.Series(texts, dtype="string")
    return series.mask(rng.random(n) < spec["null_rate"])
