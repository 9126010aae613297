"""`parent_equal` rules: a child column repeating its parent's column in a share of rows, found against chance and
kept by copying the parent value into that share (and drawing the others apart)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import core, orders
from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey

EQUAL_MIN_SHARE = 0.1  # a child column equal to its parent's in this share of rows, and ...
EQUAL_MIN_LIFT = 0.05  # ... this far above chance (two values drawn independently being equal) ...
EQUAL_MIN_Z = 4.0  # ... by this many standard errors of the chance share, is a rule
EQUAL_SWAP_ROUNDS = 24  # rounds of value exchanges that bring an approximate parent_equal share down


def _chance_equal(child: pd.Series, parent: pd.Series) -> float:
    """How often two values drawn independently from these two columns are equal."""
    a = child.astype(str).value_counts(normalize=True)
    b = parent.astype(str).value_counts(normalize=True)
    return float((a * b.reindex(a.index, fill_value=0)).sum())


def find_parent_equals(fk: ForeignKey, child: pd.DataFrame, parent: pd.DataFrame, schema: DatasetSchema,
                       seed: int = 0) -> list[Rule]:
    """Child columns that repeat a parent column in a share of rows clearly above chance (a line's unit price is
    its product's in 70% of lines)."""
    if fk.is_self_reference or fk.deferred:
        return []
    child = core.sample(child, seed).reset_index(drop=True)
    name, meta, parent_meta = fk.child_table, schema.tables[fk.child_table], schema.tables[fk.parent_table]
    positions = core.positions(parent, fk.parent_column, child, fk.child_column)
    child_keys, parent_keys = schema.key_columns(name), schema.key_columns(fk.parent_table)

    def group(sdtype: str) -> str:
        return orders.SORTABLE.get(sdtype, sdtype)

    # each column read once: its text, its numbers (sortable kinds) and, for the parent's, its value per child row
    joined: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for parent_column, pmeta in parent_meta.columns.items():
        if parent_column in parent_keys or parent_column not in parent:
            continue
        theirs = core.joined(parent, parent_column, positions)
        joined[parent_column] = (theirs.notna().to_numpy(), theirs.astype(str).to_numpy(),
                                 core.numbers(theirs) if group(pmeta.sdtype) in ("datetime", "number") else None)
    rules: list[Rule] = []
    for column in child.columns:
        cmeta = meta.columns.get(column)
        if cmeta is None or column in child_keys or cmeta.sdtype in ("id", "text") or child[column].nunique() < 2:
            continue
        sortable = group(cmeta.sdtype) in ("datetime", "number")
        present, text = child[column].notna().to_numpy(), child[column].astype(str).to_numpy()
        numbers = core.numbers(child[column]) if sortable else None
        best = None
        for parent_column, pmeta in parent_meta.columns.items():
            if parent_column not in joined or group(pmeta.sdtype) != group(cmeta.sdtype):
                continue
            their_present, their_text, their_numbers = joined[parent_column]
            both = their_present & present
            if both.sum() < core.MIN_ROWS:
                continue
            if sortable:
                equal = float((numbers[both] == their_numbers[both]).mean())
            else:
                equal = float((text[both] == their_text[both]).mean())
            chance = _chance_equal(pd.Series(text[both]), pd.Series(their_text[both]))
            z = (equal - chance) / max(np.sqrt(chance * (1 - chance) / int(both.sum())), 1e-12)
            if (equal >= EQUAL_MIN_SHARE and equal - chance >= EQUAL_MIN_LIFT and z >= EQUAL_MIN_Z
                    and (best is None or equal > best[0])):
                best = (equal, parent_column)
        if best is not None:
            rules.append(Rule(id=f"parent_equal:{name}.{column}={fk.parent_table}.{best[1]} via {fk.child_column}",
                              kind="parent_equal", table=name, columns=[column], share=best[0],
                              parent_table=fk.parent_table, parent_column=best[1], parent_key=fk.parent_column,
                              fk_column=fk.child_column))
    return rules


def repair_equals(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame],
                   rng: np.random.Generator) -> pd.DataFrame:
    """A child column equal to its parent's in fewer rows than the real share gets the parent's value in more; in
    more rows (an approximate rule), some equal rows exchange their value with other rows, so the column keeps its
    values. Every change keeps the row inside the interval its exact orderings allow (so the ordering repair after
    it has nothing to move), and rows equal under another parent_equal rule of the column are touched last."""
    exact = [r for r in rules if r.share >= 1]
    for rule in rules:
        parent = parents.get(rule.parent_table)
        column = rule.columns[0]
        if rule.kind != "parent_equal" or parent is None or column not in body or not core.has_key(body, rule.fk_column):
            continue
        theirs = core.joined(parent, rule.parent_column, core.enforce_positions(parent, rule.parent_key, body, rule.fk_column))
        equal, present = equals_parent(body[column], theirs)
        target = int(round(rule.share * present.sum()))
        need = target - int(equal.sum())
        if need == 0 or (need < 0 and rule.share >= 1):
            continue
        dtype = body[column].dtype
        lower, upper = orders.bounds(column, exact, body, parents)
        kept_equal = np.zeros(len(body), dtype=bool)  # rows another parent_equal rule of this column holds equal
        for other in rules:
            if other is not rule and other.kind == "parent_equal" and other.columns[0] == column and other.parent_table in parents:
                joined = core.joined(parents[other.parent_table], other.parent_column,
                                 core.enforce_positions(parents[other.parent_table], other.parent_key, body, other.fk_column))
                kept_equal |= equals_parent(body[column], joined)[0]

        def last_if(rows: np.ndarray, late: np.ndarray) -> np.ndarray:
            rows = rng.permutation(rows)
            return rows[np.argsort(late[rows], kind="stable")]

        merged = body[column].astype(object).to_numpy().copy()
        parent_values = theirs.reset_index(drop=True)
        if need > 0:
            fits = orders.fits(parent_values, lower, upper)
            take = last_if(np.flatnonzero(present & ~equal & fits), kept_equal)[:need]
            merged[take] = theirs.astype(object).to_numpy()[take]
        else:
            # an equal row exchanges its value with another row, where neither ends up equal to its parent (when most
            # parents hold one value, most partners would take the equality over): a few rounds of random pairs
            for _ in range(EQUAL_SWAP_ROUNDS):
                equal, _ = equals_parent(pd.Series(merged).astype(dtype), theirs)
                excess = int(equal.sum()) - target
                unequal = np.flatnonzero(present & ~equal)
                if excess <= 0:
                    break
                if len(unequal) >= excess:
                    rows, partners = last_if(np.flatnonzero(equal), kept_equal)[:excess], rng.permutation(unequal)[:excess]
                else:  # two equal rows of different parents exchanging become two unequal ones
                    pairs = rng.permutation(np.flatnonzero(equal))[: 2 * ((excess + 1) // 2)]
                    rows, partners = pairs[: len(pairs) // 2], pairs[len(pairs) // 2:]
                mine, yours = pd.Series(merged[rows]).astype(dtype), pd.Series(merged[partners]).astype(dtype)
                apart = (~equals_parent(yours, parent_values.iloc[rows])[0] & ~equals_parent(mine, parent_values.iloc[partners])[0]
                         & orders.fits(yours, lower[rows], upper[rows]) & orders.fits(mine, lower[partners], upper[partners]))
                rows, partners = rows[apart], partners[apart]
                merged[rows], merged[partners] = merged[partners], merged[rows].copy()
            _draw_apart(merged, parent_values, present, target, dtype, lower, upper, rng)
        body[column] = pd.Series(merged).astype(dtype).to_numpy()
    return body


def _draw_apart(merged: np.ndarray, parent_values: pd.Series, present: np.ndarray, target: int, dtype,
                lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator) -> None:
    """Equal rows beyond `target` that no exchange could part (most parents hold the value the rows repeat) take
    another value of the column, drawn from its values as they stand, one that differs from the row's parent and
    lies within the row's bounds."""
    equal, _ = equals_parent(pd.Series(merged).astype(dtype), parent_values)
    excess = int(equal.sum()) - target
    if excess <= 0:
        return
    left = rng.permutation(np.flatnonzero(equal))[:excess]
    pool = merged[present]
    for _ in range(EQUAL_SWAP_ROUNDS):
        if not len(left) or not len(pool):
            return
        drawn = pd.Series(pool[rng.integers(0, len(pool), len(left))]).astype(dtype)
        apart = ~equals_parent(drawn, parent_values.iloc[left])[0] & orders.fits(drawn, lower[left], upper[left])
        merged[left[apart]] = drawn.to_numpy(dtype=object)[apart]
        left = left[~apart]


def equals_parent(mine: pd.Series, theirs: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    present = (mine.reset_index(drop=True).notna() & theirs.reset_index(drop=True).notna()).to_numpy()
    if pd.api.types.is_numeric_dtype(mine) or pd.api.types.is_datetime64_any_dtype(mine):
        equal = core.numbers(mine) == core.numbers(theirs)
    else:
        equal = mine.astype(str).to_numpy() == theirs.astype(str).to_numpy()
    return equal & present, present
