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


def _scores_on(codes: CodeMatrix, index: np.ndarray | None, source: str, targets: list[str], sizes: dict[str, int],
               modes: bool = True) -> dict[str, tuple[float, float]]:
    """(purity, mode share) of each target against the source on the rows `index` of `codes` (None: all): the
    targets whose contingency table is small are counted together by one bincount over all of them (each in its
    own block of cells), the others pair by pair. `modes=False` leaves the mode shares out (NaN)."""
    rows = codes.length if index is None else len(index)
    source_codes = codes.rows(source, index).astype(np.int64)
    n_source = sizes[source]
    cap = max(4 * rows, 1 << 16)
    small = [t for t in targets if n_source * sizes[t] <= cap]
    out = {t: _purity_and_mode(source_codes, n_source, codes.rows(t, index), sizes[t])
           for t in targets if n_source * sizes[t] > cap}
    step = max(1, (1 << 24) // max(rows, n_source * max((sizes[t] for t in small), default=1)))
    for first in range(0, len(small), step):
        batch = small[first:first + step]
        width = np.asarray([sizes[t] for t in batch], dtype=np.int64)
        block = n_source * width
        offsets = np.concatenate([[0], np.cumsum(block)[:-1]])
        kind = np.int32 if int(block.sum()) < 2**31 else np.int64
        cells = codes.block(batch, index).astype(kind)  # (targets, rows): each target's cells in one run
        if modes:
            target_offsets = np.concatenate([[0], np.cumsum(width)[:-1]])
            marginal = np.bincount((cells + target_offsets[:, None].astype(kind)).ravel(), minlength=int(width.sum()))
            mode_share = np.maximum.reduceat(marginal, target_offsets) / rows
        else:
            mode_share = np.full(len(batch), np.nan)
        cells += offsets[:, None].astype(kind)
        cells += source_codes[None, :].astype(kind) * width[:, None].astype(kind)
        table = np.bincount(cells.ravel(), minlength=int(block.sum()))
        row_starts = (offsets[:, None] + np.arange(n_source)[None, :] * width[:, None]).ravel()
        row_max = np.maximum.reduceat(table, row_starts)
        purity = np.add.reduceat(row_max, np.arange(len(batch)) * n_source) / rows
        out.update({t: (float(purity[j]), float(mode_share[j])) for j, t in enumerate(batch)})
    return out


class CodeMatrix:
    """The integer codes of the category columns, one row of the matrix per column (int32 when the codes fit), so
    a source's targets on a subset of rows come out in one gather."""

    def __init__(self, codes: dict[str, np.ndarray], matrix: np.ndarray | None = None):
        self.position = {c: i for i, c in enumerate(codes)}
        if matrix is None:
            top = max((int(v.max()) for v in codes.values() if len(v)), default=0)
            length = len(next(iter(codes.values()))) if codes else 0
            matrix = np.empty((len(codes), length), dtype=np.int32 if top < 2**31 - 1 else np.int64)
            for c, v in codes.items():
                matrix[self.position[c]] = v
        self.matrix = matrix
        self.length = matrix.shape[1]

    def subset(self, index: np.ndarray) -> CodeMatrix:
        """The same columns on the rows `index` only."""
        out = CodeMatrix.__new__(CodeMatrix)
        out.position, out.matrix, out.length = self.position, np.ascontiguousarray(self.matrix[:, index]), len(index)
        return out

    def rows(self, column: str, index: np.ndarray | None) -> np.ndarray:
        values = self.matrix[self.position[column]]
        return values if index is None else values[index]

    def block(self, columns: list[str], index: np.ndarray | None) -> np.ndarray:
        picked = np.asarray([self.position[c] for c in columns], dtype=np.intp)
        return self.matrix[picked] if index is None else self.matrix[picked][:, index]


SCREEN_MIN_ROWS = 1000  # tables this long screen their pairs on a subsample of the rows first ...
SCREEN_SHARE = 4  # ... of one row in this many


def _source_scores(source: str, columns: list[str], codes: CodeMatrix, sizes: dict[str, int],
                   distinct: dict[str, int], present: dict[str, np.ndarray],
                   screen: tuple[np.ndarray, CodeMatrix] | None = None) -> dict[str, tuple[float, float]]:
    """(purity, mode share) of every target column against one source, on the rows where the source is present.

    With `screen` (a row subsample: its row numbers and its codes), each pair is first scored on the subsample,
    and only those that can still reach DEPENDENCY_MIN_PURITY are scored on every row. The bound is exact, not
    statistical: a pair erring on E rows of all N errs on at most E of the subsample's m rows (against the same
    source -> target mapping), so its purity there is at least 1 - E / m; one below
    1 - (1 - DEPENDENCY_MIN_PURITY) * N / m cannot pass."""
    both = present[source]
    rows = int(both.sum())
    targets = [t for t in columns if t != source and distinct[source] >= distinct[t]]
    if rows < 2 * core.MIN_ROWS or not targets:
        return {}
    if screen is not None:
        screen_rows, screen_codes = screen
        kept = both[screen_rows]
        sub = None if kept.all() else np.flatnonzero(kept)
        m = len(screen_rows) if sub is None else len(sub)
        floor = 1 - (1 - DEPENDENCY_MIN_PURITY) * rows / m - 1e-9 if m >= 2 * core.MIN_ROWS else 0.0
        if floor > 0:
            rough = _scores_on(screen_codes, sub, source, targets, sizes, modes=False)
            targets = [t for t in targets if rough[t][0] >= floor]
            if not targets:
                return {}
    return _scores_on(codes, None if rows == len(both) else np.flatnonzero(both), source, targets, sizes)


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
    columns^2 x rows with a small constant; sources with fewer values than the target are skipped unscored, and on
    tables of SCREEN_MIN_ROWS or more the pairs that a quarter of the rows rules out are not scored on the rest."""
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
    matrix = CodeMatrix(codes) if columns else None
    screen = None
    if len(df) >= SCREEN_MIN_ROWS and columns:
        screen_rows = np.sort(np.random.default_rng(seed).permutation(len(df))[:len(df) // SCREEN_SHARE])
        screen = (screen_rows, matrix.subset(screen_rows))
    scored = {source: _source_scores(source, columns, matrix, sizes, distinct, present, screen) for source in columns}
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
