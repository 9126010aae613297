"""Rows as numbers for the privacy attacks: shared category codes, rank-scaled distances, seeded samples.

Every attack module measures on these encodings, so a synthetic and a real row are compared alike whichever
attack asks. The attack primitives (`evaluation.attacks`, sklearn) are imported on first use.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import NUMERIC_LIKE, category_keys, sample_rows, to_float
from genesis_pipelines.engine.core.schema import TableMeta


class _LazyModule:
    """The attacks module (sklearn), imported on first use: a caller that imports a privacy module for its
    constants or a helper that needs no attack should not pay for sklearn."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


attacks = _LazyModule("genesis_pipelines.engine.evaluation.attacks")


MIN_HOLDOUT_ROWS = 20
TOP_CATEGORIES = 50
MAX_REFERENCE = 100_000  # train / holdout / synthetic rows kept per table (seeded sample beyond)
_ONE_HOT_WEIGHT = 1.0 / np.sqrt(2.0)  # a category mismatch then weighs as much as the largest numeric gap (1)
# anything closer than this is the same point (distances are float64; encodings are float32)
TIE = 1e-5


def joint_column_codes(frames: list[pd.DataFrame], column: str, sdtype: str | None) -> list[np.ndarray]:
    if sdtype in NUMERIC_LIKE:
        parts = [pd.Series(to_float(f[column], sdtype)) for f in frames]
    else:
        parts = category_keys(*(f[column] for f in frames))
    labels, _ = pd.factorize(pd.concat(parts, ignore_index=True), use_na_sentinel=False)
    return np.split(labels.astype(np.int64), np.cumsum([len(f) for f in frames])[:-1])


def as_floats(frames: list[pd.DataFrame], meta: TableMeta, column: str) -> list[np.ndarray]:
    """Numbers as floats, categories as codes shared by every frame (nulls one code)."""
    sdtype = meta.columns[column].sdtype
    if sdtype in NUMERIC_LIKE:
        return [to_float(f[column], sdtype) for f in frames]
    return [c.astype("float64") for c in joint_column_codes(frames, column, sdtype)]


def encode(train: pd.DataFrame, frames: list[pd.DataFrame], meta: TableMeta, columns: list[str]) -> list[np.ndarray]:
    """Rank-scaled numbers and weighted one-hot categories, fitted on train, so no column dominates by its units."""
    return stack_columns(encode_columns(train, frames, meta, columns), frames)


def stack_columns(per_column: list[list[np.ndarray]], frames: list[pd.DataFrame], skip: int | None = None
                  ) -> list[np.ndarray]:
    """encode's matrices from encode_columns' blocks, without the column at position `skip`: each column's block
    depends on that column alone, so this equals encoding the other columns."""
    blocks = [[b for i, column in enumerate(per_column) if i != skip for b in column[f]] for f in range(len(frames))]
    return [np.hstack(b).astype(np.float32) if b else np.zeros((len(f), 0), np.float32) for b, f in zip(blocks, frames)]


def encode_columns(train: pd.DataFrame, frames: list[pd.DataFrame], meta: TableMeta, columns: list[str]
                   ) -> list[list[list[np.ndarray]]]:
    """encode's blocks: per column, per frame, the arrays that column adds (none when it has no values to scale)."""
    per_column: list[list[list[np.ndarray]]] = []
    for column in columns:
        blocks: list[list[np.ndarray]] = [[] for _ in frames]
        per_column.append(blocks)
        sdtype = meta.columns[column].sdtype
        if sdtype in NUMERIC_LIKE:
            reference = to_float(train[column], sdtype)
            has_null = bool(np.isnan(reference).any())
            reference = np.sort(reference[~np.isnan(reference)])
            values = [to_float(f[column], sdtype) for f in frames]
            has_null = has_null or any(bool(np.isnan(v).any()) for v in values)
            for block, v in zip(blocks, values):
                missing = np.isnan(v)
                if len(reference):
                    left = np.searchsorted(reference, v, side="left")
                    right = np.searchsorted(reference, v, side="right")
                    rank = (left + right) / (2.0 * len(reference))
                    rank[missing] = 0.5
                    block.append(rank[:, None])
                if has_null:
                    block.append(missing.astype(float)[:, None])
        else:
            keys = category_keys(train[column], *(f[column] for f in frames))
            labels, _ = pd.factorize(pd.concat(keys, ignore_index=True), use_na_sentinel=False)
            parts = np.split(labels, np.cumsum([len(k) for k in keys])[:-1])
            counts = np.bincount(parts[0]) if len(parts[0]) else np.zeros(0, dtype=int)
            top = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
            slot = np.full(int(labels.max()) + 1 if len(labels) else 0, -1)
            slot[top] = np.arange(len(top))
            # Categories outside the top share one "other" slot: rare values differ from common ones,
            # though not from each other.
            width = len(top) + (1 if len(slot) > len(top) else 0)
            slot[slot < 0] = len(top)
            for block, part in zip(blocks, parts[1:]):
                one_hot = np.zeros((len(part), width))
                where = slot[part] if len(part) else np.zeros(0, dtype=int)
                keep = where < width
                one_hot[np.flatnonzero(keep), where[keep]] = _ONE_HOT_WEIGHT
                block.append(one_hot)
    return per_column


def pick(n: int, limit: int, seed: int) -> np.ndarray:
    """Deterministic row positions: all of them, or a seeded sample of `limit`."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def reference_frames(train, holdout, synth, seed) -> list[pd.DataFrame]:
    """Train, holdout and synthetic rows, each capped at MAX_REFERENCE by a seeded sample."""
    return [sample_rows(train, MAX_REFERENCE, seed + 3), sample_rows(holdout, MAX_REFERENCE, seed + 4),
            sample_rows(synth, MAX_REFERENCE, seed + 5)]


def pooled_real(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Train and holdout together: the scales distances are measured in.

    Scales fitted on train alone put the training rows on an even grid (rank i / n on every axis) and the holdout
    rows between them; the comparison of a synthetic row's distance to each side is only fair when both sides are
    measured alike.
    """
    return pd.concat([frames[0], frames[1]], ignore_index=True) if len(frames[1]) else frames[0]


def encode_reference(train, holdout, synth, meta, columns, seed) -> list[np.ndarray]:
    """The reference frames encoded with the real rows' scales, for distances."""
    frames = reference_frames(train, holdout, synth, seed)
    return encode(pooled_real(frames), frames, meta, columns)


def compact_codes(frames: list[pd.DataFrame], meta: TableMeta, columns: list[str]) -> list[np.ndarray]:
    """One float column per real column (numbers, shared category codes), for classifiers and predicates."""
    per_column = [as_floats(frames, meta, c) for c in columns]
    return [np.column_stack([v[i] for v in per_column]) if per_column else np.zeros((len(f), 0))
            for i, f in enumerate(frames)]


def skip_reason(train, holdout, synth, columns) -> str | None:
    if not columns:
        return "no columns to compare"
    if holdout is None or len(holdout) < MIN_HOLDOUT_ROWS:
        return f"holdout has fewer than {MIN_HOLDOUT_ROWS} rows"
    if len(synth) == 0:
        return "no synthetic rows"
    if len(train) == 0:
        return "no training rows"
    return None
