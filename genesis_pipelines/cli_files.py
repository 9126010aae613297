"""`genesis` on plain files: generate, automl, evaluate and privacy-audit on CSV / Parquet files or folders, without
a dataset spec. A thin caller of the Python SDK (genesis_pipelines.api), which runs the pipeline's engine steps.

    genesis generate -i data.csv -o synthetic.csv -m ctgan -n 10000
    genesis automl -i data.csv -o synthetic.parquet
    genesis evaluate -r real.csv -s synthetic.csv --target income
    genesis privacy-audit -r real.csv -s synthetic.csv --sensitive ssn,income --holdout unseen.csv

A folder is several tables (one file per table, keys inferred); its output is a folder of the same format (or
`--format`). `--spec` or `-i/-r` decides the mode of generate, evaluate and privacy-audit. Progress goes to
stderr (a bar on a terminal), results to stdout (`--json`: one JSON object). Exit codes as the spec commands: 0
ok, 1 a gate failed, 2 bad input naming the file or column, 3 internal error.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from genesis_pipelines.engine.core.errors import GenesisError, SourceError

EXIT_OK, EXIT_GATE_FAILED = 0, 1
FILE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


# ---------------------------------------------------------------- reading and writing files


def _folder_spec(folder: Path, kind: str, files: list[Path]):
    from genesis_pipelines.engine.core.spec import parse_spec

    return parse_spec({"name": "files", "source": {"kind": f"{kind}_folder", "path": str(folder.resolve())},
                       "tables": {p.stem: {"file": p.name} for p in files}}, origin=str(folder))


def read_input(path: str | Path, what: str = "input") -> tuple[dict, str, bool]:
    """(tables, format, is_folder) from a CSV / Parquet file or a folder of them, read by the pipeline's own
    readers (engine/sources/io.py: typed columns, only empty cells are nulls)."""
    from genesis_pipelines.engine.sources.io import read_source_table

    path = Path(path)
    if path.is_dir():
        found = {fmt: sorted(p for p in path.iterdir() if p.is_file() and FILE_SUFFIXES.get(p.suffix.lower()) == fmt)
                 for fmt in ("csv", "parquet")}
        kinds = [fmt for fmt, files in found.items() if files]
        if not kinds:
            raise SourceError(f"{what} folder {path} holds no .csv or .parquet files")
        if len(kinds) > 1:
            raise SourceError(f"{what} folder {path} mixes .csv and .parquet files: keep one format per folder")
        fmt, files = kinds[0], found[kinds[0]]
        stems = [p.stem for p in files]
        if len(set(stems)) < len(stems):
            raise SourceError(f"{what} folder {path}: two files give the same table name")
        spec = _folder_spec(path, fmt, files)
        return {p.stem: read_source_table(spec, p.stem) for p in files}, fmt, True
    if not path.is_file():
        raise SourceError(f"{what} {path} does not exist")
    fmt = FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"{what} {path}: not a .csv or .parquet file")
    spec = _folder_spec(path.parent, fmt, [path])
    return {path.stem: read_source_table(spec, path.stem)}, fmt, False


def _output_format(path: Path, default: str | None = None) -> str:
    fmt = FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None and default is None:
        raise GenesisError(f"output {path}: the suffix must be .csv or .parquet")
    return fmt or default


def _write_frame(df, path: Path, fmt: str) -> None:
    from genesis_pipelines.engine.sources.io import atomic_path

    with atomic_path(path) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


def write_output(tables: dict, out: Path, *, folder: bool, fmt: str | None) -> list[Path]:
    """One file (format from its suffix) or a folder of files, staged beside it and renamed into place."""

    out = Path(out)
    if not folder:
        (table, df), = tables.items()
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_frame(df, out, _output_format(out))
        return [out]
    from genesis_pipelines.engine.sources.io import staged_folder

    fmt = fmt or "parquet"
    with staged_folder(out) as staging:
        for table, df in tables.items():
            _write_frame(df, staging / f"{table}.{fmt}", fmt)
    return [out / f"{table}.{fmt}" for table in tables]


# ---------------------------------------------------------------- progress and output


@contextlib.contextmanager
def _steps(total: int, label: str):
    """A progress bar of the command's steps on stderr, shown only on a terminal; `advance(text)` moves it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False,
               bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {postfix}")

    def advance(text: str) -> None:
        bar.set_postfix_str(text)
        bar.update(1)

    try:
        yield advance
    finally:
        bar.close()


def _progress(message: str) -> None:
    print(f"genesis: {message}", file=sys.stderr, flush=True)


def _emit(args, payload: dict, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str, allow_nan=False))
    else:
        for line in lines:
            print(line)


# ---------------------------------------------------------------- commands


def cmd_generate(args, *, method: str | None = None) -> int:
    from genesis_pipelines.api import MultiTableSynthesizer, PrivacyConfig, SyntheticGenerator

    if not args.output:
        raise GenesisError("-o/--output is required with -i (a file: its suffix gives the format; a folder for several tables)")
    method = method or args.method or "gaussian_copula"
    settings = json.loads(args.settings) if args.settings else {}
    if not isinstance(settings, dict):
        raise GenesisError("--settings must be a JSON object of the method's settings")
    privacy = PrivacyConfig(True, args.epsilon) if args.epsilon is not None else None
    seed = 0 if args.seed is None else args.seed
    with _steps(3, "genesis generate") as advance:
        tables, in_fmt, folder = read_input(args.input)
        advance(f"read {len(tables)} table(s)")
        _progress(f"fitting {method} on {len(tables)} table(s) ({sum(len(t) for t in tables.values())} rows)")
        if folder or len(tables) > 1:
            synth = MultiTableSynthesizer(tables, method=method, seed=seed, privacy=privacy, **settings).fit()
            advance("fitted")
            if args.rows is not None:
                raise GenesisError("-n/--rows is for one table; a folder is scaled with --scale")
            out = synth.sample(scale=args.scale or 1.0, seed=seed)
            methods = {t: d["method"] for t, d in synth.describe().items()}
        else:
            (name, df), = tables.items()
            gen = SyntheticGenerator(method, seed=seed, privacy=privacy, table_name=name, **settings).fit(df)
            advance("fitted")
            rows = args.rows if args.rows is not None else max(1, round(len(df) * (args.scale or 1.0)))
            out = {name: gen.generate(rows, seed=seed)}
            methods = {name: gen.describe()["method"]}
        written = write_output(out, Path(args.output), folder=folder, fmt=args.format or in_fmt)
        advance("written")
    _emit(args, {"command": args.command, "outputs": [str(p) for p in written], "rows": {t: len(d) for t, d in out.items()},
                 "methods": methods, "seed": seed}, [str(p) for p in written])
    return EXIT_OK


def cmd_automl(args) -> int:
    return cmd_generate(args, method="auto")


def _pair(args):
    real, _, real_folder = read_input(args.real, "real data")
    synthetic, _, synth_folder = read_input(args.synthetic, "synthetic data")
    if real_folder != synth_folder:
        raise GenesisError("-r and -s must both be files or both be folders")
    if not real_folder:  # one table each: the synthetic file may be named otherwise
        synthetic = {next(iter(real)): next(iter(synthetic.values()))}
    holdout = None
    if getattr(args, "holdout", None):
        holdout, _, hold_folder = read_input(args.holdout, "holdout")
        if not hold_folder:
            holdout = {next(iter(real)): next(iter(holdout.values()))}
    return real, synthetic, holdout


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def cmd_evaluate(args) -> int:
    from genesis_pipelines.api import QualityEvaluator

    with _steps(2, "genesis evaluate") as advance:
        real, synthetic, holdout = _pair(args)
        advance("read")
        report = QualityEvaluator(real, synthetic, holdout, seed=args.seed or 0).evaluate(target_column=args.target)
        advance("scored")
    written = []
    if args.out:
        written = [report.to_html(Path(args.out) / "quality_report.html"), Path(args.out) / "quality_report.json"]
        report.to_json(written[1])
    minimum = args.quality_min
    meets = report.fidelity_score is not None and report.fidelity_score >= minimum
    _progress(f"fidelity {report.fidelity_score} (minimum {minimum}: {'met' if meets else 'NOT met'})")
    _emit(args, {"command": "evaluate", "fidelity_score": report.fidelity_score, "utility_score": report.utility_score,
                 "privacy_score": report.privacy_score, "grade": report.grade, "quality_min": minimum, "met": meets,
                 "reports": [str(p) for p in written]}, [report.summary(), *map(str, written)])
    return EXIT_GATE_FAILED if args.strict and not meets else EXIT_OK


def cmd_privacy_audit(args) -> int:
    from genesis_pipelines.api import PrivacyEvaluator

    with _steps(2, "genesis privacy-audit") as advance:
        real, synthetic, holdout = _pair(args)
        advance("read")
        report = PrivacyEvaluator(real, synthetic, holdout, sensitive=_columns(args.sensitive),
                                  quasi_identifiers=_columns(args.quasi_identifiers), seed=args.seed or 0).evaluate()
        advance("audited")
    written = []
    if args.out:
        written = [report.to_html(Path(args.out) / "privacy_report.html"), Path(args.out) / "privacy_report.json"]
        report.to_json(written[1])
    failed = [g for g, ok in report.details.get("passed", {}).items() if not ok]
    for gate, ok in report.details.get("passed", {}).items():
        _progress(f"gate {gate}: {'passed' if ok else 'FAILED'}")
    _emit(args, {"command": "privacy-audit", "privacy_score": report.privacy_score, "passed": not failed,
                 "failed_gates": failed, "gates": report.gates, "copies": report.details.get("copies"),
                 "pii_leaks": report.details.get("pii_leaks"), "reports": [str(p) for p in written]},
          [report.summary(), *map(str, written)])
    return EXIT_GATE_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------- wiring into `genesis`


def _routed(spec_cmd, file_cmd, file_flag: str):
    """`--spec` runs the spec command, `-i` / `-r` the file command; neither (or both) is a usage error."""

    def run(args) -> int:
        on_files = getattr(args, file_flag, None) is not None
        if on_files and args.spec:
            raise GenesisError(f"give either --spec or {'-i' if file_flag == 'input' else '-r/-s'}, not both")
        if on_files:
            return file_cmd(args)
        if not args.spec:
            raise GenesisError(f"give --spec DATASET.yaml, or {'-i FILE_OR_FOLDER' if file_flag == 'input' else '-r REAL -s SYNTHETIC'}")
        return spec_cmd(args)

    return run


def _generate_options(parser, *, method: bool, rows: bool = True) -> None:
    """The file options; `rows=False` where the parser has -n/--rows already (spec generate: conditioned rows)."""
    parser.add_argument("-i", "--input", help="CSV / Parquet file, or a folder of them (several tables), instead of --spec")
    parser.add_argument("-o", "--output", help="with -i: output file (.csv / .parquet) or folder")
    if method:
        parser.add_argument("-m", "--method", help="with -i: generator method (default gaussian_copula)")
    if rows:
        parser.add_argument("-n", "--rows", type=int, help="with -i: rows to generate for one table (default: as many as the input)")
    parser.add_argument("--format", choices=("csv", "parquet"), help="with -i and a folder: output file format (default: the input's)")
    parser.add_argument("--settings", help="with -i: the method's settings as a JSON object, e.g. '{\"epochs\": 50}'")
    parser.add_argument("--epsilon", type=float, help="with -i: train the method's differentially private variant")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def register(sub, parsers: dict, spec_commands: dict, common) -> None:
    """Add the file options to the spec commands' parsers, route each by mode, and add `automl`."""
    gen, ev, pa = parsers["generate"], parsers["evaluate"], parsers["privacy-audit"]
    _generate_options(gen, method=True, rows=False)
    gen.set_defaults(func=_routed(spec_commands["generate"], cmd_generate, "input"))
    for parser in (ev, pa):
        parser.add_argument("-r", "--real", help="real data: CSV / Parquet file or folder, instead of --spec")
        parser.add_argument("-s", "--synthetic", help="with -r: synthetic data (any tool's), same shape as -r")
        parser.add_argument("--holdout", help="with -r: real rows the generator never saw (enables distance / membership attacks)")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ev.add_argument("--target", help="with -r: column to predict for utility (TSTR)")
    ev.add_argument("--quality-min", type=float, default=70.0, help="with -r: fidelity minimum for --strict (default 70)")
    pa.add_argument("--sensitive", help="with -r: comma-separated columns an attacker wants to learn")
    pa.add_argument("--quasi-identifiers", help="with -r: comma-separated columns an attacker may know")
    for parser in (ev, pa):
        parser.set_defaults(seed=None)
    ev.set_defaults(func=_routed(spec_commands["evaluate"], cmd_evaluate, "real"))
    pa.set_defaults(func=_routed(spec_commands["privacy-audit"], cmd_privacy_audit, "real"))
    parsers["export"].set_defaults(func=_routed(spec_commands["export"], None, "no_file_mode"))
    auto = sub.add_parser("automl", help="-i FILE_OR_FOLDER -o OUT: generate with the method `auto` picks per table")
    _generate_options(auto, method=False)
    auto.add_argument("--seed", type=int, help="sampling and training seed (default 0)")
    auto.add_argument("--scale", type=float, help="rows relative to the input (a folder)")
    auto.set_defaults(func=_automl_entry, spec=None, method=None)


def _automl_entry(args) -> int:
    if not args.input:
        raise GenesisError("automl needs -i FILE_OR_FOLDER and -o OUT")
    return cmd_automl(args)
