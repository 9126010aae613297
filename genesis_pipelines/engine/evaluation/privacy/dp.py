"""What a differentially private generator spent, per table and for the dataset (basic composition)."""

from __future__ import annotations

from collections.abc import Mapping

from genesis_pipelines.engine.analysis.columns import num


def dp_entry(describe: Mapping | None) -> dict:
    """What a DP generator spent and what it covers, from its describe() (aggregates the generator reports)."""
    describe = describe or {}
    if describe.get("epsilon_spent") is None:
        return {"epsilon_spent": None, "delta": None, "guarantee": "none: the generator is not differentially private"}
    delta = describe.get("delta_spent", describe.get("delta"))
    out = {"epsilon_spent": num(describe["epsilon_spent"]), "delta": num(delta) if delta is not None else None,
           "guarantee": str(describe.get("dp_guarantee", "differential privacy of the training rows"))}
    if isinstance(describe.get("budget"), Mapping):
        out["budget"] = {str(k): num(v) for k, v in describe["budget"].items()}
    out["accountant"] = str(describe.get("accountant", "basic composition"))
    for key in ("dp_covers", "dp_not_covered"):
        if isinstance(describe.get(key), list):
            out[key.removeprefix("dp_")] = [str(v) for v in describe[key]]
    return out


def dp_summary(tables: Mapping[str, Mapping]) -> dict:
    """The dataset's guarantee from its tables' DP entries: each table's model is DP for one row of that table; a
    person with rows in several tables (or several rows) is covered by composition, so the dataset-level epsilon is
    the sum over the DP tables (basic composition, row-level), and any table without DP voids a dataset guarantee."""
    dp = {name: t["dp"] for name, t in tables.items() if isinstance(t.get("dp"), Mapping)}
    private = {n: d for n, d in dp.items() if d.get("epsilon_spent") is not None}
    if not private:
        return {"dataset_epsilon": None, "statement": "no table was synthesised with a DP generator"}
    eps = sum(float(d["epsilon_spent"]) for d in private.values())
    delta = sum(float(d["delta"] or 0.0) for d in private.values())
    public = sorted(set(dp) - set(private))
    statement = (f"each of {len(private)} DP table(s) is ({'/'.join(format(float(d['epsilon_spent']), '.3g') for d in private.values())})"
                 f"-DP for adding or removing one of its rows (row-level); a person whose rows span those tables is "
                 f"covered at epsilon {eps:.3g}, delta {delta:.2g} (the sum over tables: basic composition), and a person "
                 "with k rows in one table at k times that table's epsilon (group privacy). Not covered: keys and "
                 "children-per-parent counts learned by the relational layer, the schema and row counts")
    if public:
        statement += f"; {len(public)} table(s) were synthesised without DP, so the dataset as a whole carries no DP guarantee"
    return {"dataset_epsilon": num(eps) if not public else None, "dataset_delta": num(delta) if not public else None,
            "dp_tables": len(private), "non_dp_tables": len(public), "unit": "one row (row-level); people by composition",
            "statement": statement}
