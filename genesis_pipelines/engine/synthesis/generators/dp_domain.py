"""The public domain of a DP model (numeric bounds, category sets), found without silent garbage, and checked.

Shared by every DP generator:
- `default_delta(n)`: min(1e-6, 1 / (10 n)), well below 1/n;
- `dp_octave_bounds`: numeric bounds in two noisy histograms, half the budget each: a fixed, clamped grid of signed
  octaves (+-2^-8 .. +-2^40; datetimes: calendar years 1800..2200), then 1,024 cells (whole integers for integer
  columns) of the outermost octaves. Only windows that pass a threshold an empty one passes with probability at most
  1e-3 count, so nothing can explode; a bound is the outer edge of the outermost zoom window that stands above the
  noise with only noise beyond it (exact for a constant or a dense end), else of the octave window. Too few rows for
  the epsilon -> DomainTooSmall naming the column and what to declare;
- `gaussian_category_selection`: unknown category sets through Gaussian counts kept above 1 + sigma z(1 - delta)
  ((rho, delta)-DP per column: a category held by one row surfaces with probability <= delta), which at
  epsilon 1 keeps categories of about a hundred rows in a 1,000-row table (the Laplace stability threshold,
  1 + ln(1/delta)/epsilon, needs several hundred);
- `check_domain`: the post-sampling check that refuses output outside the declared or estimated domain.
Neighbouring tables differ by one added or removed row.
"""

from __future__ import annotations

import functools
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
FALSE_BIN = 1e-3  # probability that any empty bin (or window) of a grid passes the threshold
OCTAVE_SHARE = 0.5  # of a column's bounds budget on the octave histogram; the rest on the zoom histogram
CLAMPED_SHARE = 0.05  # the most rows a bound inside the real range may clamp (as read from the noisy counts)
ZOOM_CELLS = 1024  # cells of the second, finer bounds histogram over the outermost octave windows


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


def _noise(rng, n, epsilon, sigma):
    return rng.laplace(0.0, 1.0 / epsilon, n) if sigma is None else rng.normal(0.0, sigma, n)


_CHERNOFF_U = np.linspace(1e-3, 1.0 - 1e-3, 999)  # the grid of l * b that _threshold minimises over
_CHERNOFF_LOG = np.log1p(-_CHERNOFF_U * _CHERNOFF_U)


@functools.lru_cache(maxsize=4096)  # pure in its arguments; the zoom loops ask for the same widths again and again
def _threshold(width: int, tail: float, epsilon: float | None, sigma: float | None) -> float:
    """What a sum of `width` noises exceeds with probability <= tail: Gaussian sigma sqrt(width) z(1 - tail);
    Laplace(b) by its Chernoff bound, min over 0 < l < 1/b of (width ln(1 / (1 - l^2 b^2)) + ln(1/tail)) / l (the
    moment generating function of a Laplace is 1 / (1 - l^2 b^2); any l gives a valid bound), exact for one noise."""
    if sigma is not None:
        return sigma * math.sqrt(width) * float(ndtri(1.0 - tail))
    b, log_tail = 1.0 / epsilon, math.log(1.0 / tail)
    if width == 1:  # P(X > t) = exp(-t / b) / 2
        return b * math.log(1.0 / (2.0 * tail))
    # l = u / b over the grid u
    return float((b * (-width * _CHERNOFF_LOG + log_tail) / _CHERNOFF_U).min())


def _zoom_cells(lo: float, hi: float, integer: bool) -> np.ndarray:
    """Edges of at most ZOOM_CELLS equal cells over [lo, hi): whole integers (one cell per integer while they fit)
    for integer columns, so that a cell's values are known exactly."""
    if not integer:
        return np.linspace(lo, hi, ZOOM_CELLS + 1)
    start, stop = math.ceil(lo), math.ceil(hi)  # the integers in [lo, hi)
    if stop <= start:  # no integer in [lo, hi): one cell that no row falls in
        return np.array([float(lo), float(hi)])
    step = math.ceil((stop - start) / ZOOM_CELLS)
    return np.minimum(start + step * np.arange(math.ceil((stop - start) / step) + 1), stop).astype("float64")


def dp_octave_bounds(values: np.ndarray, sdtype: str, rng: np.random.Generator, *, epsilon: float | None = None,
                     sigma: float | None = None, table: str, column: str) -> tuple[float, float]:
    """Bounds at the ends of the data from two noisy histograms of L1 and L2 sensitivity 1 each, OCTAVE_SHARE of the
    budget on the first: Laplace noise (epsilon-DP in all) or Gaussian noise (1/(2 sigma^2)-zCDP in all), so callers
    account for one query of sensitivity 1 with `epsilon` or `sigma`.

    1. octaves: counts over the clamped grid; the outermost windows of adjacent bins (1, 2, 4, ... bins: the first
       width where any passes) whose noisy sum passes a threshold that an empty window passes with probability
       <= FALSE_BIN over the grid. Nothing can explode: the bounds stay inside these windows;
    2. zoom: counts over ZOOM_CELLS equal cells (whole integers for integer columns) of those outermost windows;
       prefix, suffix and aligned windows of cells tested the same way.
    A window that passes holds real values, so the real min is at most its highest value and the real max at least
    its lowest: the bounds are the tightest such values (the inner edges of the octave windows at worst), inside the
    real range: exact at a dense end (a constant, a common minimum, few values), and rows beyond them are clamped.
    Where that would surely clamp more than CLAMPED_SHARE of the rows (rows spread thin at an end: nothing near the
    end stands above the noise, and the column would collapse onto an octave edge), that end takes the octave
    window's outer edge instead: near the data, but not surely inside its range."""
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if sigma is not None:  # zCDP adds up: 1/(2 sigma^2) = OCTAVE_SHARE and the rest
        sigma_oct, eps_oct = sigma / math.sqrt(OCTAVE_SHARE), None
        sigma_step, eps_step = sigma / math.sqrt(1.0 - OCTAVE_SHARE), None
    else:
        sigma_oct, eps_oct = None, epsilon * OCTAVE_SHARE
        sigma_step, eps_step = None, epsilon * (1.0 - OCTAVE_SHARE)
    integer = sdtype == "integer"
    if sdtype == "datetime":
        edges, x = YEAR_EDGES, _to_years(values)
    else:
        edges, x = OCTAVE_EDGES, values
    x = np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))
    counts = np.bincount(np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2), minlength=len(edges) - 1)
    noisy = counts + _noise(rng, len(counts), eps_oct, sigma_oct)
    found = None
    width = 1
    while width <= len(counts) and found is None:
        windows = np.convolve(noisy, np.ones(width), mode="valid")
        passed = np.flatnonzero(windows > _threshold(width, FALSE_BIN / len(windows), eps_oct, sigma_oct))
        if len(passed):
            found = passed[0], passed[-1], width
        width *= 2
    if found is None:
        raise DomainTooSmall(
            f"table {table!r} column {column!r}: {len(values)} values are too few to find its bounds privately at this "
            f"epsilon; declare them in the generator settings, bounds: {{{column}: [low, high]}}, or raise epsilon")
    first, last, width = found
    low_window, high_window = (float(edges[first]), float(edges[first + width])), (float(edges[last]), float(edges[last + width]))
    whole = integer and sdtype != "datetime"

    def highest(a: float, b: float) -> float:  # the greatest value a window [a, b) can hold
        return float(math.ceil(b) - 1) if whole else b

    def lowest(a: float, b: float) -> float:
        return float(math.ceil(a)) if whole else a

    # 2. zoom into the outermost windows (one region when they overlap)
    regions = [low_window, high_window] if low_window[1] <= high_window[0] else [(low_window[0], high_window[1])]
    cells = [_zoom_cells(a, b, whole) for a, b in regions]
    noisy_cells = []
    for cell_edges in cells:
        inside = (x >= cell_edges[0]) & (x < cell_edges[-1])
        c = np.bincount(np.searchsorted(cell_edges, x[inside], side="right") - 1, minlength=len(cell_edges) - 1)
        noisy_cells.append(c[:len(cell_edges) - 1] + _noise(rng, len(cell_edges) - 1, eps_step, sigma_step))
    tail = FALSE_BIN / max(sum(4 * len(n) for n in noisy_cells), 1)  # aligned, prefix and suffix windows, every region
    evidence = []  # (lowest, highest value) of each zoom window that stands above the noise
    for cell_edges, noisy_c in zip(cells, noisy_cells):
        size = len(noisy_c)
        before = np.concatenate([[0.0], np.cumsum(noisy_c)])
        for width in range(1, size + 1):  # prefix and suffix windows: the rows from an end of the region
            if before[width] > _threshold(width, tail, eps_step, sigma_step):
                evidence.append((lowest(cell_edges[0], cell_edges[width]), highest(cell_edges[0], cell_edges[width])))
                break
        for width in range(1, size + 1):
            if before[-1] - before[size - width] > _threshold(width, tail, eps_step, sigma_step):
                evidence.append((lowest(cell_edges[size - width], cell_edges[-1]), highest(cell_edges[size - width], cell_edges[-1])))
                break
        width = 1
        while width <= size:  # aligned windows of 1, 2, 4, ... cells
            m = size // width
            sums = noisy_c[:m * width].reshape(m, width).sum(axis=1)
            for j in np.flatnonzero(sums > _threshold(width, tail, eps_step, sigma_step)):
                evidence.append((lowest(cell_edges[j * width], cell_edges[(j + 1) * width]),
                                 highest(cell_edges[j * width], cell_edges[(j + 1) * width])))
            width *= 2
    # a window that stands out holds real values: the real min is at most its highest value, the real max at least
    # its lowest, so bounds taken there (or at the inner edges of the octave windows) are inside the real range
    outer_lo, outer_hi = lowest(*low_window), highest(*high_window)
    lo = min([top for bottom, top in evidence if bottom < low_window[1]] + [highest(*low_window)])
    hi = max([bottom for bottom, top in evidence if top >= high_window[0]] + [lowest(*high_window)])
    # ...unless that surely clamps more than CLAMPED_SHARE of the rows (rows spread thin at an end, so no window near
    # the end stands out, and the column would collapse onto an octave edge): then the end keeps the octave window's
    # outer edge, near the data but not surely inside its range. Read from the noisy counts (post-processing)
    deviation_oct = sigma_oct if sigma_oct is not None else math.sqrt(2.0) / eps_oct  # of one noisy count
    deviation_zoom = sigma_step if sigma_step is not None else math.sqrt(2.0) / eps_step
    span = (edges[:-1] >= low_window[0]) & (edges[1:] <= high_window[1])
    total = max(float(noisy[span].sum()), 1.0)

    def surely_more(parts: list[np.ndarray], deviation: float) -> bool:  # noisy rows less 3 deviations above the share
        rows = sum(float(p.sum()) for p in parts)
        return rows - 3.0 * deviation * math.sqrt(sum(len(p) for p in parts)) > CLAMPED_SHARE * total

    def clamped(e: np.ndarray, counts: np.ndarray, low: bool, keep=True, wide=False) -> np.ndarray:
        """Counts of the cells beyond a bound: wholly, or (a wide octave bin) all but its value at the bound."""
        tops = np.array([highest(u, v) for u, v in zip(e[:-1], e[1:])])
        bottoms = np.array([lowest(u, v) for u, v in zip(e[:-1], e[1:])])
        if low:
            return counts[keep & ((tops <= lo) & (bottoms < lo) if wide else tops < lo)]
        return counts[keep & ((bottoms >= hi) & (tops > hi) if wide else bottoms > hi)]

    if surely_more([clamped(edges, noisy, True, span, wide=True)], deviation_oct) or surely_more(
            [clamped(e, c, True) for e, c in zip(cells, noisy_cells) if e[0] < low_window[1]], deviation_zoom):
        lo = outer_lo
    if surely_more([clamped(edges, noisy, False, span, wide=True)], deviation_oct) or surely_more(
            [clamped(e, c, False) for e, c in zip(cells, noisy_cells) if e[-1] > high_window[0]], deviation_zoom):
        hi = outer_hi
    if lo > hi:  # the zoom's windows say less than the octaves: their outer edges
        lo, hi = outer_lo, outer_hi
    if sdtype == "datetime":
        return float(_from_years(lo)), float(_from_years(hi))
    return lo, hi


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
