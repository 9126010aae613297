"""The public domain of a DP model (numeric bounds, category sets), found without silent garbage, and checked.

Shared by every DP generator:
- `default_delta(n)`: min(1e-6, 1 / (10 n)), well below 1/n;
- `dp_octave_bounds`: numeric bounds from two noisy histograms and two exponential mechanisms (50 / 45 / 2.5 / 2.5 % of
  the column's budget): a fixed, clamped grid of signed octaves (+-2^-8 .. +-2^40; datetimes: calendar years
  1800..2200), then 1,024 cells (whole integers for integer columns) of the outermost octaves, then the 1st and 99th
  percentiles over cells of the outermost octaves and the bin beyond. Only windows that pass a threshold an empty
  one passes with probability at most 1e-4 (octaves) or 1e-3 (zoom) count, so nothing can explode; a bound sits at a dense end (a zoom window
  that stands above the noise: exact for a constant, a common minimum, a few values), else, where the dense end
  would surely clamp more than 5 % of the rows, at the percentile where the budget lets it tell, or the octave edge. Too few rows for the epsilon -> DomainTooSmall naming
  the column and what to declare;
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
FALSE_BIN = 1e-3  # probability that any empty window of the zoom passes the threshold (it moves a bound within a window)
FALSE_OCTAVE = 1e-4  # the same for the octave grid, per window width tried: a false octave window is garbage (a bound
# 2^36 for a column of hours, seen once with 1e-3), so it is kept rarer
OCTAVE_SHARE = 0.5  # of a column's bounds budget on the octave histogram
ZOOM_SHARE = 0.45  # on the zoom histogram; the rest, half each, on the two exponential-mechanism quantiles
QUANTILE = 0.01  # the quantiles the exponential mechanism aims at: the 1st and the 99th percentile
QUANTILE_CELLS = 256  # candidate cells of each quantile (whole integers for integer columns while they fit)
QUANTILE_FAIL = 0.05  # a quantile counts as sure when its rank error exceeds its target with at most this probability
CLAMPED_SHARE = 0.05  # the most rows a bound inside the real range may clamp (as read from the noisy counts)
SURELY = 4.0  # deviations of the noisy counts that make "surely more than CLAMPED_SHARE" (3 widened a constant once)
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
    return _cells(lo, hi, integer, ZOOM_CELLS)


def _cells(lo: float, hi: float, integer: bool, cells: int) -> np.ndarray:
    """Edges of at most `cells` equal cells over [lo, hi): whole integers (one cell per integer while they fit)
    for integer columns, so that a cell's values are known exactly."""
    if not integer:
        return np.linspace(lo, hi, cells + 1)
    start, stop = math.ceil(lo), math.ceil(hi)  # the integers in [lo, hi)
    if stop <= start:  # no integer in [lo, hi): one cell that no row falls in
        return np.array([float(lo), float(hi)])
    step = math.ceil((stop - start) / cells)
    return np.minimum(start + step * np.arange(math.ceil((stop - start) / step) + 1), stop).astype("float64")


def _exp_quantile(ordered: np.ndarray, a: float, b: float, target: float, eps: float, rng: np.random.Generator,
                  low: bool, whole: bool) -> tuple[float, bool]:
    """The exponential mechanism (eps-DP, score sensitivity 1) over at most QUANTILE_CELLS cells of [a, b): score =
    -(rows beyond the cell's near edge - target) where positive, -(target - rows beyond its far edge) where positive,
    0 for the cell holding the target-th row from the end (`low`: from the bottom). `target` is public (from a noisy
    total), so one row moves a score by at most 1. Returns the cell's inner value (highest for the low end, lowest
    for the high end: rows in that cell move by less than its width) and whether it is sure: with probability >=
    1 - QUANTILE_FAIL the score lost is at most 2 (ln(cells) + ln(1/QUANTILE_FAIL)) / eps, and where that is below
    the target the cell has real rows beyond its far edge, so the value lies inside the real range. Gumbel-max
    sampling: the same rng, the same choice."""
    cell_edges = _cells(a, b, whole, QUANTILE_CELLS)
    below = np.searchsorted(ordered, cell_edges, side="left").astype("float64")  # rows < each edge
    if low:
        near, far = below[:-1], below[1:]
    else:
        near, far = len(ordered) - below[1:], len(ordered) - below[:-1]  # rows >= the far edge, >= the near edge
    score = -np.maximum(near - target, 0.0) - np.maximum(target - far, 0.0)
    j = int(np.argmax(eps * score / 2.0 + rng.gumbel(size=len(score))))
    u, v = float(cell_edges[j]), float(cell_edges[j + 1])
    value = (float(math.ceil(v) - 1) if whole else v) if low else (float(math.ceil(u)) if whole else u)
    loss = 2.0 * (math.log(len(score)) + math.log(1.0 / QUANTILE_FAIL)) / eps
    return value, loss < target


def bounds_steps(accountant: str) -> dict:
    """How dp_octave_bounds splits a column's bounds budget, for the model metadata: `accountant` names how its
    four reads compose ("zCDP" for Gaussian noise, "basic composition" for Laplace)."""
    quantile = (1.0 - OCTAVE_SHARE - ZOOM_SHARE) / 2.0
    return {"octave_histogram": OCTAVE_SHARE, "zoom_histogram": ZOOM_SHARE, "low_percentile_exponential_mechanism": quantile,
            "high_percentile_exponential_mechanism": quantile, "percentiles": [QUANTILE, 1.0 - QUANTILE],
            "composition": accountant,
            "note": "a percentile's share goes to the zoom histogram where it cannot tell (eps x target rows / 2 <= "
                    "ln(cells), decided from the octave histogram's output); the column's total is the same"}


def dp_octave_bounds(values: np.ndarray, sdtype: str, rng: np.random.Generator, *, epsilon: float | None = None,
                     sigma: float | None = None, table: str, column: str) -> tuple[float, float]:
    """Bounds near the ends of the data from four reads: two noisy histograms of L1 and L2 sensitivity 1 each
    (OCTAVE_SHARE and ZOOM_SHARE of the budget) and two exponential mechanisms of score sensitivity 1 (the rest,
    half each; a mechanism that cannot tell, see step 3, is not run and its share goes to the zoom). With `epsilon`
    (Laplace noise) the four compose to epsilon-DP (basic composition); with `sigma` (Gaussian noise) to
    1/(2 sigma^2)-zCDP (an exponential mechanism of eps' is eps'^2/8-zCDP), so callers account
    for one query of sensitivity 1 with `epsilon` or `sigma`.

    1. octaves: counts over the clamped grid; the outermost windows of adjacent bins (1, 2, 4, ... bins: the first
       width where any passes) whose noisy sum passes a threshold that an empty window passes with probability
       <= FALSE_OCTAVE over the grid. Nothing can explode: every bound stays inside these windows or the grid bin just
       beyond them;
    2. zoom: counts over ZOOM_CELLS equal cells (whole integers for integer columns) of those outermost windows;
       prefix, suffix and aligned windows of cells tested the same way. A window that passes holds real values, so
       the real min is at most its highest value and the real max at least its lowest: the tightest such values
       are "dense ends", inside the real range (exact for a constant, a common minimum, few values);
    3. quantiles: per end, the exponential mechanism over QUANTILE_CELLS cells of the outermost window and the grid
       bin beyond it, score = minus the distance in rows between the cell and the QUANTILE-th row from that end
       (counted from the noisy total: post-processing), so it lands near the 1st / 99th percentile where the budget
       allows, and otherwise spreads over the window rather than sitting on its outer edge.
    An end takes its dense end (at worst the inner edge of its octave window), unless that would surely clamp more
    than CLAMPED_SHARE of the rows (read from the noisy counts: rows spread thin at an end), then its quantile where
    that lies further out and the budget lets it tell (eps target / 2 > ln(cells): else it is close to uniform over
    the window, and on sakila's film at epsilon 1 it gave fewer values outside the real range but lower quality),
    else the octave window's outer edge; where the quantile is sure (its rank error bound at
    QUANTILE_FAIL is below its target, so it lies inside the real range), the outer of the two. Last, a side whose
    bound surely leaves out more than CLAMPED_SHARE of the rows, read also as the noisy total less the rows inside
    (a column near one value with a spread beside it, which would otherwise get [v, v]), widens to its quantile,
    then to its octave window's outer edge. A true constant gives [v, v] (integers; other numbers and datetimes:
    one zoom cell around v, 1/1024 of its octave or year)."""
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    quantile_share = (1.0 - OCTAVE_SHARE - ZOOM_SHARE) / 2.0  # per end
    # zCDP adds up: 1/(2 sigma^2) = the histograms' 1/(2 sigma_i^2) + the quantiles' eps_q^2/8; Laplace: the epsilons
    if sigma is not None:
        sigma_oct, eps_oct = sigma / math.sqrt(OCTAVE_SHARE), None
        eps_q = math.sqrt(8.0 * quantile_share / (2.0 * sigma * sigma))
    else:
        sigma_oct, eps_oct = None, epsilon * OCTAVE_SHARE
        eps_q = epsilon * quantile_share
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
        passed = np.flatnonzero(windows > _threshold(width, FALSE_OCTAVE / len(windows), eps_oct, sigma_oct))
        if len(passed):
            found = passed[0], passed[-1], width
        width *= 2
    if found is None:
        raise DomainTooSmall(
            f"table {table!r} column {column!r}: {len(values)} values are too few to find its bounds privately at this "
            f"epsilon; declare them in the generator settings, bounds: {{{column}: [low, high]}}, or raise epsilon")
    first, last, width = found
    oct_width = width  # (the zoom's loops below reuse `width`)
    low_window, high_window = (float(edges[first]), float(edges[first + width])), (float(edges[last]), float(edges[last + width]))
    whole = integer and sdtype != "datetime"

    def highest(a: float, b: float) -> float:  # the greatest value a window [a, b) can hold
        return float(math.ceil(b) - 1) if whole else b

    def lowest(a: float, b: float) -> float:
        return float(math.ceil(a)) if whole else a

    deviation_oct = sigma_oct if sigma_oct is not None else math.sqrt(2.0) / eps_oct  # of one noisy count
    span = (edges[:-1] >= low_window[0]) & (edges[1:] <= high_window[1])
    total = max(float(noisy[span].sum()), 1.0)
    # where the quantiles (step 3) will look: cells of the outermost windows and the grid bin beyond them, cut to the
    # window's own width, where it is no wider than the window (towards zero, calendar years) or its noisy count
    # stands 2 deviations above 0 (a bin twice as wide beyond a thin tail mostly holds no rows, and the mechanism
    # would spread over it). A quantile is run only where it can tell: eps target / 2 > ln(cells), else the cells
    # beyond the data (each `target` rows off) outweigh the right one and its choice is close to uniform (on
    # sakila's film at epsilon 1 it gave fewer values outside the real range, but lower quality); its share then
    # goes to the zoom. Both decisions read only the octave histogram's output (adaptive composition, same total)
    target = max(QUANTILE * total, 1.0)
    start, stop = first, last + oct_width
    a_lo, b_hi = float(edges[start]), float(edges[stop])
    if start > 0 and (edges[start] - edges[start - 1] <= edges[start + oct_width] - edges[start]
                      or noisy[start - 1] > 2.0 * deviation_oct):
        a_lo = float(max(edges[start - 1], 2.0 * edges[start] - edges[start + oct_width]))
    if stop < len(edges) - 1 and (edges[stop + 1] - edges[stop] <= edges[stop] - edges[last]
                                  or noisy[stop] > 2.0 * deviation_oct):
        b_hi = float(min(edges[stop + 1], 2.0 * edges[stop] - edges[last]))
    telling_lo = eps_q * target / 2.0 > math.log(max(len(_cells(a_lo, low_window[1], whole, QUANTILE_CELLS)) - 1, 1))
    telling_hi = eps_q * target / 2.0 > math.log(max(len(_cells(high_window[0], b_hi, whole, QUANTILE_CELLS)) - 1, 1))
    zoom_share = ZOOM_SHARE + quantile_share * (2 - int(telling_lo) - int(telling_hi))
    if sigma is not None:
        sigma_step, eps_step = sigma / math.sqrt(zoom_share), None
    else:
        sigma_step, eps_step = None, epsilon * zoom_share

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
    # its lowest, so bounds taken there are inside the real range
    outer_lo, outer_hi = lowest(*low_window), highest(*high_window)
    dense_lo = [top for bottom, top in evidence if bottom < low_window[1]]
    dense_hi = [bottom for bottom, top in evidence if top >= high_window[0]]
    lo = min(dense_lo + [highest(*low_window)])  # at worst the inner edges of the octave windows
    hi = max(dense_hi + [lowest(*high_window)])
    # ...unless that surely clamps more than CLAMPED_SHARE of the rows (rows spread thin at an end, so no window near
    # the end stands out, and the column would collapse onto one value). Read from the noisy counts (post-processing)
    deviation_zoom = sigma_step if sigma_step is not None else math.sqrt(2.0) / eps_step

    def surely_more(parts: list[np.ndarray], deviation: float) -> bool:  # noisy rows less 3 deviations above the share
        rows = sum(float(p.sum()) for p in parts)
        return rows - SURELY * deviation * math.sqrt(sum(len(p) for p in parts)) > CLAMPED_SHARE * total

    def clamped(bound: float, e: np.ndarray, counts: np.ndarray, low: bool, keep=True, wide=False) -> np.ndarray:
        """Counts of the cells beyond a bound: wholly, or (a wide octave bin) all but its value at the bound."""
        tops = np.array([highest(u, v) for u, v in zip(e[:-1], e[1:])])
        bottoms = np.array([lowest(u, v) for u, v in zip(e[:-1], e[1:])])
        if low:
            return counts[keep & ((tops <= bound) & (bottoms < bound) if wide else tops < bound)]
        return counts[keep & ((bottoms >= bound) & (tops > bound) if wide else bottoms > bound)]

    def clamps_low(bound: float) -> bool:
        return surely_more([clamped(bound, edges, noisy, True, span, wide=True)], deviation_oct) or surely_more(
            [clamped(bound, e, c, True) for e, c in zip(cells, noisy_cells) if e[0] < low_window[1]], deviation_zoom)

    def clamps_high(bound: float) -> bool:
        return surely_more([clamped(bound, edges, noisy, False, span, wide=True)], deviation_oct) or surely_more(
            [clamped(bound, e, c, False) for e, c in zip(cells, noisy_cells) if e[-1] > high_window[0]], deviation_zoom)

    # 3. the quantiles, where they can tell (else the octave windows' outer edges)
    ordered = np.sort(x)
    q_lo, sure_lo = _exp_quantile(ordered, a_lo, low_window[1], target, eps_q, rng, True, whole) if telling_lo else (outer_lo, False)
    q_hi, sure_hi = _exp_quantile(ordered, high_window[0], b_hi, target, eps_q, rng, False, whole) if telling_hi else (outer_hi, False)
    if clamps_low(lo):  # further out: to the quantile where it lies beyond, else the window's outer edge
        lo = q_lo if q_lo < lo else outer_lo
    elif sure_lo:
        lo = min(lo, q_lo)
    if clamps_high(hi):
        hi = q_hi if q_hi > hi else outer_hi
    elif sure_hi:
        hi = max(hi, q_hi)
    if lo > hi:  # one cell, or quantiles that crossed: what lies between them
        lo, hi = hi, lo

    zoomed_out = span & (edges[:-1] >= regions[0][1]) & (edges[1:] <= regions[-1][0])  # octave bins not zoomed into

    def rows_where(keep) -> tuple[float, float]:  # noisy rows of the zoom cells and unzoomed bins where keep(low, high)
        rows, var = 0.0, 0.0
        for e, c in zip(cells, noisy_cells):
            mask = np.array([keep(lowest(u, v), highest(u, v)) for u, v in zip(e[:-1], e[1:])], dtype=bool)
            rows, var = rows + float(c[mask].sum()), var + deviation_zoom ** 2 * int(mask.sum())
        mask = zoomed_out & np.array([keep(u, v) for u, v in zip(edges[:-1], edges[1:])], dtype=bool)
        return rows + float(noisy[mask].sum()), var + deviation_oct ** 2 * int(mask.sum())

    def surely_left_out(bound: float, low: bool) -> bool:
        """More than CLAMPED_SHARE of the noisy total beyond the bound, read directly (the cells beyond it) or as the
        total less the cells that meet the other side (fewer cells when the bounds hold one value): a cell that
        meets the bound counts as inside, its rows move by less than its width."""
        if low:
            direct, other = rows_where(lambda u, v: v < bound), rows_where(lambda u, v: v >= bound)
        else:
            direct, other = rows_where(lambda u, v: u > bound), rows_where(lambda u, v: u <= bound)
        complement = (total - other[0], other[1] + deviation_oct ** 2 * int(span.sum()))
        return any(r - SURELY * math.sqrt(v) > CLAMPED_SHARE * total for r, v in (direct, complement))

    # a column near one value with a spread beside it: not one value, the side that leaves rows out widens to its
    # quantile, then to its octave window's outer edge
    if surely_left_out(lo, True):
        lo = min(lo, q_lo)
        if surely_left_out(lo, True):
            lo = min(lo, outer_lo)
    if surely_left_out(hi, False):
        hi = max(hi, q_hi)
        if surely_left_out(hi, False):
            hi = max(hi, outer_hi)
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
