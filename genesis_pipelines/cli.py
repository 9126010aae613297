"""`genesis`: the engine without Dagster, for laptops, notebooks and CI jobs.

It uses the same data dir (GENESIS_DATA_DIR) and warehouse (GENESIS_WAREHOUSE) as the Dagster code location,
so a model trained by one is used by the other. Progress and errors go to stderr; paths written go to stdout.
No `import dagster` here or below.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from genesis_pipelines import paths
from genesis_pipelines.engine.errors import GenesisError

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3


# ---------------------------------------------------------------- where things live (the same layout as GenesisStorage)


class Layout:
    """Files of one dataset under the data dir: models/, synthetic/, reports/, exports/, analysis JSON."""

    def __init__(self, data_dir: Path, dataset: str):
        self.root = Path(data_dir) / dataset

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def synthetic(self) -> Path:
        return self.root / "synthetic"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def exports(self, fmt: str) -> Path:
        return self.root / "exports" / fmt

    def analysis(self, name: str) -> Path:
        return self.root / f"{name}.json"


def _progress(message: str) -> None:
    print(f"genesis: {message}", file=sys.stderr, flush=True)


def _schema_name(kind: str, dataset: str) -> str:
    return f"{kind}_{dataset}"  # the same names as the Dagster layer's warehouse_schema


# ---------------------------------------------------------------- shared steps


def _context(args):
    from genesis_pipelines.engine.spec import load_spec

    spec = load_spec(args.spec)
    data_dir = Path(args.data_dir) if args.data_dir else paths.data_dir()
    if args.warehouse:
        warehouse = Path(args.warehouse)
    elif args.data_dir and not os.environ.get("GENESIS_WAREHOUSE"):
        warehouse = data_dir / "warehouse.duckdb"
    else:
        warehouse = paths.warehouse_path()
    return spec, Layout(data_dir, spec.name), warehouse


def _connect(warehouse: Path, *, read_only: bool):
    import duckdb

    if read_only and not warehouse.is_file():
        raise GenesisError(f"warehouse {warehouse} does not exist: run `genesis generate` (or the Dagster job) first")
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(warehouse), read_only=read_only)
    except duckdb.IOException as exc:
        raise GenesisError(f"warehouse {warehouse} is locked or unreadable ({exc.__class__.__name__}): "
                           "is a Dagster run writing to it? Try again when it has finished") from None


def _read_tables(con, schema: str, tables: Sequence[str]) -> dict:
    from genesis_pipelines.engine.io import read_table

    return {t: read_table(con, schema, t) for t in tables}


def _load_model(layout: Layout, version: str | None):
    from genesis_pipelines.engine.errors import ModelError
    from genesis_pipelines.engine.relational import load_model

    try:
        return load_model(layout.models, version)
    except ModelError as exc:
        raise GenesisError(f"{exc} (retrain: genesis generate --spec ... --train)") from None


def _train(spec, layout: Layout, warehouse: Path):
    """Source -> schema -> PII scan -> model, as the Dagster assets do; the splits go to the warehouse for the audit."""
    from genesis_pipelines.engine import pii
    from genesis_pipelines.engine.io import read_source_table, source_table_names, write_json, write_table
    from genesis_pipelines.engine.relational import train
    from genesis_pipelines.engine.schema import analyse
    from genesis_pipelines.engine.splits import write_splits

    started = time.perf_counter()
    names = source_table_names(spec)
    _progress(f"reading {len(names)} source tables of {spec.name}")
    tables = {t: read_source_table(spec, t) for t in names}
    schema = analyse(spec, tables)
    write_json(layout.analysis("schema"), schema.model_dump(mode="json"))
    findings = pii.scan_tables(tables, schema, spec)
    write_json(layout.analysis("pii_scan"), [f.model_dump(mode="json") for f in findings])
    _progress(f"schema: {len(schema.foreign_keys)} foreign keys; PII scan: {len(findings)} columns")
    model, splits = train(spec, schema, tables, findings, layout.models, hash_key=pii.hash_key_from_env(), log=_progress)
    with _connect(warehouse, read_only=False) as con:
        for table, df in tables.items():
            write_table(con, _schema_name("source", spec.name), table, df)
        write_splits(con, spec.name, model, splits)
    _progress(f"trained model {model.version} in {time.perf_counter() - started:.1f}s")
    return model


def _synthetic(spec, layout: Layout, warehouse: Path, version: str | None):
    model, _ = _load_model(layout, version)
    with _connect(warehouse, read_only=True) as con:
        return model, _read_tables(con, _schema_name("synthetic", spec.name), model.db_schema.generation_order)


def _write_report(directory: Path, dataset: str, kind: str, report: dict) -> Path:
    from genesis_pipelines.engine.evaluation import render_html
    from genesis_pipelines.engine.io import atomic_path, write_json

    write_json(directory / f"{kind}.json", report)
    target = directory / f"{kind}.html"
    with atomic_path(target) as tmp:
        tmp.write_text(render_html(report, title=f"{dataset}: {kind.replace('_', ' ')}", kind=kind), encoding="utf-8")
    return target


# ---------------------------------------------------------------- commands


def cmd_generate(args) -> int:
    from genesis_pipelines.engine.io import export_table, write_table
    from genesis_pipelines.engine.relational import generate_all

    spec, layout, warehouse = _context(args)
    scale = spec.scale if args.scale is None else args.scale
    seed = spec.seed if args.seed is None else args.seed
    if not 0 < scale <= 10:
        raise GenesisError(f"--scale must be in (0, 10], got {scale}")
    if args.train or not (layout.models / "LATEST.json").is_file():
        if args.model_version:
            raise GenesisError("--model-version names an existing model; it cannot be combined with training a new one")
        _progress("no trained model yet: training" if not args.train else "training a new model (--train)")
        _train(spec, layout, warehouse)
    model, model_dir = _load_model(layout, args.model_version)
    _progress(f"generating {len(model.tables)} tables from model {model.version} (scale {scale}, seed {seed})")
    tables = generate_all(model, model_dir, scale=scale, seed=seed, locale=spec.pii_locale)
    out_dir = Path(args.out) if args.out else layout.synthetic
    with _connect(warehouse, read_only=False) as con:
        for table, df in tables.items():
            write_table(con, _schema_name("synthetic", spec.name), table, df)
    for table, df in tables.items():
        for path in export_table(df, out_dir, table):
            print(path)
        _progress(f"{table}: {len(df)} rows")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from genesis_pipelines.engine.evaluation import quality_report
    from genesis_pipelines.engine.io import read_source_table
    from genesis_pipelines.engine.relational import comparison_exclusions

    spec, layout, warehouse = _context(args)
    model, synthetic = _synthetic(spec, layout, warehouse, args.model_version)
    _progress(f"scoring {len(synthetic)} synthetic tables against the source")
    real = {t: read_source_table(spec, t) for t in model.tables}
    report = quality_report(real, synthetic, model.db_schema, exclude=comparison_exclusions(model))
    report["model_version"] = model.version
    path = _write_report(Path(args.out) if args.out else layout.reports, spec.name, "quality_report", report)
    score = report.get("overall_score")
    meets = score is not None and score >= spec.thresholds.quality_min
    _progress(f"overall quality {score if score is None else round(float(score), 1)} "
              f"(threshold {spec.thresholds.quality_min}: {'met' if meets else 'NOT met'})")
    print(path)
    print(path.with_suffix(".json"))
    return EXIT_GATE_FAILED if args.strict and not meets else EXIT_OK


def cmd_privacy_audit(args) -> int:
    from genesis_pipelines.engine.evaluation import privacy_report
    from genesis_pipelines.engine.pii import find_leaks
    from genesis_pipelines.engine.errors import ModelError
    from genesis_pipelines.engine.relational import comparison_exclusions, load_pii_guard
    from genesis_pipelines.engine.splits import read_splits

    spec, layout, warehouse = _context(args)
    model, model_dir = _load_model(layout, args.model_version)
    names = model.db_schema.generation_order
    with _connect(warehouse, read_only=True) as con:
        synthetic = _read_tables(con, _schema_name("synthetic", spec.name), names)
        try:
            train_rows, holdout_rows = read_splits(con, spec.name, model, names,
                                                   retrain_hint="retrain: genesis generate --spec ... --train")
        except ModelError as exc:
            raise GenesisError(str(exc)) from None
    _progress(f"auditing {len(synthetic)} synthetic tables against the training and holdout splits")
    report = privacy_report(train_rows, holdout_rows, synthetic, model.db_schema, exclude=comparison_exclusions(model),
                            thresholds=spec.thresholds, quasi_identifiers=spec.quasi_identifiers or None,
                            sensitive_columns=spec.sensitive_columns or None)
    leaks = find_leaks(synthetic, load_pii_guard(model, model_dir), spec.pii_leak_exempt, model.pii)
    report["pii_leaks"] = {t: sum(cols.values()) for t, cols in leaks.items()}  # counts only, never the values
    report["pii_leak_exempt"] = sorted(spec.pii_leak_exempt)  # names only
    report.setdefault("passed", {})["no_pii_leak"] = not any(report["pii_leaks"].values())
    report["model_version"] = model.version
    path = _write_report(Path(args.out) if args.out else layout.reports, spec.name, "privacy_report", report)
    gates = report["passed"]
    for gate, ok in gates.items():
        _progress(f"gate {gate}: {'passed' if ok else 'FAILED'}")
    print(path)
    print(path.with_suffix(".json"))
    if not all(gates.values()):
        _progress(f"privacy audit failed: {', '.join(g for g, ok in gates.items() if not ok)}")
        return EXIT_GATE_FAILED
    return EXIT_OK


def cmd_export(args) -> int:
    from genesis_pipelines.engine.export import export_tables

    spec, layout, warehouse = _context(args)
    model, synthetic = _synthetic(spec, layout, warehouse, None)
    out_dir = Path(args.out) if args.out else layout.exports(args.format)
    written = export_tables(synthetic, out_dir, args.format, name=spec.name, schema=model.db_schema)
    for path in written:
        print(path)
    _progress(f"exported {len(synthetic)} tables as {args.format} to {out_dir}")
    return EXIT_OK


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    from genesis_pipelines.engine.export import FORMATS

    parser = argparse.ArgumentParser(prog="genesis", description="A safe synthetic twin of a relational database.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spec", required=True, help="dataset spec (resources/datasets/<name>/dataset.yaml)")
    common.add_argument("--data-dir", help="models, exports and reports (default: GENESIS_DATA_DIR or ./data)")
    common.add_argument("--warehouse", help="DuckDB warehouse (default: GENESIS_WAREHOUSE or <data dir>/warehouse.duckdb)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", parents=[common], help="train if needed, then generate every table in FK order")
    gen.add_argument("--out", help="folder for the Parquet + CSV files (default: <data dir>/<dataset>/synthetic)")
    gen.add_argument("--scale", type=float, help="rows relative to the source (default: the spec's scale)")
    gen.add_argument("--seed", type=int, help="sampling seed (default: the spec's seed)")
    gen.add_argument("--model-version", help="generate from this stored model version (default: the latest)")
    gen.add_argument("--train", action="store_true", help="train a new model first, even if one exists")
    gen.set_defaults(func=cmd_generate)

    ev = sub.add_parser("evaluate", parents=[common], help="quality report (HTML + JSON) of the synthetic tables")
    ev.add_argument("--out", help="report folder (default: <data dir>/<dataset>/reports)")
    ev.add_argument("--model-version", help="model whose schema is used (default: the latest)")
    ev.add_argument("--strict", action="store_true", help="exit 1 when the score is below the spec's quality_min")
    ev.set_defaults(func=cmd_evaluate)

    pa = sub.add_parser("privacy-audit", parents=[common], help="privacy report; exit code 1 when a gate fails")
    pa.add_argument("--out", help="report folder (default: <data dir>/<dataset>/reports)")
    pa.add_argument("--model-version", help="model whose guards and schema are used (default: the latest)")
    pa.set_defaults(func=cmd_privacy_audit)

    ex = sub.add_parser("export", parents=[common], help="write the synthetic tables in another format")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("--out", help="target folder (default: <data dir>/<dataset>/exports/<format>)")
    ex.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 ok, 1 a gate failed, 2 bad input or usage (the message says which table/column/file), 3 an
    internal error (never read as a verdict: the traceback goes to a file, stderr names it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return int(exc.code or 0)
    try:
        return args.func(args)
    except GenesisError as exc:
        print(f"genesis: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("genesis: interrupted; nothing half-written is left visible", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk or a missing folder: say which file, not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"genesis: error: {exc.strerror or exc.__class__.__name__}{where}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug, not a verdict: exit 3 so CI never reads a crash as a failed gate
        print(f"genesis: internal error: {_where(exc)}; full traceback in {_write_traceback()}", file=sys.stderr)
        return EXIT_INTERNAL


def _where(exc: BaseException) -> str:
    """The exception's class and the innermost frame of this package it passed (no message: it may hold values)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "genesis_pipelines" in f.filename] or frames
    last = ours[-1] if ours else None
    return f"{exc.__class__.__name__} in {Path(last.filename).name}:{last.lineno} ({last.name})" if last else exc.__class__.__name__


def _write_traceback() -> Path:
    """The traceback, kept on this machine beside the data (GENESIS_DATA_DIR/logs), never printed."""
    folder = paths.data_dir() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="genesis-traceback-", suffix=".txt", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(traceback.format_exc())
    return Path(name)


if __name__ == "__main__":
    sys.exit(main())
