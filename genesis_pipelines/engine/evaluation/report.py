"""Render quality and privacy reports as one self-contained HTML file and as a short markdown table.

The inputs are the dicts from `quality_report` / `privacy_report`, which carry aggregates only, so
whatever is rendered here is safe to publish; charts are drawn from those same dicts: scores, k-suppressed
histograms (categories labelled by frequency rank unless the spec marks a column public), association
matrices, children-per-parent shares, DCR histograms and ROC curves. Static matplotlib PNGs inlined as
base64 keep the file self-contained (no script, no network).
The page leads with its verdict (`verdict`): what passed, what to look at, and why expected things (copies in a
table with one or two columns) are expected; plots with a single bin and table columns that are n/a everywhere
are left out.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import numpy as np
from matplotlib.figure import Figure

from genesis_pipelines.engine.evaluation.catalog import number_text, percent

_TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=jinja2.select_autoescape(["html", "j2"]),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
MAX_CHART_COLUMNS = 60
MAX_PLOT_COLUMNS = 30  # distribution panels and heatmap rows per table: keeps rendering to seconds


FONT = 11  # points: readable at the page's width without zooming


def _png(fig: Figure, *, tight: bool = True, dpi: int = 100) -> str:
    # bbox_inches="tight" draws the figure twice; grids lay themselves out with subplots_adjust instead
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(labels: list[str], values: list[float], *, xlabel: str, xmax: float,
          lines: tuple[tuple[float, str], ...] = ()) -> str:
    # Figure (not pyplot): no global state, so rendering is safe inside a threaded Dagster run.
    fig = Figure(figsize=(10, 1.2 + 0.38 * len(labels)))
    ax = fig.subplots()
    ax.barh(range(len(labels)), values, color="#3e7cb1")
    ax.set_yticks(range(len(labels)), labels, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax)
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.tick_params(axis="x", labelsize=FONT - 1)
    for x, color in lines:
        ax.axvline(x, color=color, linestyle="--", linewidth=1)
    return _png(fig)


def _quality_charts(report: dict) -> tuple[str | None, dict[str, str]]:
    tables = {n: t for n, t in report.get("tables", {}).items() if t.get("column_shapes") is not None}
    overview = None
    if tables:
        labels = [f"{n} · shapes" for n in tables] + [f"{n} · pairs" for n, t in tables.items() if t.get("pair_trends") is not None]
        values = [t["column_shapes"] for t in tables.values()] + [t["pair_trends"] for t in tables.values() if t.get("pair_trends") is not None]
        overview = _bars(labels, values, xlabel="score (0-100)", xmax=100)
    per_table = {}
    for name, t in tables.items():
        columns = sorted(t.get("columns", {}).items(), key=lambda kv: kv[1].get("score") or 0.0)[:MAX_CHART_COLUMNS]
        if columns:
            per_table[name] = _bars([c for c, _ in columns], [v.get("score") or 0.0 for _, v in columns],
                                    xlabel="column shape score (0-1, lowest first)", xmax=1.0)
    return overview, per_table


REAL, SYNTH, HOLDOUT = "#3e7cb1", "#f0a202", "#829ab1"


def informative(d: dict) -> bool:
    """A distribution worth a plot: at least two bins or categories that hold rows (a single bar says nothing)."""
    real, synth = d.get("real") or [], d.get("synthetic") or []
    if len(real) < 2:
        return False
    filled = [i for i in range(len(real)) if (real[i] or 0) > 0 or (i < len(synth) and (synth[i] or 0) > 0)]
    return len(filled) >= 2


def _distribution_grid(distributions: dict[str, dict]) -> str | None:
    """Real vs synthetic shares per column, from the k-suppressed histograms the report carries."""
    items = [(c, d) for c, d in distributions.items() if informative(d)][:MAX_PLOT_COLUMNS]
    if not items:
        return None
    ncols = min(2, len(items))
    nrows = -(-len(items) // ncols)
    height = 3.8
    fig = Figure(figsize=(6.4 * ncols, height * nrows), layout="constrained")  # labels never clipped
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (column, d) in zip(axes, items):
        if d.get("kind") == "numeric":
            edges = np.asarray(d["edges"])
            widths = np.diff(edges)
            dens_r, dens_s = np.asarray(d["real"]) / widths, np.asarray(d["synthetic"]) / widths
            ax.stairs(dens_r, edges, fill=True, color=REAL, alpha=0.45, label="real")
            ax.stairs(dens_s, edges, color=SYNTH, linewidth=2, label="synthetic")
            ax.set_yticks([])
            ax.set_ylabel("density", fontsize=FONT - 1)
            ax.tick_params(axis="x", labelsize=FONT - 2)
            ax.xaxis.get_offset_text().set_fontsize(FONT - 2)
            ax.set_xlabel(d.get("unit") or "value", fontsize=FONT - 1)
        else:
            x = np.arange(len(d["labels"]))
            ax.bar(x - 0.2, d["real"], width=0.4, color=REAL, label="real")
            ax.bar(x + 0.2, d["synthetic"], width=0.4, color=SYNTH, label="synthetic")
            ax.set_xticks(x, [str(label)[:12] for label in d["labels"]], fontsize=FONT - 2, rotation=60 if len(x) > 8 else 0)
            ax.tick_params(axis="y", labelsize=FONT - 2)
            ax.set_ylabel("share of rows", fontsize=FONT - 1)
            ax.set_xlabel("category (by frequency rank)" if str(d["labels"][0]).startswith("#") else "category",
                          fontsize=FONT - 1)
        ax.set_title(column, fontsize=FONT + 1)
        ax.legend(fontsize=FONT - 2)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    return _png(fig, tight=False, dpi=80)


def association_matrices(pairs: dict[str, dict], *, limit: int = MAX_PLOT_COLUMNS) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Real and synthetic association (Pearson, Cramér's V or correlation ratio) as column x column matrices."""
    columns: list[str] = []
    for key in pairs:
        for c in key.split("|", 1):
            if c not in columns and len(columns) < limit:
                columns.append(c)
    index = {c: i for i, c in enumerate(columns)}
    real = np.full((len(columns), len(columns)), np.nan)
    synth = real.copy()
    np.fill_diagonal(real, 1.0)
    np.fill_diagonal(synth, 1.0)
    for key, p in pairs.items():
        a, b = key.split("|", 1)
        if a in index and b in index and p.get("real") is not None and p.get("synthetic") is not None:
            real[index[a], index[b]] = real[index[b], index[a]] = p["real"]
            synth[index[a], index[b]] = synth[index[b], index[a]] = p["synthetic"]
    return columns, real, synth


def _heatmaps(pairs: dict[str, dict]) -> str | None:
    columns, real, synth = association_matrices(pairs)
    if len(columns) < 2:
        return None
    size = min(6.5, 2.6 + 0.25 * len(columns))
    fig = Figure(figsize=(3 * size + 2, size + 0.8))
    axes = fig.subplots(1, 3)
    panels = ((real, "real", "RdBu_r", -1, 1), (synth, "synthetic", "RdBu_r", -1, 1),
              (np.abs(real - synth), "|difference|", "Reds", 0, 1))
    images = []
    fontsize = FONT - 1 if len(columns) <= 12 else FONT - 3
    for ax, (matrix, title, cmap, lo, hi) in zip(axes, panels):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=lo, vmax=hi)
        images.append(image)
        ticks = range(len(columns))
        ax.set_xticks(ticks, columns, rotation=90, fontsize=fontsize)
        ax.set_yticks(ticks, columns if ax is axes[0] else [""] * len(columns), fontsize=fontsize)
        ax.set_title(title, fontsize=FONT + 1)
    fig.colorbar(images[0], ax=list(axes[:2]), shrink=0.7).ax.tick_params(labelsize=FONT - 2)
    fig.colorbar(images[2], ax=axes[2], shrink=0.7).ax.tick_params(labelsize=FONT - 2)
    return _png(fig, dpi=80)


def _count_plot(dist: dict) -> str | None:
    if not informative(dist):
        return None
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    x = np.arange(len(dist["labels"]))
    ax.bar(x - 0.2, dist["real"], width=0.4, color=REAL, label="real")
    ax.bar(x + 0.2, dist["synthetic"], width=0.4, color=SYNTH, label="synthetic")
    ax.set_xticks(x, dist["labels"], fontsize=FONT - 1, rotation=60 if len(x) > 12 else 0)
    ax.tick_params(axis="y", labelsize=FONT - 1)
    ax.set_xlabel("children per parent", fontsize=FONT)
    ax.set_ylabel("share of parents", fontsize=FONT)
    ax.legend(fontsize=FONT - 1)
    fig.tight_layout()
    return _png(fig)


def _quality_detail_charts(report: dict) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"distributions": {}, "heatmaps": {}, "children": {}}
    for name, t in report.get("tables", {}).items():
        chart = _distribution_grid(t["distributions"]) if t.get("distributions") else None
        if chart:
            out["distributions"][name] = chart
        if t.get("pairs"):
            chart = _heatmaps(t["pairs"])
            if chart:
                out["heatmaps"][name] = chart
    for label, r in (report.get("relationships") or {}).items():
        chart = _count_plot(r["distribution"]) if r.get("distribution") else None
        if chart:
            out["children"][label] = chart
    return out


def _privacy_charts(report: dict) -> tuple[str | None, dict[str, str]]:
    shares = {n: t["dcr"]["share_closer_to_train"] for n, t in report.get("tables", {}).items()
              if (t.get("dcr") or {}).get("share_closer_to_train") is not None}
    if not shares:
        return None, {}
    limit = report.get("thresholds", {}).get("dcr_share_max")
    lines = ((0.5, "#829ab1"),) + (((limit, "#b42318"),) if limit is not None else ())
    return _bars(list(shares), list(shares.values()), xlabel="share of synthetic rows closer to train (grey: 0.5 ideal, red: threshold)",
                 xmax=1.0, lines=lines), {}


def _dcr_histogram(hist: dict, k: int = 5) -> str | None:
    edges = np.asarray(hist.get("edges") or [])
    if len(edges) < 2 or len(hist.get("synthetic") or []) != len(edges) - 1:
        return None
    synthetic = np.asarray(hist["synthetic"], dtype=float)
    holdout = None
    if len(hist.get("holdout") or []) == len(edges) - 1:
        holdout = np.asarray(hist["holdout"], dtype=float)
        if np.all(holdout == np.round(holdout)):  # counts of real rows: bins under k are not drawn
            holdout = np.where(holdout < k, 0.0, holdout)
    filled = (synthetic > 0) | (holdout > 0 if holdout is not None else False)
    if filled.sum() < 2:  # every distance in one bin (all zero, or all the same): a bar that says nothing
        return None
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    ax.stairs(synthetic, edges, fill=True, color=SYNTH, alpha=0.5, label="synthetic → train")
    if holdout is not None:
        ax.stairs(holdout, edges, color=REAL, linewidth=2, label="holdout → train")
    ax.set_xlabel("distance to closest training record", fontsize=FONT)
    ax.set_ylabel("rows", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.legend(fontsize=FONT - 1)
    fig.tight_layout()
    return _png(fig)


def _roc(mia: dict) -> str | None:
    curves = {name: a["roc"] for name, a in mia.items()
              if isinstance(a, dict) and isinstance(a.get("roc"), dict) and a["roc"].get("fpr") and a["roc"].get("tpr")}
    if not curves:
        return None
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, roc in curves.items():
        auc = mia[name].get("auc")
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {auc:.3f})" if isinstance(auc, (int, float)) else name)
    ax.plot([0, 1], [0, 1], color="#829ab1", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate", fontsize=FONT)
    ax.set_ylabel("true positive rate", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.legend(fontsize=FONT - 1)
    fig.tight_layout()
    return _png(fig)


def _privacy_detail_charts(report: dict) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"dcr": {}, "roc": {}}
    for name, t in report.get("tables", {}).items():
        hist = (t.get("dcr") or {}).get("histogram")
        if isinstance(hist, dict):
            chart = _dcr_histogram(hist)
            if chart:
                out["dcr"][name] = chart
        if isinstance(t.get("mia"), dict):
            chart = _roc(t["mia"])
            if chart:
                out["roc"][name] = chart
    return out


def _kind(kind: str) -> str:
    # Asset names ("quality_report") are accepted as well as the bare kind.
    bare = kind.removesuffix("_report")
    if bare not in ("quality", "privacy"):
        raise ValueError(f"unknown report kind {kind!r}: expected 'quality' or 'privacy'")
    return bare


def report_context(*, dataset: str, model_version: str, seed: int, source_fingerprint: str,
                   quality_min: float | None = None, generated_at: str | None = None) -> dict:
    """What the report's header names: when it was made, from which model, seed and source snapshot (and the
    quality minimum the verdict compares with)."""
    stamp = generated_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"dataset": dataset, "model_version": model_version, "seed": seed, "source_fingerprint": source_fingerprint,
            "quality_min": quality_min, "generated_at": stamp}


_COMPONENTS = (("column_shapes", "Column shapes", "each column's distribution"),
               ("pair_trends", "Pair trends", "how pairs of columns move together"),
               ("cardinality", "Cardinality", "children per parent"),
               ("parent_child_trends", "Parent-child trends", "columns across a foreign key"))


def _quality_verdict(report: dict, quality_min: float | None) -> dict:
    score, grade_ = report.get("overall_score"), report.get("grade") or "n/a"
    if score is None:
        headline, ok = "Not scored: no table had rows to compare.", False
    elif quality_min is None:
        headline, ok = f"Grade {grade_}: fidelity {number_text(score, 3)} of 100.", score >= 70
    else:
        ok = score >= quality_min
        headline = (f"Grade {grade_}: fidelity {number_text(score, 3)} of 100, "
                    f"{'above' if ok else 'below'} the quality minimum of {number_text(quality_min)}.")
    good, look = [], []
    for key, label, what in _COMPONENTS:
        value = report.get(key)
        if value is None:
            continue
        (good if value >= 80 else look).append(f"{label} {number_text(value, 3)} ({what})")
    utility = report.get("utility") or {}
    if utility.get("utility_ratio") is not None:
        metric = {"roc_auc": "ROC AUC", "r2": "R²"}.get(utility.get("primary_metric"), utility.get("primary_metric"))
        text = (f"Utility: models trained on synthetic rows predict {utility.get('target')} with "
                f"{percent(utility['utility_ratio'])} of the {metric} of models trained on real rows")
        (good if utility["utility_ratio"] >= 0.9 else look).append(text)
    elif utility.get("skipped"):
        look.append(f"Utility not measured: {utility['skipped']}")
    advice = [r["text"] for r in report.get("recommendations", []) if r.get("severity") in ("high", "medium")]
    skipped = [n for n, t in (report.get("tables") or {}).items() if t.get("skipped")]
    notes = [f"Not scored (no comparable columns or rows): {', '.join(skipped)}."] if skipped else []
    return {"ok": ok, "headline": headline, "good": good, "look": look, "advice": advice[:3],
            "more_advice": max(0, len(advice) - 3), "notes": notes}


def _privacy_verdict(report: dict) -> dict:
    gates = report.get("gates") or {}
    failed = [g for g, v in gates.items() if v.get("passed") is False]
    ok = bool(gates) and not failed
    names = {"exact_copies_max": "copies of unique real records", "dcr_share_max": "closeness to training rows",
             "mia_auc_max": "membership inference", "singling_out_max": "singling out", "linkability_max": "linkability"}
    skipped_gates = list(report.get("skipped_gates") or {})
    if not gates:
        headline = "No privacy gate could be evaluated."
    elif ok:
        headline = ("The one privacy gate that could be evaluated passed: " if len(gates) == 1 else
                    f"All {len(gates)} privacy gates passed: ") + ", ".join(names.get(g, g) for g in gates) + "."
    else:
        headline = f"{len(failed)} of {len(gates)} privacy gates FAILED: " + ", ".join(names.get(g, g) for g in failed) + "."
    if skipped_gates:
        headline += (f" {len(skipped_gates)} not evaluated (too little data): "
                     + ", ".join(names.get(g, g) for g in skipped_gates) + ".")
    good, look, notes = [], [], []
    unique = report.get("unique_record_copies")
    if unique == 0:
        good.append("No synthetic row copies a real record that is unique in the training rows"
                    + (f" (fresh real rows would give {number_text(report.get('unique_record_copies_baseline'), 2)})"
                       if report.get("unique_record_copies_baseline") else ""))
    elif unique:
        look.append(f"{unique} synthetic rows copy a real record unique in the training rows")
    share = report.get("max_share_closer_to_train")
    if share is not None:
        (good if share <= (report.get("thresholds") or {}).get("dcr_share_max", 0.6) else look).append(
            f"Synthetic rows sit no closer to training rows than to unseen real rows: largest share closer to train "
            f"{number_text(share, 3)} (0.5 is ideal, a copier scores 1)")
    auc = report.get("max_mia_auc")
    if auc is not None:
        (good if auc <= (report.get("thresholds") or {}).get("mia_auc_max", 0.6) else look).append(
            f"Membership inference: best attack AUC {number_text(auc, 3)} (0.5 is a coin toss)")
    tables = report.get("tables") or {}
    copies, rate = report.get("copies"), report.get("copy_rate")
    if copies:
        def columns(t: dict) -> str:
            n = t.get("columns_compared", 0)
            return f"{n} column{'s' if n != 1 else ''}"

        copying = {n: t for n, t in tables.items() if (t.get("exact_copies") or {}).get("copies")}
        kept = [n for n, t in copying.items() if t.get("reference_table")]
        few = [f"{n} ({columns(t)})" for n, t in copying.items() if not t.get("in_copy_gate", True) and n not in kept]
        shared = [f"{n} ({t['exact_copies']['copies']} rows, {columns(t)})" for n, t in copying.items()
                  if t.get("in_copy_gate", True) and not t["exact_copies"].get("unique_record_copies")]
        why = []
        if kept:
            why.append("reference tables (categories other tables point at, with no personal data) are kept as they "
                       f"are: {', '.join(kept)}")
        if few:
            why.append("in a table where fewer than two columns tell records apart, the same values recur among real "
                       f"rows too: {', '.join(few)}")
        if shared:
            why.append(f"the matches of {', '.join(shared)} are combinations that several real records share")
        notes.append(f"{copies} synthetic rows ({percent(rate)}) equal some real row in every compared column. "
                     + (f"That is expected: {'; '.join(why)}. " if why else "")
                     + "Such a match says nothing about one person; only copies of records unique in the training rows "
                       "are gated.")
    for name, t in tables.items():
        k = t.get("k_anonymity") or {}
        below, real_below = k.get("share_rows_below_k_target"), (k.get("real") or {}).get("share_rows_below_k_target")
        if below:
            look.append(f"{name}: {percent(below)} of synthetic rows share their quasi-identifiers with fewer than "
                        f"{k.get('k_target', 5)} rows (real data: {percent(real_below)})")
        for what, drivers in (("closeness to training rows", (t.get("dcr") or {}).get("driving_columns")),
                              ("membership inference", t.get("mia_driving_columns"))):
            if drivers:
                look.append(f"{name}: {what} driven most by " + ", ".join(d["column"] for d in drivers)
                            + " (the gate's value with each column left out is in the table's section)")
        if (t.get("dcr") or {}).get("gated") is False:
            notes.append(f"{name}: share closer to train reported, not gated (chance alone moves it by "
                         f"±{number_text(t['dcr'].get('share_chance_sd'), 2)}).")
    unattacked = [n for n, t in tables.items() if t.get("columns_compared", 0) == 0]
    if unattacked:
        notes.append(f"Nothing to attack (keys and replaced PII only): {', '.join(unattacked)}.")
    small = [n for n, t in tables.items() if t.get("columns_compared", 0) and "fewer than" in str((t.get("dcr") or {}).get("skipped", ""))]
    if small:
        notes.append(f"Holdout too small for distance attacks: {', '.join(small)}.")
    for gate, why in (report.get("skipped_gates") or {}).items():
        notes.append(f"Gate {gate} skipped: {why}.")
    return {"ok": ok, "headline": headline, "good": good, "look": look, "advice": [], "more_advice": 0, "notes": notes}


def verdict(report: dict, kind: str, *, quality_min: float | None = None) -> dict:
    """The plain-language summary a report leads with: a headline, what passed, what to look at, and notes."""
    return _quality_verdict(report, quality_min) if _kind(kind) == "quality" else _privacy_verdict(report)


def verdict_markdown(report: dict, kind: str, *, quality_min: float | None = None) -> str:
    """The verdict as markdown for Dagster metadata (aggregates only, like the report)."""
    v = verdict(report, kind, quality_min=quality_min)
    lines = [f"**{_escape(v['headline'])}**"]
    if v["good"]:
        lines += ["", "What passed:", *(f"- {_escape(t)}" for t in v["good"])]
    if v["look"]:
        lines += ["", "What to look at:", *(f"- {_escape(t)}" for t in v["look"])]
    if v["advice"]:
        lines += ["", "Top recommendations:", *(f"- {_escape(t)}" for t in v["advice"])]
    if v["notes"]:
        lines += ["", *(f"_{_escape(t)}_" for t in v["notes"])]
    return "\n".join(lines)


def _present(rows, *keys) -> list[str]:
    """The keys that hold a value in at least one row: a table column that is n/a everywhere is left out."""
    rows = list(rows.values()) if isinstance(rows, dict) else list(rows)
    return [k for k in keys if any(isinstance(r, dict) and r.get(k) is not None for r in rows)]


_ENV.globals["present"] = _present
_ENV.filters["num"] = lambda value, digits=4: number_text(value, digits)
_ENV.filters["pct"] = lambda value: percent(value)


def render_html(report: dict, *, title: str, kind: str, charts: bool = True, quality_min: float | None = None) -> str:
    """`kind` is "quality" or "privacy"; the page embeds its CSS and PNG charts, so it travels as one file.

    The page leads with a header (date, model version, seed, source fingerprint: `report["context"]`, see
    `report_context`) and the plain-language verdict, then a navigation bar and one collapsible section per table."""
    kind = _kind(kind)
    overview, per_table, detail = None, {}, {}
    if charts:
        overview, per_table = (_quality_charts if kind == "quality" else _privacy_charts)(report)
        detail = (_quality_detail_charts if kind == "quality" else _privacy_detail_charts)(report)
    if quality_min is None and kind == "quality":
        quality_min = (report.get("context") or {}).get("quality_min")
    template = _ENV.get_template("report.html.j2")
    return template.render(report=report, title=title, kind=kind, overview_chart=overview, charts=per_table,
                           detail=detail, context=report.get("context") or {"model_version": report.get("model_version")},
                           verdict=verdict(report, kind, quality_min=quality_min))


def _cell(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def summary_markdown(report: dict, kind: str) -> str:
    """A few lines for Dagster metadata: the headline numbers and one row per table."""
    kind = _kind(kind)
    tables = report.get("tables", {})
    if kind == "quality":
        utility = report.get("utility") or {}
        lines = [
            f"**Overall {_cell(report.get('overall_score'))} (grade {report.get('grade') or 'n/a'})** · column shapes "
            f"{_cell(report.get('column_shapes'))} · pair trends {_cell(report.get('pair_trends'))} · cardinality "
            f"{_cell(report.get('cardinality'))} · parent-child trends {_cell(report.get('parent_child_trends'))} · "
            f"utility ratio {percent(utility.get('utility_ratio')) if utility.get('utility_ratio') is not None else 'n/a'}",
            "",
            "| table | rows real | rows synthetic | column shapes | pair trends |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, t in tables.items():
            lines.append(f"| {_escape(name)} | {t.get('row_count_real')} | {t.get('row_count_synthetic')} | "
                         f"{_cell(t.get('column_shapes'))} | {_cell(t.get('pair_trends'))} |")
        conditioned = [a for a in report.get("conditioned") or [] if a.get("quality")]
        if conditioned:
            lines += ["", "**Conditioned rows** (beside the twin, not in the scores above)", "",
                      "| table | condition | rows | real rows meeting it | column shapes |", "|---|---|---:|---:|---:|"]
            for a in conditioned:
                for g in a["quality"]["groups"]:
                    condition = ", ".join(f"{c} = {v}" for c, v in g["condition"].items()) or "(rebalance)"
                    lines.append(f"| {_escape(a['table'])} | {_escape(condition)} | {g['rows']} | "
                                 f"{g['real_rows_matching']} | {_cell(g['column_shapes'], 3)} |")
        advice = [r for r in report.get("recommendations", []) if r.get("severity") != "info"][:5]
        if advice:
            lines += ["", "**Recommendations**", *(f"- {_escape(r['text'])}" for r in advice)]
        return "\n".join(lines)
    gates = ", ".join(f"{g} {'passed' if ok else 'FAILED'}" for g, ok in report.get("passed", {}).items()) or "none evaluated"
    lines = [
        f"**Unique-record copies {report.get('unique_record_copies', 0)}** · copy rate {percent(report.get('copy_rate'))} · "
        f"max share closer to train {_cell(report.get('max_share_closer_to_train'), 3)} · gates: {gates}",
        "",
        "| table | synthetic rows | copies | unique-record copies | holdout copy rate | share closer to train |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, t in tables.items():
        ec, dcr = t.get("exact_copies", {}), t.get("dcr", {})
        unique = f"{ec.get('unique_record_copies')}" + ("" if t.get("in_copy_gate", True) else " (not gated)")
        lines.append(f"| {_escape(name)} | {ec.get('synthetic_rows')} | {ec.get('copies')} | {unique} | "
                     f"{percent(ec.get('holdout_baseline_rate'))} | {_cell(dcr.get('share_closer_to_train'), 3)} |")
    return "\n".join(lines)
