"""`auto`: pick a generator per table by a quick holdout comparison, then delegate to it.

Candidates depend on size and types: the Gaussian copula always; CTGAN and TVAE (when registered) for tables with
enough rows to learn from; the autoregressive model (when registered) when the table has several modelled columns.
Each candidate is fitted on a seeded subsample (up to 20,000 rows: at 5,000 the autoregressive model trailed the copula on
Adult's trial, yet beat it on the whole table) and scored on a holdout of the same subsample with the project's own
fidelity metrics (mean column-shape and pair-trend scores, as in the quality report). Each trial's budget is epochs,
steps and rows, never seconds, so the choice is the same on an idle or a loaded machine; `time_budget_s` is a fail-safe
that, when the comparison outlasts it, skips the remaining candidates and says so. Ties go to the cheaper method
(ORDER). The winner is refitted on the whole table. The choice, every score and the sizes are in describe(), hence in
the model asset's metadata: aggregates only.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.core.spec import STRING_KINDS
from genesis_pipelines.engine.sources.io import write_json
from genesis_pipelines.engine.synthesis.generators.base import (
    BaseGenerator,
    auto_candidates,
    available_methods,
    create_generator,
    load_generator,
    register,
)

CHOICE_FILE = "auto.json"
ORDER = ("gaussian_copula", "autoregressive", "tvae", "ctgan")  # cheapest first
NEURAL = ("ctgan", "tvae")
# a quick look at the neural models: about TRIAL_STEPS optimiser steps on the subsample, in whole epochs (at most
# TRIAL_MAX_EPOCHS), so a trial costs about the same at 4k and at 15k rows; their final fit uses the full settings.
# The autoregressive model's own default is a step budget (about 500 steps), so its trial needs no override.
TRIAL_STEPS, TRIAL_MAX_EPOCHS = 300, 30


def neural_trial_settings(rows: int, batch_size: int = 500) -> dict:
    """Epochs of a neural candidate's trial: a budget of optimiser steps, never of seconds."""
    steps_per_epoch = max(1, math.ceil(rows / max(batch_size, 1)))
    return {"epochs": int(min(TRIAL_MAX_EPOCHS, max(3, math.ceil(TRIAL_STEPS / steps_per_epoch)))), "progress": False}


def _cost_rank(method: str) -> tuple[int, str]:
    """Position in ORDER (cheapest first); methods from plugins after, by name."""
    return (ORDER.index(method), method) if method in ORDER else (len(ORDER), method)


def holdout_score(real: pd.DataFrame, synth: pd.DataFrame, meta: TableMeta) -> dict:
    """Mean column-shape and pair-trend scores (0..1) of `synth` against held-out real rows."""
    # imported here: the evaluation package pulls in matplotlib and jinja2, which generating alone never needs
    from genesis_pipelines.engine.analysis.columns import evaluable_columns
    from genesis_pipelines.engine.analysis.similarity import column_shape_scores, pair_trend_scores

    columns = [c for c in evaluable_columns(meta, set()) if c in real.columns]
    shapes = column_shape_scores(real, synth, meta, columns)
    pairs = pair_trend_scores(real, synth, meta, columns, max_pairs=60, seed=0)
    shape = float(np.mean([v["score"] for v in shapes.values()])) if shapes else 1.0
    pair = float(np.mean([v["score"] for v in pairs.values() if v.get("score") is not None])) if pairs else shape
    return {"score": round((shape + pair) / 2, 4), "column_shapes": round(shape, 4), "pair_trends": round(pair, 4)}


@register
class AutoGenerator(BaseGenerator):
    """Compares candidate methods on a holdout and fits the chosen one; it saves as the chosen generator's own
    folder (so `load_generator` returns that generator, its format checked by its own class) plus the choice."""

    name: ClassVar[str] = "auto"

    def __init__(self, time_budget_s: float = 1800.0, trial_rows: int = 20000, holdout_share: float = 0.25,
                 min_rows_neural: int = 2000, min_rows_compare: int = 200, min_gain: float = 0.01,
                 candidates: list[str] | None = None,
                 settings: dict[str, dict] | None = None, trial_settings: dict[str, dict] | None = None):
        self.time_budget_s, self.trial_rows, self.holdout_share = float(time_budget_s), int(trial_rows), float(holdout_share)
        self.min_rows_neural, self.min_rows_compare = int(min_rows_neural), int(min_rows_compare)
        self.min_gain = float(min_gain)  # a slower candidate must beat the faster ones by this much to be chosen
        self.candidates = candidates
        self.settings = dict(settings or {})  # method -> settings of the final fit
        # method -> settings of the trial fit (default: the final settings; e.g. fewer epochs for a quick look)
        self.trial_settings = dict(trial_settings or {})
        self.chosen = None
        self.choice: dict = {}

    def _candidates(self, table: pd.DataFrame, meta: TableMeta) -> tuple[list[str], dict[str, str]]:
        registered = set(available_methods())
        skipped: dict[str, str] = {}
        modelled = [c for c in table.columns if meta.columns[c].sdtype not in ("id", *STRING_KINDS)]
        wanted = self.candidates or list(ORDER) + [m for m in auto_candidates() if m not in ORDER]  # + plugins that ask
        out = []
        for method in wanted:
            if method not in registered:
                skipped[method] = "not registered in this installation"
            elif method in NEURAL and len(table) < self.min_rows_neural:
                skipped[method] = f"table has {len(table)} rows, fewer than {self.min_rows_neural} for a neural model"
            elif method == "autoregressive" and len(modelled) < 2:
                skipped[method] = "fewer than 2 modelled columns"
            else:
                out.append(method)
        if "gaussian_copula" not in out:
            out.insert(0, "gaussian_copula")
        return out, skipped

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        started = time.perf_counter()
        candidates, skipped = self._candidates(table, meta)
        results: dict[str, dict] = {}
        if len(candidates) == 1 or len(table) < self.min_rows_compare:
            choice = "gaussian_copula"
            reason = ("only candidate" if len(candidates) == 1 else
                      f"table has {len(table)} rows, fewer than {self.min_rows_compare} for a holdout comparison")
            trial_n = holdout_n = 0
        else:
            trial = table.sample(min(len(table), self.trial_rows), random_state=seed) if len(table) > self.trial_rows else table
            order = np.random.default_rng(seed).permutation(len(trial))
            holdout_n = max(1, int(round(len(trial) * self.holdout_share)))
            holdout, fit_part = trial.iloc[order[:holdout_n]], trial.iloc[order[holdout_n:]]
            trial_n = len(fit_part)
            for method in candidates:
                if time.perf_counter() - started > self.time_budget_s and results:
                    results[method] = {"skipped": f"fail-safe: the comparison outlasted {self.time_budget_s:g} s"}
                    warnings.warn(f"auto on table {meta.name!r}: candidate {method} skipped by the {self.time_budget_s:g} s "
                                  "fail-safe; the choice now depends on the machine's speed", RuntimeWarning, stacklevel=2)
                    continue
                results[method] = self._trial(method, fit_part, holdout, meta, device, seed)
            scored = {m: r for m, r in results.items() if "score" in r}
            if not scored:
                raise GenesisError(f"table {meta.name!r}: no auto candidate could be fitted: "
                                   + "; ".join(f"{m}: {r.get('error') or r.get('skipped')}" for m, r in results.items()))
            choice = None
            for method in sorted(scored, key=_cost_rank):  # cheapest first
                if choice is None or scored[method]["score"] > scored[choice]["score"] + self.min_gain:
                    choice = method
            best = max(scored, key=lambda m: scored[m]["score"])
            reason = (f"best holdout score ({scored[choice]['score']:.4f}) of {len(scored)} compared" if best == choice else
                      f"holdout score {scored[choice]['score']:.4f} within {self.min_gain:g} of the best "
                      f"({best}: {scored[best]['score']:.4f}) and cheaper to fit")
        self.chosen = create_generator(choice, **self.settings.get(choice, {}))
        final_started = time.perf_counter()
        self.chosen.fit(table, meta, device=device, seed=seed)
        self.choice = {
            "chosen_method": choice, "reason": reason, "rows": len(table), "trial_rows": trial_n, "holdout_rows": holdout_n,
            "time_budget_s": self.time_budget_s,
            "stopped_by_wall_clock": any("fail-safe" in r.get("skipped", "") for r in results.values()), "comparison_s": round(final_started - started, 2),
            "final_fit_s": round(time.perf_counter() - final_started, 2), "candidates": results, "not_tried": skipped,
        }

    def _trial(self, method: str, fit_part: pd.DataFrame, holdout: pd.DataFrame, meta: TableMeta, device: str,
               seed: int) -> dict:
        final = self.settings.get(method, {})
        quick = neural_trial_settings(len(fit_part), int(final.get("batch_size", 500))) if method in NEURAL else {}
        settings = dict(self.trial_settings.get(method, {**final, **quick}))
        try:
            generator = create_generator(method, **settings)
            t0 = time.perf_counter()
            generator.fit(fit_part, meta, device=device, seed=seed)
            t1 = time.perf_counter()
            synth = generator.sample(len(holdout), seed=seed + 1)
            t2 = time.perf_counter()
        except GenesisError as exc:  # a candidate that cannot model this table is reported, not fatal
            return {"error": str(exc)[:300]}
        return {**holdout_score(holdout, synth, meta), "fit_s": round(t1 - t0, 3), "sample_s": round(t2 - t1, 3)}

    # -------------------------------------------------------------- delegation

    @property
    def fitted(self) -> bool:
        return self.chosen is not None

    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        return self.chosen.sample(n, conditions=conditions, seed=seed)

    def save(self, directory: Path) -> None:
        """The chosen generator's own files (so load_generator returns it directly) plus the choice as JSON."""
        self.require_fitted()
        self.chosen.save(Path(directory))
        write_json(Path(directory) / CHOICE_FILE, self.choice)

    @classmethod
    def load(cls, directory: Path, **options) -> AutoGenerator:
        model = cls()
        model.chosen = load_generator(Path(directory))
        path = Path(directory) / CHOICE_FILE
        model.choice = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        return model

    def describe(self) -> dict:
        self.require_fitted()
        return {**self.chosen.describe(), "method": self.name, "auto": self.choice}
