"""The data's own rules: found in the real tables at fit time, kept by the synthetic rows at sample time.

A generator learns marginals and correlations, not logic: it ships orders before they are ordered, pairs a city
with another city's country and leaves orders without lines. This package finds, cheaply (vectorised, on a
subsample of big tables), the rules that hold on all or nearly all real rows:

- `order`: one column of a row is at most another (order_date <= shipped_date; birth_date + a minimum gap <= hire_date);
- `parent_order`: a child column is at least (or at most) a column of its parent row (payment after its rental);
- `parent_equal`: a child column repeats its parent's column in a share of rows (a line's price is its product's);
- `dependency`: a category column determined by another of its table (city -> country);
- `min_children`: every parent has at least so many children (no order without lines).

Rules hold aggregates only (shares, gap quantiles, counts); a dependency's value mapping lives in the table
model, as the generator's categories do. `enforce` repairs a synthetic chunk so that exact rules (share 1) have
no violation and approximate ones keep their real share, by redrawing the dependent value from the learned gaps
rather than clipping it to the bound; `violations` counts what a set of synthetic tables breaks.

One module a family (`orders`, `equals`, `dependency`, `children`) over `core`; this module puts them
together: `discover`, `select`, `enforce`, `violations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import children, core, dependency, equals, orders
from genesis_pipelines.engine.analysis.rules.core import Rule
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import RulesSpec


def discover(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *, private: Mapping[str, set[str]] | None = None,
             seed: int = 0, dependencies: bool = True) -> list[Rule]:
    """Every rule of every table. `private`: per table, columns whose values are replaced at generation (PII);
    `dependencies=False` leaves those out (training finds them on the training split, with their mappings)."""
    private = private or {}
    rules: list[Rule] = []
    for name in schema.generation_order:
        df, meta = tables[name], schema.tables[name]
        rules += orders.find_orders(name, df, meta, schema.key_columns(name), seed)
        if dependencies:
            learnable = df[[c for c in df.columns if c not in schema.key_columns(name)]]
            rules += dependency.dependency_rules(name, dependency.find_dependencies(learnable, meta, private.get(name, set()), seed))
    for fk in schema.foreign_keys:
        child, parent = tables[fk.child_table], tables[fk.parent_table]
        rules += orders.find_parent_orders(fk, child, parent, schema, seed)
        rules += equals.find_parent_equals(fk, child, parent, schema, seed)
        rules += children.find_min_children(fk, child, parent)
    return rules


def select(rules: Iterable[Rule], spec: RulesSpec) -> list[Rule]:
    """The rules the spec leaves on (none when switched off; else all but those disabled by id or kind)."""
    off = set(spec.disabled)
    return [r for r in rules if spec.enabled and r.id not in off and r.kind not in off]


def enforce(rules: list[Rule], body: pd.DataFrame, parents: Mapping[str, pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
    """One synthetic chunk with its keys assigned, repaired to keep the table's rules: parent values copied into the
    real share of rows, then orderings (a dependent value redrawn from the real gaps where broken, beyond the real
    share of broken rows). Dependencies are kept when rows are drawn, children counts when keys are assigned."""
    if not rules or body.empty:
        return body
    body = body.reset_index(drop=True).copy()
    core.ENFORCING.cache = {}
    try:
        body = orders.repair_orders(rules, body, parents, rng)  # orderings first, so a copied parent value is not redrawn
        body = equals.repair_equals(rules, body, parents, rng)
        return orders.repair_orders(rules, body, parents, rng)
    finally:
        core.ENFORCING.cache = None


def violations(rules: Iterable[Rule], tables: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Per rule, how the synthetic `tables` keep it: {rule, kind, table, real_share, synthetic_share, violations}.

    `violations` counts rows breaking an ordering or a dependency (a row whose target is not the commonest one for
    its source value), rows short of the parent value share, or parents with fewer children than the minimum.
    Rules whose tables or columns are absent are left out."""
    out = []
    for rule in rules:
        body = tables.get(rule.table)
        if body is None:
            continue
        body = body.reset_index(drop=True)
        if rule.kind in ("order", "parent_order"):
            sides = orders.rule_sides(rule, body, tables)
            if sides is None:
                continue
            low, high = sides
            present = ~np.isnan(low) & ~np.isnan(high)
            broken = int((~orders.rule_holds(rule, low, high)).sum())
            total = int(present.sum())
            share = 1 - broken / total if total else 1.0
            count = broken if rule.share >= 1 else max(0, broken - int(np.floor((1 - rule.share) * total + 1e-9)))
        elif rule.kind == "parent_equal":
            parent = tables.get(rule.parent_table)
            if parent is None or rule.columns[0] not in body or not core.has_key(body, rule.fk_column):
                continue
            theirs = core.joined(parent, rule.parent_column, core.positions(parent, rule.parent_key, body, rule.fk_column))
            equal, present = equals.equals_parent(body[rule.columns[0]], theirs)
            total = int(present.sum())
            share = float(equal.sum() / total) if total else 1.0
            count = max(0, int(round(rule.share * total)) - int(equal.sum()))
        elif rule.kind == "dependency":
            if not set(rule.columns) <= set(body.columns):
                continue
            source, target = body[rule.columns[0]], body[rule.columns[1]]
            pairs = pd.DataFrame({"a": source.astype(str), "b": target.astype(str).where(target.notna(), core.NULL_TOKEN)})[
                source.notna().to_numpy()]
            total = len(pairs)
            kept = int(pairs.value_counts().groupby(level=0).max().sum()) if total else 0
            share = kept / total if total else 1.0
            count = max(0, int(np.ceil(rule.share * total - 1e-9)) - kept)
        else:  # min_children
            parent = tables.get(rule.parent_table)
            if parent is None or not core.has_key(body, rule.columns[0]):
                continue
            positions = core.positions(parent, rule.parent_column, body, rule.columns[0])
            counts = np.bincount(positions[positions >= 0], minlength=len(parent))
            total = len(parent)
            count = int((counts < rule.min_count).sum())
            share = 1 - count / total if total else 1.0
        out.append({"rule": rule.id, "kind": rule.kind, "table": rule.table, "real_share": round(rule.share, 4),
                    "synthetic_share": round(float(share), 4), "violations": int(count)})
    return out
