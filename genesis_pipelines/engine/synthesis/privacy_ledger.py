"""The privacy budget ledger of one dataset: every DP training's spend, added up over all models on the same people.

`<data dir>/<ds>/privacy_ledger.json` is append-only (entries are never changed or removed; each write is atomic).
Each DP-trained table of a published model adds an entry: model version, method, table, epsilon, delta, accountant,
source fingerprint, rows trained on, time, and, for Opacus' RDP accountant, its history (noise multiplier, sample
rate, steps) so the spends compose more tightly.

Lineage ("the same people"): every model of a dataset, whatever its source fingerprint. A drift retraining runs on a
changed source (new rows, edited rows) that still holds most of the people it held before, so its spend adds to the
earlier ones; each entry records the fingerprint it trained on, and the ledger lists them in training order. Tables
count together: one person's rows can sit in several tables (a customer and their invoices).

Cumulative spend: basic composition (sum of epsilons, sum of deltas) always; where every RDP-accounted entry has its
history, the RDP total (RDP curves added per order, converted once at the summed delta, plus the pure-DP parts by
basic composition); the tighter of the two is the cumulative spend a budget is checked against. No Dagster here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from genesis_pipelines.engine.core.errors import GenesisError

FORMAT = "genesis.privacy_ledger/1"
FILE_NAME = "privacy_ledger.json"
DP_METHODS = ("dp_marginals", "dp_gaussian_copula", "dp_ctgan", "dp_tvae", "dp_autoregressive")
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [128, 256, 512]


class PrivacyBudgetExceeded(GenesisError):
    """Training a new DP model would take the dataset's cumulative spend above its `privacy_budget`."""


def ledger_path(layout) -> Path:
    return Path(layout.privacy_ledger)


def read(layout) -> list[dict]:
    """The entries, oldest first (none when no DP model was trained yet)."""
    path = ledger_path(layout)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise GenesisError(f"privacy ledger {path} is unreadable: restore it from a backup (it is append-only "
                           "evidence; never delete it to free budget)") from None
    if data.get("format") != FORMAT or not isinstance(data.get("entries"), list):
        raise GenesisError(f"privacy ledger {path} has an unknown format")
    return data["entries"]


def entries_for(model) -> list[dict]:
    """What a trained model spent: one entry per table whose generator reports an epsilon (aggregates only)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for table, tm in model.tables.items():
        d = tm.describe
        if d.get("epsilon_spent") is None:
            continue
        delta = d.get("delta_spent", d.get("delta", d.get("dp_delta")))
        entry = {"model_version": model.version, "method": tm.method, "table": table,
                 "epsilon": float(d["epsilon_spent"]), "delta": float(delta or 0.0),
                 "accountant": str(d.get("accountant") or ("rdp (opacus)" if d.get("rdp_history") else "basic composition")),
                 "source_fingerprint": model.source_fingerprint, "rows": int(tm.train_rows), "recorded_at": now}
        if d.get("rdp_history"):
            entry["rdp"] = {"history": [[float(x) for x in h] for h in d["rdp_history"]],
                            "delta": float(d.get("rdp_delta", d.get("delta_sgd", 0.0))),
                            "epsilon_other": float(d.get("rdp_epsilon_other", d.get("epsilon_preprocessing", 0.0))),
                            "delta_other": float(d.get("rdp_delta_other", d.get("delta_preprocessing", 0.0)))}
        out.append(entry)
    return out


def record(layout, model) -> list[dict]:
    """Append the model's DP spend (call it under the dataset's writer lock, as train_model does)."""
    from genesis_pipelines.engine.sources.io import write_json

    new = entries_for(model)
    if new:
        entries = read(layout) + new
        write_json(ledger_path(layout), {"format": FORMAT, "entries": entries})
    return new


def cumulative(entries: list[dict]) -> dict:
    """Basic composition and, where the accountant allows, the RDP total; `epsilon`/`delta` is the tighter one."""
    basic_eps = sum(e["epsilon"] for e in entries)
    basic_delta = sum(e["delta"] for e in entries)
    out = {"entries": len(entries), "models": len({e["model_version"] for e in entries}),
           "basic": {"epsilon": basic_eps, "delta": basic_delta}, "rdp": None,
           "epsilon": basic_eps, "delta": basic_delta, "method": "basic composition"}
    with_rdp = [e for e in entries if e.get("rdp")]
    if not with_rdp:
        return out
    try:
        from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    except ImportError:
        return out
    import numpy as np

    rdp = np.zeros(len(RDP_ORDERS))
    for entry in with_rdp:
        for noise, rate, steps in entry["rdp"]["history"]:
            rdp = rdp + np.asarray(compute_rdp(q=rate, noise_multiplier=noise, steps=int(steps), orders=RDP_ORDERS))
    rdp_delta = sum(e["rdp"]["delta"] for e in with_rdp)
    if rdp_delta <= 0:
        return out
    eps_sgd, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=rdp_delta)
    others = [e for e in entries if not e.get("rdp")]
    eps = float(eps_sgd) + sum(e["rdp"]["epsilon_other"] for e in with_rdp) + sum(e["epsilon"] for e in others)
    delta = rdp_delta + sum(e["rdp"]["delta_other"] for e in with_rdp) + sum(e["delta"] for e in others)
    out["rdp"] = {"epsilon": eps, "delta": delta}
    if eps < basic_eps:
        out.update(epsilon=eps, delta=max(delta, 0.0), method="RDP (Opacus) for DP-SGD, basic for the rest")
    return out


def planned_spend(spec, rows: Mapping[str, int]) -> list[dict]:
    """What training the spec's DP tables would spend at most (their target epsilon and delta), before training.
    `rows`: training rows per table (for the default delta, dp_domain.default_delta); a table missing there counts
    epsilon only."""
    from genesis_pipelines.engine.synthesis.generators.base import registered_class
    from genesis_pipelines.engine.synthesis.generators.dp_domain import default_delta

    out = []
    for table in rows:
        method = spec.generator.method_for(table)
        if method not in DP_METHODS:
            continue
        settings = spec.generator.settings.get(method, {})
        cls = registered_class(method)
        params = inspect.signature(cls.__init__).parameters if cls is not None else {}
        eps = settings.get("epsilon", params["epsilon"].default if "epsilon" in params else 1.0)
        delta = settings.get("delta", params["delta"].default if "delta" in params else None)
        if delta is None:
            delta = default_delta(rows[table]) if rows.get(table) else 0.0
        out.append({"table": table, "method": method, "epsilon": float(eps), "delta": float(delta)})
    return out


def retraining_rows(layout, tables: list[str]) -> dict[str, int]:
    """Training rows per table for a retraining not started yet: the latest recorded ones (0 where none is)."""
    latest = {e["table"]: int(e.get("rows") or 0) for e in read(layout)}
    return {t: latest.get(t, 0) for t in tables}


def refusal(spec, layout, rows: Mapping[str, int]) -> str | None:
    """Why a new model may not be trained under the spec's `privacy_budget`, or None when it may."""
    budget = getattr(spec, "privacy_budget", None)
    if budget is None:
        return None
    planned = planned_spend(spec, rows)
    if not planned:
        return None
    spent = cumulative(read(layout))
    after = cumulative(read(layout) + [{**p, "model_version": "(new)"} for p in planned])
    over = []
    if after["epsilon"] > budget.epsilon + 1e-12:
        over.append(f"epsilon {after['epsilon']:.4g} > {budget.epsilon:g}")
    if budget.delta is not None and after["delta"] > budget.delta * (1 + 1e-9):
        over.append(f"delta {after['delta']:.3g} > {budget.delta:g}")
    if not over:
        return None
    return (f"dataset {spec.name!r}: a new DP model ({', '.join(p['table'] for p in planned)}: epsilon "
            f"{sum(p['epsilon'] for p in planned):.4g}) would exceed privacy_budget ({'; '.join(over)}; spent so far "
            f"epsilon {spent['epsilon']:.4g}, delta {spent['delta']:.3g} over {spent['models']} model(s)): training refused")


def check(spec, layout, rows: Mapping[str, int]) -> None:
    reason = refusal(spec, layout, rows)
    if reason:
        raise PrivacyBudgetExceeded(reason)


def summary(spec, layout) -> dict:
    """For the privacy report: the ledger's entries (aggregates), the cumulative spend and the budget left."""
    entries = read(layout)
    total = cumulative(entries)
    budget = getattr(spec, "privacy_budget", None)
    out = {"entries": [{k: e[k] for k in ("model_version", "method", "table", "epsilon", "delta", "accountant",
                                          "source_fingerprint", "recorded_at")} for e in entries],
           "fingerprints": list(dict.fromkeys(e["source_fingerprint"] for e in entries)),
           "cumulative": total, "budget": None}
    if budget is not None:
        out["budget"] = {"epsilon": budget.epsilon, "delta": budget.delta,
                         "epsilon_left": max(0.0, budget.epsilon - total["epsilon"]),
                         "delta_left": None if budget.delta is None else max(0.0, budget.delta - total["delta"])}
    return out
