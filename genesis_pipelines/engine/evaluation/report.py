"""Render quality and privacy reports as one self-contained HTML file and as a short markdown table.

The inputs are the dicts from `quality_report` / `privacy_report`, which carry aggregates only, so
whatever is rendered here is safe to publish; charts are drawn from those same scores.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import jinja2
from matplotlib.figure import Figure

_TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=jinja2.select_autoescape(["html", "j2"]),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
MAX_CHART_COLUMNS = 60


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
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


def _privacy_charts(report: dict) -> tuple[str | None, dict[str, str]]:
    shares = {n: t["dcr"]["share_closer_to_train"] for n, t in report.get("tables", {}).items()
              if t.get("dcr", {}).get("share_closer_to_train") is not None}
    if not shares:
        return None, {}
    limit = report.get("thresholds", {}).get("dcr_share_max")
    lines = ((0.5, "#829ab1"),) + (((limit, "#b42318"),) if limit is not None else ())
    return _bars(list(shares), list(shares.values()), xlabel="share of synthetic rows closer to train (grey: 0.5 ideal, red: threshold)",
                 xmax=1.0, lines=lines), {}


def _kind(kind: str) -> str:
    # Asset names ("quality_report") are accepted as well as the bare kind.
    bare = kind.removesuffix("_report")
    if bare not in ("quality", "privacy"):
        raise ValueError(f"unknown report kind {kind!r}: expected 'quality' or 'privacy'")
    return bare


def render_html(report: dict, *, title: str, kind: str, charts: bool = True) -> str:
    """`kind` is "quality" or "privacy"; the page embeds its CSS and PNG charts, so it travels as one file."""
    kind = _kind(kind)
    overview, per_table = None, {}
    if charts:
        overview, per_table = (_quality_charts if kind == "quality" else _privacy_charts)(report)
    template = _ENV.get_template("report.html.j2")
    return template.render(report=report, title=title, kind=kind, overview_chart=overview, charts=per_table)


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
        lines = [
            f"**Overall {_cell(report.get('overall_score'))}** · column shapes {_cell(report.get('column_shapes'))} · "
            f"pair trends {_cell(report.get('pair_trends'))} · cardinality {_cell(report.get('cardinality'))}",
            "",
            "| table | rows real | rows synthetic | column shapes | pair trends |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, t in tables.items():
            lines.append(f"| {_escape(name)} | {t.get('row_count_real')} | {t.get('row_count_synthetic')} | "
                         f"{_cell(t.get('column_shapes'))} | {_cell(t.get('pair_trends'))} |")
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
