"""Reversible column transforms: real column <-> uniform scores in (0, 1), plus value restoration.

Each transform is JSON-serialisable (to_dict / from_dict) so models are saved without pickle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis_pipelines.engine.schema import ColumnMeta

_EPS = 1e-6
MAX_CATEGORIES = 1000  # beyond this, the tail is kept as one pooled bucket
MAX_QUANTILES = 1001
DISCRETE_NUMERIC_MAX = 30  # numeric columns with at most this many distinct values are modelled as discrete
POINT_MASS_MIN_SHARE = 0.01  # a value shared by fewer rows is not reproduced as a point mass
PEOPLE_PER_KNOT = 5  # a continuous marginal's knot summarises at least this many records (or people)


def _decimals(values: np.ndarray) -> int | None:
    """Smallest number of decimals (<= 6) that reproduces every value, so outputs look like inputs."""
    for d in range(7):
        if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9):
            return d
    return None




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
    def from_dict(data: dict) -> "ColumnTransform":
        return {"continuous": ContinuousTransform, "discrete": DiscreteTransform}[data["kind"]]._load(data)


def _as_numbers(series: pd.Series, sdtype: str) -> np.ndarray:
    if sdtype == "datetime":
        return pd.to_datetime(series).astype("datetime64[us]").astype("int64").to_numpy(dtype="float64")
    return pd.to_numeric(series).to_numpy(dtype="float64")


def _restore(values: np.ndarray, sdtype: str, decimals: int | None, integer: bool, datetime_format: str | None) -> pd.Series:
    if sdtype == "datetime":
        out = pd.Series(pd.to_datetime(np.round(values).astype("int64"), unit="us"))
        return out.dt.normalize() if datetime_format == "date" else out.dt.floor("s")
    if integer:
        return pd.Series(np.round(values)).astype("Int64")
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
            out[start:stop + 1] = np.linspace(quantiles[start], upper, stop - start + 2)[:-1]
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
    def fit(cls, series: pd.Series, meta: ColumnMeta, *, rows_per_knot: float = 1.0) -> "ContinuousTransform":
        """`rows_per_knot`: each quantile knot summarises at least this many rows, so the marginal cannot trace
        single records (or, for a table of people's rows, single people) back to their values."""
        values = _as_numbers(series.dropna(), meta.sdtype)
        k = int(min(MAX_QUANTILES, max(2, np.ceil(len(values) / max(rows_per_knot, 1.0)) + 1)))
        quantiles = _smooth_small_masses(np.quantile(values, np.linspace(0.0, 1.0, k)), values) if len(values) else np.zeros(2)
        integer = meta.sdtype == "integer" or (meta.sdtype == "numeric" and len(values) > 0 and bool(np.all(values % 1 == 0)))
        return cls(meta.sdtype, quantiles, float(series.isna().mean()), _decimals(values) if len(values) else None,
                   integer and meta.sdtype != "datetime", meta.datetime_format)

    def to_uniform(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        values = _as_numbers(series, self.sdtype)
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
        u = np.where(tied, span_lo + rng.random(len(values)) * (span_hi - span_lo), u)
        return np.clip(u, _EPS, 1 - _EPS)

    def from_uniform(self, u: np.ndarray) -> pd.Series:
        values = np.interp(u, self.probs, self.quantiles)
        return _restore(values, self.sdtype, self.decimals, self.integer, self.datetime_format)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "quantiles": self.quantiles.tolist(), "null_rate": self.null_rate,
                "decimals": self.decimals, "integer": self.integer, "datetime_format": self.datetime_format}

    @classmethod
    def _load(cls, d: dict) -> "ContinuousTransform":
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

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta) -> "DiscreteTransform":
        non_null = series.dropna()
        numeric = meta.sdtype in ("numeric", "integer", "datetime")
        keys = _as_numbers(non_null, meta.sdtype) if numeric else non_null.astype(str).to_numpy()
        if meta.sdtype == "boolean":
            keys = non_null.astype(bool).to_numpy()
        uniques, counts = np.unique(keys, return_counts=True) if len(keys) else (np.array([]), np.array([]))
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
            keys = _as_numbers(series, self.sdtype)
            index = np.clip(np.searchsorted(np.asarray(self.values, dtype="float64"), keys), 0, len(self.values) - 1)
        else:
            lookup = {v: i for i, v in enumerate(self.values)}
            tail_index = lookup.get("__tail__", len(self.values) - 1)
            keys = series.astype(bool) if self.sdtype == "boolean" else series.astype(str)
            index = pd.Index(self.values).get_indexer(keys)  # hash lookup: no Python call per row
            index = np.where(index < 0, tail_index, index).astype("int64")
        lo, hi = self.cum[index], self.cum[index + 1]
        return np.clip(lo + rng.random(len(index)) * (hi - lo), _EPS, 1 - _EPS)

    def from_uniform(self, u: np.ndarray, rng: np.random.Generator | None = None) -> pd.Series:
        index = np.clip(np.searchsorted(self.cum, u, side="right") - 1, 0, len(self.values) - 1)
        if self.ordered:
            values = np.asarray(self.values, dtype="float64")[index]
            return _restore(values, self.sdtype, None, self.sdtype == "integer", self.datetime_format)
        values = np.asarray(self.values, dtype=object)[index]
        if self.tail:
            is_tail = values == "__tail__"
            rng = rng or np.random.default_rng(0)
            values[is_tail] = np.asarray(self.tail, dtype=object)[rng.integers(0, len(self.tail), int(is_tail.sum()))]
        if self.sdtype == "boolean":
            return pd.Series(values, dtype="boolean")
        return pd.Series(values, dtype="string")

    def interval_of(self, value) -> tuple[float, float]:
        """The (0, 1) interval a given value occupies: used for conditional sampling."""
        if self.ordered:
            index = int(np.clip(np.searchsorted(np.asarray(self.values, dtype="float64"),
                                                _as_numbers(pd.Series([value]), self.sdtype)[0]), 0, len(self.values) - 1))
            if not np.isclose(float(self.values[index]), _as_numbers(pd.Series([value]), self.sdtype)[0]):
                return (np.nan, np.nan)
        else:
            key = bool(value) if self.sdtype == "boolean" else str(value)
            if key not in self.values:
                return (np.nan, np.nan)
            index = self.values.index(key)
        return float(self.cum[index]), float(self.cum[index + 1])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "values": self.values, "probs": self.probs.tolist(),
                "null_rate": self.null_rate, "ordered": self.ordered, "tail": self.tail,
                "datetime_format": self.datetime_format}

    @classmethod
    def _load(cls, d: dict) -> "DiscreteTransform":
        return cls(d["sdtype"], d["values"], np.asarray(d["probs"]), d["null_rate"], d["ordered"], d.get("tail"),
                   d.get("datetime_format"))


def fit_transform_for(series: pd.Series, meta: ColumnMeta, *, rows_per_knot: float = 1.0) -> ColumnTransform:
    """Discrete for categories, booleans and few-valued numbers; continuous otherwise (see ContinuousTransform.fit)."""
    if meta.sdtype in ("categorical", "boolean"):
        return DiscreteTransform.fit(series, meta)
    if meta.sdtype in ("numeric", "integer", "datetime"):
        if series.nunique(dropna=True) <= DISCRETE_NUMERIC_MAX:
            return DiscreteTransform.fit(series, meta)
        return ContinuousTransform.fit(series, meta, rows_per_knot=rows_per_knot)
    raise ValueError(f"column {meta.name!r}: semantic type {meta.sdtype!r} has no generative transform")
