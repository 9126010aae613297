"""Whether synthetic rows give away the people in the training data.

Every metric compares the synthetic table with the training rows and, as a baseline, with real rows the
generator never saw (the holdout): a synthetic table is as private as a fresh real sample would be when
it sits no closer to the training rows than the holdout does, and an attack does no better on training rows
than on holdout rows. Metrics: exact copies, distance to closest record (DCR) and nearest-neighbour distance
ratio (NNDR) with a histogram, membership inference (distance and shadow-model attacks: AUC, interval, ROC),
attribute inference from the spec's quasi-identifiers, singling out and linkability (Anonymeter's method, see
`attacks`), k-anonymity / l-diversity, and the epsilon a DP generator spent. Results are counts, rates,
distances and curves; no real value. Large tables are sampled deterministically (seeded).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import (
    NUMERIC_LIKE,
    category_keys,
    evaluable_columns,
    num,
    sample_rows,
    to_float,
)
from genesis_pipelines.engine.analysis.reference_tables import REFERENCE_METHOD
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta
from genesis_pipelines.engine.privacy.record_guard import MIN_RECORD_COLUMNS, tells_records_apart


class _LazyModule:
    """The attacks module (sklearn), imported on first use: the copy guard imports this module for its column
    rules only, and a CLI command or step that never audits privacy should not pay for sklearn."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


attacks = _LazyModule("genesis_pipelines.engine.evaluation.attacks")

MIN_HOLDOUT_ROWS = 20
# Fewer members / non-members than this give an AUC too noisy to block a release on (SD ~0.04 at 100).
MIN_MIA_ROWS = 100
# the DCR share gates a table only when chance alone moves it by at most this (1 sd): a generator that never saw
# the split then passes a 0.6 gate with probability >= 97.7%
DCR_MAX_CHANCE_SD = 0.05
MAX_DRIVER_COLUMNS = 40  # columns tried one at a time when a DCR share fails
TOP_CATEGORIES = 50
# Nearest-neighbour searches dominate the cost (~65M row pairs a second on 2 cores), so each is sized:
ATTACK_ROWS = 2000  # synthetic and holdout rows whose DCR to the full train is measured
MAX_REFERENCE = 100_000  # train / holdout / synthetic rows kept per table (seeded sample beyond)
MIA_ROWS = 1000  # members and non-members attacked
MIA_SYNTHETIC = 50_000  # synthetic rows the membership attacks search
LINK_ROWS = 1000  # targets (and control rows) for linkability and attribute inference
LINK_SYNTHETIC = 20_000  # synthetic rows the linkability and inference attacks search
HISTOGRAM_BINS = 20
K_TARGET = 5
QI_BINS = 10  # numeric quasi-identifiers are generalised to deciles of train for k-anonymity
_ONE_HOT_WEIGHT = 1.0 / np.sqrt(2.0)  # a category mismatch then weighs as much as the largest numeric gap (1)
# anything closer than this is the same point (distances are float64; encodings are float32)
_TIE = 1e-5
# A column is an attribute of the parent (the billing city of a customer's invoices) when it is constant within
# the parent's group for at least this share of the child's rows in groups of two or more.
PARENT_LEVEL_SHARE = 0.95
_DEFAULT_QI = re.compile(r"(?:^|_)(age|gender|sex|race|ethnicity|marital|zip|postcode|postal|city|country|"
                         r"nationality|education|occupation|birth|dob|state|region)(?:_|$)")
_DEFAULT_SENSITIVE = re.compile(r"(?:^|_)(income|salary|wage|diagnosis|disease|health|religion|"
                                r"politic\w*|sexual\w*|credit_?score|loan|debt)(?:_|$)")


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


# ---------------------------------------------------------------- grouped holdouts


def holdout_group_column(train: pd.DataFrame, holdout: pd.DataFrame | None, schema: DatasetSchema, table: str) -> str | None:
    """The foreign key the train/holdout split followed (see relational.split_tables), read from the data.

    A child split by its parent has no key value on both sides, and its keys repeat (several rows per
    parent); a row split shares parents between the sides. None when the split was by row.
    """
    if holdout is None or not len(holdout) or not len(train):
        return None
    for fk in schema.fks_of(table):
        column = fk.child_column
        if fk.is_self_reference or fk.composite or column not in train.columns or column not in holdout.columns:
            continue
        train_keys, holdout_keys = train[column].dropna().astype(str), holdout[column].dropna().astype(str)
        if (len(train_keys) and len(holdout_keys) and train_keys.duplicated().any()
                and not set(train_keys.unique()) & set(holdout_keys.unique())):
            return column
    return None


def parent_level_columns(train: pd.DataFrame, group_column: str, columns: list[str]) -> list[str]:
    """Columns that describe the parent rather than the row: constant within (almost) every parent's group.

    Under a grouped holdout these carry the held-out parents' own values (their cities), which no generator
    trained without those parents can produce; they are judged with the parent table, not the child's rows.
    """
    keyed = train[train[group_column].notna()]
    sizes = keyed.groupby(group_column, sort=False).size()
    multi = sizes[sizes >= 2]
    if multi.empty:
        return []
    keyed = keyed[keyed[group_column].isin(multi.index)]
    out = []
    for column in columns:
        distinct = keyed.groupby(group_column, sort=False)[column].nunique(dropna=False).reindex(multi.index)
        if multi[distinct == 1].sum() >= PARENT_LEVEL_SHARE * multi.sum():
            out.append(column)
    return out


def _group_labels(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    labels, _ = pd.factorize(frame[column].astype(str), use_na_sentinel=False)
    # Rows without a parent were split one by one: each is a group of its own.
    missing = frame[column].isna().to_numpy()
    labels = labels.astype(np.int64)
    labels[missing] = labels.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return labels


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




def _pick(n: int, limit: int, seed: int) -> np.ndarray:
    """Deterministic row positions: all of them, or a seeded sample of `limit`."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _rescale_share(raw: float, neutral: float) -> float:
    """Map the raw share onto 0.5 = neutral, 1.0 = every synthetic row nearest to a training row.

    A generator that ignores which rows it trained on puts a synthetic row nearest to a training row with
    probability train / (train + holdout) (the real rows are exchangeable), not 1/2; rescaling lets the full
    train be searched, so a copier reaches 1.0 instead of the 0.625 that subsampling train gave at 80/20.
    """
    if not 0 < neutral < 1:
        return raw
    return 0.5 * raw / neutral if raw <= neutral else 0.5 + 0.5 * (raw - neutral) / (1 - neutral)


def _histogram(synthetic: np.ndarray, holdout: np.ndarray) -> dict:
    """Binned DCRs (counts per bin; the last bin holds the overflow above the pooled 99th percentile)."""
    top = float(np.quantile(np.concatenate([synthetic, holdout]), 0.99))
    top = top if top > _TIE else 1.0
    edges = np.linspace(0.0, top, HISTOGRAM_BINS + 1)
    count = lambda d: np.histogram(np.minimum(d, top), edges)[0].astype(int).tolist()  # noqa: E731
    return {"edges": [round(float(e), 5) for e in edges], "synthetic": count(synthetic), "holdout": count(holdout)}


def _reference_frames(train, holdout, synth, seed) -> list[pd.DataFrame]:
    """Train, holdout and synthetic rows, each capped at MAX_REFERENCE by a seeded sample."""
    return [sample_rows(train, MAX_REFERENCE, seed + 3), sample_rows(holdout, MAX_REFERENCE, seed + 4),
            sample_rows(synth, MAX_REFERENCE, seed + 5)]


def _pooled_real(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Train and holdout together: the scales distances are measured in.

    Scales fitted on train alone put the training rows on an even grid (rank i / n on every axis) and the holdout
    rows between them; the comparison of a synthetic row's distance to each side is only fair when both sides are
    measured alike.
    """
    return pd.concat([frames[0], frames[1]], ignore_index=True) if len(frames[1]) else frames[0]


def _encode_reference(train, holdout, synth, meta, columns, seed) -> list[np.ndarray]:
    """The reference frames encoded with the real rows' scales, for distances."""
    frames = _reference_frames(train, holdout, synth, seed)
    return _encode(_pooled_real(frames), frames, meta, columns)


def _compact(frames: list[pd.DataFrame], meta: TableMeta, columns: list[str]) -> list[np.ndarray]:
    """One float column per real column (numbers, shared category codes), for classifiers and predicates."""
    per_column = [_as_floats(frames, meta, c) for c in columns]
    return [np.column_stack([v[i] for v in per_column]) if per_column else np.zeros((len(f), 0))
            for i, f in enumerate(frames)]


def _skip_reason(train, holdout, synth, columns) -> str | None:
    if not columns:
        return "no columns to compare"
    if holdout is None or len(holdout) < MIN_HOLDOUT_ROWS:
        return f"holdout has fewer than {MIN_HOLDOUT_ROWS} rows"
    if len(synth) == 0:
        return "no synthetic rows"
    if len(train) == 0:
        return "no training rows"
    return None


def _tied_train_share(train_x: np.ndarray, holdout_x: np.ndarray, queries: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """For synthetic rows as close to a holdout row as to a training row: the share of training rows among all real
    rows at that distance.

    Counting a tie as the neutral share overstates closeness to train whenever several real rows tie (discrete
    columns): with two tied rows at 80/20 a generator that never saw the split reads 0.64 + 0.8 * 0.32 = 0.896, not
    0.8 (a table of three category columns read 0.56 instead of 0.5). The share of training rows among the tied rows
    is the neutral share in expectation whatever the number of ties.
    """
    def at_distance(reference: np.ndarray) -> np.ndarray:
        return attacks.count_within(reference, queries, distance + _TIE)

    in_train, in_holdout = at_distance(train_x), at_distance(holdout_x)
    return in_train / np.maximum(in_train + in_holdout, 1)


def _share_chance_spread(train_x: np.ndarray, holdout_x: np.ndarray, queries: np.ndarray,
                         distance: np.ndarray) -> tuple[float, float]:
    """Standard deviation of the rescaled share for a generator that never saw the split, and the effective number
    of distinct real rows the synthetic rows sit nearest to.

    Each synthetic row scores the side of its nearest real row, so the share is a weighted vote of those real rows:
    sum_j w_j [j in train], with w_j the share of synthetic rows nearest to real row j (a tie shares the row's
    vote among the tied real rows; `distance` is each query's distance to its nearest real row). Over random splits it has
    variance p (1 - p) sum_j w_j^2. When the synthetic rows crowd onto few real rows (100 of 1,458 airports), the
    share moves by +-0.1 from split to split although the generator learned nothing of the split.
    """
    pooled = np.vstack([train_x, holdout_x])
    weights = attacks.nearest_share(pooled, queries, distance + _TIE)
    concentration = float((weights ** 2).sum())
    p = len(train_x) / len(pooled)
    sd_raw = np.sqrt(p * (1 - p) * concentration)
    # the rescaling stretches the raw share above neutral by 0.5 / (1 - p): the side a gate reads
    return 0.5 * sd_raw / (1 - p), (1.0 / concentration if concentration > 0 else 0.0)


def distance_to_closest_record(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta,
                               columns: list[str], *, max_rows: int = ATTACK_ROWS, seed: int = 0,
                               encoded: list[np.ndarray] | None = None) -> dict:
    """Synthetic rows should sit no closer to the training rows than unseen real rows do.

    DCR: distance of each synthetic (and holdout) row to its nearest training row. `share_closer_to_train`:
    synthetic rows nearer to train than to holdout, rescaled so 0.5 is ideal and a copier scores ~1.0 (see
    `_rescale_share`); a tie counts as the neutral share. NNDR (nearest / second-nearest training row) is
    returned under "nndr": low values mean a row sits on one particular person rather than in a crowd.
    """
    columns = [c for c in columns if c in train.columns and c in synth.columns and (holdout is None or c in holdout.columns)]
    reason = _skip_reason(train, holdout, synth, columns)
    if reason:
        return {"skipped": reason}
    train_x, holdout_x, synth_x = encoded if encoded is not None else _encode_reference(train, holdout, synth, meta, columns, seed)
    if train_x.shape[1] == 0:
        return {"skipped": "no encodable columns"}
    synth_q = synth_x[_pick(len(synth_x), max_rows, seed)]
    holdout_q = holdout_x[_pick(len(holdout_x), max_rows, seed + 1)]
    synth_train = attacks.nearest(train_x, synth_q, k=2)
    holdout_train = attacks.nearest(train_x, holdout_q, k=2)
    synth_holdout = attacks.nearest(holdout_x, synth_q, k=1)[:, 0]
    for d in (synth_train, holdout_train, synth_holdout):
        d[d <= _TIE] = 0.0
    dcr_synth, dcr_holdout = synth_train[:, 0], holdout_train[:, 0]
    neutral = len(train_x) / (len(train_x) + len(holdout_x))
    diff = dcr_synth - synth_holdout
    closer = (diff < 0).astype(float)
    tied = np.flatnonzero(np.abs(diff) <= _TIE)
    if len(tied):
        closer[tied] = _tied_train_share(train_x, holdout_x, synth_q[tied], dcr_synth[tied])
    raw = float(closer.mean())
    chance_sd, distinct = _share_chance_spread(train_x, holdout_x, synth_q, np.minimum(dcr_synth, synth_holdout))
    result = {
        "dcr_synthetic_median": num(np.median(dcr_synth)),
        "dcr_holdout_median": num(np.median(dcr_holdout)),
        "dcr_synthetic_p05": num(np.quantile(dcr_synth, 0.05)),
        "dcr_holdout_p05": num(np.quantile(dcr_holdout, 0.05)),
        "share_closer_to_train": num(_rescale_share(raw, neutral)),
        "share_closer_to_train_raw": num(raw),
        "neutral_raw_share": num(neutral),
        # what the share moves by chance alone, from which real rows happen to be held out (see _share_chance_spread)
        "share_chance_sd": num(chance_sd),
        "distinct_nearest_real_rows": num(distinct),
        "share_synthetic_at_zero_distance": num((dcr_synth <= _TIE).mean()),
        "share_holdout_at_zero_distance": num((dcr_holdout <= _TIE).mean()),
        "histogram": _histogram(dcr_synth, dcr_holdout),
        "rows_used": {"train": int(len(train_x)), "holdout": int(len(holdout_x)), "synthetic": int(len(synth_q))},
        "dimensions": int(train_x.shape[1]),
    }
    if synth_train.shape[1] < 2:
        result["nndr"] = {"skipped": "fewer than two training rows"}
        return result

    def ratio(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 1] > _TIE, d[:, 0] / np.maximum(d[:, 1], _TIE), 1.0)

    nndr_synth, nndr_holdout = ratio(synth_train), ratio(holdout_train)
    low = float(np.quantile(nndr_holdout, 0.05))
    result["nndr"] = {
        "nndr_synthetic_median": num(np.median(nndr_synth)),
        "nndr_holdout_median": num(np.median(nndr_holdout)),
        "holdout_p05": num(low),
        # a fresh real sample has 5% of rows below the holdout's 5th percentile
        "share_synthetic_below_holdout_p05": num((nndr_synth < low).mean()),
    }
    return result


# ---------------------------------------------------------------- attacks


def membership_inference(encoded: list[np.ndarray], compact: list[np.ndarray], *, max_rows: int = MIA_ROWS,
                         seed: int = 0, holdout_groups: np.ndarray | None = None) -> dict:
    """Members = training rows, non-members = holdout rows, equally many (at most `max_rows` each); the
    synthetic side is capped at MIA_SYNTHETIC rows. The shadow attack's auxiliary real data is half of the
    non-members; it is evaluated on the other half against as many members. With `holdout_groups` (a grouped
    holdout) the halves are whole parents, so the attack is not scored on the siblings of rows it learned from."""
    train_x, holdout_x, synth_x = encoded
    n = min(len(holdout_x), len(train_x), max_rows)
    if n < MIN_HOLDOUT_ROWS or len(synth_x) == 0 or train_x.shape[1] == 0:
        return {"skipped": f"fewer than {MIN_HOLDOUT_ROWS} holdout rows or no synthetic rows"}
    member_rows, nonmember_rows = _pick(len(train_x), n, seed + 6), _pick(len(holdout_x), n, seed + 7)
    synth_rows = _pick(len(synth_x), MIA_SYNTHETIC, seed + 8)
    synth_ref = synth_x[synth_rows]
    member_d = attacks.nearest(synth_ref, train_x[member_rows])[:, 0]
    nonmember_d = attacks.nearest(synth_ref, holdout_x[nonmember_rows])[:, 0]
    out = {"distance": attacks.distance_attack(member_d, nonmember_d, seed)}
    if n < 2 * MIN_HOLDOUT_ROWS or len(synth_ref) < 2:
        out["shadow"] = {"skipped": f"fewer than {2 * MIN_HOLDOUT_ROWS} holdout rows"}
        return out
    fit = _pick(len(synth_ref), n, seed + 9)
    loo = attacks.nearest(synth_ref, synth_ref[fit], k=2)[:, 1]
    ref, evaluation = _halves(n, None if holdout_groups is None else holdout_groups[nonmember_rows], seed + 10)
    if len(ref) < MIN_HOLDOUT_ROWS // 2 or len(evaluation) < MIN_HOLDOUT_ROWS // 2:
        out["shadow"] = {"skipped": "held-out parents too few to split into reference and evaluation halves"}
        return out
    train_c, holdout_c, synth_c = compact
    out["shadow"] = attacks.shadow_attack(
        synth_c[synth_rows[fit]], loo, holdout_c[nonmember_rows[ref]], nonmember_d[ref],
        train_c[member_rows[evaluation]], member_d[evaluation], holdout_c[nonmember_rows[evaluation]],
        nonmember_d[evaluation], seed)
    return out


def _halves(n: int, groups: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions 0..n-1 in two seeded halves; with group labels, every group falls wholly in one half."""
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        return order[: n // 2], order[n // 2:]
    unique = rng.permutation(np.unique(groups))
    first = np.isin(groups, unique[: len(unique) // 2])
    return np.flatnonzero(first), np.flatnonzero(~first)


def _as_floats(frames: list[pd.DataFrame], meta: TableMeta, column: str) -> list[np.ndarray]:
    """Numbers as floats, categories as codes shared by every frame (nulls one code)."""
    sdtype = meta.columns[column].sdtype
    if sdtype in NUMERIC_LIKE:
        return [to_float(f[column], sdtype) for f in frames]
    return [c.astype("float64") for c in _joint_column_codes(frames, column, sdtype)]


def _singling_out(compact: list[np.ndarray], meta, columns, seed) -> dict:
    sets = [[x[:, j] for j in range(x.shape[1])] for x in compact]
    numeric = [meta.columns[c].sdtype in NUMERIC_LIKE for c in columns]
    return attacks.singling_out(sets[0], sets[1], sets[2], numeric, seed=seed)


def _linkability(train, holdout, synth, meta, columns, seed, max_rows: int = LINK_ROWS) -> dict:
    if len(columns) < 2:
        return {"skipped": "fewer than two columns to split between two databases"}
    n = min(len(holdout), len(train), max_rows)
    targets = sample_rows(train, n, seed + 9)
    control = sample_rows(holdout, n, seed + 10)
    synth_r = sample_rows(synth, LINK_SYNTHETIC, seed + 5)
    fit = sample_rows(train, MAX_REFERENCE, seed + 3)
    # Alternate by cardinality, so both halves get identifying (many-valued) columns, as real databases do.
    ranked = sorted(columns, key=lambda c: -int(fit[c].nunique(dropna=False)))
    halves = [ranked[0::2], ranked[1::2]]
    a = _encode(fit, [targets, control, synth_r], meta, halves[0])
    b = _encode(fit, [targets, control, synth_r], meta, halves[1])
    result = attacks.linkability(a[0], b[0], a[1], b[1], a[2], b[2])
    return {**result, "columns_a": len(halves[0]), "columns_b": len(halves[1])}


def _attribute_inference(train, holdout, synth, meta, qis, sensitive, seed, max_rows: int = LINK_ROWS) -> dict:
    out: dict[str, dict] = {}
    n = min(len(holdout), len(train), max_rows)
    members, control = sample_rows(train, n, seed + 11), sample_rows(holdout, n, seed + 12)
    synth_r, fit = sample_rows(synth, LINK_SYNTHETIC, seed + 5), sample_rows(train, MAX_REFERENCE, seed + 3)
    for column in sensitive:
        known = [q for q in qis if q != column]
        if not known:
            out[column] = {"skipped": "no quasi-identifier besides the column itself"}
            continue
        synth_q, member_q, control_q = _encode(fit, [synth_r, members, control], meta, known)
        categorical = meta.columns[column].sdtype not in NUMERIC_LIKE
        if categorical:
            targets = _joint_column_codes([synth_r, members, control], column, meta.columns[column].sdtype)
        else:
            targets = [x[:, 0].astype("float64") for x in _encode(fit, [synth_r, members, control], meta, [column])]
        out[column] = attacks.attribute_inference(synth_q, targets[0], member_q, targets[1], control_q, targets[2],
                                                  categorical=categorical)
    return out


def _qi_codes(frames: list[pd.DataFrame], meta: TableMeta, qis: list[str]) -> list[pd.DataFrame]:
    """Quasi-identifiers generalised as an attacker would match them: categories as is, numbers in train deciles."""
    columns: list[list[np.ndarray]] = []
    for column in qis:
        sdtype = meta.columns[column].sdtype
        if sdtype in NUMERIC_LIKE:
            values = [to_float(f[column], sdtype) for f in frames]
            reference = values[0][~np.isnan(values[0])]
            edges = np.unique(np.quantile(reference, np.linspace(0, 1, QI_BINS + 1)[1:-1])) if len(reference) else np.array([])
            columns.append([np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right")) for v in values])
        else:
            columns.append(_joint_column_codes(frames, column, sdtype))
    return [pd.DataFrame({q: columns[j][i] for j, q in enumerate(qis)}) for i in range(len(frames))]


def _k_anonymity(train, synth, meta, qis, sensitive, seed) -> dict:
    frames = [sample_rows(train, MAX_REFERENCE, seed + 3), sample_rows(synth, MAX_REFERENCE, seed + 5)]
    real_codes, synth_codes = _qi_codes(frames, meta, qis)
    secrets = {c: _joint_column_codes(frames, c, meta.columns[c].sdtype) for c in sensitive if c not in qis}
    synthetic = attacks.k_anonymity(synth_codes, {c: v[1] for c, v in secrets.items()}, k_target=K_TARGET)
    real = attacks.k_anonymity(real_codes, {c: v[0] for c, v in secrets.items()}, k_target=K_TARGET)
    return {**synthetic, "real": real, "quasi_identifiers": len(qis)}


def table_k_anonymity(frame: pd.DataFrame, meta: TableMeta, qis: list[str], sensitive: list[str] = (),
                      k_target: int = K_TARGET) -> dict:
    """k-anonymity and l-diversity of one table's quasi-identifiers, generalised as the privacy report does
    (categories as they are, numbers in deciles)."""
    codes = _qi_codes([frame], meta, list(qis))[0]
    secrets = {c: _joint_column_codes([frame], c, meta.columns[c].sdtype)[0] for c in sensitive if c not in qis}
    return attacks.k_anonymity(codes, secrets, k_target=k_target)


def _name_tokens(column: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column)
    return re.sub(r"[^a-z0-9]+", "_", text.lower())


def _roles(table: str, columns: list[str], declared: Mapping[str, list[str]] | None, pattern: re.Pattern) -> tuple[list[str], str]:
    if declared and table in declared:
        return [c for c in declared[table] if c in columns], "spec"
    return [c for c in columns if pattern.search(_name_tokens(c))][:6], "inferred from column names"


def _dp(describe: Mapping | None) -> dict:
    """What a DP generator spent and what it covers, from its describe() (aggregates the generator reports)."""
    describe = describe or {}
    if describe.get("epsilon_spent") is None:
        return {"epsilon_spent": None, "delta": None, "guarantee": "none: the generator is not differentially private"}
    delta = describe.get("delta_spent", describe.get("delta"))
    out = {"epsilon_spent": num(describe["epsilon_spent"]), "delta": num(delta) if delta is not None else None,
           "guarantee": str(describe.get("dp_guarantee", "differential privacy of the training rows"))}
    if isinstance(describe.get("budget"), Mapping):
        out["budget"] = {str(k): num(v) for k, v in describe["budget"].items()}
    out["accountant"] = str(describe.get("accountant", "basic composition"))
    for key in ("dp_covers", "dp_not_covered"):
        if isinstance(describe.get(key), list):
            out[key.removeprefix("dp_")] = [str(v) for v in describe[key]]
    return out


def dp_summary(tables: Mapping[str, Mapping]) -> dict:
    """The dataset's guarantee from its tables' DP entries: each table's model is DP for one row of that table; a
    person with rows in several tables (or several rows) is covered by composition, so the dataset-level epsilon is
    the sum over the DP tables (basic composition, row-level), and any table without DP voids a dataset guarantee."""
    dp = {name: t["dp"] for name, t in tables.items() if isinstance(t.get("dp"), Mapping)}
    private = {n: d for n, d in dp.items() if d.get("epsilon_spent") is not None}
    if not private:
        return {"dataset_epsilon": None, "statement": "no table was synthesised with a DP generator"}
    eps = sum(float(d["epsilon_spent"]) for d in private.values())
    delta = sum(float(d["delta"] or 0.0) for d in private.values())
    public = sorted(set(dp) - set(private))
    statement = (f"each of {len(private)} DP table(s) is ({'/'.join(format(float(d['epsilon_spent']), '.3g') for d in private.values())})"
                 f"-DP for adding or removing one of its rows (row-level); a person whose rows span those tables is "
                 f"covered at epsilon {eps:.3g}, delta {delta:.2g} (the sum over tables: basic composition), and a person "
                 "with k rows in one table at k times that table's epsilon (group privacy). Not covered: keys and "
                 "children-per-parent counts learned by the relational layer, the schema and row counts")
    if public:
        statement += f"; {len(public)} table(s) were synthesised without DP, so the dataset as a whole carries no DP guarantee"
    return {"dataset_epsilon": num(eps) if not public else None, "dataset_delta": num(delta) if not public else None,
            "dp_tables": len(private), "non_dp_tables": len(public), "unit": "one row (row-level); people by composition",
            "statement": statement}


def _guarded(fn, *args, **kwargs) -> dict:
    """An attack that cannot run on odd data is reported as skipped, not allowed to sink the whole report."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        return {"skipped": f"could not run ({type(exc).__name__})"}


# ---------------------------------------------------------------- the report


def _threshold(thresholds, name: str) -> float | None:
    if isinstance(thresholds, Mapping):
        return thresholds.get(name)
    return getattr(thresholds, name, None)


def _table_entry(name, train, holdout, synth, meta, columns, *, qis, sensitive, describe, max_rows, seed,
                 group_column: str | None = None) -> dict:
    """Exact copies on every compared column; the row-level attacks, under a grouped holdout, on the row's own
    columns (parent-level ones are judged with the parent), with whole parents on each side of the shadow attack."""
    entry: dict = {
        "row_count_train": int(len(train)),
        "row_count_holdout": int(len(holdout)) if holdout is not None else 0,
        "row_count_synthetic": int(len(synth)),
        "columns_compared": len(columns),
    }
    entry["exact_copies"] = exact_copies(train, synth, columns, holdout=holdout, meta=meta)
    if group_column is not None:
        parent_level = parent_level_columns(train, group_column, columns)
        columns = [c for c in columns if c not in parent_level]
        entry["holdout_split"] = {"follows_parent_key": True, "parent_level_columns": len(parent_level),
                                  "columns_attacked": len(columns)}
    else:
        entry["holdout_split"] = {"follows_parent_key": False, "columns_attacked": len(columns)}
    entry["columns_attacked_names"] = list(columns)  # for the drivers of a failing DCR share; dropped from the report
    reason = _skip_reason(train, holdout, synth, columns)
    if reason == "no columns to compare" and group_column is not None:
        reason = "every column describes the parent (judged with the parent table)"
    frames = None if reason else _reference_frames(train, holdout, synth, seed)
    encoded = None if reason else _encode(_pooled_real(frames), frames, meta, columns)
    if encoded is not None and encoded[0].shape[1] == 0:
        reason, encoded = "no encodable columns", None
    groups = None if reason else _group_labels(frames[1], group_column)
    if reason:
        skipped = {"skipped": reason}
        entry.update(dcr=dict(skipped), nndr=dict(skipped), mia={"distance": dict(skipped), "shadow": dict(skipped)},
                     singling_out=dict(skipped), linkability=dict(skipped),
                     attribute_inference={c: dict(skipped) for c in sensitive})
    else:
        dcr = distance_to_closest_record(train, holdout, synth, meta, columns, max_rows=max_rows, seed=seed,
                                         encoded=encoded)
        entry["nndr"] = dcr.pop("nndr", {"skipped": dcr.get("skipped", "not measured")})
        entry["dcr"] = dcr
        compact = _compact(frames, meta, columns)
        entry["mia"] = _guarded(membership_inference, encoded, compact, seed=seed, holdout_groups=groups)
        entry["singling_out"] = _guarded(_singling_out, compact, meta, columns, seed)
        entry["linkability"] = _guarded(_linkability, train, holdout, synth, meta, columns, seed)
        entry["attribute_inference"] = (_guarded(_attribute_inference, train, holdout, synth, meta, qis, sensitive, seed)
                                        if qis else {c: {"skipped": "no quasi-identifiers"} for c in sensitive})
    entry["k_anonymity"] = (_guarded(_k_anonymity, train, synth, meta, qis, sensitive, seed)
                            if qis and len(synth) else {"skipped": "no quasi-identifiers" if not qis else "no synthetic rows"})
    entry["dp"] = _dp(describe)
    return entry


def _dcr_drivers(train, holdout, synth, meta, columns, share: float, *, max_rows: int, seed: int,
                 most: int = 5) -> list[dict]:
    """The columns that push a table's DCR share up: the share with each one left out, largest drop first."""
    drops = []
    for column in columns[:MAX_DRIVER_COLUMNS]:
        rest = [c for c in columns if c != column]
        without = distance_to_closest_record(train, holdout, synth, meta, rest, max_rows=max_rows, seed=seed) if rest else {}
        if without.get("share_closer_to_train") is not None:
            drops.append({"column": column, "share_without": without["share_closer_to_train"],
                          "drop": num(share - without["share_closer_to_train"])})
    return sorted(drops, key=lambda d: -d["drop"])[:most]


def _mia_auc(entry: dict) -> float | None:
    """The stronger attack's AUC, for tables with enough members and non-members to judge."""
    values = []
    for result in (entry.get("mia") or {}).values():
        if isinstance(result, dict) and result.get("auc") is not None and min(result["members"], result["non_members"]) >= MIN_MIA_ROWS:
            values.append(result["auc"])
    return max(values) if values else None


def privacy_report(train_tables: Mapping[str, pd.DataFrame], holdout_tables: Mapping[str, pd.DataFrame],
                   synth_tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *,
                   exclude: Mapping[str, set[str]], thresholds, max_rows: int = ATTACK_ROWS, seed: int = 0,
                   quasi_identifiers: Mapping[str, list[str]] | None = None,
                   sensitive_columns: Mapping[str, list[str]] | None = None,
                   model_describe: Mapping[str, dict] | None = None) -> dict:
    """Per-table privacy metrics and the dataset's gates.

    Keys and PII columns are left out: keys are regenerated and PII is replaced, so a match on them
    says nothing about a copied person. Quasi-identifiers and sensitive columns come from the spec, or are
    guessed from column names (age, zip, income, ...) when the spec names none for a table. Gates:
    `exact_copies_max` (unique real records copied, tables with >= MIN_RECORD_COLUMNS columns),
    `dcr_share_max` (largest share closer to train), `mia_auc_max` (largest MIA AUC, tables with >= MIN_MIA_ROWS
    members and non-members), and the singling-out / linkability risks when the spec sets their thresholds.
    `gates` holds {value, threshold, passed} for each gate evaluated; `passed` the verdicts; the others are in
    `skipped_gates` with a reason.
    """
    tables: dict[str, dict] = {}
    model_describe = model_describe or {}
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
        qis, qi_source = _roles(name, columns, quasi_identifiers, _DEFAULT_QI)
        sensitive, _ = _roles(name, columns, sensitive_columns, _DEFAULT_SENSITIVE)
        sensitive = [c for c in sensitive if c not in qis] if qi_source != "spec" else sensitive
        entry = _table_entry(name, train, holdout, synth, meta, columns, qis=qis, sensitive=sensitive,
                             describe=model_describe.get(name), max_rows=max_rows, seed=seed,
                             group_column=holdout_group_column(train, holdout, schema, name))
        entry["columns_missing_from_synthetic"] = len(missing)
        entry["quasi_identifiers"] = {"count": len(qis), "source": qi_source}
        informative = [c for c in columns if tells_records_apart(meta, c)]
        entry["in_copy_gate"] = len(informative) >= MIN_RECORD_COLUMNS and "skipped" not in entry["exact_copies"]
        if (model_describe.get(name) or {}).get("method") == REFERENCE_METHOD:
            # kept as it is by design (engine/analysis/reference_tables.py): copies of it are the point, not a leak
            entry["in_copy_gate"] = False
            entry["reference_table"] = model_describe[name].get("reference", True)
        tables[name] = entry

    gated = [t for t in tables.values() if t["in_copy_gate"]]
    unique_copies = sum(t["exact_copies"]["unique_record_copies"] for t in gated)
    baselines = [t["exact_copies"].get("unique_record_copies_baseline") for t in gated]
    copies = sum(t["exact_copies"]["copies"] for t in tables.values())
    synthetic_rows = sum(t["exact_copies"]["synthetic_rows"] for t in tables.values())
    measured = {n: t["dcr"] for n, t in tables.items() if t["dcr"].get("share_closer_to_train") is not None}
    for dcr in measured.values():
        dcr["gated"] = bool(dcr["share_chance_sd"] <= DCR_MAX_CHANCE_SD)
    shares = [d["share_closer_to_train"] for d in measured.values() if d["gated"]]
    max_share = max(shares) if shares else None
    dcr_limit = _threshold(thresholds, "dcr_share_max")
    for name, dcr in measured.items():
        if dcr["gated"] and dcr_limit is not None and dcr["share_closer_to_train"] > dcr_limit:
            dcr["driving_columns"] = _dcr_drivers(train_tables[name], holdout_tables.get(name), synth_tables.get(name),
                                                  schema.tables[name], tables[name]["columns_attacked_names"],
                                                  dcr["share_closer_to_train"], max_rows=max_rows, seed=seed)
    for entry in tables.values():
        entry.pop("columns_attacked_names", None)
    aucs = [a for a in (_mia_auc(t) for t in tables.values()) if a is not None]
    max_auc = max(aucs) if aucs else None
    risks = {kind: [t[kind]["risk"] for t in tables.values() if t[kind].get("risk") is not None]
             for kind in ("singling_out", "linkability")}

    values = {
        "exact_copies_max": (unique_copies if gated else None,
                             f"no table had {MIN_RECORD_COLUMNS} or more columns to compare"),
        "dcr_share_max": (max_share, "no table had a distance to closest record (holdout too small or absent)" if not measured
                          else f"every table's share moves by more than {DCR_MAX_CHANCE_SD} by chance alone (too few "
                               "distinct real rows nearest to the synthetic rows): reported, not gated"),
        "mia_auc_max": (max_auc, f"no table had {MIN_MIA_ROWS} or more members and non-members to attack"),
        "singling_out_risk_max": (max(risks["singling_out"]) if risks["singling_out"] else None, "no singling-out attack ran"),
        "linkability_risk_max": (max(risks["linkability"]) if risks["linkability"] else None, "no linkability attack ran"),
    }
    gates: dict[str, dict] = {}
    passed: dict[str, bool] = {}
    skipped_gates: dict[str, str] = {}
    limits = {name: _threshold(thresholds, name) for name in values}
    for name, (value, why_missing) in values.items():
        if limits[name] is None:
            if name in ("exact_copies_max", "dcr_share_max", "mia_auc_max"):
                skipped_gates[name] = "no threshold"
            continue
        if value is None:
            skipped_gates[name] = why_missing
            continue
        passed[name] = bool(value <= limits[name])
        gates[name] = {"value": num(value), "threshold": num(limits[name]), "passed": passed[name]}

    return {
        "synthetic_rows": int(synthetic_rows),
        "copies": int(copies),
        "copy_rate": float(copies / synthetic_rows) if synthetic_rows else 0.0,
        "unique_record_copies": int(unique_copies),
        # Expected for a fresh real sample of the same size (tables with a holdout only): read the gate against it.
        "unique_record_copies_baseline": num(sum(b for b in baselines if b is not None)) if any(b is not None for b in baselines) else None,
        "max_share_closer_to_train": num(max_share),
        "max_mia_auc": num(max_auc),
        "max_singling_out_risk": values["singling_out_risk_max"][0],
        "max_linkability_risk": values["linkability_risk_max"][0],
        "thresholds": {k: num(v) for k, v in limits.items() if v is not None},
        "gates": gates,
        "passed": passed,
        "skipped_gates": skipped_gates,
        "all_passed": all(passed.values()),
        "dp": dp_summary(tables),
        "tables": tables,
    }
