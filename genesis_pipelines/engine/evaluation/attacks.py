"""Attacks on synthetic data: membership inference, attribute inference, singling out, linkability, k-anonymity.

Every attack is scored the same way: how much better it does on the training rows (members) than on real
rows the generator never saw (the holdout, or "control" in Anonymeter's words). A risk near 0 / an AUC
near 0.5 means the synthetic data tells an attacker no more about the people in it than about anyone else.

Singling out and linkability follow Anonymeter (Giomi et al., "A Unified Framework for Quantifying Privacy
Risk in Synthetic Data", PoPETs 2023): risk = (attack rate - control rate) / (1 - control rate), with a
Wilson interval on the attack rate. The `anonymeter` package itself (Clear BSD) pins numpy<1.27, which
does not install beside numpy 2, so the method is implemented here. Inputs are encoded arrays and codes;
outputs are rates, counts and curves: never a row or value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import pairwise_distances, roc_curve
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from genesis_pipelines.engine.analysis.columns import num

ROC_POINTS = 50
BOOTSTRAP = 200
CONFIDENCE = 0.95


# ---------------------------------------------------------------- AUC, its interval and the curve


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Mann-Whitney AUC (ties count one half); None when one class is missing."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _bootstrap_auc(scores: np.ndarray, labels: np.ndarray, seed: int, rounds: int = BOOTSTRAP) -> list[float | None]:
    """Percentile interval, resampling members and non-members separately so both stay present."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    values = []
    for _ in range(rounds):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values.append(auc(scores[idx], labels[idx]))
    alpha = (1 - CONFIDENCE) / 2
    return [num(np.quantile(values, alpha)), num(np.quantile(values, 1 - alpha))]


def _roc(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The ROC curve interpolated at ROC_POINTS false-positive rates: small, and no score of any row."""
    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return {"fpr": [round(float(x), 4) for x in grid], "tpr": [round(float(y), 4) for y in np.interp(grid, fpr, tpr)]}


def membership_result(member_scores: np.ndarray, nonmember_scores: np.ndarray, seed: int) -> dict:
    """Higher score = "more likely a member"."""
    scores = np.concatenate([member_scores, nonmember_scores]).astype("float64")
    labels = np.concatenate([np.ones(len(member_scores), bool), np.zeros(len(nonmember_scores), bool)])
    value = auc(scores, labels)
    if value is None:
        return {"skipped": "members or non-members missing"}
    return {"auc": num(value), "ci": _bootstrap_auc(scores, labels, seed), "roc": _roc(scores, labels),
            "members": int(len(member_scores)), "non_members": int(len(nonmember_scores))}


def nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances to the k nearest reference rows, shape (len(queries), k); brute force suits one-hot data."""
    k = min(k, len(reference))
    # float64: in float32 the expanded-dot distance is off by ~1e-4, so rows at equal distance stop tying and the
    # larger reference set (more chances of a rounding-down) looks systematically nearer
    model = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(np.asarray(reference, dtype="float64"))
    distances, _ = model.kneighbors(np.asarray(queries, dtype="float64"))
    return distances


def nearest_share(reference: np.ndarray, queries: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Each reference row's share of the queries it is nearest to: a query within whose radius k reference rows lie
    gives each of them 1/k (exact; queries in chunks bound the memory)."""
    reference, queries = np.asarray(reference, dtype="float64"), np.asarray(queries, dtype="float64")
    radius = np.asarray(radius, dtype="float64")
    weights = np.zeros(len(reference))
    for start in range(0, len(queries), 256):
        part = slice(start, start + 256)
        within = pairwise_distances(queries[part], reference) <= radius[part, None]
        weights += (within / np.maximum(within.sum(axis=1, keepdims=True), 1)).sum(axis=0)
    return weights / max(len(queries), 1)


def count_within(reference: np.ndarray, queries: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """How many reference rows lie within each query's own radius (exact; queries in chunks bound the memory)."""
    reference, queries = np.asarray(reference, dtype="float64"), np.asarray(queries, dtype="float64")
    radius = np.asarray(radius, dtype="float64")
    counts = np.zeros(len(queries), dtype=int)
    for start in range(0, len(queries), 256):
        part = slice(start, start + 256)
        counts[part] = (pairwise_distances(queries[part], reference) <= radius[part, None]).sum(axis=1)
    return counts


def distance_attack(member_distance: np.ndarray, nonmember_distance: np.ndarray, seed: int) -> dict:
    """A real row is guessed a member the closer a synthetic row sits to it (the classic DCR attack)."""
    return membership_result(-np.asarray(member_distance), -np.asarray(nonmember_distance), seed)


def shadow_attack(synth_features: np.ndarray, synth_distance: np.ndarray, reference_features: np.ndarray,
                  reference_distance: np.ndarray, member_features: np.ndarray, member_distance: np.ndarray,
                  nonmember_features: np.ndarray, nonmember_distance: np.ndarray, seed: int) -> dict:
    """An attacker with the synthetic table and some real rows of the population (the reference, rows the
    generator never saw) trains a classifier synthetic-vs-reference; where synthetic density exceeds the
    population's the generator has memorised, so the classifier's "synthetic" score is a membership score.
    Features: the row (numbers, category codes) plus its distance to the nearest synthetic row (leave-one-out
    for the synthetic rows themselves).
    """
    def stack(features, distance):
        return np.hstack([features, np.asarray(distance, dtype="float64")[:, None]])

    x = np.vstack([stack(synth_features, synth_distance), stack(reference_features, reference_distance)])
    labels = np.concatenate([np.ones(len(synth_features)), np.zeros(len(reference_features))])
    weights = np.where(labels == 1, len(reference_features) / max(len(synth_features), 1), 1.0)  # balanced classes
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, early_stopping=False, random_state=seed)
    with threadpool_limits(1):  # small fits: OpenMP spin-waiting costs more than it saves, badly so on a busy host
        model.fit(x, labels, sample_weight=weights)
    return membership_result(model.predict_proba(stack(member_features, member_distance))[:, 1],
                             model.predict_proba(stack(nonmember_features, nonmember_distance))[:, 1], seed)


# ---------------------------------------------------------------- Anonymeter-style risks


def wilson(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Rate and Wilson score interval."""
    if n == 0:
        return 0.0, 0.0, 1.0
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    rate = successes / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(rate), float(max(0.0, centre - half)), float(min(1.0, centre + half))


def risk(attack_successes: float, n_attack: int, control_successes: float, n_control: int) -> dict:
    """Anonymeter's risk: the attack's success beyond what it achieves on people not in the training data."""
    rate, low, high = wilson(attack_successes, n_attack)
    control = min(control_successes / n_control, 1.0) if n_control else 0.0

    def scaled(r: float) -> float:
        return 0.0 if control >= 1 else max(0.0, (r - control) / (1 - control))

    return {"risk": num(scaled(rate)), "ci": [num(scaled(low)), num(scaled(high))], "attack_rate": num(rate),
            "control_rate": num(control), "attacks": int(n_attack)}


def _condition(data: np.ndarray, op: str, value: float) -> np.ndarray:
    if op == "==":
        return np.isnan(data) if np.isnan(value) else data == value
    return data <= value if op == "<=" else data >= value


def _predicates(synth: list[np.ndarray], numeric: list[bool], n_attacks: int, n_columns: int,
                rng: np.random.Generator, max_tries: int) -> list[list[tuple[int, str, float]]]:
    """Multivariate predicates built from synthetic rows, each matching exactly one synthetic row.

    Like Anonymeter's multivariate mode (equality on categories, <= or >= on numbers at the row's value), with
    the column set grown greedily from `n_columns` until the row is isolated, so most tries yield a predicate."""
    n_rows, n_cols = len(synth[0]), len(synth)
    kept: list[list[tuple[int, str, float]]] = []
    for _ in range(max_tries):
        if len(kept) >= n_attacks:
            break
        row = int(rng.integers(n_rows))
        predicate, mask = [], np.ones(n_rows, dtype=bool)
        for col in rng.permutation(n_cols):
            value = synth[col][row]
            op = ("<=" if rng.random() < 0.5 else ">=") if numeric[col] and not np.isnan(value) else "=="
            predicate.append((int(col), op, float(value)))
            mask &= _condition(synth[col], op, value)
            if len(predicate) >= n_columns and mask.sum() <= 1:
                break
        if mask.sum() == 1:
            kept.append(predicate)
    return kept


def _count(columns: list[np.ndarray], predicate: list[tuple[int, str, float]]) -> int:
    mask = None
    for col, op, value in predicate:
        part = _condition(columns[col], op, value)
        mask = part if mask is None else mask & part
        if not mask.any():
            return 0
    return int(mask.sum())


def _subset(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(size, size=n, replace=False))


def singling_out(train: list[np.ndarray], control: list[np.ndarray], synth: list[np.ndarray], numeric: list[bool],
                 *, n_attacks: int = 300, n_columns: int | None = None, seed: int = 0) -> dict:
    """Can a predicate that isolates one synthetic row isolate one real training row, more often than one
    control row? Columns are float arrays (category codes shared across the three sets, NaN for null).
    Predicates combine at least `n_columns` columns (default 3), more where needed to isolate the row."""
    n_columns = n_columns or 3
    if not synth or len(synth[0]) == 0 or len(train[0]) == 0 or len(control[0]) == 0:
        return {"skipped": "no rows to attack"}
    rng = np.random.default_rng(seed)
    predicates = _predicates(synth, numeric, n_attacks, n_columns, rng, max_tries=3 * n_attacks)
    if not predicates:
        return {"skipped": "no predicate singles out a synthetic row"}
    # Equal-size comparison: train is cut to the control's size (seeded), so a fresh sample scores 0 whatever
    # the split; fitted size corrections (Anonymeter's) proved biased on predicates chosen to be rare.
    n = min(len(train[0]), len(control[0]))
    if len(train[0]) > n:
        rows = _subset(len(train[0]), n, rng)
        train = [c[rows] for c in train]
    if len(control[0]) > n:
        rows = _subset(len(control[0]), n, rng)
        control = [c[rows] for c in control]
    train_hits = sum(_count(train, p) == 1 for p in predicates)
    control_hits = sum(_count(control, p) == 1 for p in predicates)
    result = risk(float(train_hits), len(predicates), float(control_hits), len(predicates))
    result["rows_compared"] = int(n)
    return {**result, "mode": "multivariate", "columns_per_predicate": min(n_columns, len(synth))}


def _nearest_sets(reference: np.ndarray, queries: np.ndarray, cap: int) -> list[np.ndarray]:
    """Indices of the reference rows at the smallest distance from each query (ties kept, up to `cap`)."""
    k = min(cap, len(reference))
    distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference).kneighbors(queries)
    tied = distances <= distances[:, :1] + 1e-5
    return [row[mask] for row, mask in zip(indices, tied)]


def linkability(train_a: np.ndarray, train_b: np.ndarray, control_a: np.ndarray, control_b: np.ndarray,
                synth_a: np.ndarray, synth_b: np.ndarray, *, tie_cap: int = 20) -> dict:
    """An attacker holding two halves of a person's record (columns A in one database, B in another) links
    them when the nearest synthetic row on A is also the nearest on B. Ties are broken at random, so a target
    counts |A∩B| / (|A| |B|) of a success (tie groups capped at `tie_cap`). Targets: training rows vs as many
    control rows."""

    def successes(a: np.ndarray, b: np.ndarray) -> float:
        total = 0.0
        for x, y in zip(_nearest_sets(synth_a, a, tie_cap), _nearest_sets(synth_b, b, tie_cap)):
            total += len(np.intersect1d(x, y)) / (len(x) * len(y))
        return total

    if len(synth_a) == 0 or len(train_a) == 0 or len(control_a) == 0:
        return {"skipped": "no rows to attack"}
    return risk(successes(train_a, train_b), len(train_a), successes(control_a, control_b), len(control_a))


def attribute_inference(synth_q: np.ndarray, synth_target: np.ndarray, member_q: np.ndarray, member_target: np.ndarray,
                        holdout_q: np.ndarray, holdout_target: np.ndarray, *, categorical: bool,
                        tolerance: float = 0.05) -> dict:
    """Nearest synthetic row on the quasi-identifiers predicts the sensitive value (Anonymeter's inference
    attack). `accuracy` is on the real holdout, `member_accuracy` on training rows; the gap is the risk to the
    people in the data, the holdout accuracy alone what anyone learns from population statistics.
    Numeric targets are rank-scaled (0..1) and count as right within `tolerance` (5 percentile points)."""
    model = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(synth_q)

    def hits(truth: np.ndarray, guess: np.ndarray) -> np.ndarray:
        if categorical:
            return guess == truth
        return np.abs(guess - truth) <= tolerance

    def predict(q: np.ndarray) -> np.ndarray:
        return synth_target[model.kneighbors(q, return_distance=False)[:, 0]]

    if categorical:
        values, counts = np.unique(synth_target, return_counts=True)
        baseline_guess = values[np.argmax(counts)]
    else:
        baseline_guess = float(np.nanmean(synth_target))
    holdout_hits = hits(holdout_target, predict(holdout_q))
    member_hits = hits(member_target, predict(member_q))
    baseline = hits(holdout_target, np.full(len(holdout_target), baseline_guess))
    result = risk(float(member_hits.sum()), len(member_hits), float(holdout_hits.sum()), len(holdout_hits))
    return {"accuracy": num(holdout_hits.mean()), "member_accuracy": num(member_hits.mean()),
            "baseline": num(baseline.mean()), "risk": result["risk"], "ci": result["ci"],
            "kind": "categorical" if categorical else "numeric", "targets": int(len(member_hits))}


# ---------------------------------------------------------------- k-anonymity and l-diversity


def k_anonymity(qi_codes: pd.DataFrame, sensitive: dict[str, np.ndarray], *, k_target: int = 5) -> dict:
    """Equivalence classes of the quasi-identifier tuple: the smallest class (k), how many rows sit in classes
    smaller than `k_target`, and per sensitive column the fewest distinct values in a class (l)."""
    if qi_codes.empty or qi_codes.shape[1] == 0:
        return {"skipped": "no quasi-identifiers"}
    groups = qi_codes.groupby(list(qi_codes.columns), dropna=False, sort=False).ngroup().to_numpy()
    sizes = np.bincount(groups)
    sizes = sizes[sizes > 0]
    row_sizes = np.bincount(groups)[groups]
    out = {"k": int(sizes.min()), "classes": int(len(sizes)), "k_target": int(k_target),
           "share_rows_below_k_target": num((row_sizes < k_target).mean()),
           "share_unique_rows": num((row_sizes == 1).mean()), "l_diversity": {}}
    for column, values in sensitive.items():
        frame = pd.DataFrame({"g": groups, "v": values})
        distinct = frame.groupby("g")["v"].nunique(dropna=False).to_numpy()
        out["l_diversity"][column] = {"l": int(distinct.min()), "share_classes_l1": num((distinct <= 1).mean())}
    return out
