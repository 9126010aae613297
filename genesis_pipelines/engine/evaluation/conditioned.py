"""How well conditioned (augmented) rows match the real rows that meet the same condition.

A twin's column shapes say nothing about rows made under `income=>50K`: those must look like the real >50K rows,
not like the whole table. Each condition group is scored on the columns the condition leaves free. Aggregates only:
counts and scores, never a row; a group with fewer than `DEFAULT_K` matching real rows gets no score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.similarity import column_shape_scores, shape_columns
from genesis_pipelines.engine.evaluation.fidelity import DEFAULT_K


def _matches(frame: pd.DataFrame, condition: Mapping[str, object]) -> np.ndarray:
    """Rows whose values equal the condition's (numbers compared as numbers, everything else as text)."""
    hit = np.ones(len(frame), dtype=bool)
    for column, value in condition.items():
        if column not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and isinstance(value, (int, float)) and not isinstance(value, bool):
            hit &= (pd.to_numeric(values, errors="coerce") == float(value)).fillna(False).to_numpy(dtype=bool)
        else:
            hit &= (values.astype("string") == str(value)).fillna(False).to_numpy(dtype=bool)
    return hit


def conditioned_quality(real: pd.DataFrame, conditioned: pd.DataFrame, meta, groups: Sequence[Mapping],
                        exclude: set[str] = frozenset()) -> dict:
    """Per condition group: rows made, real rows meeting it, and the mean column shape of the free columns.

    `groups` is the augmentation's summary (`[{"condition": {col: value}, "rows": n}, ...]`); `real` the model's
    training rows of the table, `exclude` the columns a comparison skips (keys, replaced PII).
    """
    out = []
    for group in groups:
        condition = dict(group.get("condition") or {})
        mine = conditioned[_matches(conditioned, condition)] if condition else conditioned
        theirs = real[_matches(real, condition)] if condition else real
        entry = {"condition": condition, "rows": int(len(mine)), "real_rows_matching": int(len(theirs)),
                 "column_shapes": None, "columns": 0, "note": None}
        free = [c for c in shape_columns(meta, set(exclude)) if c not in condition]
        if len(theirs) < DEFAULT_K:
            entry["note"] = f"fewer than {DEFAULT_K} real rows meet the condition: not scored"
        elif not free or len(mine) == 0:
            entry["note"] = "no free column to score" if not free else "no conditioned rows"
        else:
            scores = column_shape_scores(theirs, mine, meta, free)
            entry["column_shapes"] = float(np.mean([s["score"] for s in scores.values()]))
            entry["columns"] = len(free)
        out.append(entry)
    return {"groups": out, "rows": int(len(conditioned))}
