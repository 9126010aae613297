"""Gaussian copula: empirical marginals joined by a correlation matrix of normal scores.

Fast, deterministic given a seed, and a solid baseline for every table; see transform.py for the marginals.

Sampling is stratified by default: each normal score (or, when conditioning, each residual) is drawn as usual, then
replaced, keeping its rank within the batch, by the normal quantile at an evenly spaced position (i + v) / n with one
random offset v per column. The dependence (the ranks) is unchanged, but a batch's marginals follow the learned ones
without the sampling noise of independent draws: 59 customers over 24 countries get each country's learned share
(rounded), not a multinomial draw of it, which on small tables is most of the gap between real and synthetic.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from threadpoolctl import threadpool_limits

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.synthesis.generators.base import PARENT_FEATURE_PREFIX, BaseGenerator, register
from genesis_pipelines.engine.synthesis.generators.free_text import STRING_KINDS, fit_text, sample_text
from genesis_pipelines.engine.synthesis.transform import PEOPLE_PER_KNOT, ColumnTransform, fit_transform_for

_CHUNK = 200_000
STREAM_ROWS = _CHUNK  # rows per piece of sample_columns_stream: the chunks one random stream is drawn in


EIGEN_FLOOR = 1e-6  # the smallest eigenvalue a fitted correlation matrix keeps


def nearest_correlation(corr: np.ndarray) -> np.ndarray:
    """Clip eigenvalues so the matrix is a valid (positive definite) correlation matrix.

    A matrix whose eigenvalues all lie above the floor is returned as it is (clipping would not change it): one
    Cholesky factorisation of corr - floor * I proves that, at a ninth of an eigendecomposition's cost. The dense
    algebra runs on one BLAS thread: on a shared host spin-waiting threads cost several times the work (a
    1,000-column eigendecomposition: 0.34 CPU s on one thread, 4.2 on two busy cores)."""
    corr = np.nan_to_num((corr + corr.T) / 2, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    with threadpool_limits(1):
        try:
            np.linalg.cholesky(corr - EIGEN_FLOOR * np.eye(len(corr)))
            return corr
        except np.linalg.LinAlgError:
            pass
        values, vectors = np.linalg.eigh(corr)
        fixed = (vectors * np.clip(values, EIGEN_FLOOR, None)) @ vectors.T
    scale = np.sqrt(np.diag(fixed))
    return fixed / np.outer(scale, scale)


@register
class GaussianCopulaGenerator(BaseGenerator):
    name: ClassVar[str] = "gaussian_copula"
    format: ClassVar[str] = "genesis.gaussian_copula/1"

    def __init__(self, max_fit_rows: int = 500_000, stratified: bool = True, class_columns: list[str] | None = None):
        self.max_fit_rows = int(max_fit_rows)
        self.stratified = bool(stratified)
        # columns whose classes get their own copula (None: chosen from the data, see _choose_class_columns)
        self.class_columns = None if class_columns is None else [str(c) for c in class_columns]
        self.per_class: dict[str, dict[str, GaussianCopulaGenerator]] = {}  # column -> class key -> copula
        self.columns: list[str] = []
        self.transforms: dict[str, ColumnTransform] = {}
        self.text: dict[str, dict] = {}
        self.dims: list[tuple[str, str]] = []  # (column, "value" | "null")
        self.corr: np.ndarray | None = None
        self.rows_fitted = 0

    # -------------------------------------------------------------- fit

    def _fit_rows(self, table: pd.DataFrame, meta: TableMeta, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
        """The rows a fit sees (a seeded subsample of big tables) and the columns it models; shared with the DP copula."""
        if len(table) > self.max_fit_rows:
            table = table.sample(self.max_fit_rows, random_state=seed)
        self.columns = [c for c in table.columns if meta.columns[c].sdtype != "id"]
        return table, np.random.default_rng(seed)

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        table, rng = self._fit_rows(table, meta, seed)
        scores = []
        bounds: list[np.ndarray | None] = []  # per dimension: category bounds of an ordered discrete value, else None
        for column in self.columns:
            cmeta, series = meta.columns[column], table[column]
            if cmeta.sdtype in STRING_KINDS:
                self.text[column] = fit_text(series, cmeta.sdtype)
                continue
            transform = fit_transform_for(series, cmeta, rows_per_knot=PEOPLE_PER_KNOT * meta.rows_per_person)
            self.transforms[column] = transform
            present = series.notna().to_numpy()
            u = np.full(len(series), 0.5)
            if present.all():
                u[:] = transform.to_uniform(series, rng)  # the same values without copying the column
            elif present.any():
                u[present] = transform.to_uniform(series[present], rng)
            u[~present] = rng.random(int((~present).sum()))
            self.dims.append((column, "value"))
            scores.append(ndtri(u))
            bounds.append(np.asarray(transform.cum, dtype="float64")
                          if transform.kind == "discrete" and getattr(transform, "ordered", False) else None)
            if transform.null_rate > 0:
                p = transform.null_rate
                null_u = np.where(present, p + rng.random(len(series)) * (1 - p), rng.random(len(series)) * p)
                self.dims.append((column, "null"))
                scores.append(ndtri(np.clip(null_u, 1e-6, 1 - 1e-6)))
                bounds.append(None)
        if scores:
            z = np.column_stack(scores)
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.corrcoef(z, rowvar=False) if len(z) > 1 else np.eye(z.shape[1])
            corr = np.atleast_2d(corr)
            if len(z) > 1:
                corr = _deattenuate(corr, z, bounds, [t.kind == "continuous" for t in
                                                      (self.transforms[c] for c, _ in self.dims)], self.dims)
            self.corr = nearest_correlation(corr)
        else:
            self.corr = np.zeros((0, 0))
        self.rows_fitted = len(table)
        self._fit_per_class(table, meta, seed)

    def _choose_class_columns(self, table: pd.DataFrame) -> list[str]:
        """Few-class category columns (2..MAX_CLASSES classes, each of at least MIN_CLASS_ROWS rows), at most
        MAX_CLASS_COLUMNS of them, fewest classes first: a label such as Adult's income. The relational layer's
        parent features are left out: a child drawn given its parent keeps the whole table's smoothed copula (a
        copula per parent class learnt sakila's payments closely enough to lift membership inference to 0.60)."""
        found = []
        for column, transform in self.transforms.items():
            if transform.kind != "discrete" or transform.sdtype not in ("categorical", "boolean"):
                continue
            if column.startswith(PARENT_FEATURE_PREFIX):
                continue
            counts = table[column].value_counts(dropna=True)
            if 2 <= len(counts) <= MAX_CLASSES and counts.min() >= MIN_CLASS_ROWS:
                found.append((len(counts), -int(counts.min()), column))
        return [c for _, _, c in sorted(found)[:MAX_CLASS_COLUMNS]]

    def _fit_per_class(self, table: pd.DataFrame, meta: TableMeta, seed: int) -> None:
        """A copula per class of each class column, fitted on that class's rows: conditioning on a class then
        samples the class's own marginals and correlations. Through the latent normal alone, a condition on a
        category shifts the other columns' normal scores but keeps their overall shapes (on Adult's >50K rows,
        SDMetrics column shapes 0.86 that way)."""
        self.per_class = {}
        columns = self._choose_class_columns(table) if self.class_columns is None else \
            [c for c in self.class_columns if c in self.transforms and self.transforms[c].kind == "discrete"]
        for column in columns:
            subs = {}
            for value, rows in table.groupby(column, sort=True, dropna=True):
                sub = GaussianCopulaGenerator(self.max_fit_rows, self.stratified, class_columns=[])
                sub.fit(rows.reset_index(drop=True), meta, seed=seed)
                subs[_class_key(value)] = sub
            if subs:
                self.per_class[column] = subs

    # -------------------------------------------------------------- sample

    def _condition(self, conditions: dict | pd.DataFrame, n: int, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """Dimensions fixed by conditions and, per row, their normal scores.

        A category owns an interval of (0, 1): drawing inside it per row samples the truncated normal, so the
        other columns follow the whole category rather than its midpoint. A frame gives one condition per row;
        there a null or never-seen value leaves its row unconditioned on that column (drawn from the marginal),
        so conditioning on generated parents never fails on a parent value the child never saw.
        """
        per_row = isinstance(conditions, pd.DataFrame)
        fixed = []
        out = np.empty((n, len(conditions.keys())), order="F")  # column-major, as _draw stores its scores
        for column in conditions.keys():
            if column in self.text:
                raise GenesisError(f"cannot condition on free-text column {column!r}")
            if column not in self.transforms:
                raise GenesisError(f"cannot condition on column {column!r}: the model does not have it")
            transform = self.transforms[column]
            if per_row:
                u = self._uniform_per_row(transform, conditions[column], rng)
            elif hasattr(transform, "interval_of"):
                lo, hi = transform.interval_of(conditions[column])
                if np.isnan(lo):
                    raise GenesisError(f"impossible condition on column {column!r}: the value was never seen in training")
                u = lo + rng.random(n) * (hi - lo)
            else:
                u = np.full(n, float(transform.to_uniform(pd.Series([conditions[column]]), rng)[0]))
            ndtri(np.clip(u, 1e-6, 1 - 1e-6), out=out[:, len(fixed)])
            fixed.append(self.dims.index((column, "value")))
        return fixed, out

    @staticmethod
    def _uniform_per_row(transform: ColumnTransform, values: pd.Series, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(values))
        values = values.reset_index(drop=True)
        if hasattr(transform, "interval_of"):
            codes, uniques = pd.factorize(values)
            # one interval per distinct value, a trailing unknown (NaN) one taken by the rows without a value
            bounds = np.vstack([transform.intervals_of(uniques).reshape(-1, 2), [np.nan, np.nan]])
            lo, hi = bounds[codes, 0], bounds[codes, 1]
            ok = ~np.isnan(lo)
            # the rows of a known value drawn inside its interval (one pass when every row has one)
            u = lo + u * (hi - lo) if ok.all() else np.where(ok, lo + u * (hi - lo), u)
        else:
            present = values.notna().to_numpy()
            if present.any():
                u[present] = transform.to_uniform(values[present], rng)
        return u

    def _draw(self, n: int, rng: np.random.Generator, conditions: dict | pd.DataFrame | None,
              keep: list[int] | None = None) -> tuple[np.ndarray, dict[int, int]]:
        """Normal scores of n rows (column-major) and where each dimension's scores are: every dimension, or the
        conditioned ones and `keep` (a subset's marginal is the sub-block of the correlation, so the dimensions
        left out are never drawn). BLAS runs on one thread here: its products are tall and thin (rows x a few
        dozen dimensions), where a second thread adds CPU s (spinning, splitting) and no speed on a loaded machine."""
        with threadpool_limits(1):
            return self._draw_scores(n, rng, conditions, keep)

    def _draw_scores(self, n: int, rng: np.random.Generator, conditions: dict | pd.DataFrame | None,
                     keep: list[int] | None) -> tuple[np.ndarray, dict[int, int]]:
        d = len(self.dims)
        if conditions is None or len(conditions.keys()) == 0:
            dims = list(range(d)) if keep is None else sorted(set(keep))
            corr = self.corr if keep is None else self.corr[np.ix_(dims, dims)]
            z = rng.multivariate_normal(np.zeros(len(dims)), corr, size=n, method="cholesky") if dims else np.zeros((n, 0))
            z = _stratify(z, np.ones(len(dims)), rng) if self.stratified else z
            return np.asfortranarray(z), {dim: j for j, dim in enumerate(dims)}
        fixed, z_fixed = self._condition(conditions, n, rng)
        free = [i for i in range(d) if i not in fixed and (keep is None or i in keep)]
        z = np.empty((n, len(fixed) + len(free)), order="F")
        z[:, : len(fixed)] = z_fixed
        if free:
            s_fc = self.corr[np.ix_(free, fixed)]
            weights = np.linalg.solve(self.corr[np.ix_(fixed, fixed)], s_fc.T).T
            cov = _nearest_correlation_cov(self.corr[np.ix_(free, free)] - weights @ s_fc.T)
            noise = rng.multivariate_normal(np.zeros(len(free)), cov, size=n, method="eigh")
            if self.stratified:
                noise = _stratify(noise, np.sqrt(np.clip(np.diag(cov), 0, None)), rng)
            free_scores = z[:, len(fixed):]  # the conditional mean written straight into the scores, then the noise
            np.matmul(z_fixed, weights.T, out=free_scores)
            free_scores += noise
        return z, {dim: j for j, dim in enumerate(fixed + free)}

    @property
    def fitted(self) -> bool:
        return self.corr is not None

    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        return self._rows(n, conditions, seed, None)

    def sample_columns(self, n: int, columns: list[str], *, conditions: dict | pd.DataFrame | None = None,
                       seed: int | None = None) -> pd.DataFrame:
        """Rows of `columns` alone, distributed as those columns of `sample`'s rows: only their dimensions are
        drawn (a caller that needs a few predicted columns of a wide table pays for those)."""
        self.require_fitted()
        return self._rows(n, conditions, seed, list(columns))

    def sample_columns_stream(self, n: int, columns: list[str], conditions_of, *, seed: int | None = None):
        """sample_columns(n, columns, conditions=<every row's conditions>, seed=seed) in pieces of STREAM_ROWS rows,
        the same rows: one random stream through the same chunks `_rows` draws, with only one piece's conditions
        built at a time (`conditions_of(start, stop)`: that piece's frame, or None). A per-class copula draws all
        of a class's rows at once, so there the rows come in one piece, as sample_columns gives them."""
        self.require_fitted()
        first = conditions_of(0, min(STREAM_ROWS, n))
        if n <= STREAM_ROWS or (first is not None and any(c in first.columns for c in self.per_class)):
            yield self.sample_columns(n, columns, conditions=first if n <= STREAM_ROWS else conditions_of(0, n), seed=seed)
            return
        rng = np.random.default_rng(seed)
        for start in range(0, n, STREAM_ROWS):
            stop = min(n, start + STREAM_ROWS)
            part = first if start == 0 else conditions_of(start, stop)
            if part is not None and len(part) != stop - start:
                raise GenesisError(f"conditions has {len(part)} rows for {stop - start} rows to sample")
            yield self._sample_chunk(stop - start, rng, _slice(part, 0, stop - start), list(columns))

    def _rows(self, n: int, conditions, seed, columns: list[str] | None) -> pd.DataFrame:
        by_class = next((c for c in self.per_class if conditions is not None and c in conditions.keys()), None)
        if by_class is not None:
            out = self._sample_per_class(n, conditions, by_class, seed)
            return out if columns is None else out[[c for c in out.columns if c in set(columns)]]
        if isinstance(conditions, pd.DataFrame):
            # one condition per row, all rows in one vectorised conditional draw (mean z_fixed @ weights.T per row)
            if len(conditions) != n:
                raise GenesisError(f"conditions has {len(conditions)} rows for {n} rows to sample")
            conditions = conditions.reset_index(drop=True)
        rng = np.random.default_rng(seed)
        chunks = [self._sample_chunk(min(_CHUNK, n - start), rng, _slice(conditions, start, start + _CHUNK), columns)
                  for start in range(0, n, _CHUNK)] or [self._sample_chunk(0, rng, _slice(conditions, 0, 0), columns)]
        return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)

    def _sample_per_class(self, n: int, conditions: dict | pd.DataFrame, column: str, seed: int | None) -> pd.DataFrame:
        """Rows conditioned on a class column: each class's rows from that class's copula (the other conditions
        passed on); a class without its own copula (never seen) goes through the latent normal as before."""
        rng = np.random.default_rng(seed)
        subs = self.per_class[column]
        if not isinstance(conditions, pd.DataFrame):
            rest = {c: v for c, v in conditions.items() if c != column}
            sub = subs.get(_class_key(conditions[column]))
            if sub is None:
                return self._sample_plain(n, conditions, seed)
            out = sub.sample(n, conditions=rest or None, seed=int(rng.integers(0, 2**31 - 1)))
            out[column] = pd.Series([conditions[column]] * n, dtype=self._dtype_of(column)) if n else out[column]
            return out[self.columns].reset_index(drop=True)
        if len(conditions) != n:
            raise GenesisError(f"conditions has {len(conditions)} rows for {n} rows to sample")
        conditions = conditions.reset_index(drop=True)
        keys = conditions[column].map(_class_key)
        parts = []
        for key, index in pd.Series(np.arange(n)).groupby(keys.to_numpy(), sort=True).groups.items():
            index = np.asarray(index)
            part_cond = conditions.iloc[index].reset_index(drop=True)
            sub = subs.get(key)
            if sub is None:
                part = self._sample_plain(len(index), part_cond, int(rng.integers(0, 2**31 - 1)))
            else:
                rest = part_cond.drop(columns=[column])
                part = sub.sample(len(index), conditions=rest if len(rest.columns) else None,
                                  seed=int(rng.integers(0, 2**31 - 1)))
                part[column] = pd.Series(part_cond[column].to_numpy(), dtype=self._dtype_of(column))
            parts.append(part[self.columns].set_axis(index))
        return pd.concat(parts).sort_index().reset_index(drop=True) if parts else self._sample_plain(0, None, seed)

    def _sample_plain(self, n: int, conditions, seed) -> pd.DataFrame:
        per_class, self.per_class = self.per_class, {}
        try:
            return self.sample(n, conditions=conditions, seed=seed)
        finally:
            self.per_class = per_class

    def _dtype_of(self, column: str):
        return self._sample_chunk(0, np.random.default_rng(0), None)[column].dtype

    def _sample_chunk(self, n: int, rng: np.random.Generator, conditions: dict | pd.DataFrame | None,
                      columns: list[str] | None = None) -> pd.DataFrame:
        """n rows of every column, or of `columns` alone (only their dimensions drawn). A conditioned column takes
        the caller's values, in the dtype its transform gives, without being mapped back from its scores."""
        wanted = self.columns if columns is None else [c for c in self.columns if c in set(columns)]
        given = set(conditions.columns if isinstance(conditions, pd.DataFrame) else (conditions or {}).keys())
        keep = None if columns is None else [i for i, (c, _) in enumerate(self.dims) if c in set(wanted) - given]
        z, at = self._draw(n, rng, conditions, keep)
        out: dict[str, pd.Series] = {}
        for column in wanted:
            if column in self.text:
                out[column] = self._sample_text(column, n, rng)
                continue
            transform = self.transforms[column]
            if column in given and n:
                dtype = _with_nulls(transform.from_uniform(np.zeros(0)), np.zeros(0, dtype=bool)).dtype
                values = conditions[column]
                if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype) and isinstance(dtype, pd.StringDtype):
                    out[column] = values.astype(dtype).reset_index(drop=True)  # text to text in Arrow, no object per row
                    continue
                out[column] = pd.Series(values.to_numpy() if isinstance(values, pd.Series) else [values] * n, dtype=dtype)
                continue
            values = transform.from_uniform(ndtr(z[:, at[self.dims.index((column, "value"))]]))
            if (column, "null") in self.dims:
                is_null = ndtr(z[:, at[self.dims.index((column, "null"))]]) < transform.null_rate
                values = _with_nulls(values, is_null)
            out[column] = values.reset_index(drop=True)
        return pd.DataFrame(out, columns=wanted, index=pd.RangeIndex(n))

    def _sample_text(self, column: str, n: int, rng: np.random.Generator) -> pd.Series:
        return sample_text(self.text[column], n, rng)

    # -------------------------------------------------------------- persistence

    def _state(self, directory: Path | None = None) -> dict:
        """Everything in JSON (no weights file); a per-class copula's state nests inside its parent's."""
        return {
            "max_fit_rows": self.max_fit_rows, "stratified": self.stratified,
            "columns": self.columns,
            "transforms": {c: t.to_dict() for c, t in self.transforms.items()}, "text": self.text,
            "dims": [list(d) for d in self.dims], "corr": _pack(self.corr) if self.corr is not None else None,
            "rows_fitted": self.rows_fitted, "class_columns": self.class_columns,
            "per_class": {c: {k: sub._state() for k, sub in subs.items()} for c, subs in self.per_class.items()},
        }

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> GaussianCopulaGenerator:
        model = cls(max_fit_rows=state["max_fit_rows"])  # subclasses (the DP copula) take their own settings
        model._restore(state)
        return model

    def _restore(self, data: dict) -> None:
        self.stratified = bool(data.get("stratified", True))
        self.columns = data["columns"]
        self.transforms = {c: ColumnTransform.from_dict(t) for c, t in data["transforms"].items()}
        self.text = data["text"]
        self.dims = [tuple(d) for d in data["dims"]]
        self.corr = _unpack(data["corr"]).reshape(len(self.dims), len(self.dims))
        self.rows_fitted = data["rows_fitted"]
        self.class_columns = data.get("class_columns")
        self.per_class = {}
        for column, subs in (data.get("per_class") or {}).items():
            self.per_class[column] = {}
            for key, state in subs.items():
                sub = GaussianCopulaGenerator(self.max_fit_rows, class_columns=[])
                sub._restore(state)
                self.per_class[column][key] = sub

    def describe(self) -> dict:
        off_diagonal = np.abs(self.corr[~np.eye(len(self.corr), dtype=bool)]) if self.corr is not None and len(self.corr) > 1 else np.array([0.0])
        return {
            "method": self.name,
            "rows_fitted": self.rows_fitted,
            "columns_modelled": len(self.transforms),
            "text_columns": len(self.text),
            "discrete_columns": sum(t.kind == "discrete" for t in self.transforms.values()),
            "continuous_columns": sum(t.kind == "continuous" for t in self.transforms.values()),
            "mean_abs_correlation": round(float(off_diagonal.mean()), 4),
            # columns whose classes have their own copula (for conditioning on a class): counts, no values
            "per_class_copulas": {c: len(subs) for c, subs in self.per_class.items()},
        }


def _deattenuate(corr: np.ndarray, z: np.ndarray, bounds: list[np.ndarray | None], continuous: list[bool],
                 dims: list[tuple[str, str]]) -> np.ndarray:
    """Polyserial correlation between an ordered discrete value (few-valued numbers: a price of 0.99 or 1.99) and a
    continuous one. A category owns an interval of the normal scale and a random point inside it carries no
    information, so the plain correlation of those points understates the dependence (price against file size:
    0.26 where the latent one is about 0.9). Scoring each category by its interval's conditional mean s and
    dividing by sd(s) gives the latent correlation: cov(x, s) = rho * var(s) for a standard normal x."""
    corr = corr.copy()
    continuous_dims = [j for j, (_, part) in enumerate(dims) if part == "value" and continuous[j]]
    rows, scores, sds = [], [], []
    for i, cum in enumerate(bounds):
        if cum is None or len(cum) < 3 or not continuous_dims:
            continue
        edges = ndtri(np.clip(cum, 0.0, 1.0))
        mass = np.diff(cum)
        density = np.where(np.isfinite(edges), np.exp(-0.5 * np.square(np.where(np.isfinite(edges), edges, 0.0))), 0.0)
        density /= np.sqrt(2 * np.pi)
        means = np.where(mass > 0, (density[:-1] - density[1:]) / np.where(mass > 0, mass, 1.0), 0.0)
        sd = float(np.sqrt(np.dot(mass, means ** 2)))
        if sd < 1e-6:
            continue
        score = means[np.clip(np.searchsorted(cum, ndtr(z[:, i]), side="right") - 1, 0, len(mass) - 1)]
        if np.std(score) == 0:
            continue
        rows.append(i)
        scores.append(score)
        sds.append(sd)
    if not rows:
        return corr
    # every (discrete, continuous) pair at once: one product of the centred blocks, not a corrcoef per pair
    s_centred = np.column_stack(scores)
    s_centred = s_centred - s_centred.mean(axis=0)
    z_centred = z[:, continuous_dims] - z[:, continuous_dims].mean(axis=0)
    s_sd, z_sd = np.sqrt(np.mean(s_centred ** 2, axis=0)), np.sqrt(np.mean(z_centred ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"), threadpool_limits(1):
        plain = (s_centred.T @ z_centred) / len(z) / np.outer(s_sd, z_sd)
        r = np.clip(plain, -1.0, 1.0) * (s_sd / np.asarray(sds))[:, None]
    r[:, z_sd == 0] = np.nan
    ok = np.isfinite(r)
    block = np.where(ok, np.clip(r, -MAX_LATENT, MAX_LATENT), corr[np.ix_(rows, continuous_dims)])
    corr[np.ix_(rows, continuous_dims)] = block
    corr[np.ix_(continuous_dims, rows)] = block.T
    return corr


MAX_CLASSES = 4  # a class column has 2..MAX_CLASSES categories ...
MIN_CLASS_ROWS = 200  # ... each held by at least this many training rows ...
MAX_CLASS_COLUMNS = 2  # ... and at most this many columns get per-class copulas


def _class_key(value) -> str:
    """A class value as a JSON key: numbers compared as numbers (1 and 1.0 alike), the rest as text."""
    if isinstance(value, (bool, np.bool_)):
        return f"b:{bool(value)}"
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value):
        return f"n:{float(value)!r}"
    return f"s:{value}"


MAX_LATENT = 0.95  # de-attenuated correlations are capped: near-singular matrices make conditional draws extreme


def _stratify(z: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each column of normal draws replaced, rank for rank, by evenly spaced normal quantiles (scaled): the same
    ordering (hence dependence), a marginal without sampling noise. One row is left as drawn."""
    n = len(z)
    if n < 2 or z.shape[1] == 0:
        return z
    # one sort per column (continuous draws have no ties, so any sort gives the ranks), and the quantile of rank k
    # scattered to the row that holds it: no second sort, no rank array
    order = np.argsort(np.ascontiguousarray(z.T), axis=1)
    positions = np.arange(n) + rng.random(z.shape[1])[:, None]
    positions /= n  # in place from here: one (columns x rows) array, not one per step
    quantiles = ndtri(np.clip(positions, 1e-12, 1 - 1e-12, out=positions), out=positions)
    quantiles *= np.asarray(scale, dtype="float64")[:, None]
    out = np.empty_like(quantiles)
    np.put_along_axis(out, order, quantiles, axis=1)
    return out.T


def _with_nulls(values: pd.Series, is_null: np.ndarray) -> pd.Series:
    """Missing values where `is_null`, in the column's own dtype (NA, NaN or NaT), with no per-value Python for
    the dtypes that hold a missing value; others (object, numpy bool) go through None as they always did."""
    if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) or values.dtype.kind in "fmM":
        return values.where(~is_null)
    return values.astype(object).where(~is_null, None).astype(values.dtype)


def _pack(matrix: np.ndarray) -> dict:
    """A float matrix for the JSON manifest: its little-endian float64 bytes in base64, exact and 16 characters a
    value shorter than a list of numbers, which the indented JSON writer would emit one Python call per value (a
    1,000-column copula: a million values)."""
    values = np.ascontiguousarray(matrix, dtype="<f8")
    return {"dtype": "<f8", "shape": list(values.shape), "base64": base64.b64encode(values.tobytes()).decode("ascii")}


def _unpack(stored) -> np.ndarray:
    """A matrix saved by _pack, or as nested lists (models saved before _pack)."""
    if isinstance(stored, dict):
        if stored.get("dtype") != "<f8":
            raise ValueError("unknown matrix encoding")
        return np.frombuffer(base64.b64decode(stored["base64"]), dtype="<f8").astype("float64").reshape(stored["shape"])
    return np.asarray(stored, dtype="float64")


def _slice(conditions: dict | pd.DataFrame | None, start: int, stop: int):
    return conditions.iloc[start:stop].reset_index(drop=True) if isinstance(conditions, pd.DataFrame) else conditions


def _nearest_correlation_cov(cov: np.ndarray) -> np.ndarray:
    """Symmetrise and clip a conditional covariance so sampling never fails on round-off."""
    cov = (cov + cov.T) / 2
    values, vectors = np.linalg.eigh(cov)
    return vectors @ np.diag(np.clip(values, 1e-9, None)) @ vectors.T
