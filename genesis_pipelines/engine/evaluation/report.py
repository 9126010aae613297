"""Render quality and privacy reports as one self-contained HTML file and as a short markdown table.

The inputs are the dicts from `quality_report` / `privacy_report`, which carry aggregates only, so
whatever is rendered here is safe to publish; charts are drawn from those same dicts: scores, k-suppressed
histograms (categories labelled by frequency rank unless the spec marks a column public), association
matrices, children-per-parent shares, DCR histograms and ROC curves. Static matplotlib PNGs inlined as
base64 keep the file self-contained (no script, no network).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import jinja2
import numpy as np
from matplotlib.figure import Figure

_TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=jinja2.select_autoescape(["html", "j2"]),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
MAX_CHART_COLUMNS = 60
MAX_PLOT_COLUMNS = 30  # distribution panels and heatmap rows per table: keeps rendering to seconds


def _png(fig: Figure, *, tight: bool = True, dpi: int = 90) -> str:
    # bbox_inches="tight" draws the figure twice; grids lay themselves out with subplots_adjust instead
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(labels: list[str], values: list[float], *, xlabel: str, xmax: float,
          lines: tuple[tuple[float, str], ...] = ()) -> str:
    # Figure (not pyplot): no global state, so rendering is safe inside a threaded Dagster run.
    fig = Figure(figsize=(7, 0.8 + 0.28 * len(labels)))
    ax = fig.subplots()
    ax.barh(range(len(labels)), values, color="#3e7cb1")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax)
    ax.set_xlabel(xlabel)
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


def _distribution_grid(distributions: dict[str, dict]) -> str | None:
    """Real vs synthetic shares per column, from the k-suppressed histograms the report carries."""
    items = list(distributions.items())[:MAX_PLOT_COLUMNS]
    if not items:
        return None
    ncols = min(3, len(items))
    nrows = -(-len(items) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.7 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (column, d) in zip(axes, items):
        if d.get("kind") == "numeric":
            edges = np.asarray(d["edges"])
            widths = np.diff(edges)
            dens_r, dens_s = np.asarray(d["real"]) / widths, np.asarray(d["synthetic"]) / widths
            ax.stairs(dens_r, edges, fill=True, color=REAL, alpha=0.45, label="real")
            ax.stairs(dens_s, edges, color=SYNTH, linewidth=1.6, label="synthetic")
            ax.set_yticks([])
            ax.tick_params(axis="x", labelsize=7)
            if d.get("unit"):
                ax.set_xlabel(d["unit"], fontsize=7)
        else:
            x = np.arange(len(d["labels"]))
            ax.bar(x - 0.2, d["real"], width=0.4, color=REAL, label="real")
            ax.bar(x + 0.2, d["synthetic"], width=0.4, color=SYNTH, label="synthetic")
            ax.set_xticks(x, [str(label)[:12] for label in d["labels"]], fontsize=7, rotation=60 if len(x) > 6 else 0)
            ax.tick_params(axis="y", labelsize=7)
        ax.set_title(column, fontsize=9)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.subplots_adjust(left=0.04, right=0.98, top=1 - 0.35 / nrows, bottom=0.9 / (2.7 * nrows), hspace=0.75, wspace=0.18)
    return _png(fig, tight=False, dpi=72)


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
    size = min(5.5, 1.5 + 0.18 * len(columns))
    fig = Figure(figsize=(3 * size + 1.5, size))
    axes = fig.subplots(1, 3)
    panels = ((real, "real", "RdBu_r", -1, 1), (synth, "synthetic", "RdBu_r", -1, 1),
              (np.abs(real - synth), "|difference|", "Reds", 0, 1))
    images = []
    for ax, (matrix, title, cmap, lo, hi) in zip(axes, panels):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=lo, vmax=hi)
        images.append(image)
        ticks = range(len(columns))
        fontsize = 7 if len(columns) <= 15 else 5
        ax.set_xticks(ticks, columns, rotation=90, fontsize=fontsize)
        ax.set_yticks(ticks, columns if ax is axes[0] else [""] * len(columns), fontsize=fontsize)
        ax.set_title(title, fontsize=9)
    fig.colorbar(images[0], ax=list(axes[:2]), shrink=0.7)
    fig.colorbar(images[2], ax=axes[2], shrink=0.7)
    return _png(fig, dpi=72)


def _count_plot(dist: dict) -> str:
    fig = Figure(figsize=(6, 2.6))
    ax = fig.subplots()
    x = np.arange(len(dist["labels"]))
    ax.bar(x - 0.2, dist["real"], width=0.4, color=REAL, label="real")
    ax.bar(x + 0.2, dist["synthetic"], width=0.4, color=SYNTH, label="synthetic")
    ax.set_xticks(x, dist["labels"], fontsize=7, rotation=60 if len(x) > 12 else 0)
    ax.set_xlabel("children per parent")
    ax.set_ylabel("share of parents")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _quality_detail_charts(report: dict) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"distributions": {}, "heatmaps": {}, "children": {}}
    for name, t in report.get("tables", {}).items():
        if t.get("distributions"):
            out["distributions"][name] = _distribution_grid(t["distributions"])
        if t.get("pairs"):
            chart = _heatmaps(t["pairs"])
            if chart:
                out["heatmaps"][name] = chart
    for label, r in (report.get("relationships") or {}).items():
        if r.get("distribution"):
            out["children"][label] = _count_plot(r["distribution"])
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
    fig = Figure(figsize=(6, 2.6))
    ax = fig.subplots()
    ax.stairs(hist["synthetic"], edges, fill=True, color=SYNTH, alpha=0.5, label="synthetic → train")
    if len(hist.get("holdout") or []) == len(edges) - 1:
        holdout = np.asarray(hist["holdout"], dtype=float)
        if np.all(holdout == np.round(holdout)):  # counts of real rows: bins under k are not drawn
            holdout = np.where(holdout < k, 0.0, holdout)
        ax.stairs(holdout, edges, color=REAL, linewidth=1.6, label="holdout → train")
    ax.set_xlabel("distance to closest training record")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _roc(mia: dict) -> str | None:
    curves = {name: a["roc"] for name, a in mia.items()
              if isinstance(a, dict) and isinstance(a.get("roc"), dict) and a["roc"].get("fpr") and a["roc"].get("tpr")}
    if not curves:
        return None
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    for name, roc in curves.items():
        auc = mia[name].get("auc")
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {auc:.3f})" if isinstance(auc, (int, float)) else name)
    ax.plot([0, 1], [0, 1], color="#829ab1", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
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


def render_html(report: dict, *, title: str, kind: str, charts: bool = True) -> str:
    """`kind` is "quality" or "privacy"; the page embeds its CSS and PNG charts, so it travels as one file."""
    kind = _kind(kind)
    overview, per_table, detail = None, {}, {}
    if charts:
        overview, per_table = (_quality_charts if kind == "quality" else _privacy_charts)(report)
        detail = (_quality_detail_charts if kind == "quality" else _privacy_detail_charts)(report)
    template = _ENV.get_template("report.html.j2")
    return template.render(report=report, title=title, kind=kind, overview_chart=overview, charts=per_table,
                           detail=detail)


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
            f"utility ratio {_cell(utility.get('utility_ratio'), 2)}",
            "",
            "| table | rows real | rows synthetic | column shapes | pair trends |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, t in tables.items():
            lines.append(f"| {_escape(name)} | {t.get('row_count_real')} | {t.get('row_count_synthetic')} | "
                         f"{_cell(t.get('column_shapes'))} | {_cell(t.get('pair_trends'))} |")
        advice = [r for r in report.get("recommendations", []) if r.get("severity") != "info"][:5]
        if advice:
            lines += ["", "**Recommendations**", *(f"- {_escape(r['text'])}" for r in advice)]
        return "\n".join(lines)
    gates = ", ".join(f"{g} {'passed' if ok else 'FAILED'}" for g, ok in report.get("passed", {}).items()) or "none evaluated"
    lines = [
        f"**Unique-record copies {report.get('unique_record_copies', 0)}** · copy rate {_cell(report.get('copy_rate'), 4)} · "
        f"max share closer to train {_cell(report.get('max_share_closer_to_train'), 3)} · gates: {gates}",
        "",
        "| table | synthetic rows | copies | unique-record copies | holdout copy rate | share closer to train |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, t in tables.items():
        ec, dcr = t.get("exact_copies", {}), t.get("dcr", {})
        unique = f"{ec.get('unique_record_copies')}" + ("" if t.get("in_copy_gate", True) else " (not gated)")
        lines.append(f"| {_escape(name)} | {ec.get('synthetic_rows')} | {ec.get('copies')} | {unique} | "
                     f"{_cell(ec.get('holdout_baseline_rate'), 4)} | {_cell(dcr.get('share_closer_to_train'), 3)} |")
    return "\n".join(lines)
