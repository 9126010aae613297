"""Differentially private estimates of the public parts of a model: numeric bounds and category sets.

Used where the spec gives no bounds / categories for a DP generator, so that nothing outside DP-SGD reads the
real values without a privacy guarantee. Neighbouring tables differ by one added or removed row.
"""

from __future__ import annotations

import numpy as np

# candidate bounds: 0 and +-2^(k/8), from 2^-20 to 2^63 (about 9% apart): data-independent, covers dates in microseconds
_MAGNITUDES = 2.0 ** (np.arange(-20 * 8, 63 * 8 + 1) / 8.0)
CANDIDATES = np.concatenate([-_MAGNITUDES[::-1], [0.0], _MAGNITUDES])


def dp_quantile(values: np.ndarray, q: float, epsilon: float, rng: np.random.Generator) -> float:
    """Exponential mechanism over a fixed grid, utility -|rank - q n| (sensitivity 1): epsilon-DP."""
    ordered = np.sort(np.asarray(values, dtype="float64"))
    ranks = np.searchsorted(ordered, CANDIDATES, side="left")
    utility = -np.abs(ranks - q * len(ordered))
    scores = epsilon * utility / 2.0 + rng.gumbel(size=len(CANDIDATES))  # Gumbel-max = exponential mechanism
    return float(CANDIDATES[int(np.argmax(scores))])


def dp_bounds(values: np.ndarray, epsilon: float, rng: np.random.Generator, tail: float = 0.01) -> tuple[float, float]:
    """Low and high quantile (tail, 1 - tail), epsilon/2 each; always a non-empty interval. Not used by the DP
    generators any more: on small tables at small epsilon it picks candidates far outside the data (1e9-1e17);
    they use dp_domain.dp_octave_bounds."""
    lo = dp_quantile(values, tail, epsilon / 2, rng)
    hi = dp_quantile(values, 1 - tail, epsilon / 2, rng)
    if hi <= lo:
        lo, hi = min(lo, hi), CANDIDATES[min(np.searchsorted(CANDIDATES, max(lo, hi), side="right"), len(CANDIDATES) - 1)]
    return lo, float(hi)


def dp_categories(keys: np.ndarray, epsilon: float, delta: float, rng: np.random.Generator) -> list:
    """Stability-based histogram: Laplace(1/epsilon) counts, kept above 1 + ln(1/delta)/epsilon: (epsilon, delta)-DP.

    A category held by a single row passes with probability at most delta / 2, so the set of kept categories
    never reveals a rare value except with that probability. Ordered by noisy count, most frequent first.
    """
    uniques, counts = np.unique(np.asarray(keys), return_counts=True) if len(keys) else (np.array([]), np.array([]))
    noisy = counts + rng.laplace(0.0, 1.0 / epsilon, len(counts))
    threshold = 1.0 + np.log(1.0 / delta) / epsilon
    kept = noisy > threshold
    order = np.argsort(-noisy[kept], kind="stable")
    return [v.item() if hasattr(v, "item") else v for v in uniques[kept][order]]
