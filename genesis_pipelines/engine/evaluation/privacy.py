"""Whether synthetic rows give away training rows: exact copies and distance to the closest record.

Both metrics compare the synthetic table with the training rows and, as a baseline, with real rows the
generator never saw (the holdout): a synthetic table is as private as a fresh real sample would be when
it sits no closer to the training rows than the holdout does. Results are counts, rates and distances.
New per-table metrics go into `TABLE_METRICS` with the signature of `_exact_copies_metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from genesis_pipelines.engine.evaluation._prep import NUMERIC_LIKE, category_keys, num, sample_rows, to_float
from genesis_pipelines.engine.evaluation.fidelity import evaluable_columns
from genesis_pipelines.engine.schema import DatasetSchema, TableMeta

MIN_HOLDOUT_ROWS = 20
# A "record" of one column is a single value: sampling a learned category repeats it by design, so
# tables compared on fewer columns are reported but left out of the exact-copies gate.
MIN_RECORD_COLUMNS = 2
TOP_CATEGORIES = 50
_ONE_HOT_WEIGHT = 1.0 / np.sqrt(2.0)  # a category mismatch then weighs as much as the largest numeric gap (1)
# float32 nearest-neighbour distances carry ~1e-6 of rounding; anything closer than this is the same point.
_TIE = 1e-5


# ---------------------------------------------------------------- exact copies


def _joint_column_codes(frames: list[pd.DataFrame], column: str, sdtype: str | None) -> list[np.ndarray]:
    if sdtype in NUMERIC_LIKE:
        parts = [pd.Series(to_float(f[column], sdtype)) for f in frames]
    else:
        parts = category_keys(*(f[column] for f in frames))
    labels, _ = pd.factorize(pd.concat(parts, ignore_index=True), use_na_sentinel=False)
    return np.split(labels.astype(np.int64), np.cumsum([len(f) for f in frames])[:-1])


def row_ids(frames: list[pd.DataFrame], columns: list[str], sdtypes: Mapping[str, str] | None = None) -> list[np.ndarray]:
    """Exact row identities shared across frames (equal rows, nulls included, get equal ids; no hashing, no collisions)."""
    sdtypes = sdtypes or {}
    total = sum(len(f) for f in frames)
    ids = np.zeros(total, dtype=np.int64)
    for column in columns:
        codes = np.concatenate(_joint_column_codes(frames, column, sdtypes.get(column)))
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


# ---------------------------------------------------------------- distance to closest record


def _encode(train: pd.DataFrame, frames: list[pd.DataFrame], meta: TableMeta, columns: list[str]) -> list[np.ndarray]:
    """Rank-scaled numbers and weighted one-hot categories, fitted on train, so no column dominates by its units."""
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    for column in columns:
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
    return [np.hstack(b).astype(np.float32) if b else np.zeros((len(f), 0), np.float32) for b, f in zip(blocks, frames)]


def _nearest(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    model = NearestNeighbors(n_neighbors=1).fit(reference)
    distances, _ = model.kneighbors(queries)
    return distances[:, 0]


def distance_to_closest_record(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta,
                               columns: list[str], *, max_rows: int = 20_000, seed: int = 0) -> dict:
    """Synthetic rows should sit no closer to the training rows than unseen real rows do.

    Train is subsampled to the holdout size, so a generator that has not memorised anything puts half
    of its rows closer to train (share 0.5); ties count one half. A generator that copies train scores
    up to 0.5 + 0.5 * (holdout rows / train rows) -- full 1.0 only when train and holdout are the same size.
    """
    columns = [c for c in columns if c in train.columns and c in holdout.columns and c in synth.columns]
    if not columns:
        return {"skipped": "no columns to compare"}
    if len(holdout) < MIN_HOLDOUT_ROWS:
        return {"skipped": f"holdout has fewer than {MIN_HOLDOUT_ROWS} rows"}
    if len(synth) == 0:
        return {"skipped": "no synthetic rows"}
    if len(train) == 0:
        return {"skipped": "no training rows"}
    n_ref = min(len(holdout), len(train), max_rows)
    train_s = sample_rows(train, n_ref, seed)
    holdout_s = sample_rows(holdout, n_ref, seed + 1)
    synth_s = sample_rows(synth, max_rows, seed + 2)
    fit_rows = sample_rows(train, max(10 * max_rows, n_ref), seed + 3)  # quantiles and top categories
    train_x, holdout_x, synth_x = _encode(fit_rows, [train_s, holdout_s, synth_s], meta, columns)
    if train_x.shape[1] == 0:
        return {"skipped": "no encodable columns"}
    synth_to_train = _nearest(train_x, synth_x)
    synth_to_holdout = _nearest(holdout_x, synth_x)
    holdout_to_train = _nearest(train_x, holdout_x)
    for d in (synth_to_train, synth_to_holdout, holdout_to_train):
        d[d <= _TIE] = 0.0
    diff = synth_to_train - synth_to_holdout
    closer = np.where(np.abs(diff) <= _TIE, 0.5, (diff < 0).astype(float))
    return {
        "dcr_synthetic_median": num(np.median(synth_to_train)),
        "dcr_holdout_median": num(np.median(holdout_to_train)),
        "share_closer_to_train": num(closer.mean()),
        "share_synthetic_at_zero_distance": num((synth_to_train <= _TIE).mean()),
        # What a generator that only replays training rows would score here, for reading the share.
        "copier_share_expected": num(0.5 + 0.5 * n_ref / len(train)),
        "rows_used": {"train": int(n_ref), "holdout": int(n_ref), "synthetic": int(len(synth_s))},
        "dimensions": int(train_x.shape[1]),
    }


# ---------------------------------------------------------------- the report


def _exact_copies_metric(train, holdout, synth, meta, columns, *, max_rows, seed) -> dict:
    return exact_copies(train, synth, columns, holdout=holdout, meta=meta)


def _dcr_metric(train, holdout, synth, meta, columns, *, max_rows, seed) -> dict:
    if holdout is None:
        return {"skipped": "no holdout table"}
    return distance_to_closest_record(train, holdout, synth, meta, columns, max_rows=max_rows, seed=seed)


TableMetric = Callable[..., dict]
TABLE_METRICS: dict[str, TableMetric] = {"exact_copies": _exact_copies_metric, "dcr": _dcr_metric}


def _threshold(thresholds, name: str) -> float | None:
    if isinstance(thresholds, Mapping):
        return thresholds.get(name)
    return getattr(thresholds, name, None)


def privacy_report(train_tables: Mapping[str, pd.DataFrame], holdout_tables: Mapping[str, pd.DataFrame],
                   synth_tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *,
                   exclude: Mapping[str, set[str]], thresholds, max_rows: int = 20_000, seed: int = 0) -> dict:
    """Per-table privacy metrics and the dataset's gates.

    Keys and PII columns are left out: keys are regenerated and PII is replaced, so a match on them
    says nothing about a copied person. `unique_record_copies` sums tables compared on at least
    MIN_RECORD_COLUMNS columns. `passed` holds only the gates that could be evaluated; the others are
    listed in `skipped_gates` with a reason.
    """
    tables: dict[str, dict] = {}
    for name, meta in schema.tables.items():
        train = train_tables.get(name)
        if train is None:
            continue
        skip = set(exclude.get(name, set())) | schema.key_columns(name)
        columns = [c for c in evaluable_columns(meta, skip) if c in train.columns]
        synth = synth_tables.get(name)
        if synth is None:
            synth = pd.DataFrame(columns=train.columns)
        holdout = holdout_tables.get(name)
        if holdout is not None and any(c not in holdout.columns for c in columns):
            holdout = None
        missing = [c for c in columns if c not in synth.columns]
        columns = [c for c in columns if c in synth.columns]
        entry: dict = {
            "row_count_train": int(len(train)),
            "row_count_holdout": int(len(holdout)) if holdout is not None else 0,
            "row_count_synthetic": int(len(synth)),
            "columns_compared": len(columns),
            "columns_missing_from_synthetic": len(missing),
        }
        for metric, fn in TABLE_METRICS.items():
            entry[metric] = fn(train, holdout, synth, meta, columns, max_rows=max_rows, seed=seed)
        entry["in_copy_gate"] = len(columns) >= MIN_RECORD_COLUMNS and "skipped" not in entry["exact_copies"]
        tables[name] = entry

    gated = [t for t in tables.values() if t["in_copy_gate"]]
    unique_copies = sum(t["exact_copies"]["unique_record_copies"] for t in gated)
    baselines = [t["exact_copies"].get("unique_record_copies_baseline") for t in gated]
    copies = sum(t["exact_copies"]["copies"] for t in tables.values())
    synthetic_rows = sum(t["exact_copies"]["synthetic_rows"] for t in tables.values())
    shares = [t["dcr"]["share_closer_to_train"] for t in tables.values() if t["dcr"].get("share_closer_to_train") is not None]
    max_share = max(shares) if shares else None

    passed: dict[str, bool] = {}
    skipped_gates: dict[str, str] = {}
    limits = {name: _threshold(thresholds, name) for name in ("exact_copies_max", "dcr_share_max")}
    if limits["exact_copies_max"] is None:
        skipped_gates["exact_copies_max"] = "no threshold"
    elif not gated:
        skipped_gates["exact_copies_max"] = f"no table had {MIN_RECORD_COLUMNS} or more columns to compare"
    else:
        passed["exact_copies_max"] = bool(unique_copies <= limits["exact_copies_max"])
    if limits["dcr_share_max"] is None:
        skipped_gates["dcr_share_max"] = "no threshold"
    elif max_share is None:
        skipped_gates["dcr_share_max"] = "no table had a distance to closest record (holdout too small or absent)"
    else:
        passed["dcr_share_max"] = bool(max_share <= limits["dcr_share_max"])

    return {
        "synthetic_rows": int(synthetic_rows),
        "copies": int(copies),
        "copy_rate": float(copies / synthetic_rows) if synthetic_rows else 0.0,
        "unique_record_copies": int(unique_copies),
        # Expected for a fresh real sample of the same size (tables with a holdout only): read the gate against it.
        "unique_record_copies_baseline": num(sum(b for b in baselines if b is not None)) if any(b is not None for b in baselines) else None,
        "max_share_closer_to_train": num(max_share),
        "thresholds": {k: num(v) for k, v in limits.items()},
        "passed": passed,
        "skipped_gates": skipped_gates,
        "all_passed": all(passed.values()),
        "tables": tables,
    }
