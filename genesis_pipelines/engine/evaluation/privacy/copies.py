"""Exact copies: synthetic rows equal to a training row, and above all to a row unique in train."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.evaluation.privacy.encoding import joint_column_codes


def row_ids(frames: list[pd.DataFrame], columns: list[str], sdtypes: Mapping[str, str] | None = None) -> list[np.ndarray]:
    """Exact row identities shared across frames (equal rows, nulls included, get equal ids; no hashing, no collisions)."""
    sdtypes = sdtypes or {}
    total = sum(len(f) for f in frames)
    ids = np.zeros(total, dtype=np.int64)
    for column in columns:
        codes = np.concatenate(joint_column_codes(frames, column, sdtypes.get(column)))
        # Mixed radix, re-compacted after each column so the ids never overflow.
        combined = ids * (int(codes.max()) + 1 if total else 1) + codes
        ids, _ = pd.factorize(combined)
        ids = ids.astype(np.int64)
    return np.split(ids, np.cumsum([len(f) for f in frames])[:-1])


def exact_copies(train: pd.DataFrame, synth: pd.DataFrame, columns: list[str], *,
                 holdout: pd.DataFrame | None = None, meta: TableMeta | None = None) -> dict:
    """Copies of rows that are unique in train are the ones that single out a person; common rows are not."""
    out = {"synthetic_rows": int(len(synth)), "copies": 0, "copy_rate": 0.0, "unique_record_copies": 0,
           "unique_records_copied": 0, "columns_compared": len(columns)}
    if not columns:
        return {**out, "skipped": "no columns to compare"}
    sdtypes = {c: meta.columns[c].sdtype for c in columns if c in meta.columns} if meta is not None else {}
    frames = [train, synth] + ([holdout] if holdout is not None else [])
    ids = row_ids(frames, columns, sdtypes)
    train_ids, synth_ids = ids[0], ids[1]
    size = max((int(i.max()) + 1 for i in ids if len(i)), default=0)
    train_counts = np.bincount(train_ids, minlength=size)
    if len(synth):
        matched = train_counts[synth_ids]
        unique_hits = matched == 1
        out.update(
            copies=int((matched > 0).sum()),
            copy_rate=float((matched > 0).mean()),
            unique_record_copies=int(unique_hits.sum()),
            unique_records_copied=int(len(np.unique(synth_ids[unique_hits]))),
        )
    if holdout is not None and len(holdout):
        # Real rows the generator never saw also repeat training rows; that is the natural copy rate.
        held = train_counts[ids[2]]
        out["holdout_baseline_rate"] = float((held > 0).mean())
        out["holdout_unique_record_rate"] = float((held == 1).mean())
        # What a fresh real sample of this size would "copy" by coincidence (e.g. common census rows).
        out["unique_record_copies_baseline"] = float((held == 1).mean() * len(synth))
    return out
