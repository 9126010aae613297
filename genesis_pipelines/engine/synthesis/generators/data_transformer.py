"""Reversible table <-> matrix encoding for the neural generators (CTGAN, TVAE and their DP variants).

Continuous columns (numbers, datetimes as microseconds) get mode-specific normalisation: a variational Gaussian
mixture, fitted on a bounded seeded subsample, picks a mode per value; the value becomes a scalar in [-1, 1]
within its mode (a tanh output) plus a one-hot of the mode. Categories, booleans and few-valued numbers are
one-hot, rare categories share one bucket. Nulls are their own output (an extra slot, or a 2-way span).
Decoding restores integers, decimals, bounds and dtypes. In private mode no statistic of the real values is
read without a DP mechanism: bounds and category sets come from the settings or from dp_mechanisms, numbers are
min-max scaled inside those bounds (one mode) and nulls are modelled for every column.
Only loops over columns; every per-row step is a numpy operation. State is plain JSON.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.synthesis.generators.dp_domain import dp_octave_bounds
from genesis_pipelines.engine.synthesis.generators.dp_mechanisms import dp_categories
from genesis_pipelines.engine.synthesis.generators.free_text import (
    STRING_KINDS,
    fit_text,
    public_text_spec,
    sample_text,
)
from genesis_pipelines.engine.synthesis.transform import (
    DISCRETE_NUMERIC_MAX,
    as_numbers,
    decimal_places,
    has_exceptions,
    restore_values,
)

MAX_MODES = 10
MAX_MIXTURE_ROWS = 10_000
MIN_MODE_WEIGHT = 0.005
MAX_CATEGORIES = 100  # one-hot width cap: the tail shares one bucket
RARE_COUNT = 5  # categories seen fewer times share the bucket too
_STD_FLOOR = 1e-6


@dataclass
class Span:
    """A block of output dimensions: one tanh scalar, or a softmax over `width` slots."""

    column: str
    role: str  # "value" (continuous scalar), "mode", "null", "category"
    start: int
    width: int
    activation: str  # "tanh" | "softmax"


def _keys(series: pd.Series, sdtype: str) -> np.ndarray:
    """Comparable keys of a discrete column's non-null values."""
    if sdtype in ("numeric", "integer", "datetime"):
        return as_numbers(series, sdtype)
    if sdtype == "boolean":
        return series.astype(bool).to_numpy()
    return series.astype(str).to_numpy(dtype=object)


def _clean(v):
    return v.item() if hasattr(v, "item") else v


class DataTransformer:
    def __init__(self):
        self.columns: list[str] = []  # modelled columns, table order (text included, ids excluded)
        self.codecs: dict[str, dict] = {}
        self.text: dict[str, dict] = {}
        self.private = False
        self.dp_spent = {"epsilon": 0.0, "delta": 0.0, "columns": []}
        self.spans: list[Span] = []
        self.dim = 0

    # -------------------------------------------------------------- fitting

    @staticmethod
    def is_discrete(column: str, meta: TableMeta, series: pd.Series | None, private: bool, categories: dict) -> bool:
        sdtype = meta.columns[column].sdtype
        if sdtype in ("categorical", "boolean") or column in categories:
            return True
        if private or series is None:
            return False  # the number of distinct values is not public
        return series.nunique(dropna=True) <= DISCRETE_NUMERIC_MAX

    @staticmethod
    def columns_needing_dp(meta: TableMeta, columns: list[str], bounds: dict, categories: dict) -> list[str]:
        """Columns whose bounds or category set must be estimated with a DP mechanism (not given, not public)."""
        need = []
        for column in columns:
            sdtype = meta.columns[column].sdtype
            if sdtype in ("id", "boolean", *STRING_KINDS):
                continue
            discrete = DataTransformer.is_discrete(column, meta, None, True, categories)
            if (discrete and column not in categories) or (not discrete and column not in bounds):
                need.append(column)
        return need

    def fit(self, table: pd.DataFrame, meta: TableMeta, *, seed: int = 0, private: bool = False,
            bounds: dict | None = None, categories: dict | None = None, epsilon: float = 0.0, delta: float = 0.0) -> DataTransformer:
        """In private mode `epsilon`/`delta` is the budget for the columns that need DP estimates, shared evenly."""
        rng = np.random.default_rng([seed, 17])
        bounds, categories = dict(bounds or {}), dict(categories or {})
        missing = [c for c in table.columns if c not in meta.columns]
        if missing:
            raise GenesisError(f"table {meta.name!r}: column {missing[0]!r} is not in the table's schema")
        for setting, given in (("bounds", bounds), ("categories", categories)):
            for column in given:
                if column not in table.columns:
                    raise GenesisError(f"table {meta.name!r}: {setting} names column {column!r}, which the table does not have")
        self.private = private
        self.columns = [c for c in table.columns if meta.columns[c].sdtype != "id"]
        need = self.columns_needing_dp(meta, self.columns, bounds, categories) if private else []
        if need and epsilon <= 0:
            raise GenesisError(f"table {meta.name!r}: column {need[0]!r} needs bounds or categories in the settings, "
                               "or a preprocessing privacy budget")
        n_cat = sum(self.is_discrete(c, meta, None, True, categories) for c in need)
        eps_each = epsilon / len(need) if need else 0.0
        delta_each = delta / n_cat if n_cat else 0.0
        self.dp_spent = {"epsilon": float(epsilon) if need else 0.0, "delta": float(delta) if n_cat else 0.0, "columns": need}
        for column in self.columns:
            cmeta, series = meta.columns[column], table[column]
            if cmeta.sdtype in STRING_KINDS:
                self.text[column] = public_text_spec(cmeta.sdtype) if private else fit_text(series, cmeta.sdtype)
            elif has_exceptions(series, cmeta) or self.is_discrete(column, meta, series, private, categories):
                # typed columns with exceptions (codes among numbers, +-inf) are learned as their values
                sdtype = "categorical" if has_exceptions(series, cmeta) else cmeta.sdtype
                self.codecs[column] = self._fit_discrete(series, sdtype, cmeta.datetime_format, private,
                                                         categories.get(column), eps_each, delta_each, rng, meta.name, column)
            else:
                self.codecs[column] = self._fit_continuous(series, cmeta.sdtype, cmeta.datetime_format, private,
                                                           bounds.get(column), eps_each, rng, meta.name, column)
        self._layout()
        return self

    def _fit_continuous(self, series, sdtype, datetime_format, private, given_bounds, epsilon, rng, table, column) -> dict:
        values = as_numbers(series.dropna(), sdtype)
        if given_bounds is not None:
            try:
                lo, hi = as_numbers(pd.Series(list(given_bounds)), sdtype) if sdtype == "datetime" else map(float, given_bounds)
            except (TypeError, ValueError):
                raise GenesisError(f"table {table!r}: bounds of column {column!r} must be two numbers [low, high]") from None
            if not lo < hi:
                raise GenesisError(f"table {table!r}: bounds of column {column!r} must have low < high")
        elif private:
            lo, hi = dp_octave_bounds(values, sdtype, rng, epsilon=epsilon, table=table, column=column)  # cannot explode
        else:
            lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        integer = sdtype == "integer" or (sdtype == "numeric" and not private and len(values) > 0 and bool(np.all(values % 1 == 0)))
        codec = {"kind": "continuous", "sdtype": sdtype, "datetime_format": datetime_format, "low": float(lo), "high": float(hi),
                 "integer": bool(integer and sdtype != "datetime"), "decimals": None if private or not len(values) else decimal_places(values),
                 "has_null": bool(private or series.isna().any())}
        if private or len(values) == 0 or hi <= lo:
            # min-max inside the bounds: alpha = (x - centre) / (4 std) spans [-1, 1]
            codec.update(means=[(lo + hi) / 2], stds=[max((hi - lo) / 8, _STD_FLOOR)], weights=[1.0])
            return codec
        sample = values if len(values) <= MAX_MIXTURE_ROWS else rng.choice(values, MAX_MIXTURE_ROWS, replace=False)
        n_modes = int(min(MAX_MODES, len(np.unique(sample))))
        scale = max(hi - lo, _STD_FLOOR)
        if n_modes < 2:
            codec.update(means=[float(sample.mean())], stds=[scale / 8], weights=[1.0])
            return codec
        mixture = BayesianGaussianMixture(n_components=n_modes, weight_concentration_prior_type="dirichlet_process",
                                          weight_concentration_prior=1e-3, max_iter=100, n_init=1,
                                          random_state=int(rng.integers(0, 2**31 - 1)))
        with warnings.catch_warnings(), threadpool_limits(1):  # BLAS threads only oversubscribe a 1-D fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            scaled = ((sample - lo) / scale).reshape(-1, 1)  # scaled to [0, 1] for a well-conditioned fit
            mixture.fit(scaled)
            resp = mixture.predict_proba(scaled)
        keep = mixture.weights_ > MIN_MODE_WEIGHT
        weights = mixture.weights_[keep] / mixture.weights_[keep].sum()
        # Means and spreads from the values each mode holds, not the variational posterior: its Wishart prior (the
        # column's whole variance) keeps a point mass such as capital-gain == 0 as wide as ~100 units, so every
        # decoded 'zero' came back as a small positive number. A point mass now gets the floor spread and decodes
        # to its value.
        resp, x = resp[:, keep], scaled[:, 0]
        mass = resp.sum(axis=0)
        held = mass >= 1.0
        means, stds = mixture.means_[keep, 0].copy(), np.sqrt(mixture.covariances_[keep].reshape(-1))
        means[held] = (resp[:, held] * x[:, None]).sum(axis=0) / mass[held]
        stds[held] = np.sqrt((resp[:, held] * (x[:, None] - means[held]) ** 2).sum(axis=0) / mass[held])
        means, stds = means * scale + lo, stds * scale
        codec.update(means=means.tolist(), stds=np.maximum(stds, _STD_FLOOR * scale).tolist(), weights=weights.tolist())
        return codec

    def _fit_discrete(self, series, sdtype, datetime_format, private, given, epsilon, delta, rng, table, column) -> dict:
        non_null = series.dropna()
        keys = _keys(non_null, sdtype)
        ordered = sdtype in ("numeric", "integer", "datetime")
        tail: list = []
        freqs: list[float] = []
        if sdtype == "boolean":
            values = [True, False] if given is None else [bool(v) for v in given]
            if not private:
                freqs = [float((keys == v).sum()) for v in values]
        elif given is not None:
            if not isinstance(given, (list, tuple)) or not given:
                raise GenesisError(f"table {table!r}: categories of column {column!r} must be a non-empty list")
            values = [_clean(v) for v in (as_numbers(pd.Series(list(given)), sdtype) if ordered else [str(v) for v in given])]
            if not private:
                freqs = [float(c) for c in pd.Series(keys).value_counts().reindex(values, fill_value=0).to_numpy()]
        elif private:
            values = dp_categories(keys, epsilon, delta, rng)
        else:
            uniques, counts = np.unique(keys, return_counts=True) if len(keys) else (np.array([]), np.array([]))
            order = np.argsort(uniques) if ordered else np.argsort(-counts, kind="stable")
            uniques, counts = uniques[order], counts[order]
            rare = np.zeros(len(uniques), dtype=bool)
            if not ordered:
                rare = counts < RARE_COUNT
                rare[MAX_CATEGORIES:] = True
                if rare.all() and len(uniques):  # nothing frequent: keep the categories rather than one bucket
                    rare[:] = False
                    rare[MAX_CATEGORIES:] = True
            values = [_clean(v) for v in uniques[~rare]]
            tail = [_clean(v) for v in uniques[rare]]
            freqs = counts[~rare].astype(float).tolist() + ([float(counts[rare].sum())] if tail else [])
        has_null = bool(private or series.isna().any())
        if not private:
            freqs = freqs + ([float(series.isna().sum())] if has_null else [])
        return {"kind": "discrete", "sdtype": sdtype, "datetime_format": datetime_format, "values": values, "tail": tail,
                "has_null": has_null, "freqs": freqs, "ordered": ordered}

    # -------------------------------------------------------------- layout

    @staticmethod
    def slots(codec: dict) -> int:
        return len(codec["values"]) + bool(codec["tail"]) + bool(codec["has_null"])

    def _layout(self) -> None:
        spans, offset = [], 0
        for column in [c for c in self.columns if c in self.codecs]:  # table order: JSON sorts dict keys
            codec = self.codecs[column]
            if codec["kind"] == "continuous":
                parts = [("value", 1, "tanh")]
                if len(codec["means"]) > 1:
                    parts.append(("mode", len(codec["means"]), "softmax"))
                if codec["has_null"]:
                    parts.append(("null", 2, "softmax"))
            else:
                width = self.slots(codec)
                parts = [("category", width, "softmax")] if width >= 2 else []
            for role, width, activation in parts:
                spans.append(Span(column, role, offset, width, activation))
                offset += width
        self.spans, self.dim = spans, offset

    @property
    def category_spans(self) -> list[Span]:
        """Spans of discrete columns: what CTGAN's conditional vector can select."""
        return [s for s in self.spans if s.role == "category"]

    @property
    def tanh_index(self) -> np.ndarray:
        return np.asarray([s.start for s in self.spans if s.activation == "tanh"], dtype="int64")

    @property
    def softmax_spans(self) -> list[Span]:
        return [s for s in self.spans if s.activation == "softmax"]

    def span_of(self, column: str, role: str) -> Span | None:
        return next((s for s in self.spans if s.column == column and s.role == role), None)

    # -------------------------------------------------------------- encoding

    def transform(self, table: pd.DataFrame, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng([seed, 29])
        out = np.zeros((len(table), self.dim), dtype="float32")
        rows = np.arange(len(table))
        for column in [c for c in self.columns if c in self.codecs]:
            codec = self.codecs[column]
            series = table[column]
            null = series.isna().to_numpy()
            if codec["kind"] == "continuous":
                values = np.empty(len(series))
                present = as_numbers(series[~null], codec["sdtype"])
                values[~null] = present
                if null.any():  # nulls get a plausible filler value; the null span says they are null
                    filler = rng.choice(present, int(null.sum())) if len(present) and not self.private else \
                        rng.uniform(codec["low"], codec["high"], int(null.sum()))
                    values[null] = filler
                values = np.clip(values, codec["low"], codec["high"])
                means, stds = np.asarray(codec["means"]), np.asarray(codec["stds"])
                if len(means) > 1:
                    logp = np.log(np.asarray(codec["weights"])) - np.log(stds) - 0.5 * ((values[:, None] - means) / stds) ** 2
                    probs = np.exp(logp - logp.max(axis=1, keepdims=True))
                    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
                    mode = np.minimum((cum < rng.random((len(values), 1))).sum(axis=1), len(means) - 1)
                    span = self.span_of(column, "mode")
                    out[rows, span.start + mode] = 1.0
                else:
                    mode = np.zeros(len(values), dtype="int64")
                limit = 1.0 if len(means) == 1 else 0.99
                out[:, self.span_of(column, "value").start] = np.clip((values - means[mode]) / (4 * stds[mode]), -limit, limit)
                if codec["has_null"]:
                    out[rows, self.span_of(column, "null").start + null.astype("int64")] = 1.0
            else:
                span = self.span_of(column, "category")
                if span is None:
                    continue
                out[rows, span.start + self._codes(codec, series, null)] = 1.0
        return out

    def _codes(self, codec: dict, series: pd.Series, null: np.ndarray) -> np.ndarray:
        n_values = len(codec["values"])
        codes = np.full(len(series), -1, dtype="int64")
        if (~null).any():
            keys = _keys(series[~null], codec["sdtype"])
            codes[~null] = pd.Categorical(keys, categories=pd.Index(codec["values"]) if n_values else pd.Index([], dtype=object)).codes
        unknown = (codes < 0) & ~null
        if codec["tail"]:
            codes[unknown] = n_values
        elif codec["has_null"]:
            null = null | unknown  # values outside a given / DP category set are modelled as nulls
        else:
            codes[unknown] = 0
        if codec["has_null"]:
            codes[null] = n_values + bool(codec["tail"])
        return codes

    def category_code(self, column: str, value) -> int | None:
        """The slot of `value` in a discrete column's one-hot (None: never seen, so impossible)."""
        codec = self.codecs[column]
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return self.slots(codec) - 1 if codec["has_null"] else None
        try:
            key = _clean(_keys(pd.Series([value]), codec["sdtype"])[0])
        except (TypeError, ValueError):
            return None
        if key in codec["values"]:
            return codec["values"].index(key)
        if key in codec["tail"]:
            return len(codec["values"])
        return None

    # -------------------------------------------------------------- decoding

    def inverse_transform(self, matrix: np.ndarray, seed: int | None = None) -> pd.DataFrame:
        """Matrix of activations (tanh scalars, softmax probabilities or one-hots) -> typed table."""
        rng = np.random.default_rng(seed)
        n = len(matrix)
        out: dict[str, pd.Series] = {}
        for column in self.columns:
            if column in self.text:
                out[column] = sample_text(self.text[column], n, rng)
                continue
            codec = self.codecs[column]
            if codec["kind"] == "continuous":
                means, stds = np.asarray(codec["means"]), np.asarray(codec["stds"])
                span = self.span_of(column, "mode")
                mode = matrix[:, span.start:span.start + span.width].argmax(axis=1) if span else np.zeros(n, dtype="int64")
                alpha = np.clip(matrix[:, self.span_of(column, "value").start], -1, 1)
                values = np.clip(alpha * 4 * stds[mode] + means[mode], codec["low"], codec["high"])
                series = restore_values(values, codec["sdtype"], codec["decimals"], codec["integer"], codec["datetime_format"])
                null_span = self.span_of(column, "null")
                null = matrix[:, null_span.start:null_span.start + 2].argmax(axis=1) == 1 if null_span else np.zeros(n, dtype=bool)
            else:
                span = self.span_of(column, "category")
                codes = matrix[:, span.start:span.start + span.width].argmax(axis=1) if span else np.zeros(n, dtype="int64")
                series, null = self._decode_discrete(codec, codes, rng)
            out[column] = series.mask(null) if null.any() else series
        return pd.DataFrame(out, columns=self.columns, index=pd.RangeIndex(n))

    def _decode_discrete(self, codec: dict, codes: np.ndarray, rng: np.random.Generator) -> tuple[pd.Series, np.ndarray]:
        n_values = len(codec["values"])
        null = codes >= n_values + bool(codec["tail"]) if codec["has_null"] else np.zeros(len(codes), dtype=bool)
        if n_values == 0 and not codec["tail"]:
            null = np.ones(len(codes), dtype=bool)
        pool = np.asarray(codec["values"] + ([None] if not n_values else []), dtype=object)
        values = pool[np.clip(codes, 0, len(pool) - 1)]
        if codec["tail"]:
            is_tail = codes == n_values
            values[is_tail] = np.asarray(codec["tail"], dtype=object)[rng.integers(0, len(codec["tail"]), int(is_tail.sum()))]
        if codec["ordered"]:
            numbers = np.asarray([np.nan if v is None else v for v in values], dtype="float64")
            numbers[null] = numbers[~null][0] if (~null).any() else 0.0
            return restore_values(np.nan_to_num(numbers), codec["sdtype"], None, codec["sdtype"] == "integer", codec["datetime_format"]), null
        if codec["sdtype"] == "boolean":
            return pd.Series(values, dtype="boolean"), null
        return pd.Series(values, dtype="string"), null

    # -------------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        return {"columns": self.columns, "codecs": self.codecs, "text": self.text, "private": self.private, "dp_spent": self.dp_spent}

    @classmethod
    def from_dict(cls, data: dict) -> DataTransformer:
        self = cls()
        self.columns, self.codecs, self.text = list(data["columns"]), dict(data["codecs"]), dict(data["text"])
        self.private, self.dp_spent = bool(data["private"]), dict(data["dp_spent"])
        self._layout()
        return self

    def describe(self) -> dict:
        kinds = [c["kind"] for c in self.codecs.values()]
        return {"continuous_columns": kinds.count("continuous"), "discrete_columns": kinds.count("discrete"),
                "text_columns": len(self.text), "encoded_dimensions": self.dim}
