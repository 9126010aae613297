"""Synthetic tables out of the warehouse: files (CSV, Parquet, JSON, Excel, SQL inserts, XML) and S3 Parquet.

Only synthetic tables pass through here; every file is staged and swapped in (atomic_path), and errors name the
table and column, never a value. A set of files is published as one version (publish_versioned): written into a
fresh folder under `<target>.versions/`, then made current by one atomic swap of the link `<target>`, so a reader
(or a run killed at any moment) sees the old complete set or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.layout import EXPORT_FORMATS
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.sources.io import atomic_path, export_table

FORMATS = EXPORT_FORMATS
SQL_BATCH_ROWS = 500  # rows per INSERT: well inside every engine's statement limits
EXCEL_MAX_ROWS = 1_048_575  # one row of the sheet is the header
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXCEL_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


class ExportError(GenesisError):
    """A table cannot be written in the requested format, or the target refuses it for good."""


class TransientExportError(ExportError):
    """The target failed in a way that may pass on a retry (network, throttling, 5xx)."""


def export_tables(tables: Mapping[str, pd.DataFrame], directory: str | Path, fmt: str, *, name: str = "synthetic",
                  schema: DatasetSchema | None = None) -> list[Path]:
    """Write every table in `fmt`; `tables` in generation order (parents first) so SQL loads with FKs on.

    CSV, Parquet, JSON and XML give one file per table; Excel one workbook (a sheet per table) and SQL one
    script `<name>.sql`, since both are loaded as a unit.
    """
    directory = Path(directory)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt in ("csv", "parquet"):
        return [path for table, df in tables.items() for path in export_table(df, directory, table, formats=(fmt,))]
    if fmt == "json":
        return [_write_json(df, directory / f"{table}.json") for table, df in tables.items()]
    if fmt == "xml":
        return [_write_xml(table, [df], directory / f"{table}.xml") for table, df in tables.items()]
    if fmt == "excel":
        return [_write_excel({t: [df] for t, df in tables.items()}, directory / f"{name}.xlsx",
                             rows={t: len(df) for t, df in tables.items()})]
    return [write_sql(tables, directory / f"{name}.sql", schema=schema)]


# ---------------------------------------------------------------- streamed from the warehouse

EXPORT_BATCH_ROWS = 100_000  # rows held at once while a warehouse table is written out
_DUCKDB_VECTOR = 2048  # rows per DuckDB vector: batches are whole vectors


def warehouse_batches(con, schema: str, table: str, batch_rows: int = EXPORT_BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """A warehouse table as frames of about `batch_rows` rows (the dtypes DuckDB's .df() gives), never whole; an
    empty table gives one empty frame with its columns."""
    from genesis_pipelines.engine.sources.io import quote

    result = con.execute(f"select * from {quote(schema)}.{quote(table)}")
    vectors = max(1, -(-int(batch_rows) // _DUCKDB_VECTOR))
    first = True
    while True:
        batch = result.fetch_df_chunk(vectors)
        if len(batch) or first:
            yield batch
        if not len(batch):
            return
        first = False


def export_warehouse(con, schema: str, tables: Iterable[str], directory: str | Path, fmt: str, *,
                     name: str = "synthetic", db_schema: DatasetSchema | None = None,
                     batch_rows: int = EXPORT_BATCH_ROWS) -> list[Path]:
    """Warehouse tables (in generation order) written in `fmt` with memory bounded by a batch: CSV and Parquet by
    DuckDB's COPY, the other formats batch by batch."""
    from genesis_pipelines.engine.sources.io import export_warehouse_table, quote

    directory, tables = Path(directory), list(tables)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt in ("csv", "parquet"):
        return [p for t in tables for p in export_warehouse_table(con, schema, t, directory, (fmt,))]
    if fmt == "json":
        return [_write_json_batches(warehouse_batches(con, schema, t, batch_rows), directory / f"{t}.json") for t in tables]
    if fmt == "sql":
        return [write_sql({t: warehouse_batches(con, schema, t, batch_rows) for t in tables}, directory / f"{name}.sql",
                          schema=db_schema)]
    if fmt == "xml":
        return [_write_xml(t, warehouse_batches(con, schema, t, batch_rows), directory / f"{t}.xml") for t in tables]
    rows = {t: int(con.execute(f"select count(*) from {quote(schema)}.{quote(t)}").fetchone()[0]) for t in tables}
    return [_write_excel({t: warehouse_batches(con, schema, t, batch_rows) for t in tables}, directory / f"{name}.xlsx",
                         rows=rows)]


def _write_json_batches(batches: Iterable[pd.DataFrame], target: Path) -> Path:
    """One JSON array of records, as _write_json writes it, built batch by batch."""
    with atomic_path(target) as tmp:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write("[")
            written = False
            for batch in batches:
                if not len(batch):
                    continue
                text = batch.to_json(orient="records", date_format="iso", date_unit="us", force_ascii=False, indent=1)
                body = text.strip()[1:-1].strip("\n")  # the records between the batch's own brackets
                handle.write(("," if written else "") + "\n" + body)
                written = True
            handle.write("\n]" if written else "]")
    return target


# ---------------------------------------------------------------- versioned publication

VERSIONS_SUFFIX = ".versions"
KEEP_VERSIONS = 3  # the current version and the two before it stay on disk (a reader may still be on one)
_STAGING_PREFIX = ".staging-"


def versions_dir(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f"{target.name}{VERSIONS_SUFFIX}"


def current_version(target: str | Path) -> str | None:
    """The version `target` points at, or None when nothing was published there yet (or it is a plain folder)."""
    target = Path(target)
    if not target.is_symlink():
        return None
    return Path(os.readlink(target)).name


@contextlib.contextmanager
def publication_lock(target: str | Path) -> Iterator[None]:
    """One publisher of `target` at a time (others wait); released by the kernel if the holder dies."""
    folder = versions_dir(target)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale(target: str | Path, *, keep: int = KEEP_VERSIONS) -> list[Path]:
    """Staging folders and link temp files left by killed publications, and versions beyond the newest `keep`
    (the current one always stays). Call it holding publication_lock. Returns what was removed."""
    target = Path(target)
    folder = versions_dir(target)
    removed: list[Path] = []
    current = current_version(target)
    for path in sorted(folder.glob(f"{_STAGING_PREFIX}*")):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for path in target.parent.glob(f".{target.name}.link-*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        removed.append(path)
    versions = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    others = [p for p in versions if p.name != current]
    for path in others[: max(0, len(others) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _new_version_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _point(target: Path, version: Path, *, adopt_existing: bool) -> None:
    """Make `target` a link to `version` in one rename (atomic on POSIX)."""
    link = target.parent / f".{target.name}.link-{secrets.token_hex(4)}"
    os.symlink(os.path.relpath(version, target.parent), link, target_is_directory=True)
    try:
        if target.exists() and not target.is_symlink():
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
            elif target.is_dir() and adopt_existing:
                # a folder written before versioned publication: kept as the oldest version, pruned in turn
                os.replace(target, versions_dir(target) / f"00000000-legacy-{secrets.token_hex(3)}")
            else:
                raise ExportError(f"{target} is an existing folder that is not a published set: give a new or empty path "
                                  "(it becomes a link to the current complete version)")
        os.replace(link, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()


def publish_versioned(target: str | Path, write: Callable[[Path], list[Path]], *, keep: int = KEEP_VERSIONS,
                      adopt_existing: bool = False) -> list[Path]:
    """Write a complete set of files with `write(folder)` into a fresh version folder, then make it current.

    `target` becomes (or stays) a link to `<target>.versions/<version>`; the swap is one rename, so `target`
    shows the previous complete set until the new one is whole. A failure (or a kill) leaves the previous set
    current; what a killed publication staged is removed by the next one, and old versions beyond `keep` too.
    `adopt_existing`: a plain folder already at `target` (our own, from before versioning) becomes a version;
    otherwise a non-empty plain folder there is refused. Returns the written paths as seen through `target`.
    """
    target = Path(target)
    if target.exists() and not target.is_symlink():
        if not target.is_dir():
            raise ExportError(f"{target} is a file, not a folder: give a folder path for the export")
        if not adopt_existing and any(target.iterdir()):
            raise ExportError(f"{target} is an existing folder that is not a published set: give a new or empty path "
                              "(it becomes a link to the current complete version)")
    folder = versions_dir(target)
    with publication_lock(target):
        remove_stale(target, keep=keep)
        name = _new_version_name()
        staging = folder / f"{_STAGING_PREFIX}{name}"
        staging.mkdir(parents=True)
        try:
            written = write(staging)
            final = folder / name
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _point(target, final, adopt_existing=adopt_existing)
        remove_stale(target, keep=keep)
    return [target / Path(p).relative_to(staging) for p in written]


# ---------------------------------------------------------------- JSON


def _write_json(df: pd.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        df.to_json(tmp, orient="records", date_format="iso", date_unit="us", force_ascii=False, indent=1)
    return target


# ---------------------------------------------------------------- XML


def _xml_name(table: str, column: str) -> str:
    if not _XML_NAME.match(column) or column.lower().startswith("xml"):
        raise ExportError(f"table {table!r}: column {column!r} is not a valid XML element name; rename it to export XML")
    return column


def _write_xml(table: str, batches: Iterable[pd.DataFrame], target: Path) -> Path:
    """One XML document per table (`<table><row><column>..`), as pandas' to_xml writes it, built batch by batch:
    each batch's rows are written and dropped, so memory holds one batch whatever the table's size."""
    root = table if _XML_NAME.match(table) and not table.lower().startswith("xml") else "table"
    try:
        import lxml  # noqa: F401  (faster, and pretty-prints)
        parser = "lxml"
    except ImportError:
        parser = "etree"
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
        written = named = False
        for batch in batches:
            if not named:
                for column in batch.columns:
                    _xml_name(table, str(column))
                named = True
            if not len(batch):
                continue
            document = _xml_batch(table, batch, root, parser)
            if not written:  # the declaration and root tag of the first batch open the file
                handle.write(document[: document.index(f"<{root}>") + len(root) + 2])
            # this batch's rows: between its root's opening and closing tags (the newline before the closing one
            # is written once, at the end)
            handle.write(document[document.index(f"<{root}>") + len(root) + 2: document.rindex(f"</{root}>")].rstrip("\n"))
            written = True
        if written:
            handle.write(f"\n</{root}>")
        else:
            handle.write(_xml_batch(table, pd.DataFrame(), root, parser))
    return target


def _xml_batch(table: str, batch: pd.DataFrame, root: str, parser: str) -> str:
    for column in batch.columns:
        if batch[column].dtype == object or pd.api.types.is_string_dtype(batch[column]):
            if batch[column].dropna().astype(str).str.contains(_XML_ILLEGAL).any():
                raise ExportError(f"table {table!r}: column {column!r} holds control characters that XML 1.0 cannot carry")
    out = batch.copy()
    for column in out.columns:  # ISO text for timestamps, the same as the JSON export
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].map(lambda v: None if pd.isna(v) else v.isoformat())
    return out.to_xml(None, index=False, root_name=root, row_name="row", parser=parser, encoding="utf-8")


# ---------------------------------------------------------------- Excel


def _sheet_names(tables: Iterable[str]) -> dict[str, str]:
    """Excel sheet names: at most 31 characters, no []:*?/\\, unique ignoring case."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for table in tables:
        base = _EXCEL_SHEET_BAD.sub("_", table)[:31] or "sheet"
        candidate, i = base, 1
        while candidate.lower() in taken:
            suffix = f"~{i}"
            candidate, i = base[: 31 - len(suffix)] + suffix, i + 1
        taken.add(candidate.lower())
        names[table] = candidate
    return names


def _excel_values(batch: pd.DataFrame) -> Iterator[tuple]:
    """Rows of cell values openpyxl takes: None for a missing value, naive datetimes (Excel has no time zones)."""
    out = batch.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert(None)
    out = out.astype(object)
    out = out.where(out.notna(), None)
    return out.itertuples(index=False, name=None)


def _write_excel(tables: Mapping[str, Iterable[pd.DataFrame]], target: Path, *, rows: Mapping[str, int] | None = None) -> Path:
    """One workbook, a sheet per table, in openpyxl's write-only mode: rows stream into the file batch by batch
    (memory holds one batch). `rows` (the tables' sizes, when known) refuses an oversized table before writing."""
    try:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
        from openpyxl.utils.exceptions import IllegalCharacterError
    except ImportError:
        raise ExportError("Excel export needs openpyxl: pip install 'genesis-pipelines[export]' (or pip install openpyxl)") from None

    def too_many(table: str, n: int) -> ExportError:
        return ExportError(f"table {table!r}: {n} rows do not fit one Excel sheet ({EXCEL_MAX_ROWS} max); export csv or parquet")

    for table, n in (rows or {}).items():
        if n > EXCEL_MAX_ROWS:
            raise too_many(table, n)
    sheets = _sheet_names(tables)
    workbook = Workbook(write_only=True)
    try:
        with atomic_path(target) as tmp:
            for table, batches in tables.items():
                sheet = workbook.create_sheet(sheets[table])
                written, header = 0, False
                for batch in batches:
                    if not header:
                        header_cells = [WriteOnlyCell(sheet, value=str(c)) for c in batch.columns]
                        for cell in header_cells:
                            cell.font = Font(bold=True)
                        sheet.append(header_cells)
                        header = True
                    written += len(batch)
                    if written > EXCEL_MAX_ROWS:
                        raise too_many(table, written)
                    _refuse_illegal_excel_text(table, batch)
                    try:
                        for row in _excel_values(batch):
                            sheet.append(row)
                    except IllegalCharacterError:
                        raise ExportError(f"table {table!r}: a text column holds control characters that Excel cannot store") from None
            workbook.save(tmp)
    except BaseException:
        _abandon(workbook)
        raise
    return target


def _refuse_illegal_excel_text(table: str, batch: pd.DataFrame) -> None:
    """Checked per batch before any of its rows is written (openpyxl would stop mid-sheet)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    for column in batch.columns:
        if batch[column].dtype == object or pd.api.types.is_string_dtype(batch[column]):
            if batch[column].dropna().astype(str).str.contains(ILLEGAL_CHARACTERS_RE).any():
                raise ExportError(f"table {table!r}: column {column!r} holds control characters that Excel cannot store")


def _abandon(workbook) -> None:
    """A workbook given up half-written: each sheet's stream is closed and its temporary file removed."""
    for sheet in workbook.worksheets:
        with contextlib.suppress(Exception):
            sheet.close()
        writer = getattr(sheet, "_writer", None)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.cleanup()


# ---------------------------------------------------------------- SQL


def quote_identifier(name: str) -> str:
    """ANSI double-quoted identifier (MySQL: SET sql_mode='ANSI_QUOTES')."""
    return '"' + str(name).replace('"', '""') + '"'


def sql_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMP"
    return "TEXT"


def sql_literal(value, *, table: str = "?", column: str = "?") -> str:
    """One value as a SQL literal: strings quoted with '' doubled, NaN/NA as NULL, booleans TRUE/FALSE."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "NULL"
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return "NULL" if math.isnan(number) or math.isinf(number) else repr(number)
    if isinstance(value, Decimal):
        return "NULL" if not value.is_finite() else str(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        if getattr(value, "tzinfo", None) is not None:
            value = pd.Timestamp(value).tz_convert("UTC").tz_localize(None)
        return "'" + pd.Timestamp(value).isoformat(sep=" ") + "'"
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    text = str(value)
    if "\x00" in text:
        raise ExportError(f"table {table!r}: column {column!r} holds a NUL character, which SQL text cannot carry")
    return "'" + text.replace("'", "''") + "'"


def _create_table(table: str, df: pd.DataFrame, schema: DatasetSchema | None) -> str:
    lines = [f"  {quote_identifier(c)} {sql_type(df[c])}" for c in df.columns]
    meta = schema.tables.get(table) if schema else None
    if meta and meta.primary_key and all(c in df.columns for c in meta.primary_key):
        lines.append(f"  PRIMARY KEY ({', '.join(quote_identifier(c) for c in meta.primary_key)})")
    for fk in schema.fks_of(table) if schema else []:
        # self references are left out: engines differ on checking them row by row
        if fk.is_self_reference or not set(fk.child_columns) <= set(df.columns):
            continue
        lines.append(f"  FOREIGN KEY ({', '.join(quote_identifier(c) for c in fk.child_columns)}) "
                     f"REFERENCES {quote_identifier(fk.parent_table)} ({', '.join(quote_identifier(c) for c in fk.parent_columns)})")
    return f"CREATE TABLE {quote_identifier(table)} (\n" + ",\n".join(lines) + "\n);\n"


def sql_script(tables: Mapping[str, pd.DataFrame | Iterable[pd.DataFrame]], *,
               schema: DatasetSchema | None = None) -> Iterable[str]:
    """CREATE TABLE + batched INSERTs in the given (generation) order, in one transaction. A table is a frame or
    an iterable of frames (warehouse_batches): the first one's dtypes give the column types."""
    yield "-- synthetic data written by Genesis Pipelines\nBEGIN;\n"
    for table, frames in tables.items():
        created = False
        for df in [frames] if isinstance(frames, pd.DataFrame) else frames:
            if not created:
                yield "\n" + _create_table(table, df, schema)
                columns = ", ".join(quote_identifier(c) for c in df.columns)
                names = [str(c) for c in df.columns]
                created = True
            for start in range(0, len(df), SQL_BATCH_ROWS):
                chunk = df.iloc[start:start + SQL_BATCH_ROWS]
                rows = [
                    "(" + ", ".join(sql_literal(v, table=table, column=c) for v, c in zip(row, names)) + ")"
                    for row in chunk.itertuples(index=False, name=None)
                ]
                yield f"INSERT INTO {quote_identifier(table)} ({columns}) VALUES\n" + ",\n".join(rows) + ";\n"
    yield "COMMIT;\n"


def write_sql(tables: Mapping[str, pd.DataFrame], target: Path, *, schema: DatasetSchema | None = None) -> Path:
    with atomic_path(target) as tmp:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            for part in sql_script(tables, schema=schema):
                handle.write(part)
    return target


# ---------------------------------------------------------------- S3 (Parquet)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at the ends)."""
    if not uri or not uri.startswith("s3://") or not uri[5:].split("/")[0]:
        raise ExportError(f"S3 export target must look like s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def s3_table_key(prefix: str, dataset: str, table: str) -> str:
    return "/".join(part for part in (prefix, dataset, f"{table}.parquet") if part)


# error codes that no retry will fix; anything else from S3 (5xx, throttling, network) counts as transient
PERMANENT_S3_CODES = {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                      "InvalidBucketName", "AccountProblem", "NoSuchKey", "404", "403", "400"}


def _s3_error(exc: Exception, bucket: str, key: str, action: str) -> ExportError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "?"))
        if code == "NoSuchBucket":
            return ExportError(f"S3 bucket {bucket!r} does not exist: create it or fix GENESIS_EXPORT_S3_URI")
        if code in PERMANENT_S3_CODES:
            return ExportError(f"cannot {action} s3://{bucket}/{key} ({code})")
        return TransientExportError(f"cannot {action} s3://{bucket}/{key} ({code}); may pass on retry")
    return TransientExportError(f"cannot {action} s3://{bucket}/{key} ({exc.__class__.__name__}); may pass on retry")


def write_s3_parquet(df: pd.DataFrame, client, bucket: str, key: str) -> int:
    """Upload one table as Parquet (a single PUT: S3 shows the object whole or not at all). Returns bytes written."""
    from botocore.exceptions import BotoCoreError, ClientError

    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    body = buffer.getvalue()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet")
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, bucket, key, "write") from None
    return len(body)


def read_s3_parquet(client, bucket: str, key: str) -> pd.DataFrame:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, bucket, key, "read") from None
    return pd.read_parquet(io.BytesIO(body))
