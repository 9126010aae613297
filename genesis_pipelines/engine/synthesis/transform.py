"""Reversible column transforms: real column <-> uniform scores in (0, 1), plus value restoration.

Each transform is JSON-serialisable (to_dict / from_dict) so models are saved without pickle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.schema import ColumnMeta
from genesis_pipelines.engine.sources.io import parse_dates, parse_numbers

_EPS = 1e-6
MAX_CATEGORIES = 1000  # beyond this, the tail is kept as one pooled bucket
MAX_QUANTILES = 1001
MAX_EXCEPTION_VALUES = 100  # most frequent exceptions kept per column; rarer ones are pooled into them
DISCRETE_NUMERIC_MAX = 30  # numeric columns with at most this many distinct values are modelled as discrete
POINT_MASS_MIN_SHARE = 0.01  # a value shared by fewer rows is not reproduced as a point mass
DISTINCT_MIN_ROWS = 4096  # from this many values, a continuous column's uniforms are computed per distinct value when few
PEOPLE_PER_KNOT = 12  # a continuous marginal's knot summarises at least this many records (or people): sakila payment shadow MIA 0.606 at 5, 0.599 at 8, 0.577 at 12


def decimal_places(values: np.ndarray) -> int | None:
    """Smallest number of decimals (<= 6) that reproduces every value, so outputs look like inputs."""
    for d in range(7):
        if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9):
            return d
    return None




def _unique_counts(keys: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_counts=True) by hashing: the rows are counted per distinct value and only the
    distinct values are sorted (np.unique sorts every row, slow for text)."""
    codes, uniques = pd.factorize(keys)
    counts = np.bincount(codes, minlength=len(uniques))
    uniques = np.asarray(uniques, dtype=object) if isinstance(keys, pd.Series) else np.asarray(uniques)
    order = np.argsort(uniques, kind="stable")
    return uniques[order], counts[order]


class ColumnTransform:
    kind: str
    null_rate: float

    def to_uniform(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_uniform(self, u: np.ndarray) -> pd.Series:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict) -> ColumnTransform:
        return {"continuous": ContinuousTransform, "discrete": DiscreteTransform, "mixed": MixedTransform}[data["kind"]]._load(data)


def as_numbers(series: pd.Series, sdtype: str) -> np.ndarray:
    if sdtype == "datetime":
        return pd.to_datetime(series).astype("datetime64[us]").astype("int64").to_numpy(dtype="float64")
    return pd.to_numeric(series).to_numpy(dtype="float64")


def restore_values(values: np.ndarray, sdtype: str, decimals: int | None, integer: bool, datetime_format: str | None) -> pd.Series:
    if sdtype == "datetime":
        out = pd.Series(pd.to_datetime(np.round(values).astype("int64"), unit="us"))
        return out.dt.normalize() if datetime_format == "date" else out.dt.floor("s")
    if integer:  # finite and inside int64 (the fit checked the bounds), so no per-value check is needed
        rounded = np.round(values)
        missing = np.isnan(rounded)
        return pd.Series(pd.arrays.IntegerArray(np.where(missing, 0, rounded).astype("int64"), missing))
    if decimals is not None:
        values = np.round(values, decimals)
    return pd.Series(values, dtype="float64")


def _smooth_small_masses(quantiles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Quantile knots in which a value holds no point mass unless it holds POINT_MASS_MIN_SHARE of the rows.

    Equal knots make a point mass: every u in their span maps to that one value. Kept for values many rows share
    (capital gain 0 in 92% of rows), they would otherwise replay values that single out a few records (a load
    timestamp shared by one customer's payments): those runs are re-spaced evenly towards the next knot, so the
    marginal keeps its shape and the synthetic values fall between real ones.
    """
    uniques, counts = np.unique(values, return_counts=True)
    masses = set(uniques[counts >= POINT_MASS_MIN_SHARE * len(values)].tolist())
    out = quantiles.copy()
    start = 0
    while start < len(out) - 1:
        stop = start
        while stop + 1 < len(out) and quantiles[stop + 1] == quantiles[start]:
            stop += 1
        if stop > start and quantiles[start] not in masses:
            upper = quantiles[stop + 1] if stop + 1 < len(out) else quantiles[start]
            scale = max(abs(float(quantiles[start])), abs(float(upper))) or 1.0  # near +-1e308 a plain step overflows
            out[start:stop + 1] = np.linspace(quantiles[start] / scale, upper / scale, stop - start + 2)[:-1] * scale
        start = stop + 1
    return out


class ContinuousTransform(ColumnTransform):
    """Empirical marginal kept as quantiles; exact min and max, so bounds hold."""

    kind = "continuous"

    def __init__(self, sdtype: str, quantiles: np.ndarray, null_rate: float, decimals: int | None, integer: bool,
                 datetime_format: str | None = None):
        self.sdtype, self.quantiles, self.null_rate = sdtype, np.asarray(quantiles, dtype="float64"), float(null_rate)
        self.decimals, self.integer, self.datetime_format = decimals, integer, datetime_format
        self.probs = np.linspace(0.0, 1.0, len(self.quantiles))

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta, *, rows_per_knot: float = 1.0) -> ContinuousTransform:
        """`rows_per_knot`: each quantile knot summarises at least this many rows, so the marginal cannot trace
        single records (or, for a table of people's rows, single people) back to their values."""
        values = as_numbers(series.dropna(), meta.sdtype)
        k = int(min(MAX_QUANTILES, max(2, np.ceil(len(values) / max(rows_per_knot, 1.0)) + 1)))
        # real values as quantiles (no interpolation: near +-1e308 the midpoint of two values overflows to inf)
        quantiles = (_smooth_small_masses(np.quantile(values, np.linspace(0.0, 1.0, k), method="inverted_cdf"), values)
                     if len(values) else np.zeros(2))
        integer = meta.sdtype == "integer" or (meta.sdtype == "numeric" and len(values) > 0 and bool(np.all(values % 1 == 0)))
        integer = integer and (len(values) == 0 or float(np.max(np.abs(values))) < 2.0**63)  # else floats, never overflowing Int64
        return cls(meta.sdtype, quantiles, float(series.isna().mean()), decimal_places(values) if len(values) else None,
                   integer and meta.sdtype != "datetime", meta.datetime_format)

    def to_uniform(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        values = as_numbers(series, self.sdtype)
        codes = None
        if len(values) >= DISTINCT_MIN_ROWS:  # values repeated row after row (a parent's, given to each child):
            codes, uniques = pd.factorize(values, use_na_sentinel=False)  # each distinct one placed once
            codes, values = (codes, np.asarray(uniques, dtype="float64")) if 4 * len(uniques) <= len(values) else (None, values)
        q, p = self.quantiles, self.probs
        lo = np.searchsorted(q, values, side="left")
        hi = np.searchsorted(q, values, side="right")
        # between two quantiles: linear interpolation of the empirical CDF
        right = np.clip(lo, 1, len(q) - 1)
        left = right - 1
        width = np.where(q[right] > q[left], q[right] - q[left], 1.0)
        u = p[left] + np.clip((values - q[left]) / width, 0, 1) * (p[right] - p[left])
        # a value equal to several quantiles (a point mass, e.g. many zeros): spread over that span
        tied = hi > lo
        span_lo, span_hi = p[np.clip(lo, 0, len(q) - 1)], p[np.clip(hi - 1, 0, len(q) - 1)]
        if codes is not None:  # back to one per row: the same numbers a row-by-row pass computes
            u, tied, span_lo, span_hi = u[codes], tied[codes], span_lo[codes], span_hi[codes]
        u = np.where(tied, span_lo + rng.random(len(u)) * (span_hi - span_lo), u)
        return np.clip(u, _EPS, 1 - _EPS)

    def from_uniform(self, u: np.ndarray) -> pd.Series:
        # interpolated in units of the largest magnitude, so a column bounded near 1e308 never overflows to inf
        scale = float(np.max(np.abs(self.quantiles))) or 1.0
        values = np.clip(np.interp(u, self.probs, self.quantiles / scale) * scale, self.quantiles[0], self.quantiles[-1])
        return restore_values(values, self.sdtype, self.decimals, self.integer, self.datetime_format)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "quantiles": self.quantiles.tolist(), "null_rate": self.null_rate,
                "decimals": self.decimals, "integer": self.integer, "datetime_format": self.datetime_format}

    @classmethod
    def _load(cls, d: dict) -> ContinuousTransform:
        return cls(d["sdtype"], np.asarray(d["quantiles"]), d["null_rate"], d["decimals"], d["integer"], d.get("datetime_format"))


class DiscreteTransform(ColumnTransform):
    """Categories (or few-valued numbers) with their frequencies; each owns an interval of (0, 1)."""

    kind = "discrete"

    def __init__(self, sdtype: str, values: list, probs: np.ndarray, null_rate: float, ordered: bool,
                 tail: list | None = None, datetime_format: str | None = None):
        self.sdtype, self.values, self.null_rate, self.ordered = sdtype, list(values), float(null_rate), ordered
        self.probs = np.asarray(probs, dtype="float64")
        self.tail = list(tail or [])
        self.datetime_format = datetime_format
        self.cum = np.concatenate([[0.0], np.cumsum(self.probs)])
        self.cum[-1] = 1.0
        self._choice_array = None  # the values (then the tail's) as one pandas array, made on first use

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta) -> DiscreteTransform:
        non_null = series.dropna()
        numeric = meta.sdtype in ("numeric", "integer", "datetime")
        # text stays a pandas column (hashed as it is stored; only the distinct values become Python strings)
        keys = as_numbers(non_null, meta.sdtype) if numeric else non_null.astype(str)
        if meta.sdtype == "boolean":
            keys = non_null.astype(bool).to_numpy()
        uniques, counts = _unique_counts(keys) if len(keys) else (np.array([]), np.array([]))
        if numeric:
            order = np.argsort(uniques)  # ordered: keeps monotone correlations
        else:
            order = np.argsort(-counts, kind="stable")
        uniques, counts = uniques[order], counts[order]
        tail: list = []
        if len(uniques) > MAX_CATEGORIES and not numeric:
            tail = uniques[MAX_CATEGORIES - 1:].tolist()
            counts = np.concatenate([counts[: MAX_CATEGORIES - 1], [counts[MAX_CATEGORIES - 1:].sum()]])
            uniques = np.concatenate([uniques[: MAX_CATEGORIES - 1], np.array(["__tail__"], dtype=object)])
        probs = counts / counts.sum() if counts.sum() else np.array([1.0])
        values = [v.item() if hasattr(v, "item") else v for v in uniques] or [None]
        return cls(meta.sdtype, values, probs, float(series.isna().mean()), numeric, tail, meta.datetime_format)

    def to_uniform(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        if self.ordered:
            keys = as_numbers(series, self.sdtype)
            index = np.clip(np.searchsorted(np.asarray(self.values, dtype="float64"), keys), 0, len(self.values) - 1)
        else:
            lookup = {v: i for i, v in enumerate(self.values)}
            tail_index = lookup.get("__tail__", len(self.values) - 1)
            keys = series.astype(bool) if self.sdtype == "boolean" else series.astype(str)
            # hash lookup of the distinct keys only, taken by code per row: no Python call per row
            codes, distinct = pd.factorize(keys)
            found = np.fromiter((lookup.get(v, -1) for v in distinct), dtype=np.int64, count=len(distinct))
            index = np.where(codes >= 0, found[np.maximum(codes, 0)] if len(found) else -1, -1)
            index = np.where(index < 0, tail_index, index).astype("int64")
        lo, hi = self.cum[index], self.cum[index + 1]
        return np.clip(lo + rng.random(len(index)) * (hi - lo), _EPS, 1 - _EPS)

    def from_uniform(self, u: np.ndarray, rng: np.random.Generator | None = None) -> pd.Series:
        index = np.clip(np.searchsorted(self.cum, u, side="right") - 1, 0, len(self.values) - 1)
        if self.ordered:
            values = np.asarray(self.values, dtype="float64")[index]
            return restore_values(values, self.sdtype, None, self.sdtype == "integer", self.datetime_format)
        if self.tail:
            is_tail = np.asarray(self.values, dtype=object)[index] == "__tail__"
            rng = rng or np.random.default_rng(0)
            # a tail row takes one of the tail's values, listed after the categories
            index = index.copy()
            index[is_tail] = len(self.values) + rng.integers(0, len(self.tail), int(is_tail.sum()))
        # the distinct values converted once, then taken per row (no Python object per row)
        return pd.Series(self._choices().take(index))

    def _choices(self):
        if self._choice_array is None:
            self._choice_array = pd.array(list(self.values) + list(self.tail),
                                          dtype="boolean" if self.sdtype == "boolean" else "string")
        return self._choice_array

    def interval_of(self, value) -> tuple[float, float]:
        """The (0, 1) interval a given value occupies: used for conditional sampling."""
        if self.ordered:
            index = int(np.clip(np.searchsorted(np.asarray(self.values, dtype="float64"),
                                                as_numbers(pd.Series([value]), self.sdtype)[0]), 0, len(self.values) - 1))
            if not np.isclose(float(self.values[index]), as_numbers(pd.Series([value]), self.sdtype)[0]):
                return (np.nan, np.nan)
        else:
            key = bool(value) if self.sdtype == "boolean" else str(value)
            if key not in self.values:
                return (np.nan, np.nan)
            index = self.values.index(key)
        return float(self.cum[index]), float(self.cum[index + 1])

    def intervals_of(self, values) -> np.ndarray:
        """interval_of for many values, (k, 2): categories found by one hash lookup instead of a list search each."""
        values = list(values)
        bounds = np.full((len(values), 2), np.nan)
        if self.ordered:  # the nearest value at or above, if it is (close to) the value itself
            numbers = np.asarray(self.values, dtype="float64")
            keys = as_numbers(pd.Series(values, dtype=object), self.sdtype) if values else np.zeros(0)
            index = np.clip(np.searchsorted(numbers, keys), 0, len(numbers) - 1)
            found = np.isclose(numbers[index], keys)
            bounds[found, 0], bounds[found, 1] = self.cum[index[found]], self.cum[index[found] + 1]
            return bounds
        known = pd.Index(self.values, dtype=object)
        if not known.is_unique:
            return np.array([self.interval_of(v) for v in values], dtype="float64").reshape(-1, 2)
        keys = [bool(v) if self.sdtype == "boolean" else str(v) for v in values]
        index = known.get_indexer(pd.Index(keys, dtype=object))
        found = index >= 0
        bounds[found, 0], bounds[found, 1] = self.cum[index[found]], self.cum[index[found] + 1]
        return bounds

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "values": self.values, "probs": self.probs.tolist(),
                "null_rate": self.null_rate, "ordered": self.ordered, "tail": self.tail,
                "datetime_format": self.datetime_format}

    @classmethod
    def _load(cls, d: dict) -> DiscreteTransform:
        return cls(d["sdtype"], d["values"], np.asarray(d["probs"]), d["null_rate"], d["ordered"], d.get("tail"),
                   d.get("datetime_format"))


def split_exceptions(series: pd.Series, sdtype: str) -> tuple[pd.Series, pd.Series]:
    """A typed column's values in its type (NaN / NaT elsewhere) and the mask of its exceptions: non-null values
    outside the type (codes among numbers, +-inf, dates in another layout, impossible dates)."""
    present = series.notna()
    if sdtype in ("numeric", "integer"):
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = series.astype("float64")
            exceptions = present & ~np.isfinite(values.fillna(0.0))
        else:
            values = parse_numbers(series.where(present, "")).where(present)
            exceptions = present & values.isna()
        return values.where(~exceptions), exceptions
    if sdtype == "datetime" and not pd.api.types.is_datetime64_any_dtype(series):
        values = parse_dates(series.where(present, ""))[0].where(present)
        return values, present & values.isna()
    return series, pd.Series(False, index=series.index)


def has_exceptions(series: pd.Series, meta: ColumnMeta) -> bool:
    """Whether a typed column needs the exception side channel (or is stored as text, such as integers beyond int64)."""
    if meta.sdtype not in ("numeric", "integer", "datetime"):
        return False
    if meta.exceptions or (pd.api.types.is_string_dtype(series) or series.dtype == object):
        return True
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return False  # integers are all finite: no value can fall outside the type
    return bool(split_exceptions(series, meta.sdtype)[1].any())


class MixedTransform(ColumnTransform):
    """A typed column with exceptions: the typed values own (0, 1 - share) through their own transform, the
    exceptions the top interval, drawn from their real frequencies (the most frequent MAX_EXCEPTION_VALUES).

    Output keeps the column's storage: numbers with +-inf stay floats; a text column (numbers with a few codes,
    integers beyond int64, dates in several layouts) comes back as text, typed values written in the main layout.
    """

    kind = "mixed"

    def __init__(self, inner: ColumnTransform, values: list, probs: np.ndarray, share: float, null_rate: float,
                 as_text: bool, sdtype: str, datetime_format: str | None = None):
        self.inner, self.values, self.share = inner, list(values), float(share)
        self.probs = np.asarray(probs, dtype="float64")
        self.null_rate, self.as_text, self.sdtype, self.datetime_format = float(null_rate), bool(as_text), sdtype, datetime_format
        self.cum = np.concatenate([[0.0], np.cumsum(self.probs)]) if len(self.probs) else np.array([0.0, 1.0])
        self.cum[-1] = 1.0

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta, *, rows_per_knot: float = 1.0) -> MixedTransform:
        typed, exceptions = split_exceptions(series, meta.sdtype)
        numbers = typed.dropna()
        inner_meta = meta.model_copy(update={"exceptions": 0})
        magnitudes = np.abs(numbers.to_numpy(dtype="float64")) if meta.sdtype != "datetime" else np.zeros(0)
        if meta.sdtype == "integer" and len(magnitudes) and (magnitudes.max() >= 2.0**63 or np.any(np.mod(magnitudes, 1) != 0)):
            inner_meta.sdtype = "numeric"
        inner = fit_transform_for(typed.dropna(), inner_meta, rows_per_knot=rows_per_knot) if len(numbers) else \
            DiscreteTransform("categorical", [None], np.array([1.0]), 0.0, False)
        counts = series[exceptions].astype(str).value_counts()
        kept = counts.iloc[:MAX_EXCEPTION_VALUES]
        present = int(series.notna().sum())
        as_text = not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series))
        return cls(inner, kept.index.tolist(), (kept / kept.sum()).to_numpy() if len(kept) else np.array([]),
                   float(exceptions.sum()) / present if present else 0.0, float(series.isna().mean()), as_text,
                   meta.sdtype, meta.datetime_format)

    def to_uniform(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        typed, exceptions = split_exceptions(series.reset_index(drop=True), self.sdtype)
        exceptions = exceptions.to_numpy()
        u = np.empty(len(series))
        if (~exceptions).any():
            u[~exceptions] = self.inner.to_uniform(typed[~exceptions], rng) * (1.0 - self.share)
        u[exceptions] = 1.0 - self.share + rng.random(int(exceptions.sum())) * self.share
        return np.clip(u, _EPS, 1 - _EPS)

    def from_uniform(self, u: np.ndarray) -> pd.Series:
        u = np.asarray(u, dtype="float64")
        is_exception = u >= 1.0 - self.share if self.values else np.zeros(len(u), dtype=bool)
        inner_u = np.clip(u / max(1.0 - self.share, _EPS), _EPS, 1 - _EPS)
        typed = self.inner.from_uniform(inner_u).reset_index(drop=True)
        position = np.clip((u - (1.0 - self.share)) / max(self.share, _EPS), 0.0, 1.0 - 1e-12)
        drawn = np.asarray(self.values, dtype=object)[np.clip(np.searchsorted(self.cum, position, side="right") - 1, 0,
                                                              max(len(self.values) - 1, 0))] if self.values else None
        if not self.as_text:
            values = typed.to_numpy(dtype="float64", na_value=np.nan).copy()
            if drawn is not None:
                values[is_exception] = [float(v) for v in drawn[is_exception]]
            return pd.Series(values, dtype="float64")
        text = np.array(_as_text(typed, self.sdtype, self.datetime_format).to_numpy(dtype=object), dtype=object)
        if drawn is not None:
            text[is_exception] = drawn[is_exception]
        return pd.Series(text, dtype="string")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "inner": self.inner.to_dict(), "values": self.values, "probs": self.probs.tolist(),
                "share": self.share, "null_rate": self.null_rate, "as_text": self.as_text, "sdtype": self.sdtype,
                "datetime_format": self.datetime_format}

    @classmethod
    def _load(cls, d: dict) -> MixedTransform:
        return cls(ColumnTransform.from_dict(d["inner"]), d["values"], np.asarray(d["probs"]), d["share"], d["null_rate"],
                   d["as_text"], d["sdtype"], d.get("datetime_format"))


def _as_text(values: pd.Series, sdtype: str, datetime_format: str | None) -> pd.Series:
    """Typed values written as text: whole numbers as exact integers (any size), dates in ISO layout."""
    if sdtype == "datetime":
        stamps = pd.to_datetime(values)
        return stamps.dt.strftime("%Y-%m-%d" if datetime_format == "date" else "%Y-%m-%d %H:%M:%S")
    numbers = pd.to_numeric(values).to_numpy(dtype="float64", na_value=np.nan)
    if sdtype == "integer":
        return pd.Series([str(int(v)) if np.isfinite(v) else None for v in np.round(numbers)], dtype=object)
    return pd.Series([repr(float(v)) if np.isfinite(v) else None for v in numbers], dtype=object)


def fit_transform_for(series: pd.Series, meta: ColumnMeta, *, rows_per_knot: float = 1.0) -> ColumnTransform:
    """Discrete for categories, booleans and few-valued numbers; continuous otherwise (see ContinuousTransform.fit);
    mixed for typed columns with exceptions (see MixedTransform)."""
    if has_exceptions(series, meta):
        return MixedTransform.fit(series, meta, rows_per_knot=rows_per_knot)
    if meta.sdtype in ("categorical", "boolean"):
        return DiscreteTransform.fit(series, meta)
    if meta.sdtype in ("numeric", "integer", "datetime"):
        if series.nunique(dropna=True) <= DISCRETE_NUMERIC_MAX:
            return DiscreteTransform.fit(series, meta)
        return ContinuousTransform.fit(series, meta, rows_per_knot=rows_per_knot)
    raise ValueError(f"column {meta.name!r}: semantic type {meta.sdtype!r} has no generative transform")
