"""Differentially private Gaussian copula: noisy marginals and a noisy correlation matrix; fast, no SGD.

Every statistic of the real rows that the model keeps goes through a DP mechanism; the budget (epsilon, delta) is
split by basic composition (the epsilons and the deltas add up):

- numeric bounds (`selection`, default 30 % when a numeric column has no bounds in the settings): Laplace
  histograms over a clamped grid of signed octaves and a zoom into its outermost octaves, then the exponential
  mechanism for the 1st / 99th percentiles (dp_domain.dp_octave_bounds, pure epsilon by basic composition: bins
  that hold no rows pass with probability <= 1e-3, so the bounds cannot explode; too few rows -> an error naming
  the column), eps split evenly over the columns;
- marginals (default 35 %, or 50 % without selection), eps split evenly over the columns: per numeric column a
  histogram over public slots (point masses at each integer of a short range, else at the bounds and 0, plus
  equal-width bins) and a null slot, with Laplace(1/eps) noise (a row falls in one slot: L1 sensitivity 1); per
  categorical column the same over the categories of the settings, or, without them, a stability-based histogram
  (Laplace counts kept above 1 + ln(1/delta_c)/eps: (eps, delta_c)-DP, delta/2 shared by those columns; no category kept -> an error naming the column);
- correlation (default 35 %, or 50 %): normal scores z of each row (through the noisy marginals), clipped to the
  ball ||z|| <= r, their sum of outer products S = sum z z^T released with the Gaussian mechanism (L2 sensitivity
  r^2), its noise calibrated through zero-concentrated DP to (eps, delta)-DP at any eps (see _gaussian_sigma).

Neighbouring tables differ by one added or removed row. The schema (column names, semantic types, date format)
and the number of training rows are treated as public: the rest of the pipeline shows them anyway.
Sampling, saving and conditions are the plain copula's: this module only replaces how the parameters are fitted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtri
from scipy.stats import chi2

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.synthesis.generators.base import register
from genesis_pipelines.engine.synthesis.generators.dp_domain import (
    DomainTooSmall,
    bounds_steps,
    check_domain,
    default_delta,
    dp_octave_bounds,
)
from genesis_pipelines.engine.synthesis.generators.free_text import STRING_KINDS, public_text_spec
from genesis_pipelines.engine.synthesis.generators.gaussian_copula import GaussianCopulaGenerator, nearest_correlation
from genesis_pipelines.engine.synthesis.transform import (
    ContinuousTransform,
    DiscreteTransform,
    as_numbers,
    has_exceptions,
    split_exceptions,
)

_QUANTILES = 257  # points kept of each noisy CDF (piecewise linear, so nothing is lost between them)
_NUMERIC = ("numeric", "integer", "datetime")


def _gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Noise of the Gaussian mechanism for (epsilon, delta)-DP at any epsilon, via zCDP (Bun & Steinke 2016):
    sigma gives rho = s^2 / (2 sigma^2)-zCDP, which is (rho + 2 sqrt(rho ln(1/delta)), delta)-DP."""
    log_term = math.log(1.0 / delta)
    rho = (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2
    return sensitivity / math.sqrt(2.0 * rho)


def _noisy_histogram(bins: np.ndarray, n_bins: int, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Counts per bin plus Laplace(1/epsilon), clipped at 0 and normalised (uniform if nothing survives)."""
    counts = np.bincount(bins, minlength=n_bins).astype("float64") + rng.laplace(0.0, 1.0 / epsilon, n_bins)
    counts = np.clip(counts, 0.0, None)
    return counts / counts.sum() if counts.sum() > 0 else np.full(n_bins, 1.0 / n_bins)


def _quantile_function(atoms: np.ndarray, atom_probs: np.ndarray, edges: np.ndarray, bin_probs: np.ndarray) -> np.ndarray:
    """Quantiles of a mixture of point masses and uniform bins, at _QUANTILES even probabilities: a point mass is a
    flat run of quantiles, which ContinuousTransform reads back as that exact value."""
    bin_probs = bin_probs if len(bin_probs) else np.zeros(max(len(edges) - 1, 0))
    total = atom_probs.sum() + bin_probs.sum()
    if total <= 0:
        atom_probs, total = np.ones(len(atoms)), float(len(atoms))
    continuous_cdf = np.concatenate([[0.0], np.cumsum(bin_probs)])
    points = np.unique(np.concatenate([edges, atoms]))
    below = np.interp(points, edges, continuous_cdf) if len(edges) > 1 else np.zeros(len(points))
    atom_mass = np.zeros(len(points))
    atom_mass[np.searchsorted(points, atoms)] = atom_probs
    before = below + np.concatenate([[0.0], np.cumsum(atom_mass)[:-1]])
    knots_p = np.column_stack([before, before + atom_mass]).ravel() / total
    knots_x = np.repeat(points, 2)
    knots_p = np.maximum.accumulate(knots_p + np.arange(len(knots_p)) * 1e-15)  # strictly increasing for interp
    return np.interp(np.linspace(0.0, 1.0, _QUANTILES), knots_p, knots_x)


@register
class DPGaussianCopulaGenerator(GaussianCopulaGenerator):
    name: ClassVar[str] = "dp_gaussian_copula"

    def __init__(self, epsilon: float = 1.0, delta: float | None = None, bins: int = 32,
                 bounds: dict[str, list[float]] | None = None, categories: dict[str, list] | None = None,
                 decimals: dict[str, int] | None = None, budget_split: dict[str, float] | None = None,
                 bounds_tail: float = 0.05, max_fit_rows: int = 500_000):
        super().__init__(max_fit_rows=max_fit_rows)
        if not epsilon > 0 or (delta is not None and not 0 < delta < 1):
            raise SpecError(f"generator {self.name!r}: epsilon must be > 0 and delta in (0, 1)")
        if budget_split is not None and (set(budget_split) - {"selection", "marginals", "correlation"}
                                         or any(v < 0 for v in budget_split.values()) or sum(budget_split.values()) <= 0):
            raise SpecError(f"generator {self.name!r}: budget_split takes non-negative selection, marginals, correlation")
        self.epsilon, self.bins = float(epsilon), int(bins)
        self.delta_setting = None if delta is None else float(delta)
        self.delta = self.delta_setting or 1e-6  # set at fit: the setting, else min(1e-6, 1/(10 n))
        self.public_bounds = {c: [float(v) for v in b] for c, b in (bounds or {}).items()}
        self.public_categories = dict(categories or {})
        self.decimals = dict(decimals or {})
        self.budget_split = budget_split
        # DP bounds are the (tail, 1 - tail) quantiles: a wider tail is clipped more but found with less noise
        self.bounds_tail = float(bounds_tail)
        self.dp: dict = {}

    # -------------------------------------------------------------- budget

    def _split(self, needs_selection: bool, dims: int) -> dict[str, float]:
        share = dict(self.budget_split) if self.budget_split else (
            {"selection": 0.3, "marginals": 0.35, "correlation": 0.35} if needs_selection else {"marginals": 0.5, "correlation": 0.5})
        share.setdefault("selection", 0.0)
        if not needs_selection:
            share["selection"] = 0.0
        if dims < 2:
            share["correlation"] = 0.0  # nothing to correlate: that part of the budget is not spent
        total = sum(share.values()) or 1.0
        return {k: self.epsilon * v / total for k, v in share.items()}

    # -------------------------------------------------------------- fit

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        table, rng = self._fit_rows(table, meta, seed)
        self.delta = self.delta_setting if self.delta_setting is not None else default_delta(len(table))
        self.table_name = meta.name
        for column in list(self.public_bounds) + list(self.public_categories) + list(self.decimals):
            if column not in table.columns:
                raise SpecError(f"generator {self.name!r} settings name column {column!r}, which table {meta.name!r} does not have")
        modelled = [c for c in self.columns if meta.columns[c].sdtype not in STRING_KINDS]
        # a column's exceptions (codes among numbers, other date layouts) are not measured privately: the model keeps
        # the typed values only, the exceptions become nulls
        table = table.assign(**{c: split_exceptions(table[c], meta.columns[c].sdtype)[0] for c in modelled
                                if meta.columns[c].sdtype in _NUMERIC and has_exceptions(table[c], meta.columns[c])})
        # numeric bounds cost a separate DP step; unknown category sets come with their histogram (stability-based)
        selection = [c for c in modelled if meta.columns[c].sdtype in _NUMERIC and c not in self.public_bounds]
        private_sets = [c for c in modelled if meta.columns[c].sdtype not in _NUMERIC + ("boolean",)
                        and c not in self.public_categories]
        budget = self._split(bool(selection), len(modelled))
        eps_select = budget["selection"] / max(len(selection), 1)
        delta_sets = self.delta / 2 / max(len(private_sets), 1)
        eps_marginal = budget["marginals"] / max(len(modelled), 1)
        for column in self.columns:
            if meta.columns[column].sdtype in STRING_KINDS:
                self.text[column] = public_text_spec(meta.columns[column].sdtype)
        for column in modelled:
            cmeta, series = meta.columns[column], table[column]
            if cmeta.sdtype in _NUMERIC:
                self.transforms[column] = self._numeric_marginal(series, cmeta, eps_select, eps_marginal, rng)
            else:
                self.transforms[column] = self._discrete_marginal(series, cmeta, delta_sets, eps_marginal, rng)
        self._fit_correlation(table, modelled, budget["correlation"], rng)
        self.rows_fitted = len(table)
        spent_delta = (self.delta / 2 if private_sets else 0.0) + (self.delta / 2 if budget["correlation"] > 0 else 0.0)
        self.dp = {
            "epsilon_target": self.epsilon, "delta_target": self.delta,
            "epsilon_spent": round(sum(budget.values()), 6), "delta_spent": spent_delta,
            "budget": {k: round(v, 6) for k, v in budget.items()},
            "columns_with_dp_bounds": len(selection), "columns_with_dp_category_sets": len(private_sets),
            "bounds_steps": bounds_steps("basic composition (pure epsilon): Laplace histograms, exponential mechanisms"),
            "dp_guarantee": self.guarantee_text(sum(budget.values()), spent_delta),
        }

    def guarantee_text(self, epsilon: float, delta: float) -> str:
        return (f"({epsilon:.3g}, {delta:.2g})-differential privacy for each row of the training table (add/remove "
                "one row), covering everything this model learned: numeric bounds and category sets (from the settings "
                "or DP mechanisms), the marginal histograms (Laplace) and the correlation matrix (Gaussian). Not covered: "
                "the schema (column names, semantic types, date format), the training row count, free-text columns "
                "(replaced by a fixed public word-count profile, so nothing is learned from them), and anything outside "
                "this model (keys and children-per-parent counts learned by the relational layer, PII policies, reports).")

    def _numeric_marginal(self, series: pd.Series, cmeta, eps_select: float, eps: float, rng) -> ContinuousTransform:
        """Histogram over public slots: point masses (every integer of a short integer range; else the bounds and 0)
        plus equal-width bins between them, and a null slot. Each row falls in one slot: L1 sensitivity 1."""
        values = as_numbers(series.dropna(), cmeta.sdtype)
        if cmeta.name in self.public_bounds:
            lo, hi = self.public_bounds[cmeta.name]
        else:
            lo, hi = dp_octave_bounds(values, cmeta.sdtype, rng, epsilon=eps_select, table=self.table_name, column=cmeta.name)
        integer = cmeta.sdtype == "integer"
        if integer:
            lo, hi = math.floor(lo), math.ceil(hi)
        if hi < lo:
            hi = lo
        values = np.clip(values, lo, hi)
        if integer and hi - lo + 1 <= 2 * self.bins:
            atoms, edges = np.arange(lo, hi + 1, dtype="float64"), np.array([lo, hi], dtype="float64")
            slots = np.searchsorted(atoms, np.round(values))
            n_bins = 0
        else:
            atoms = np.unique([lo, hi] + ([0.0] if lo < 0 < hi else []))
            edges = np.linspace(lo, hi, self.bins + 1)
            is_atom = np.isin(values, atoms)
            slots = np.where(is_atom, np.searchsorted(atoms, values),
                             len(atoms) + np.clip(np.searchsorted(edges, values, side="right") - 1, 0, self.bins - 1))
            n_bins = self.bins
        nulls = np.full(int(series.isna().sum()), len(atoms) + n_bins)
        probs = _noisy_histogram(np.concatenate([slots, nulls]).astype("int64"), len(atoms) + n_bins + 1, eps, rng)
        null_rate = float(probs[-1]) if probs[-1] >= 1e-3 else 0.0
        quantiles = _quantile_function(atoms, probs[:len(atoms)], edges, probs[len(atoms):-1])
        return ContinuousTransform(cmeta.sdtype, quantiles, null_rate, self.decimals.get(cmeta.name), integer,
                                   cmeta.datetime_format)

    def _discrete_marginal(self, series: pd.Series, cmeta, delta: float, eps: float, rng) -> DiscreteTransform:
        """Noisy category counts plus a null slot. Without a public category set, a stability-based histogram:
        Laplace(1/eps) counts kept above 1 + ln(1/delta)/eps, (eps, delta)-DP, so a rare real value is released with
        probability at most delta."""
        non_null = series.dropna()
        keys = non_null.astype(bool).to_numpy() if cmeta.sdtype == "boolean" else non_null.astype(str).to_numpy()
        nulls = float(series.isna().sum()) + rng.laplace(0.0, 1.0 / eps)
        if cmeta.sdtype == "boolean" or cmeta.name in self.public_categories:
            values = [False, True] if cmeta.sdtype == "boolean" else [str(v) for v in self.public_categories[cmeta.name]]
            counts = pd.Series(keys).value_counts().reindex(values, fill_value=0).to_numpy(dtype="float64")
            noisy = counts + rng.laplace(0.0, 1.0 / eps, len(values))
        else:
            uniques, counts = np.unique(keys, return_counts=True) if len(keys) else (np.array([]), np.array([]))
            noisy = counts + rng.laplace(0.0, 1.0 / eps, len(counts))
            kept = noisy > 1.0 + np.log(1.0 / delta) / eps
            order = np.argsort(-noisy[kept], kind="stable")
            values, noisy = [str(v) for v in uniques[kept][order]], noisy[kept][order]
            if not values:  # every category too rare to release: no silent "(rare)" column
                raise DomainTooSmall(
                    f"table {self.table_name!r} column {cmeta.name!r}: no category has enough rows to pass the DP "
                    f"selection (about {1.0 + np.log(1.0 / delta) / eps:.0f} rows needed at this epsilon); declare its "
                    f"categories in the generator settings, categories: {{{cmeta.name}: [...]}}, or raise epsilon")
        noisy = np.clip(noisy, 0.0, None)
        nulls = max(nulls, 0.0)
        total = noisy.sum() + nulls
        null_rate = nulls / total if total > 0 and nulls / total >= 1e-3 else 0.0
        probs = noisy / noisy.sum() if noisy.sum() > 0 else np.full(len(values), 1.0 / len(values))
        return DiscreteTransform(cmeta.sdtype, values, probs, null_rate, ordered=False)

    def _fit_correlation(self, table: pd.DataFrame, modelled: list[str], epsilon: float, rng) -> None:
        scores = []
        for column in modelled:
            transform, series = self.transforms[column], table[column]
            present = series.notna().to_numpy()
            u = rng.random(len(series))
            if present.any():
                u[present] = transform.to_uniform(series[present], rng)
            self.dims.append((column, "value"))
            scores.append(ndtri(np.clip(u, 1e-6, 1 - 1e-6)))
            if transform.null_rate > 0:
                p = transform.null_rate
                null_u = np.where(present, p + rng.random(len(series)) * (1 - p), rng.random(len(series)) * p)
                self.dims.append((column, "null"))
                scores.append(ndtri(np.clip(null_u, 1e-6, 1 - 1e-6)))
        d = len(scores)
        if d < 2 or epsilon <= 0:
            self.corr = np.eye(d)
            return
        z = np.column_stack(scores)
        radius2 = float(chi2.ppf(0.99, d))  # clip each row's scores to ||z||^2 <= r^2: the sensitivity of z z^T
        norms2 = np.einsum("ij,ij->i", z, z)
        z *= np.sqrt(np.minimum(1.0, radius2 / np.maximum(norms2, 1e-12)))[:, None]
        outer = z.T @ z
        sigma = _gaussian_sigma(radius2, epsilon, self.delta / 2)
        noise = np.triu(rng.normal(0.0, sigma, (d, d)))
        outer = outer + noise + np.triu(noise, 1).T
        scale = np.sqrt(np.maximum(np.diag(outer), 1.0))
        self.corr = nearest_correlation(outer / np.outer(scale, scale))

    def _sample(self, n: int, *, conditions=None, seed: int | None = None) -> pd.DataFrame:
        frame = super()._sample(n, conditions=conditions, seed=seed)
        check_domain(frame, self.domain(), table=getattr(self, "table_name", "?"), method=self.name)
        return frame

    def sample_columns(self, n: int, columns: list[str], *, conditions=None, seed: int | None = None) -> pd.DataFrame:
        frame = super().sample_columns(n, columns, conditions=conditions, seed=seed)
        check_domain(frame, self.domain(), table=getattr(self, "table_name", "?"), method=self.name)
        return frame

    def sample_columns_stream(self, n: int, columns: list[str], conditions_of, *, seed: int | None = None):
        for frame in super().sample_columns_stream(n, columns, conditions_of, seed=seed):
            check_domain(frame, self.domain(), table=getattr(self, "table_name", "?"), method=self.name)
            yield frame

    def domain(self) -> dict:
        """What the model may output: numeric columns within their quantile range, categories among those kept."""
        out = {}
        for column, t in self.transforms.items():
            if isinstance(t, ContinuousTransform):
                out[column] = {"bounds": [float(np.min(t.quantiles)), float(np.max(t.quantiles))]}
            elif isinstance(t, DiscreteTransform) and t.sdtype != "boolean":
                out[column] = {"categories": [str(v) for v in t.values]}
        return out

    # -------------------------------------------------------------- persistence and description

    def _state(self, directory: Path | None = None) -> dict:
        return {**super()._state(directory), "dp": self.dp,
                "dp_settings": {"epsilon": self.epsilon, "delta": self.delta, "bins": self.bins}}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> DPGaussianCopulaGenerator:
        model = super()._from_state(state, directory)
        settings = state.get("dp_settings", {})
        model.epsilon, model.delta, model.bins = settings.get("epsilon", 1.0), settings.get("delta", 1e-6), settings.get("bins", 32)
        model.dp = state.get("dp", {})
        return model

    def describe(self) -> dict:
        return {**super().describe(), **self.dp}
