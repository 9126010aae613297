"""Differentially private category sets for the pure-epsilon DP generators (numeric bounds: dp_domain).

Used where the spec gives no bounds / categories for a DP generator, so that nothing outside DP-SGD reads the
real values without a privacy guarantee. Neighbouring tables differ by one added or removed row.
"""

from __future__ import annotations

import numpy as np


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
