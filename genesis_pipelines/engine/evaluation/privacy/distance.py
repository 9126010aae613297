"""Distance to closest record (DCR) and nearest-neighbour distance ratio (NNDR), against the holdout's baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import num
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.evaluation.privacy.encoding import TIE, attacks, encode_reference, pick, skip_reason

# Nearest-neighbour searches dominate the cost (~65M row pairs a second on 2 cores), so each is sized:
ATTACK_ROWS = 2000  # synthetic and holdout rows whose DCR to the full train is measured
HISTOGRAM_BINS = 20


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
    top = top if top > TIE else 1.0
    edges = np.linspace(0.0, top, HISTOGRAM_BINS + 1)
    count = lambda d: np.histogram(np.minimum(d, top), edges)[0].astype(int).tolist()  # noqa: E731
    return {"edges": [round(float(e), 5) for e in edges], "synthetic": count(synthetic), "holdout": count(holdout)}


def _tied_train_share(train_x: np.ndarray, holdout_x: np.ndarray, queries: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """For synthetic rows as close to a holdout row as to a training row: the share of training rows among all real
    rows at that distance.

    Counting a tie as the neutral share overstates closeness to train whenever several real rows tie (discrete
    columns): with two tied rows at 80/20 a generator that never saw the split reads 0.64 + 0.8 * 0.32 = 0.896, not
    0.8 (a table of three category columns read 0.56 instead of 0.5). The share of training rows among the tied rows
    is the neutral share in expectation whatever the number of ties.
    """
    def at_distance(reference: np.ndarray) -> np.ndarray:
        return attacks.count_within(reference, queries, distance + TIE)

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
    weights = attacks.nearest_share(pooled, queries, distance + TIE)
    concentration = float((weights ** 2).sum())
    p = len(train_x) / len(pooled)
    sd_raw = np.sqrt(p * (1 - p) * concentration)
    # the rescaling stretches the raw share above neutral by 0.5 / (1 - p): the side a gate reads
    return 0.5 * sd_raw / (1 - p), (1.0 / concentration if concentration > 0 else 0.0)


def _raw_share(train_x: np.ndarray, holdout_x: np.ndarray, synth_q: np.ndarray, dcr_synth: np.ndarray,
               synth_holdout: np.ndarray) -> float:
    """Share of synthetic rows nearer to a training row than to a holdout row, a tie scored as its real rows'
    share of training rows (see _tied_train_share); distances at TIE or below already set to 0."""
    diff = dcr_synth - synth_holdout
    closer = (diff < 0).astype(float)
    tied = np.flatnonzero(np.abs(diff) <= TIE)
    if len(tied):
        closer[tied] = _tied_train_share(train_x, holdout_x, synth_q[tied], dcr_synth[tied])
    return float(closer.mean())


def dcr_share(encoded: list[np.ndarray], *, max_rows: int = ATTACK_ROWS, seed: int = 0) -> float | None:
    """distance_to_closest_record's `share_closer_to_train` alone, from encoded frames (the same rows and queries),
    without its spread, histogram and NNDR: what a failing gate's drivers rerun once per column."""
    train_x, holdout_x, synth_x = encoded
    if train_x.shape[1] == 0 or min(len(train_x), len(holdout_x), len(synth_x)) == 0:
        return None
    synth_q = synth_x[pick(len(synth_x), max_rows, seed)]
    dcr_synth = attacks.nearest(train_x, synth_q, k=1)[:, 0]
    synth_holdout = attacks.nearest(holdout_x, synth_q, k=1)[:, 0]
    for d in (dcr_synth, synth_holdout):
        d[d <= TIE] = 0.0
    neutral = len(train_x) / (len(train_x) + len(holdout_x))
    return num(_rescale_share(_raw_share(train_x, holdout_x, synth_q, dcr_synth, synth_holdout), neutral))


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
    reason = skip_reason(train, holdout, synth, columns)
    if reason:
        return {"skipped": reason}
    train_x, holdout_x, synth_x = encoded if encoded is not None else encode_reference(train, holdout, synth, meta, columns, seed)
    if train_x.shape[1] == 0:
        return {"skipped": "no encodable columns"}
    synth_q = synth_x[pick(len(synth_x), max_rows, seed)]
    holdout_q = holdout_x[pick(len(holdout_x), max_rows, seed + 1)]
    synth_train = attacks.nearest(train_x, synth_q, k=2)
    holdout_train = attacks.nearest(train_x, holdout_q, k=2)
    synth_holdout = attacks.nearest(holdout_x, synth_q, k=1)[:, 0]
    for d in (synth_train, holdout_train, synth_holdout):
        d[d <= TIE] = 0.0
    dcr_synth, dcr_holdout = synth_train[:, 0], holdout_train[:, 0]
    neutral = len(train_x) / (len(train_x) + len(holdout_x))
    raw = _raw_share(train_x, holdout_x, synth_q, dcr_synth, synth_holdout)
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
        "share_synthetic_at_zero_distance": num((dcr_synth <= TIE).mean()),
        "share_holdout_at_zero_distance": num((dcr_holdout <= TIE).mean()),
        "histogram": _histogram(dcr_synth, dcr_holdout),
        "rows_used": {"train": int(len(train_x)), "holdout": int(len(holdout_x)), "synthetic": int(len(synth_q))},
        "dimensions": int(train_x.shape[1]),
    }
    if synth_train.shape[1] < 2:
        result["nndr"] = {"skipped": "fewer than two training rows"}
        return result

    def ratio(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 1] > TIE, d[:, 0] / np.maximum(d[:, 1], TIE), 1.0)

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

