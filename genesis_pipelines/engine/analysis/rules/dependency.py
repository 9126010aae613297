"""`dependency` rules: a category column (nearly) determined by another of its table (city -> country), found from
the purity of the mapping; the rows keep them when they are drawn."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import core
from genesis_pipelines.engine.analysis.rules.core import Dependency, Rule
from genesis_pipelines.engine.core.schema import TableMeta

DEPENDENCY_MIN_PURITY = 0.95  # a category column this predictable from another one follows it
MAX_DEPENDENCY_VALUES = 20_000  # source categories a dependency mapping may hold
_CATEGORY = ("categorical", "boolean")


def _purity_and_mode(source: np.ndarray, n_source: int, target: np.ndarray, n_target: int) -> tuple[float, float]:
    """Share of rows whose target code is the commonest one of their source code (purity), and the share of the
    commonest target code overall, from integer codes (a contingency table by np.bincount on combined codes)."""
    rows = len(source)
    if n_source * n_target <= max(4 * rows, 1 << 16):
        table = np.bincount(source * n_target + target, minlength=n_source * n_target).reshape(n_source, n_target)
        return float(table.max(axis=1).sum() / rows), float(table.sum(axis=0).max() / rows)
    pairs, counts = np.unique(source.astype(np.int64) * n_target + target, return_counts=True)
    starts = np.flatnonzero(np.r_[True, np.diff(pairs // n_target) != 0])  # pairs are sorted by source code
    return float(np.maximum.reduceat(counts, starts).sum() / rows), float(np.bincount(target).max() / rows)


def _source_scores(source: str, columns: list[str], codes: dict[str, np.ndarray], sizes: dict[str, int],
                   distinct: dict[str, int], present: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """(purity, mode share) of every target column against one source, on the rows where the source is present:
    the targets whose contingency table is small are counted together by one bincount over all of them (each
    in its own block of cells), the others pair by pair."""
    both = present[source]
    rows = int(both.sum())
    targets = [t for t in columns if t != source and distinct[source] >= distinct[t]]
    if rows < 2 * core.MIN_ROWS or not targets:
        return {}
    source_codes = codes[source] if rows == len(both) else codes[source][both]
    n_source = sizes[source]
    cap = max(4 * rows, 1 << 16)
    small = [t for t in targets if n_source * sizes[t] <= cap]
    out = {t: _purity_and_mode(source_codes, n_source, codes[t] if rows == len(both) else codes[t][both], sizes[t])
           for t in targets if n_source * sizes[t] > cap}
    for first in range(0, len(small), max(1, (1 << 24) // max(rows, n_source * max(sizes[t] for t in small)))):
        batch = small[first:first + max(1, (1 << 24) // max(rows, n_source * max(sizes[t] for t in small)))]
        width = np.asarray([sizes[t] for t in batch], dtype=np.int64)
        block = n_source * width
        offsets = np.concatenate([[0], np.cumsum(block)[:-1]])
        target_codes = np.column_stack([codes[t] if rows == len(both) else codes[t][both] for t in batch]).astype(np.int64)
        cells = offsets[None, :] + source_codes.astype(np.int64)[:, None] * width[None, :] + target_codes
        table = np.bincount(cells.ravel(), minlength=int(block.sum()))
        row_starts = (offsets[:, None] + np.arange(n_source)[None, :] * width[:, None]).ravel()
        row_max = np.maximum.reduceat(table, row_starts)
        purity = np.add.reduceat(row_max, np.arange(len(batch)) * n_source) / rows
        target_offsets = np.concatenate([[0], np.cumsum(width)[:-1]])
        marginal = np.bincount((target_offsets[None, :] + target_codes).ravel(), minlength=int(width.sum()))
        mode_share = np.maximum.reduceat(marginal, target_offsets) / rows
        out.update({t: (float(purity[j]), float(mode_share[j])) for j, t in enumerate(batch)})
    return out


def _commonest_per_source(source: pd.Series, target: pd.Series) -> dict[str, str]:
    """Each source value's commonest target value (ties: the one seen first), keyed in sorted source order."""
    a_codes, a_values = pd.factorize(source)
    b_codes, b_values = pd.factorize(target)
    n_b = max(len(b_values), 1)
    pairs, first, counts = np.unique(a_codes.astype(np.int64) * n_b + b_codes, return_index=True, return_counts=True)
    a_of, b_of = pairs // n_b, pairs % n_b
    order = np.lexsort((first, -counts, a_of))
    top = order[np.r_[True, np.diff(a_of[order]) != 0]]
    mapping = dict(zip(np.asarray(a_values, dtype=object)[a_of[top]].tolist(), np.asarray(b_values, dtype=object)[b_of[top]].tolist()))
    return {a: mapping[a] for a in sorted(mapping)}


def find_dependencies(df: pd.DataFrame, meta: TableMeta, private: set[str], seed: int = 0) -> dict[str, Dependency]:
    """Category columns functionally determined by another (city -> state -> country; a lookup table's name ->
    its description): a generator mixes them up, so generation restores the learned mapping (or, when the
    dependent column came from the parent, draws a source value that fits it). A dependency counts when it is
    nearly exact (DEPENDENCY_MIN_PURITY) and errs at most half as often as guessing the commonest value.

    Every pair is scored on integer codes (one bincount per pair, no pandas group-by), so the cost is
    columns^2 x rows with a small constant; sources with fewer values than the target are skipped unscored."""
    df = core.sample(df, seed).reset_index(drop=True)
    distinct = {c: int(df[c].nunique()) for c in df.columns if c not in private and c in meta.columns
                and meta.columns[c].sdtype in _CATEGORY}
    columns = [c for c, n in distinct.items() if 2 <= n <= MAX_DEPENDENCY_VALUES]
    # a missing target is a value too (a city without a state), a missing source determines nothing
    text = {c: df[c].astype(str).where(df[c].notna(), core.NULL_TOKEN) for c in columns}
    codes, sizes = {}, {}
    for c in columns:
        codes[c], uniques = pd.factorize(text[c])
        sizes[c] = len(uniques)
    present = {c: df[c].notna().to_numpy() for c in columns}
    scored = {source: _source_scores(source, columns, codes, sizes, distinct, present) for source in columns}
    out: dict[str, Dependency] = {}
    for target in columns:
        best = None
        for source in columns:
            if target not in scored[source]:
                continue
            purity, mode_share = scored[source][target]
            if purity < DEPENDENCY_MIN_PURITY or 1 - purity > 0.5 * (1 - mode_share):
                continue
            both = present[source]
            score = (purity, float(both.mean()), distinct[source])
            if best is None or score > best[0]:
                best = (score, source, both)
        if best is None:
            continue
        source, both = best[1], best[2]
        pairs = pd.DataFrame({"a": text[source][both], "b": text[target][both]})
        mapping = _commonest_per_source(pairs["a"], pairs["b"])
        shares = pairs[pairs["b"] != core.NULL_TOKEN].groupby("b")["a"].value_counts(normalize=True)
        reverse = {b: {a: float(v) for (_, a), v in group.items()} for b, group in shares.groupby(level=0)}
        out[target] = Dependency(source=source, mapping={a: None if b == core.NULL_TOKEN else b for a, b in mapping.items()},
                                 reverse=reverse, purity=best[0][0])
    return out


def dependency_rules(table: str, dependencies: Mapping[str, Dependency]) -> list[Rule]:
    return [Rule(id=f"dependency:{table}.{d.source}->{table}.{target}", kind="dependency", table=table,
                 columns=[d.source, target], share=d.purity) for target, d in dependencies.items()]
