"""`dp_marginals`: a marginal-based DP synthesizer in the MST class (McKenna et al. 2021), written here.

Every read of the real rows goes through one mechanism, accounted in zero-concentrated DP (rho) and converted once
to (epsilon, delta)-DP: epsilon = rho + 2 sqrt(rho ln(2/delta)), delta/2; the other delta/2 pays for unknown
category sets. Neighbouring tables differ by one added or removed row. Steps and default shares of rho:

1. domain (20 % when a column lacks public bounds / categories, else 0): numeric bounds from two noisy histograms
   (dp_domain.dp_octave_bounds: a clamped grid of signed octaves, a zoom into the outermost octaves and the
   exponential mechanism for the 1st / 99th percentiles, 50 / 45 / 2.5 / 2.5 % of this share; Gaussian noise, L2
   sensitivity sqrt(columns) per histogram, each exponential mechanism eps^2/8-zCDP): inside the real range where
   that clamps at most 5 % of the rows, else at the noisy percentile where the budget lets it tell, else at the
   octave's outer edge; category sets by Gaussian counts above a delta-threshold (dp_domain.gaussian_category_selection);
   rows of categories not kept form an "other" slot that is modelled and, at sampling, redrawn among the kept ones;
2. 1-way marginals (ONE_WAY_SHARE = 0.3 of the rest): every column on a fine public grid inside its bounds (each
   integer of a short range; else 0 as a point mass and equal-width bins; as many slots, 8..256, as leave about
   2 sigma of rows per slot) plus a null slot, Gaussian noise, L2 sensitivity sqrt(d);
3. tree selection (TREE_SHARE = 0.1): d - 1 rounds of the exponential mechanism (eps^2/8-zCDP each) over the pairs
   that join two parts of the forest, score = L1 distance between the pair's table and the independent estimate
   from step 2 (sensitivity 2): a maximum spanning tree of the pairs' dependence, sampled breadth-first from the root;
3b. second parents (PARENT_SHARE = 0.1): per child, one round of the exponential mechanism over "none" and each
   column sampled before it, score = L1 gap between the 3-way table and the tree's "child independent of it given
   the parent", less the L1 noise the bigger table adds (sensitivity < 4): 3-way cliques (PrivBayes / AIM style)
   only where the data is large enough for them to pay;
4. clique marginals (the rest, 0.5): (parent, child) or (second parent, parent, child) on coarse bins (<= `bins`
   per numeric column, merged from the fine grid by the noisy 1-way masses: post-processing), Gaussian noise,
   L2 sensitivity sqrt(d - 1).
Estimation is post-processing: each noisy table is projected onto non-negative counts summing to n, the 1-way
estimates combine every measurement of a column (inverse variance), each edge table is fitted to both margins by
iterative proportional fitting, a 3-way table gives P(child | second parent, parent) shrunk towards P(child | parent)
where its parent cell holds few rows, and ancestral sampling runs from P(root) down the tree, then a fine slot within the coarse bin by the noisy fine
marginal, then a value within the slot (uniform; an integer slot is its integer). Sampled values stay inside the
bounds used; a post-sampling check (dp_domain.check_domain) refuses anything else. The schema and the number of
rows are treated as public. State: JSON (domains, tree, guarantee) + safetensors (probability tables), no pickle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError, ModelError, SpecError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.sources.io import atomic_path
from genesis_pipelines.engine.synthesis.generators.base import BaseGenerator, register
from genesis_pipelines.engine.synthesis.generators.dp_domain import (
    bounds_steps,
    check_domain,
    default_delta,
    dp_octave_bounds,
    epsilon_from,
    gaussian_category_selection,
    rho_from,
)
from genesis_pipelines.engine.synthesis.generators.free_text import STRING_KINDS, public_text_spec, sample_text
from genesis_pipelines.engine.synthesis.transform import as_numbers, split_exceptions

WEIGHTS = "dp_marginals.safetensors"
_NUMERIC = ("numeric", "integer", "datetime")
# shares of rho after the domain step; the rest measures the cliques
ONE_WAY_SHARE, TREE_SHARE, PARENT_SHARE = 0.3, 0.1, 0.1


def _project(counts: np.ndarray, total: float) -> np.ndarray:
    """Closest non-negative vector with the given sum after subtracting a constant (norm-sub), as probabilities."""
    flat = np.asarray(counts, dtype="float64").ravel()
    total = max(float(total), 1.0)
    lo, hi = flat.min() - total, flat.max()
    for _ in range(60):  # bisection on the shift c: sum(max(x - c, 0)) = total
        c = (lo + hi) / 2
        if np.clip(flat - c, 0, None).sum() > total:
            lo = c
        else:
            hi = c
    out = np.clip(flat - hi, 0, None)
    if out.sum() <= 0:
        out = np.ones_like(flat)
    return (out / out.sum()).reshape(np.shape(counts))


def _ipf(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, iterations: int = 20) -> np.ndarray:
    t = table + 1e-12
    for _ in range(iterations):
        t *= (rows / np.maximum(t.sum(axis=1), 1e-300))[:, None]
        t *= (cols / np.maximum(t.sum(axis=0), 1e-300))[None, :]
    return t / t.sum()


@register
class DPMarginalsGenerator(BaseGenerator):
    name: ClassVar[str] = "dp_marginals"
    format: ClassVar[str] = "genesis.dp_marginals/1"
    files: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    private: ClassVar[bool] = True

    def __init__(self, epsilon: float = 1.0, delta: float | None = None, bounds: dict | None = None,
                 categories: dict | None = None, bins: int = 16, domain_share: float = 0.2):
        if not epsilon or epsilon <= 0:
            raise SpecError(f"generator {self.name!r}: epsilon must be > 0")
        if delta is not None and not 0 < delta < 1:
            raise SpecError(f"generator {self.name!r}: delta must be in (0, 1)")
        if not 0 < domain_share < 1 or int(bins) < 2:
            raise SpecError(f"generator {self.name!r}: domain_share must be in (0, 1) and bins >= 2")
        self.epsilon, self.delta, self.bins, self.domain_share = float(epsilon), delta, int(bins), float(domain_share)
        self.public_bounds = {c: [float(v) for v in b] for c, b in (bounds or {}).items()}
        self.public_categories = {c: [str(v) for v in vs] for c, vs in (categories or {}).items()}
        self.columns: list[str] = []
        self.table_name = ""
        self.text: dict[str, dict] = {}
        self.domains: dict[str, dict] = {}  # per modelled column: kind, slots, coarse map
        self.fine: dict[str, np.ndarray] = {}  # fine-slot probabilities
        self.coarse: dict[str, np.ndarray] = {}  # coarse 1-way probabilities
        self.tree: list[tuple[str, str]] = []  # (parent, child) in sampling order
        self.cond: dict[str, np.ndarray] = {}  # child -> P(child coarse | parent coarse)
        self.second: dict[str, str] = {}  # child -> its second parent (a 3-way clique)
        self.root: str | None = None
        self.dp: dict = {}

    # ------------------------------------------------------------------ fit

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        for column in list(self.public_bounds) + list(self.public_categories):
            if column not in table.columns:
                raise SpecError(f"generator {self.name!r} settings name column {column!r}, which table {meta.name!r} does not have")
        rng = np.random.default_rng(seed)
        n, self.table_name = len(table), meta.name
        self.columns = [c for c in table.columns if meta.columns[c].sdtype != "id"]
        self.text = {c: public_text_spec(meta.columns[c].sdtype) for c in self.columns if meta.columns[c].sdtype in STRING_KINDS}
        modelled = [c for c in self.columns if c not in self.text]
        delta = float(self.delta) if self.delta is not None else default_delta(n)
        need_bounds = [c for c in modelled if meta.columns[c].sdtype in _NUMERIC and c not in self.public_bounds]
        need_sets = [c for c in modelled if meta.columns[c].sdtype not in _NUMERIC + ("boolean",) and c not in self.public_categories]
        delta_conv = delta / 2 if need_sets else delta
        rho = rho_from(self.epsilon, delta_conv)
        rho_domain = self.domain_share * rho if (need_bounds or need_sets) else 0.0
        n_need = len(need_bounds) + len(need_sets)
        rho_b = rho_domain * len(need_bounds) / n_need if n_need else 0.0
        rho_c = rho_domain - rho_b
        d = len(modelled)
        rest = rho - rho_domain
        shares = (ONE_WAY_SHARE, TREE_SHARE, PARENT_SHARE if d >= 3 else 0.0) if d >= 2 else (1.0, 0.0, 0.0)
        rho1, rho_sel, rho_sel3 = (rest * share for share in shares)
        rho2 = rest - rho1 - rho_sel - rho_sel3

        # 1. domain and fine slots
        sigma_b = math.sqrt(len(need_bounds) / (2 * rho_b)) if need_bounds else 0.0
        sigma_c = math.sqrt(len(need_sets) / (2 * rho_c)) if need_sets else 0.0
        delta_c = (delta / 2) / len(need_sets) if need_sets else 0.0
        sigma1 = math.sqrt(d / (2 * rho1))
        # fine slots per numeric column: enough rows per slot to stand above the 1-way noise (n and sigma are public)
        self.fine_bins = int(np.clip(n / (2 * sigma1), 8, 256))
        codes: dict[str, np.ndarray] = {}
        for column in modelled:
            cmeta = meta.columns[column]
            series = table[column]
            if cmeta.sdtype in _NUMERIC:
                series = split_exceptions(series, cmeta.sdtype)[0] if cmeta.exceptions else series
                self.domains[column], codes[column] = self._numeric_domain(series, cmeta, sigma_b, rng)
            else:
                self.domains[column], codes[column] = self._discrete_domain(series, cmeta, sigma_c, delta_c, rng)

        # 2. noisy fine 1-way marginals
        for column in modelled:
            size = self.domains[column]["fine_size"]
            noisy = np.bincount(codes[column], minlength=size) + rng.normal(0.0, sigma1, size)
            if "edges" in self.domains[column] and size > 2:
                # value slots below 2 sigma are read as empty (post-processing): noise alone would put values in
                # slots beyond the real range, most of all at the ends of the bounds
                value = noisy[:-1]
                value[value < 2.0 * sigma1] = np.where(value.max() == value[value < 2.0 * sigma1], value.max(), 0.0)
            self.fine[column] = _project(noisy, n)
            self._coarsen(column)
        coarse_codes = {c: np.asarray(self.domains[c]["coarse_of"])[codes[c]] for c in modelled}
        k = {c: len(self.coarse[c]) for c in modelled}
        var1 = {c: sigma1 ** 2 * self.domains[c]["fine_size"] / max(k[c], 1) for c in modelled}

        # 3. selection: exponential mechanism, Kruskal order
        edges: list[tuple[str, str]] = []
        if d >= 2:
            eps_round = math.sqrt(8 * rho_sel / (d - 1))
            parts = {c: i for i, c in enumerate(modelled)}
            pairs = [(a, b) for i, a in enumerate(modelled) for b in modelled[i + 1:]]
            score = {}
            for a, b in pairs:
                joint = np.zeros((k[a], k[b]))
                np.add.at(joint, (coarse_codes[a], coarse_codes[b]), 1.0)
                score[(a, b)] = float(np.abs(joint - n * np.outer(self.coarse[a], self.coarse[b])).sum())
            for _ in range(d - 1):
                open_pairs = [p for p in pairs if parts[p[0]] != parts[p[1]]]
                s = np.array([score[p] for p in open_pairs])
                choice = open_pairs[int(np.argmax(eps_round * s / (2 * 2.0) + rng.gumbel(size=len(s))))]
                edges.append(choice)
                old, new = parts[choice[1]], parts[choice[0]]
                parts = {c: (new if p == old else p) for c, p in parts.items()}

        # the tree, rooted at the first modelled column, in breadth-first order for ancestral sampling
        self.root = modelled[0] if modelled else None
        self.tree = self._sampling_order(edges)
        sigma2 = math.sqrt(max(len(edges), 1) / (2 * rho2)) if edges else 0.0

        def counts(axes: tuple) -> np.ndarray:
            table_counts = np.zeros(tuple(k[c] for c in axes))
            np.add.at(table_counts, tuple(coarse_codes[c] for c in axes), 1.0)
            return table_counts

        # 3b. a second parent per child (a junction tree of 3-way cliques), where it pays: exponential mechanism over
        # "none" (score 0) and each column sampled before the child, score = L1 gap between the 3-way table and the
        # tree's conditional independence (child independent of q given its parent), less the L1 noise the bigger
        # table adds (sqrt(2/pi) sigma per extra cell: public); sensitivity < 4
        self.second = {}
        if len(self.tree) >= 2 and rho_sel3 > 0:
            eps_parent = math.sqrt(8 * rho_sel3 / (len(self.tree) - 1))
            sampled = [self.root]
            for parent, child in self.tree:
                candidates = [q for q in sampled if q != parent]
                sampled.append(child)
                if not candidates:
                    continue
                pair = counts((parent, child))
                given = pair / np.maximum(pair.sum(axis=1, keepdims=True), 1.0)
                gains = [0.0]
                for q in candidates:
                    triple = counts((q, parent, child))
                    gap = float(np.abs(triple - triple.sum(axis=2)[:, :, None] * given[None]).sum())
                    gains.append(gap - math.sqrt(2 / math.pi) * sigma2 * (k[q] - 1) * k[parent] * k[child])
                pick = int(np.argmax(eps_parent * np.array(gains) / (2 * 4.0) + rng.gumbel(size=len(gains))))
                if pick:
                    self.second[child] = candidates[pick - 1]

        # 4. noisy marginals of the cliques (parent, child) or (second parent, parent, child), then consistent estimates
        measured = {}
        for parent, child in self.tree:
            axes = (self.second[child], parent, child) if child in self.second else (parent, child)
            measured[axes] = counts(axes) + rng.normal(0.0, sigma2, tuple(k[c] for c in axes))
        for column in modelled:  # inverse-variance combination of every measurement of the column's coarse marginal
            estimate, weight = self.coarse[column] * n / var1[column], 1.0 / var1[column]
            for axes, table_axes in measured.items():
                if column in axes:
                    at = axes.index(column)
                    margin = table_axes.sum(axis=tuple(i for i in range(len(axes)) if i != at))
                    v = sigma2 ** 2 * table_axes.size / k[column]
                    estimate, weight = estimate + margin / v, weight + 1.0 / v
            self.coarse[column] = _project(estimate / weight, n)
        self.cond = {}
        for axes, table_axes in measured.items():
            child, parent = axes[-1], axes[-2]
            if len(axes) == 2:
                joint = _ipf(_project(table_axes, n), self.coarse[parent], self.coarse[child])
                self.cond[child] = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-300)
            else:  # P(child | q, parent), shrunk towards P(child | parent) where the (q, parent) cell holds few rows
                triple = _project(table_axes, n) * n
                pair = _ipf(triple.sum(axis=0) / n, self.coarse[parent], self.coarse[child])
                given = pair / np.maximum(pair.sum(axis=1, keepdims=True), 1e-300)
                self.cond[child] = (triple + sigma2 * given[None]) / (triple.sum(axis=2, keepdims=True) + sigma2)
        spent_rho = rho_b + rho_c + rho1 + rho_sel + rho_sel3 + rho2
        spent_eps = epsilon_from(spent_rho, delta_conv)
        if spent_eps > self.epsilon * (1 + 1e-9):
            raise ModelError(f"table {meta.name!r}: dp_marginals would spend epsilon {spent_eps:.4f} above its target; discarded")
        self.dp = {
            "epsilon_target": self.epsilon, "delta_target": delta, "epsilon_spent": round(spent_eps, 6),
            "delta_spent": delta, "accountant": "zCDP (Bun & Steinke 2016), converted once to (epsilon, delta)",
            "rho": round(spent_rho, 8),
            "budget": {"bounds": round(rho_b, 8), "category_sets": round(rho_c, 8), "one_way": round(rho1, 8),
                       "selection": round(rho_sel, 8), "second_parents": round(rho_sel3, 8), "cliques": round(rho2, 8)},
            "bounds_steps": bounds_steps("zCDP: Gaussian histograms, each exponential mechanism eps^2/8-zCDP"),
            "budget_unit": "rho (zCDP)", "delta_split": {"conversion": delta_conv, "category_sets": delta - delta_conv},
            "columns_with_dp_bounds": len(need_bounds), "columns_with_dp_category_sets": len(need_sets),
            "tree_edges": len(self.tree), "three_way_cliques": len(self.second), "noise_sigma": {"one_way": round(sigma1, 4), "cliques": round(sigma2, 4)},
            "dp_guarantee": self.guarantee_text(spent_eps, delta, len(need_bounds), len(need_sets)),
            "dp_covers": ["numeric bounds (settings or DP)", "category sets (settings or DP)", "null shares",
                          "1-way and selected 2-way marginals", "the choice of the pairs (tree)"],
            "dp_not_covered": ["schema (column names, semantic types, date format)", "the training row count",
                               "free-text columns (a fixed public profile: nothing learned)",
                               "keys and children-per-parent counts of the relational layer", "PII policies, reports"],
        }

    def guarantee_text(self, epsilon: float, delta: float, dp_bounds: int, dp_sets: int) -> str:
        return (f"({epsilon:.4g}, {delta:.2g})-differential privacy for adding or removing one row of table "
                f"{self.table_name!r}, accounted in zero-concentrated DP and converted once; it covers everything this "
                f"model learned: bounds of {dp_bounds} numeric column(s) and category sets of {dp_sets} column(s) found "
                "with DP mechanisms (the others from the settings, public), the noisy 1-way marginals, the choice of the "
                "2-way marginals (exponential mechanism) and their noisy values; sampling is post-processing. Not covered: "
                "the schema (column names, semantic types, date format), the training row count, free-text columns "
                "(a fixed public profile), and what other parts of the pipeline learn (keys and children-per-parent "
                "counts of the relational layer, PII policies, reports). A person with k rows in the table is protected "
                "at k times this epsilon (group privacy).")

    def _numeric_domain(self, series: pd.Series, cmeta, sigma_b: float, rng) -> tuple[dict, np.ndarray]:
        column = cmeta.name
        present = series.notna().to_numpy()
        values = as_numbers(series[present], cmeta.sdtype)
        if column in self.public_bounds:
            lo, hi = self.public_bounds[column]
            if cmeta.sdtype == "datetime":
                lo, hi = (float(as_numbers(pd.Series([v]), "datetime")[0]) if isinstance(v, str) else float(v) for v in (lo, hi))
            source = "settings"
        else:
            lo, hi = dp_octave_bounds(values, cmeta.sdtype, rng, sigma=sigma_b, table=self.table_name, column=column)
            source = "dp"
        integer = cmeta.sdtype == "integer"
        if integer:
            lo, hi = float(math.ceil(lo)), float(math.floor(hi)) if hi - lo >= 1 else float(math.ceil(lo))
        if hi < lo:
            hi = lo
        values = np.clip(values, lo, hi)
        if integer and hi - lo + 1 <= self.fine_bins:
            atoms, edges = np.arange(lo, hi + 1), np.array([], dtype="float64")
            slot = (np.round(values) - lo).astype("int64")
        else:
            atoms = np.array([0.0]) if lo <= 0 <= hi else np.array([], dtype="float64")
            edges = np.linspace(lo, hi, self.fine_bins + 1)
            is_atom = values == 0.0 if len(atoms) else np.zeros(len(values), dtype=bool)
            slot = np.where(is_atom, 0, len(atoms) + np.clip(np.searchsorted(edges, values, side="right") - 1, 0, self.fine_bins - 1))
        n_slots = len(atoms) + max(len(edges) - 1, 0)
        codes = np.full(len(series), n_slots, dtype="int64")  # the null slot last
        codes[present] = slot
        return {"kind": cmeta.sdtype, "bounds": [lo, hi], "bounds_from": source, "atoms": atoms.tolist(),
                "edges": edges.tolist(), "fine_size": n_slots + 1, "integer": integer,
                "datetime_format": cmeta.datetime_format}, codes

    def _discrete_domain(self, series: pd.Series, cmeta, sigma_c: float, delta_c: float, rng) -> tuple[dict, np.ndarray]:
        column = cmeta.name
        present = series.notna().to_numpy()
        if cmeta.sdtype == "boolean":
            keys = series[present].astype(bool).astype(str).to_numpy()
            values, source, other = ["False", "True"], "public", False
        else:
            keys = series[present].astype(str).to_numpy()
            if column in self.public_categories:
                values, source, other = list(self.public_categories[column]), "settings", False
            else:
                values, _ = gaussian_category_selection(keys, sigma_c, delta_c, rng, table=self.table_name, column=column)
                values, source, other = [str(v) for v in values], "dp", True
        index = {v: i for i, v in enumerate(values)}
        n_values = len(values) + (1 if other else 0)
        # a value outside a public category set (or not kept) goes to "other" when there is one, else to the first
        fallback = len(values) if other else 0
        codes = np.full(len(series), n_values, dtype="int64")
        codes[present] = np.array([index.get(k, fallback) for k in keys], dtype="int64")
        return {"kind": cmeta.sdtype, "categories": values, "categories_from": source, "other": other,
                "fine_size": n_values + 1}, codes

    def _sampling_order(self, edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(parent, child) pairs of the tree in breadth-first order from the root."""
        order: list[tuple[str, str]] = []
        if self.root is None:
            return order
        seen, frontier = {self.root}, [self.root]
        while frontier:
            parent = frontier.pop(0)
            for a, b in edges:
                child = b if parent == a else a if parent == b else None
                if child is not None and child not in seen:
                    order.append((parent, child))
                    seen.add(child)
                    frontier.append(child)
        return order

    def _coarsen(self, column: str) -> None:
        """Coarse bins for the 2-way tables: categories (and "other") one each; numeric fine slots merged into at most
        `bins` runs of about equal noisy mass; the null slot alone. Post-processing of the noisy fine marginal."""
        dom, p = self.domains[column], self.fine[column]
        size = dom["fine_size"]
        if "categories" in dom or size - 1 <= self.bins:
            coarse_of = np.arange(size)
        else:
            mass = p[:-1] / max(p[:-1].sum(), 1e-12)
            cum = np.cumsum(mass) - mass / 2
            coarse_of = np.append(np.minimum((cum * self.bins).astype("int64"), self.bins - 1), -1)
            _, coarse_of[:-1] = np.unique(coarse_of[:-1], return_inverse=True)
            coarse_of[-1] = coarse_of[:-1].max() + 1
        dom["coarse_of"] = coarse_of.tolist()
        self.coarse[column] = np.bincount(coarse_of, weights=p, minlength=int(coarse_of.max()) + 1)

    # ------------------------------------------------------------------ sample

    @property
    def fitted(self) -> bool:
        return self.root is not None or bool(self.text)

    def _sample(self, n: int, *, conditions=None, seed: int | None = None) -> pd.DataFrame:
        if conditions is not None and len(conditions):
            raise GenesisError(f"{self.name} does not take conditions")
        rng = np.random.default_rng(seed)
        coarse: dict[str, np.ndarray] = {}
        if self.root is not None:
            coarse[self.root] = rng.choice(len(self.coarse[self.root]), size=n, p=self.coarse[self.root])
        for parent, child in self.tree:
            cum = np.cumsum(self.cond[child], axis=-1)
            cum[..., -1] = 1.0
            rows = cum[coarse[self.second[child]], coarse[parent]] if child in self.second else cum[coarse[parent]]
            coarse[child] = np.minimum((rows < rng.random(n)[:, None]).sum(axis=1), cum.shape[-1] - 1)
        for column in self.domains:
            if column not in coarse:  # a column outside the tree (only with a single modelled column)
                coarse[column] = rng.choice(len(self.coarse[column]), size=n, p=self.coarse[column])
        out = {}
        for column in self.columns:
            if column in self.text:
                out[column] = sample_text(self.text[column], n, rng).reset_index(drop=True)
            else:
                out[column] = self._values(column, self._fine_slots(column, coarse[column], rng), rng)
        frame = pd.DataFrame(out, columns=self.columns, index=pd.RangeIndex(n))
        check_domain(frame, self.domain(), table=self.table_name, method=self.name)
        return frame

    def _fine_slots(self, column: str, coarse: np.ndarray, rng) -> np.ndarray:
        dom, p = self.domains[column], self.fine[column]
        coarse_of = np.asarray(dom["coarse_of"])
        slots = np.empty(len(coarse), dtype="int64")
        for group in np.unique(coarse):
            members = np.flatnonzero(coarse_of == group)
            w = p[members]
            w = w / w.sum() if w.sum() > 0 else np.full(len(members), 1.0 / len(members))
            where = coarse == group
            slots[where] = rng.choice(members, size=int(where.sum()), p=w)
        return slots

    def _values(self, column: str, slots: np.ndarray, rng) -> pd.Series:
        dom = self.domains[column]
        null = slots == dom["fine_size"] - 1
        if "categories" in dom:
            cats = dom["categories"]
            if dom["other"]:  # "other" is redrawn among the kept categories, by their noisy shares
                other = slots == len(cats)
                w = self.fine[column][:len(cats)]
                w = w / w.sum() if w.sum() > 0 else np.full(len(cats), 1.0 / len(cats))
                slots = slots.copy()
                slots[other] = rng.choice(len(cats), size=int(other.sum()), p=w)
            if dom["kind"] == "boolean":
                values = pd.Series(np.asarray(slots) == 1, dtype="boolean")
                return values.where(~null, pd.NA)
            picked = np.array(cats + [None, None], dtype=object)[np.minimum(slots, len(cats))]
            picked[null] = None
            return pd.Series(picked, dtype=object)
        atoms, edges = np.asarray(dom["atoms"], dtype="float64"), np.asarray(dom["edges"], dtype="float64")
        values = np.zeros(len(slots))
        is_atom = slots < len(atoms)
        values[is_atom] = atoms[slots[is_atom]] if len(atoms) else 0.0
        binned = ~is_atom & ~null
        if binned.any():
            b = slots[binned] - len(atoms)
            values[binned] = edges[b] + rng.random(int(binned.sum())) * (edges[b + 1] - edges[b])
        lo, hi = dom["bounds"]
        values = np.clip(values, lo, hi)
        if dom["kind"] == "datetime":
            out = pd.Series(pd.to_datetime(np.round(values).astype("int64"), unit="us"))
            out = out.dt.normalize() if dom.get("datetime_format") == "date" else out.dt.floor("s")
            return out.where(~null, pd.NaT)
        if dom["integer"]:
            return pd.Series(np.round(values)).astype("Int64").where(~null, pd.NA)
        return pd.Series(np.where(null, np.nan, values), dtype="float64")

    def domain(self) -> dict:
        return {c: ({"categories": d["categories"]} if "categories" in d else {"bounds": d["bounds"]})
                for c, d in self.domains.items()}

    # ------------------------------------------------------------------ persistence

    def _state(self, directory: Path) -> dict:
        from safetensors.numpy import save_file

        arrays = {f"fine/{c}": v for c, v in self.fine.items()}
        arrays.update({f"coarse/{c}": v for c, v in self.coarse.items()})
        arrays.update({f"cond/{c}": v for c, v in self.cond.items()})
        names = {f"t{i}": k for i, k in enumerate(arrays)}  # tensor names never carry column names
        with atomic_path(directory / WEIGHTS) as tmp:
            save_file({t: np.ascontiguousarray(arrays[k], dtype="float64") for t, k in names.items()}, str(tmp))
        return {
            "table": self.table_name, "columns": self.columns, "text": self.text,
            "domains": self.domains, "tree": [list(e) for e in self.tree], "second_parents": self.second, "root": self.root, "tensors": names,
            "settings": {"epsilon": self.epsilon, "delta": self.delta, "bins": self.bins, "domain_share": self.domain_share,
                         "bounds": self.public_bounds, "categories": self.public_categories},
            "dp": self.dp}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> DPMarginalsGenerator:
        from safetensors.numpy import load_file

        model = cls(**state["settings"])
        tensors = load_file(str(directory / WEIGHTS))
        model.table_name, model.columns, model.text = state["table"], state["columns"], state["text"]
        model.domains, model.root, model.dp = state["domains"], state["root"], state["dp"]
        model.tree = [tuple(e) for e in state["tree"]]
        model.second = dict(state.get("second_parents", {}))
        for t, key in state["tensors"].items():
            kind, column = key.split("/", 1)
            getattr(model, kind)[column] = tensors[t]
        return model

    def describe(self) -> dict:
        return {"method": self.name, "columns_modelled": len(self.domains), "text_columns": len(self.text), **self.dp}
