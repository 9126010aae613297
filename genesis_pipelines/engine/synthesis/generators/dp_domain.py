"""The public domain of a DP model (numeric bounds, category sets), found without silent garbage, and checked.

Shared by every DP generator:
- `default_delta(n)`: min(1e-6, 1 / (10 n)), well below 1/n;
- `dp_octave_bounds`: numeric bounds from a Laplace histogram over a fixed, clamped grid of signed octaves
  (+-2^-8 .. +-2^40; datetimes: calendar years 1800..2200), kept where the noisy count passes a threshold set so that
  an empty bin passes with probability at most 1e-3 over the whole grid. It cannot explode: the bounds are always
  edges of bins that hold real rows (except with that small probability, and then still inside the clamp). Too few
  rows for the epsilon -> DomainTooSmall naming the column and what to declare;
- `gaussian_category_selection`: unknown category sets through Gaussian counts kept above 1 + sigma z(1 - delta)
  ((rho, delta)-DP per column: a category held by one row surfaces with probability <= delta), which at
  epsilon 1 keeps categories of about a hundred rows in a 1,000-row table (the Laplace stability threshold,
  1 + ln(1/delta)/epsilon, needs several hundred);
- `check_domain`: the post-sampling check that refuses output outside the declared or estimated domain.
Neighbouring tables differ by one added or removed row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtri

from genesis_pipelines.engine.core.errors import GenesisError, ModelError

# signed octaves: ... -2^1, -2^0, ..., -2^-8, 0, 2^-8, ..., 2^40 (about 1.1e12): values beyond are clamped
_POS = 2.0 ** np.arange(-8, 41)
OCTAVE_EDGES = np.concatenate([-_POS[::-1], [0.0], _POS])
_US_PER_YEAR = 365.2425 * 86400 * 1e6
YEAR_EDGES = np.arange(1800, 2201, dtype="float64")  # datetimes: whole calendar years, as microseconds below
FALSE_BIN = 1e-3  # probability that any empty bin of the grid passes the threshold


class DomainTooSmall(GenesisError):
    """The table is too small for the requested epsilon to find a column's domain privately."""


def default_delta(n: int) -> float:
    return float(min(1e-6, 1.0 / (10.0 * max(int(n), 1))))


def rho_from(epsilon: float, delta: float) -> float:
    """The zCDP rho whose conversion (rho + 2 sqrt(rho ln 1/delta), delta) equals (epsilon, delta) (Bun & Steinke)."""
    log_term = math.log(1.0 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


def epsilon_from(rho: float, delta: float) -> float:
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def _to_years(values: np.ndarray) -> np.ndarray:
    return 1970.0 + values / _US_PER_YEAR


def _from_years(years: np.ndarray | float) -> np.ndarray | float:
    return (np.asarray(years) - 1970.0) * _US_PER_YEAR


def dp_octave_bounds(values: np.ndarray, sdtype: str, rng: np.random.Generator, *, epsilon: float | None = None,
                     sigma: float | None = None, table: str, column: str) -> tuple[float, float]:
    """Bounds from a noisy histogram over the clamped grid (L1 and L2 sensitivity 1): Laplace(1/epsilon) noise
    (epsilon-DP) or N(0, sigma^2) (1/(2 sigma^2)-zCDP). The bounds are the outer edges of the outermost bins whose
    noisy count passes a threshold that an empty bin passes with probability <= FALSE_BIN over the grid; when no
    single bin passes, windows of 2, 4, ... adjacent bins are tried on the same noisy counts (post-processing)."""
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if sdtype == "datetime":
        edges, x = YEAR_EDGES, _to_years(values)
    else:
        edges, x = OCTAVE_EDGES, values
    x = np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))
    counts = np.bincount(np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2), minlength=len(edges) - 1)
    noise = rng.laplace(0.0, 1.0 / epsilon, len(counts)) if sigma is None else rng.normal(0.0, sigma, len(counts))
    noisy = counts + noise
    width = 1
    while width <= len(counts):
        windows = np.convolve(noisy, np.ones(width), mode="valid")
        tail = FALSE_BIN / len(windows)
        # a sum of `width` noises: Gaussian sigma sqrt(width); Laplace bounded by its Chernoff tail (conservative)
        threshold = (sigma * math.sqrt(width) * float(ndtri(1.0 - tail)) if sigma is not None
                     else math.sqrt(width) * 2.0 * math.log(1.0 / tail) / epsilon)
        passed = np.flatnonzero(windows > threshold)
        if len(passed):
            lo, hi = float(edges[passed[0]]), float(edges[passed[-1] + width])
            return (float(_from_years(lo)), float(_from_years(hi))) if sdtype == "datetime" else (lo, hi)
        width *= 2
    raise DomainTooSmall(
        f"table {table!r} column {column!r}: {len(values)} values are too few to find its bounds privately at this "
        f"epsilon; declare them in the generator settings, bounds: {{{column}: [low, high]}}, or raise epsilon")


def gaussian_category_selection(keys: np.ndarray, sigma: float, delta: float, rng: np.random.Generator, *,
                                table: str, column: str) -> tuple[list, np.ndarray]:
    """Categories whose count + N(0, sigma^2) exceeds 1 + sigma z(1 - delta), most frequent first, with the noisy counts."""
    uniques, counts = np.unique(np.asarray(keys), return_counts=True) if len(keys) else (np.array([]), np.array([]))
    noisy = counts + rng.normal(0.0, sigma, len(counts))
    threshold = 1.0 + sigma * float(ndtri(1.0 - delta))
    kept = noisy > threshold
    if not kept.any():
        raise DomainTooSmall(
            f"table {table!r} column {column!r}: no category has enough rows to pass the DP selection (about "
            f"{threshold:.0f} rows needed at this epsilon, {len(keys)} non-null rows); declare its categories in "
            f"the generator settings, categories: {{{column}: [...]}}, or raise epsilon")
    order = np.argsort(-noisy[kept], kind="stable")
    return [v.item() if hasattr(v, "item") else v for v in uniques[kept][order]], noisy[kept][order]


def check_domain(frame: pd.DataFrame, domain: dict, *, table: str, method: str) -> None:
    """Refuse output outside the model's domain: {column: {"bounds": [lo, hi]} | {"categories": [...]}} (numbers as
    stored: datetimes in microseconds). The error names the column and what to declare, never a value."""
    for column, spec in domain.items():
        if column not in frame.columns:
            continue
        series = frame[column].dropna()
        if not len(series):
            continue
        if "bounds" in spec:
            lo, hi = spec["bounds"]
            if pd.api.types.is_datetime64_any_dtype(series):
                x = series.astype("datetime64[us]").astype("int64").to_numpy(dtype="float64")
            else:
                x = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
            tolerance = 1e-9 * max(abs(lo), abs(hi), 1.0) + (1e6 * 86400 if pd.api.types.is_datetime64_any_dtype(series) else 0.5)
            outside = int(np.sum(~np.isfinite(x) | (x < lo - tolerance) | (x > hi + tolerance)))
            what = f"bounds: {{{column}: [low, high]}}"
        else:
            allowed = {str(v) for v in spec["categories"]}
            outside = int((~series.astype(str).isin(allowed)).sum())
            what = f"categories: {{{column}: [...]}}"
        if outside:
            raise ModelError(f"{method} on table {table!r}: {outside} sampled value(s) of column {column!r} fall outside the "
                             f"domain the model was fitted on; nothing is published: declare {what} in the generator settings")
