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
from genesis_pipelines.engine.core.errors import GenesisError

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3


RETRAIN_HINT = "retrain: genesis generate --spec ... --train"


def _progress(message: str) -> None:
    print(f"genesis: {message}", file=sys.stderr, flush=True)


def _context(args):
    """The spec, its layout under the data dir, and the warehouse file."""
    from genesis_pipelines.engine.pipeline import DatasetLayout, open_spec

    spec = open_spec(args.spec)
    data_dir = Path(args.data_dir) if args.data_dir else paths.data_dir()
    if args.warehouse:
        warehouse = Path(args.warehouse)
    else:  # --data-dir moves the warehouse with it unless GENESIS_WAREHOUSE says otherwise
        warehouse = paths.warehouse_path(data_dir if args.data_dir else None)
    return spec, DatasetLayout(data_dir, spec.name), warehouse


def _connect(warehouse: Path, *, read_only: bool):
    from genesis_pipelines.engine.pipeline import warehouse_connector

    return warehouse_connector(warehouse, read_only=read_only)


def _print_paths(paths_written) -> None:
    for path in paths_written:
        print(path)


# ---------------------------------------------------------------- commands (each a thin caller of engine.pipeline)


def cmd_generate(args) -> int:
    from genesis_pipelines.engine import pipeline
    from genesis_pipelines.engine.core.device import resolve_device
    from genesis_pipelines.engine.core.spec import MAX_SCALE
    from genesis_pipelines.engine.privacy import pii

    spec, layout, warehouse = _context(args)
    scale = spec.scale if args.scale is None else args.scale
    seed = spec.seed if args.seed is None else args.seed
    if not 0 < scale <= MAX_SCALE:
        raise GenesisError(f"--scale must be in (0, {MAX_SCALE}], got {scale}")
    connect = _connect(warehouse, read_only=False)
    with pipeline.writer_lock(layout, wait=args.wait, log=_progress):  # one writer: fails here, before training
        if args.train or not (layout.models / "LATEST.json").is_file():
            if args.model_version:
                raise GenesisError("--model-version names an existing model; it cannot be combined with training a new one")
            _progress("no trained model yet: training" if not args.train else "training a new model (--train)")
            started = time.perf_counter()
            trained = pipeline.train(spec, layout, connect, device=resolve_device(os.environ.get("GENESIS_DEVICE", "auto")),
                                     hash_key=pii.hash_key_from_env(), log=_progress, wait=args.wait)
            _progress(f"trained model {trained.model.version} in {time.perf_counter() - started:.1f}s")
        model, model_dir = pipeline.load_model(layout, args.model_version, retrain_hint=RETRAIN_HINT)
        if args.table or args.condition or args.rebalance or args.rows is not None:
            return _augment(args, spec, layout, connect, model, model_dir, seed)
        _progress(f"generating {len(model.tables)} tables from model {model.version} (scale {scale}, seed {seed})")
        done = pipeline.generate(spec, layout, connect, model, model_dir, scale=scale, seed=seed, out=args.out,
                                 log=_progress, wait=args.wait)
    _print_paths(done.files)
    return EXIT_OK


def _augment(args, spec, layout, connect, model, model_dir, seed: int) -> int:
    """`generate --table T --condition COL=VALUE ... [--rebalance COL[=VALUE:SHARE,...]] [--rows N]`: conditioned
    rows beside the twin (augmented_<ds>, <ds>/augmented/<T>/), logic in engine.pipeline.augment."""
    from genesis_pipelines.engine import pipeline

    table = args.table or (next(iter(model.tables)) if len(model.tables) == 1 else None)
    if table is None:
        raise GenesisError("--condition / --rebalance / --rows need --table (the dataset has several tables)")
    if not args.condition and not args.rebalance:
        raise GenesisError("--table and --rows generate conditioned rows: give --condition COL=VALUE or --rebalance COL")
    done = pipeline.augment(spec, layout, connect, model, model_dir, table, conditions=args.condition or None,
                            rows=args.rows, rebalance=args.rebalance, seed=seed, log=_progress, wait=args.wait)
    for group in done.summary["groups"]:
        _progress(f"{group['rows']} rows with " + ", ".join(f"{c}={v}" for c, v in group["condition"].items()))
    _print_paths(done.files)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from genesis_pipelines.engine import pipeline

    spec, layout, warehouse = _context(args)
    model, _ = pipeline.load_model(layout, args.model_version, retrain_hint=RETRAIN_HINT)
    _progress(f"scoring {len(model.tables)} synthetic tables against the source")
    report = pipeline.quality_report(spec, layout, _connect(warehouse, read_only=True), model, retrain_hint=RETRAIN_HINT)
    path = pipeline.write_report(Path(args.out) if args.out else layout.reports, spec.name, "quality_report", report)
    score = report.get("overall_score")
    meets = score is not None and score >= spec.thresholds.quality_min
    _progress(f"overall quality {score if score is None else round(float(score), 1)} "
              f"(threshold {spec.thresholds.quality_min}: {'met' if meets else 'NOT met'})")
    _print_paths([path, path.with_suffix(".json")])
    return EXIT_GATE_FAILED if args.strict and not meets else EXIT_OK


def cmd_privacy_audit(args) -> int:
    from genesis_pipelines.engine import pipeline

    spec, layout, warehouse = _context(args)
    model, model_dir = pipeline.load_model(layout, args.model_version, retrain_hint=RETRAIN_HINT)
    _progress(f"auditing {len(model.tables)} synthetic tables against the training and holdout splits")
    report = pipeline.privacy_report(spec, layout, _connect(warehouse, read_only=True), model, model_dir,
                                     retrain_hint=RETRAIN_HINT)
    path = pipeline.write_report(Path(args.out) if args.out else layout.reports, spec.name, "privacy_report", report)
    gates = report["passed"]
    for gate, ok in gates.items():
        _progress(f"gate {gate}: {'passed' if ok else 'FAILED'}")
    _print_paths([path, path.with_suffix(".json")])
    if not all(gates.values()):
        _progress(f"privacy audit failed: {', '.join(g for g, ok in gates.items() if not ok)}")
        return EXIT_GATE_FAILED
    return EXIT_OK


def cmd_export(args) -> int:
    from genesis_pipelines.engine import pipeline

    spec, layout, warehouse = _context(args)
    model, _ = pipeline.load_model(layout, None, retrain_hint=RETRAIN_HINT)
    written = pipeline.export(layout, _connect(warehouse, read_only=True), model, args.format, out=args.out)
    _print_paths(written)
    _progress(f"exported {len(model.tables)} tables as {args.format} to {args.out or layout.exports(args.format)}")
    return EXIT_OK


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    from genesis_pipelines.engine.core.layout import EXPORT_FORMATS as FORMATS

    parser = argparse.ArgumentParser(prog="genesis", description="A safe synthetic twin of a relational database.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spec", help="dataset spec (resources/datasets/<name>/dataset.yaml); or -i / -r for plain files")
    common.add_argument("--data-dir", help="models, exports and reports (default: GENESIS_DATA_DIR or ./data)")
    common.add_argument("--warehouse", help="DuckDB warehouse (default: GENESIS_WAREHOUSE or <data dir>/warehouse.duckdb)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", parents=[common], help="train if needed, then generate every table in FK order")
    gen.add_argument("--out", help="folder for the Parquet + CSV files (default: <data dir>/<dataset>/synthetic)")
    gen.add_argument("--scale", type=float, help="rows relative to the source (default: the spec's scale)")
    gen.add_argument("--seed", type=int, help="sampling seed (default: the spec's seed)")
    gen.add_argument("--model-version", help="generate from this stored model version (default: the latest)")
    gen.add_argument("--train", action="store_true", help="train a new model first, even if one exists")
    gen.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait this long for another run writing the same dataset (default: fail at once, exit 2)")
    gen.add_argument("--table", help="generate conditioned rows of this table (with its children) beside the twin")
    gen.add_argument("--condition", action="append", metavar="COL=VALUE",
                     help="rows with this value (repeatable: all hold); e.g. income=>50K")
    gen.add_argument("--rebalance", metavar="COL[=VALUE:SHARE,...]",
                     help="spread the rows over a category column's classes: uniform, or the shares given")
    gen.add_argument("-n", "--rows", type=int, help="rows to generate: with -i for one table (default: as many as the "
                     "input); with --spec --table the conditioned rows (default: the real table's size)")
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
    from genesis_pipelines import cli_files  # generate / evaluate / privacy-audit on plain files, and automl

    cli_files.register(sub, {"generate": gen, "evaluate": ev, "privacy-audit": pa, "export": ex},
                       {"generate": cmd_generate, "evaluate": cmd_evaluate, "privacy-audit": cmd_privacy_audit,
                        "export": cmd_export}, common)
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
