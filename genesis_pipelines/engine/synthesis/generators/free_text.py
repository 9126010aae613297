"""String columns generated outside the statistical models, by kind (see schema.string_kind).

Prose (`text`) becomes lorem sentences whose word counts follow the real column, so no real words are ever
produced; codes (`code`) keep their format (codes.py); entity names (`name`) are recombined from real words
(names.py). Every generator routes these kinds here, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import pandas as pd
from faker.providers.lorem.la import Provider as _Lorem

from genesis_pipelines.engine.core.spec import STRING_KINDS
from genesis_pipelines.engine.synthesis.generators.codes import PUBLIC_CODE_SPEC, fit_code, sample_code
from genesis_pipelines.engine.synthesis.generators.names import fit_name, public_name_spec, sample_name, word_chunks

_WORDS = np.asarray(sorted(set(_Lorem.word_list)), dtype=object)
# used where the real column may not be looked at (differential privacy): a data-independent length profile
PUBLIC_TEXT_SPEC = {"null_rate": 0.0, "words": np.linspace(1.0, 12.0, 21).tolist()}

__all__ = ["STRING_KINDS", "excluded_words", "fit_text", "public_text_spec", "redraw_forbidden", "sample_text"]
_EXCLUDED: ContextVar[frozenset[str]] = ContextVar("genesis_excluded_words", default=frozenset())


@contextmanager
def excluded_words(values: Iterable[str]) -> Iterator[None]:
    """While fitting, no code or name vocabulary keeps a token holding a word of these values (the dataset's real
    PII, such as a customer's last name that is also a word of a track title): the model never stores it."""
    token = _EXCLUDED.set(frozenset(w for v in values for w in word_chunks(v)))
    try:
        yield
    finally:
        _EXCLUDED.reset(token)


def fit_text(series: pd.Series, sdtype: str = "text") -> dict:
    """The generation spec of a string column of the given kind; prose keeps the null rate and 21 quantiles of
    the word count, aggregates only."""
    if sdtype == "code":
        return fit_code(series, _EXCLUDED.get())
    if sdtype == "name":
        return fit_name(series, _EXCLUDED.get())
    words = series.dropna().astype(str).str.split().str.len()
    return {"null_rate": float(series.isna().mean()),
            "words": np.quantile(words, np.linspace(0, 1, 21)).tolist() if len(words) else [1.0, 1.0]}


def public_text_spec(sdtype: str = "text") -> dict:
    """A spec that looks at no real value, for differentially private generators."""
    if sdtype == "code":
        return dict(PUBLIC_CODE_SPEC)
    if sdtype == "name":
        return public_name_spec()
    return dict(PUBLIC_TEXT_SPEC)


def sample_text(spec: dict, n: int, rng: np.random.Generator) -> pd.Series:
    kind = spec.get("kind", "text")
    if kind == "code":
        return sample_code(spec, n, rng)
    if kind == "name":
        return sample_name(spec, n, rng)
    counts = np.maximum(1, np.round(np.interp(rng.random(n), np.linspace(0, 1, len(spec["words"])), spec["words"]))).astype(int)
    words = _WORDS[rng.integers(0, len(_WORDS), int(counts.sum()))]
    ends = np.cumsum(counts)
    texts = [" ".join(words[e - c:e]).capitalize() for c, e in zip(counts, ends)]
    series = pd.Series(texts, dtype="string")
    return series.mask(rng.random(n) < spec["null_rate"])


def redraw_forbidden(frame: pd.DataFrame, columns: list[str], forbidden, draw, rounds: int = 5) -> pd.DataFrame:
    """Code and name values drawn from real tokens may spell a real PII value of another column (a track titled
    like a customer's last name): such values are replaced by fresh draws of the same column, `draw(k)` giving k
    new rows. `forbidden` answers `value in forbidden` (salted digests of the real PII values)."""
    if not forbidden or frame.empty:
        return frame
    for column in columns:
        values = frame[column].astype(object).to_numpy(copy=True)
        for _ in range(rounds):
            hits = np.fromiter((v is not None and v is not pd.NA and v in forbidden for v in values), dtype=bool,
                               count=len(values))
            if not hits.any():
                break
            values[hits] = draw(int(hits.sum()))[column].astype(object).to_numpy()
        frame[column] = pd.Series(values, index=frame.index, dtype=frame[column].dtype)
    return frame
