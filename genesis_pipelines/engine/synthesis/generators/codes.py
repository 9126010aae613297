"""Identifier and code columns (VCH-00001-alpha, N725MQ, AB12 3CD): format-preserving synthesis.

A value is cut into runs of one character class (upper-case letters, lower-case letters, digits) and separators
kept as they are; its shape is that sequence with run lengths (N725MQ -> A1 93 A2). The model keeps the shapes'
frequencies and, per shape and run, either the run's repeating values (a carrier suffix MQ, a prefix VCH) when
values repeat there, or one character distribution per position. Shapes seen fewer than MIN_COUNT times draw their
characters from the column's pooled distribution per class, so a rare value is never spelled out. Unique real
columns give unique synthetic values (duplicates are redrawn).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

_RUN = re.compile(r"[A-Z]+|[a-z]+|[0-9]+|[^A-Za-z0-9]")
MAX_SHAPES = 200
MIN_COUNT = 5  # a shape, token or character seen fewer times than this is not stored as such
MAX_TOKENS = 200  # repeating run values kept per run
REDRAW_ROUNDS = 20
_POOLS = {"A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "a": "abcdefghijklmnopqrstuvwxyz", "9": "0123456789"}


def _class(run: str) -> str | None:
    c = run[0]
    return "A" if "A" <= c <= "Z" else "a" if "a" <= c <= "z" else "9" if "0" <= c <= "9" else None


def _runs(value: str) -> list[str]:
    return _RUN.findall(value)


def _shape_of(runs: list[str]) -> list[list]:
    """[[class, length], ...] with separators as [None, the character]."""
    return [[_class(r), len(r)] if _class(r) else [None, r] for r in runs]


def _distribution(counter: Counter, min_count: int = 1) -> dict:
    kept = {k: v for k, v in counter.items() if v >= min_count}
    if not kept:
        return {}
    keys = sorted(kept, key=lambda k: (-kept[k], k))
    total = sum(kept.values())
    return {"values": keys, "probs": [kept[k] / total for k in keys]}


def fit_code(series: pd.Series, excluded: frozenset[str] = frozenset()) -> dict:
    """Shapes, per-run token or character distributions and the pooled class distributions: aggregates only.
    A repeating run that spells one of the `excluded` words (real PII, see free_text.excluded_words) is drawn
    character by character instead."""
    values = series.dropna().astype(str)
    pooled = {k: Counter() for k in _POOLS}
    by_shape: dict[str, list[list[str]]] = {}
    shapes: dict[str, list[list]] = {}
    for value in values:
        runs = _runs(value)
        shape = _shape_of(runs)
        key = repr(shape)
        shapes.setdefault(key, shape)
        by_shape.setdefault(key, []).append(runs)
        for run in runs:
            cls = _class(run)
            if cls:
                pooled[cls].update(run)
    ordered = sorted(by_shape, key=lambda k: (-len(by_shape[k]), k))[:MAX_SHAPES]
    total = sum(len(by_shape[k]) for k in ordered)
    out_shapes = []
    for key in ordered:
        rows, shape = by_shape[key], shapes[key]
        parts = []
        for index, (cls, length) in enumerate(shape):
            if cls is None:
                parts.append({"literal": length})
                continue
            if len(rows) < MIN_COUNT:
                parts.append({"class": cls, "length": length})
                continue
            tokens = Counter(r[index] for r in rows)
            if any(t.casefold() in excluded for t in tokens):
                tokens = Counter()
            if tokens and len(tokens) <= max(1, len(rows) // MIN_COUNT) and len(tokens) <= MAX_TOKENS:
                dist = _distribution(tokens, 2)
                if dist and sum(tokens[t] for t in dist["values"]) >= 0.9 * len(rows):
                    parts.append({"class": cls, "length": length, "tokens": dist})
                    continue
            positions = [_distribution(Counter(r[index][p] for r in rows)) for p in range(length)]
            parts.append({"class": cls, "length": length, "positions": positions})
        out_shapes.append({"share": len(rows) / total, "parts": parts})
    return {"kind": "code", "null_rate": float(series.isna().mean()), "shapes": out_shapes,
            "pooled": {k: _distribution(c) for k, c in pooled.items()},
            "unique": bool(len(values) > 1 and values.is_unique)}


def _draw(dist: dict, fallback: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if dist and dist.get("values"):
        return np.asarray(dist["values"], dtype=object)[rng.choice(len(dist["values"]), size=n, p=_norm(dist["probs"]))]
    return np.asarray(list(fallback), dtype=object)[rng.integers(0, len(fallback), n)]


def _norm(probs) -> np.ndarray:
    p = np.asarray(probs, dtype="float64")
    return p / p.sum()


def _sample_shape(spec: dict, shape: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    for part in shape["parts"]:
        if "literal" in part:
            out = out + part["literal"]
        elif "tokens" in part:
            out = out + _draw(part["tokens"], "", n, rng)
        else:
            positions = part.get("positions") or [None] * part["length"]
            for dist in positions:
                out = out + _draw(dist or spec["pooled"].get(part["class"], {}), _POOLS[part["class"]], n, rng)
    return out


def distinct_draws(values: np.ndarray, draw, rounds: int = REDRAW_ROUNDS) -> np.ndarray:
    """Repeated values redrawn (`draw(k)` gives k fresh ones) until all differ or the rounds run out: a column unique
    in the real table stays unique."""
    for _ in range(rounds):
        duplicated = pd.Series(values).duplicated().to_numpy()
        if not duplicated.any():
            break
        values[duplicated] = draw(int(duplicated.sum()))
    return values


def sample_code(spec: dict, n: int, rng: np.random.Generator) -> pd.Series:
    if not spec["shapes"]:
        return pd.Series([None] * n, dtype="string")
    values = _sample_rows(spec, n, rng)
    if spec.get("unique"):
        values = distinct_draws(values, lambda k: _sample_rows(spec, k, rng))
    series = pd.Series(values, dtype="string")
    return series.mask(rng.random(n) < spec["null_rate"])


def _sample_rows(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    which = rng.choice(len(spec["shapes"]), size=n, p=_norm([s["share"] for s in spec["shapes"]]))
    values = np.empty(n, dtype=object)
    for index in np.unique(which):
        rows = np.flatnonzero(which == index)
        values[rows] = _sample_shape(spec, spec["shapes"][index], len(rows), rng)
    return values


# used where the real column may not be looked at (differential privacy): upper-case letters and digits
PUBLIC_CODE_SPEC = {"kind": "code", "null_rate": 0.0, "unique": False, "pooled": {},
                    "shapes": [{"share": 1.0, "parts": [{"class": "A", "length": 3}, {"literal": "-"},
                                                        {"class": "9", "length": 5}]}]}
