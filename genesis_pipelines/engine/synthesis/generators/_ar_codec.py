"""Column <-> token codecs for the autoregressive generator: every column becomes a small vocabulary.

Numbers: frequent values (point masses such as a zero capital gain, or ages seen often) are exact tokens;
the rest fall into quantile bins and are drawn uniformly inside the bin's real range, then rounded back
to the column's integers / decimals. Categories seen fewer than `min_count` times share one "other" token,
so a rare real label is never learnt as a row-specific signal. Nulls are their own token. JSON only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import ColumnMeta
from genesis_pipelines.engine.synthesis.transform import as_numbers, decimal_places, restore_values


class NumericCodec:
    kind = "numeric"

    def __init__(self, sdtype: str, exact: list[float], edges: list[float], has_null: bool, decimals: int | None,
                 integer: bool, datetime_format: str | None, bounds: tuple[float, float]):
        self.sdtype, self.exact, self.edges = sdtype, np.asarray(exact, dtype="float64"), np.asarray(edges, dtype="float64")
        self.has_null, self.decimals, self.integer, self.datetime_format = has_null, decimals, integer, datetime_format
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.n_bins = max(len(self.edges) - 1, 0)
        self.size = len(self.exact) + self.n_bins + int(has_null)

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta, max_bins: int, min_count: int) -> NumericCodec:
        values = as_numbers(series.dropna(), meta.sdtype)
        values = values[np.isfinite(values)]
        has_null = bool(series.isna().any())
        if not len(values):
            return cls(meta.sdtype, [], [], True, None, False, meta.datetime_format, (0.0, 0.0))
        uniques, counts = np.unique(values, return_counts=True)
        # fewer, wider bins for small tables: ~sqrt(n) keeps each bin's rows many enough not to be memorised
        max_bins = int(max(8, min(max_bins, round(np.sqrt(len(values))))))
        # a value is its own token when it is a point mass: frequent enough to fill a bin on its own
        heavy = counts >= max(min_count, len(values) / max_bins)
        if len(uniques) <= max_bins:
            heavy = counts >= min_count
        exact = uniques[heavy]
        rest = values[~np.isin(values, exact)]
        edges: np.ndarray = np.zeros(0)
        if len(rest):
            k = int(max(1, min(max_bins - len(exact), np.ceil(len(rest) / max(min_count, 1)))))
            edges = np.unique(np.quantile(rest, np.linspace(0.0, 1.0, k + 1)))
            if len(edges) == 1:
                edges = np.array([edges[0], edges[0]])
        integer = meta.sdtype == "integer" or (meta.sdtype == "numeric" and bool(np.all(values % 1 == 0)))
        integer = integer and (len(values) == 0 or float(np.max(np.abs(values))) < 2.0**63)  # else floats: no Int64 overflow
        return cls(meta.sdtype, exact.tolist(), edges.tolist(), has_null, decimal_places(values),
                   integer and meta.sdtype != "datetime", meta.datetime_format, (values.min(), values.max()))

    def encode(self, series: pd.Series) -> np.ndarray:
        missing = series.isna().to_numpy()
        tokens = np.zeros(len(series), dtype=np.int64)
        if (~missing).any():
            v = as_numbers(series[~missing], self.sdtype)
            idx = np.searchsorted(self.exact, v)
            idx_c = np.clip(idx, 0, max(len(self.exact) - 1, 0))
            is_exact = (len(self.exact) > 0) & (self.exact[idx_c] == v) if len(self.exact) else np.zeros(len(v), bool)
            if self.n_bins:
                bins = np.clip(np.searchsorted(self.edges, v, side="right") - 1, 0, self.n_bins - 1)
                tokens[~missing] = np.where(is_exact, idx_c, len(self.exact) + bins)
            else:  # only exact tokens (e.g. a condition between two seen values): the nearest one
                left = np.clip(idx - 1, 0, len(self.exact) - 1)
                nearer_left = np.abs(self.exact[left] - v) <= np.abs(self.exact[idx_c] - v)
                tokens[~missing] = np.where(nearer_left, left, idx_c)
        if self.has_null:
            tokens[missing] = self.size - 1
        return tokens

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        values = np.full(len(tokens), np.nan)
        is_exact = tokens < len(self.exact)
        values[is_exact] = self.exact[tokens[is_exact]]
        is_bin = (tokens >= len(self.exact)) & (tokens < len(self.exact) + self.n_bins)
        if is_bin.any():
            b = tokens[is_bin] - len(self.exact)
            lo, hi = self.edges[b], self.edges[b + 1]
            values[is_bin] = lo + rng.random(int(is_bin.sum())) * (hi - lo)
        missing = np.isnan(values)
        out = restore_values(np.where(missing, self.bounds[0], values), self.sdtype, self.decimals, self.integer, self.datetime_format)
        return out.mask(missing) if missing.any() else out

    def token_of(self, value, column: str) -> int:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            if not self.has_null:
                raise GenesisError(f"impossible condition on column {column!r}: it had no missing values in training")
            return self.size - 1
        try:
            v = float(as_numbers(pd.Series([value]), self.sdtype)[0])
        except (TypeError, ValueError):
            raise GenesisError(f"impossible condition on column {column!r}: the value is not a {self.sdtype}") from None
        if not self.bounds[0] <= v <= self.bounds[1] or self.size - int(self.has_null) == 0:
            raise GenesisError(f"impossible condition on column {column!r}: the value lies outside the trained range")
        return int(self.encode(pd.Series([v]))[0])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "exact": self.exact.tolist(), "edges": self.edges.tolist(),
                "has_null": self.has_null, "decimals": self.decimals, "integer": self.integer,
                "datetime_format": self.datetime_format, "bounds": list(self.bounds)}

    @classmethod
    def from_dict(cls, d: dict) -> NumericCodec:
        return cls(d["sdtype"], d["exact"], d["edges"], d["has_null"], d["decimals"], d["integer"], d["datetime_format"],
                   tuple(d["bounds"]))

    def describe(self) -> dict:
        return {"tokens": self.size, "exact_values": len(self.exact), "bins": self.n_bins}


class CategoricalCodec:
    kind = "categorical"

    def __init__(self, sdtype: str, categories: list, rare: list, has_null: bool):
        self.sdtype, self.categories, self.rare, self.has_null = sdtype, list(categories), list(rare), has_null
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.rare_set = set(self.rare)
        self.other = len(self.categories) if self.rare else None
        self.size = len(self.categories) + int(bool(self.rare)) + int(has_null)

    @staticmethod
    def _keys(series: pd.Series, sdtype: str) -> pd.Series:
        return series.astype(bool).astype(str) if sdtype == "boolean" else series.astype(str)

    @classmethod
    def fit(cls, series: pd.Series, meta: ColumnMeta, min_count: int) -> CategoricalCodec:
        counts = cls._keys(series.dropna(), meta.sdtype).value_counts()
        counts = counts.sort_values(ascending=False, kind="stable")
        keep = counts[counts >= min_count]
        if keep.empty and len(counts):  # every label rare: keep the commonest so the column still has a value
            keep = counts.iloc[:1]
        rare = sorted(set(counts.index) - set(keep.index))
        return cls(meta.sdtype, [str(c) for c in keep.index], rare, bool(series.isna().any()) or len(counts) == 0)

    def encode(self, series: pd.Series) -> np.ndarray:
        missing = series.isna().to_numpy()
        keys = self._keys(series.fillna(""), self.sdtype).to_numpy()
        fallback = self.other if self.other is not None else 0
        tokens = np.fromiter((self.index.get(k, fallback) for k in keys), dtype=np.int64, count=len(keys))
        if self.has_null:
            tokens[missing] = self.size - 1
        return tokens

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        table = np.asarray(self.categories + [None] * (self.size - len(self.categories)), dtype=object)
        values = table[np.clip(tokens, 0, self.size - 1)]
        if self.other is not None:
            is_other = tokens == self.other
            values[is_other] = np.asarray(self.rare, dtype=object)[rng.integers(0, len(self.rare), int(is_other.sum()))]
        if self.sdtype == "boolean":
            return pd.Series([None if v is None else v == "True" for v in values], dtype="boolean")
        return pd.Series(values, dtype="string")

    def token_of(self, value, column: str) -> int:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            if not self.has_null:
                raise GenesisError(f"impossible condition on column {column!r}: it had no missing values in training")
            return self.size - 1
        key = str(bool(value)) if self.sdtype == "boolean" else str(value)
        if key in self.index:
            return self.index[key]
        if key in self.rare_set:
            return int(self.other)
        raise GenesisError(f"impossible condition on column {column!r}: the value was never seen in training")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sdtype": self.sdtype, "categories": self.categories, "rare": self.rare,
                "has_null": self.has_null}

    @classmethod
    def from_dict(cls, d: dict) -> CategoricalCodec:
        return cls(d["sdtype"], d["categories"], d["rare"], d["has_null"])

    def describe(self) -> dict:
        return {"tokens": self.size, "categories": len(self.categories), "rare_grouped": len(self.rare)}


def codec_from_dict(d: dict):
    return {"numeric": NumericCodec, "categorical": CategoricalCodec}[d["kind"]].from_dict(d)
