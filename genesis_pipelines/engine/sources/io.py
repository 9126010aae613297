"""Read source tables and write outputs; every write is staged and then swapped in."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError, SourceError
from genesis_pipelines.engine.core.spec import DatasetSpec
from genesis_pipelines.engine.sources.locations import s3_client, s3_key, source_file

_NUMBER = re.compile(r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity)$", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?\d+$")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_TZ = r"Z$|[+-]\d{2}:?\d{2}$"
_TRUE, _FALSE = {"true", "t", "yes"}, {"false", "f", "no"}
DEFAULT_NULL_VALUES = [""]  # a cell is null only when empty, unless the spec lists more tokens (`null_values`)
# kept for the benchmarks that read R exports, where NA is a null; the pipeline reads with the spec's null_values
NULL_TOKENS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]
MAJORITY = 0.9  # share of a column's values that must parse for it to take the type; the rest are its exceptions
_INT64 = (-(2**63), 2**63 - 1)
# other date layouts a column may hold; ISO first, the layout parsing the most values of a column wins
DATE_FORMATS = ("ISO8601", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y", "%d %b %Y", "%b %d, %Y",
                "%d %B %Y", "%B %d, %Y")


def _distinct_text(values: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    """Values as stripped text, factorised: per row the code of its text (-1 for a missing value), the distinct
    texts, and how many rows hold each. Parsing is per value, so parsing the distinct texts once and taking the
    results by code gives the same answer at the cost of the distinct values (a category column of 5,000 rows
    holds a handful)."""
    text = values.astype(str).str.strip()
    codes, uniques = pd.factorize(text)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return codes, pd.Series(np.asarray(uniques, dtype=object), dtype=text.dtype), counts


def _by_code(parsed: pd.Series, codes: np.ndarray, index: pd.Index, missing) -> pd.Series:
    """Per-distinct results back on the rows (`missing` where the row's value was missing)."""
    out = parsed.to_numpy()[np.where(codes >= 0, codes, 0)] if len(parsed) else np.full(len(codes), missing)
    if len(parsed):
        out[codes < 0] = missing
    return pd.Series(out, index=index, dtype=parsed.dtype)


def parse_numbers(values: pd.Series) -> pd.Series:
    """Float values of text (inf kept), NaN where a value is not a number or is a leading-zero code."""
    codes, text, _ = _distinct_text(values)
    ok = text.str.match(_NUMBER) & ~text.str.match(_LEADING_ZERO)
    parsed = pd.to_numeric(text.where(ok), errors="coerce").astype("float64")
    return _by_code(parsed, codes, values.index, np.nan)


def iso_timestamps(text: pd.Series) -> pd.Series:
    """ISO text as naive timestamps (NaT where a value is none). A column mixing offsets ("+02:00", "Z") with plain
    times is read with the offsets applied and the plain times taken as UTC, in UTC without a zone: pandas refuses
    to mix zones in one column."""
    aware = bool(text.astype("string").str.contains(_TZ, na=False).any())
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=aware)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed


def parse_dates(values: pd.Series) -> tuple[pd.Series, str | None, int]:
    """Timestamps of text in the layout that parses most values (NaT elsewhere), that layout, and the number of
    impossible dates: ISO-shaped values that name no real day (2021-02-30). Each distinct text is parsed once and
    counted as often as rows hold it."""
    codes, text, counts = _distinct_text(values)
    iso_shaped = text.str.match(_DATE).fillna(False).astype(bool)
    best, best_format, best_rows = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]"), None, 0
    for fmt in DATE_FORMATS:
        if fmt == "ISO8601":
            parsed = iso_timestamps(text.where(iso_shaped))
        else:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        rows = int(counts[parsed.notna().to_numpy()].sum())
        if rows > best_rows:
            best, best_format, best_rows = parsed.astype("datetime64[us]"), fmt, rows
    impossible_text = iso_shaped & iso_timestamps(text.where(iso_shaped)).isna()
    impossible = int(counts[impossible_text.to_numpy()].sum())
    return _by_code(best, codes, values.index, np.datetime64("NaT", "us")), best_format, impossible


def date_layout(values: pd.Series) -> str | None:
    """The strftime layout of a column of dates written as text: the layout most values parse in ("%B %d, %Y"
    for "June 22, 2018"), ISO as "%Y-%m-%d" or with its time of day; None when no value parses."""
    present = values.dropna()
    if present.empty:
        return None
    stamps, layout, _ = parse_dates(present)
    if layout is None or stamps.notna().sum() == 0:
        return None
    if layout != "ISO8601":
        # "August 4, 2017": day and month unpadded when that is how the values are written (glibc's %-d)
        parsed = stamps.notna()
        text = present.astype(str).str.strip()[parsed]
        variants = {layout, layout.replace("%d", "%-d"), layout.replace("%m", "%-m"),
                    layout.replace("%d", "%-d").replace("%m", "%-m")}
        return max(sorted(variants), key=lambda v: int((stamps[parsed].dt.strftime(v) == text).sum()))
    stamps = stamps.dropna()
    timed = bool(((stamps.dt.hour != 0) | (stamps.dt.minute != 0) | (stamps.dt.second != 0)).any())
    return "%Y-%m-%d %H:%M:%S" if timed else "%Y-%m-%d"


def dates_as_text(values: pd.Series, layout: str | None) -> pd.Series:
    """Dates (timestamps, or ISO text as generators write it) in a text column's own layout; a value that is no
    date (an exception kept as it is, "TBD") stays as it was."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values
    else:
        stamps = iso_timestamps(values.astype("string"))
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    text = stamps.dt.strftime(layout or "%Y-%m-%d").astype(object)
    out = values.astype(object).where(stamps.isna(), text)
    return pd.Series(out.where(pd.notna(out), None).to_numpy(), index=values.index, dtype="string")


def majority_kind(values: pd.Series) -> tuple[str | None, pd.Series]:
    """The kind most of a text column's values parse as ("integer", "numeric", "datetime"; None: neither) and
    the mask of its exceptions, the values that do not: numbers with a few codes, dates in several layouts."""
    values = values.dropna()
    if values.empty:
        return None, pd.Series(False, index=values.index)
    text = values.astype(str).str.strip()
    numbers = parse_numbers(values)
    if numbers.notna().mean() >= MAJORITY and not text.str.match(_LEADING_ZERO).any():  # zero-led: codes
        integer = bool(text[numbers.notna()].str.match(_INTEGER).all())
        return ("integer" if integer else "numeric"), numbers.isna()
    probe = values.iloc[:2000]  # most text columns are no dates: a sample says so cheaply
    if parse_dates(probe)[0].notna().mean() < MAJORITY - 0.1:
        return None, pd.Series(False, index=values.index)
    dates, _, _ = parse_dates(values)
    if dates.notna().mean() >= MAJORITY:
        return "datetime", dates.isna()
    return None, pd.Series(False, index=values.index)


def coerce_types(df: pd.DataFrame) -> pd.DataFrame:
    """Typed columns from text: numbers (codes with leading zeros stay text; +-inf kept), booleans, ISO dates.

    A column is typed only when every value parses and survives the storage type: integers beyond int64, a few
    strings among numbers, impossible dates or several date layouts keep the column as text, losslessly; the
    schema then types it by its majority and keeps the rest as exceptions (see majority_kind).
    """
    out = {}
    for column in df.columns:
        text = df[column]
        values = text.dropna().astype(str).str.strip()
        if values.empty:
            out[column] = pd.Series(np.nan, index=df.index, dtype="float64")
        elif values.str.match(_NUMBER).all() and not values.str.match(_LEADING_ZERO).any():
            numbers = parse_numbers(text.dropna()).reindex(df.index)
            if values.str.match(_INTEGER).all():
                big = values.map(lambda v: not _INT64[0] <= int(v) <= _INT64[1]).any()
                out[column] = text.astype("string") if big else pd.to_numeric(text.str.strip()).astype("Int64")
            else:
                out[column] = numbers
        elif values.str.lower().isin(_TRUE | _FALSE).all():
            out[column] = text.str.strip().str.lower().map(lambda v: v in _TRUE if isinstance(v, str) else pd.NA).astype("boolean")
        elif values.str.match(_DATE).all():
            parsed = iso_timestamps(text)
            # an impossible date (2021-02-30) is not a null: keep the text, the schema counts and keeps it
            out[column] = text.astype("string") if parsed.notna().sum() < len(values) else parsed.astype("datetime64[us]")
        else:
            out[column] = text.astype("string")
    return pd.DataFrame(out, index=df.index)


def _check_field_counts(path: Path, table: str) -> None:
    """pandas pads short rows with nulls silently; a ragged file is malformed input, so say where."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if row and len(row) != len(header):
                raise SourceError(
                    f"table {table!r}: file {path.name} line {reader.line_num} has {len(row)} fields, header has {len(header)}"
                )


def _read_csv(path: Path, table: str, null_values: list[str] | None = None) -> pd.DataFrame:
    """Only the listed null tokens are nulls (pandas' defaults would turn Namibia's NA into a null)."""
    try:
        _check_field_counts(path, table)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=list(null_values or DEFAULT_NULL_VALUES),
                          encoding="utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"table {table!r}: file {path.name} is not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise SourceError(f"table {table!r}: file {path.name} is empty (no header row)") from None
    except csv.Error as exc:
        raise SourceError(f"table {table!r}: file {path.name} is not well-formed CSV ({exc.__class__.__name__})") from None
    except pd.errors.ParserError as exc:
        # pandas' message names the line and field counts only, never values
        raise SourceError(f"table {table!r}: file {path.name} is not well-formed CSV ({str(exc).strip()})") from None
    unnamed = [c for c in raw.columns if str(c).startswith("Unnamed:")]
    if unnamed:
        raise SourceError(f"table {table!r}: file {path.name} has {len(unnamed)} column(s) with no header name")
    return coerce_types(raw)


def _read_parquet(path: Path, table: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SourceError(f"table {table!r}: file {path.name} is not a readable Parquet file ({exc.__class__.__name__})") from None


def _read_s3_table(spec: DatasetSpec, table: str) -> pd.DataFrame:
    """Download to a private temp file, then read it exactly like a local file (same checks, same typing)."""
    from botocore.exceptions import ClientError

    key = s3_key(spec, table)
    with tempfile.TemporaryDirectory(prefix="genesis-s3-") as tmp:
        path = Path(tmp) / Path(key).name
        try:
            s3_client().download_file(spec.source.bucket, key, str(path))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise SourceError(f"table {table!r}: cannot read s3://{spec.source.bucket}/{key} ({code})") from None
        return _read_csv(path, table, spec.null_values) if spec.source.kind == "s3_csv" else _read_parquet(path, table)


def read_source_table(spec: DatasetSpec, table: str) -> pd.DataFrame:
    """One real table, typed; errors name the table and the file."""
    if spec.source.kind == "duckdb":
        path = spec.source_path
        if not path.is_file():
            raise SourceError(f"table {table!r}: DuckDB file {path} does not exist")
        schema = spec.source.schema_name or "main"
        with duckdb.connect(str(path), read_only=True) as con:
            try:
                return con.execute(f'select * from "{schema}"."{table}"').df()
            except duckdb.CatalogException:
                raise SourceError(f"table {table!r}: not found in DuckDB file {path.name} (schema {schema})") from None
    # a header without rows is an empty table (a lookup not yet filled): it stays empty, with its columns, downstream
    if spec.source.is_s3:
        return _read_s3_table(spec, table)
    path = source_file(spec, table)
    if not path.is_file():
        raise SourceError(f"table {table!r}: source file {path} does not exist")
    return _read_csv(path, table, spec.null_values) if spec.source.kind == "csv_folder" else _read_parquet(path, table)


# ---------------------------------------------------------------- DuckDB warehouse


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def write_table(con: duckdb.DuckDBPyConnection, schema: str, table: str, df: pd.DataFrame | Iterator[pd.DataFrame]) -> int:
    """Stage into a scratch table, then swap it in within one transaction; a failure leaves the old table."""
    chunks = [df] if isinstance(df, pd.DataFrame) else df
    staging = staging_name(table)
    scratch = f"{quote(schema)}.{quote(staging)}"
    con.execute(f"create schema if not exists {quote(schema)}")
    con.execute(f"drop table if exists {scratch}")
    rows = 0
    try:
        for i, chunk in enumerate(chunks):
            con.register("__genesis_chunk", chunk)
            try:
                if i == 0:
                    con.execute(f"create table {scratch} as select * from __genesis_chunk")
                else:
                    con.execute(f"insert into {scratch} select * from __genesis_chunk")
            finally:
                con.unregister("__genesis_chunk")
            rows += len(chunk)
        if rows == 0 and not table_exists(con, schema, staging):
            raise SourceError(f"table {table!r}: nothing to write (no chunks); the previous version is kept")
    except BaseException:
        con.execute(f"drop table if exists {scratch}")
        raise
    swap_in_staged(con, schema, table)
    return rows


def staging_name(table: str) -> str:
    """The scratch table a write of `table` is staged in, in the same schema."""
    return f"__staging_{table}"


def swap_in_staged(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    """Replace `schema.table` by its staged scratch table in one transaction; a failure drops the scratch table and
    leaves the old one."""
    target, scratch = f"{quote(schema)}.{quote(table)}", f"{quote(schema)}.{quote(staging_name(table))}"
    try:
        con.execute("begin transaction")
        con.execute(f"drop table if exists {target}")
        con.execute(f"alter table {scratch} rename to {quote(table)}")
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass
        con.execute(f"drop table if exists {scratch}")
        raise


def read_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> pd.DataFrame:
    try:
        return con.execute(f"select * from {quote(schema)}.{quote(table)}").df()
    except duckdb.CatalogException:
        raise SourceError(f"table {table!r} is not in warehouse schema {schema!r}: materialize it first") from None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


# ---------------------------------------------------------------- files


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `target` (absent or empty); one rename makes it `target` only if the
    block succeeds, so a failure never leaves a half-written folder and a non-empty one is never overwritten."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise GenesisError(f"{target} exists and is not an empty folder: choose a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_json(path: Path, payload: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")


def export_warehouse_table(con: duckdb.DuckDBPyConnection, schema: str, table: str, directory: Path,
                           formats: tuple[str, ...] = ("parquet", "csv")) -> list[Path]:
    """Export a warehouse table with DuckDB's COPY (streamed, so a big table never sits in memory), atomically."""
    paths = []
    for fmt in formats:
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"unknown export format {fmt!r}")
        target = Path(directory) / f"{table}.{fmt}"
        with atomic_path(target) as tmp:
            options = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER)"
            con.execute(f"copy (select * from {quote(schema)}.{quote(table)}) to '{str(tmp).replace(chr(39), chr(39) * 2)}' {options}")
        paths.append(target)
    return paths


def export_table(df: pd.DataFrame, directory: Path, table: str, formats: tuple[str, ...] = ("parquet", "csv")) -> list[Path]:
    paths = []
    for fmt in formats:
        target = Path(directory) / f"{table}.{fmt}"
        with atomic_path(target) as tmp:
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            elif fmt == "csv":
                df.to_csv(tmp, index=False)
            else:
                raise ValueError(f"unknown export format {fmt!r}")
        paths.append(target)
    return paths
