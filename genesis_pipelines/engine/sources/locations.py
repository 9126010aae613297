"""Where a dataset's source tables are: their names, files and S3 keys, listed without reading any data (so the
code location and the sensors find them without loading the data stack). Reading them is sources.io."""

from __future__ import annotations

from pathlib import Path

from genesis_pipelines.engine.core.errors import SourceError
from genesis_pipelines.engine.core.spec import DatasetSpec


def source_table_names(spec: DatasetSpec) -> list[str]:
    """Declared tables, else every table found in the source."""
    if spec.tables:
        return list(spec.tables)
    if spec.source.is_s3:
        names = sorted(key[len(s3_prefix(spec)):-len(spec.source.suffix)] for key in list_s3_objects(spec)
                       if key.endswith(spec.source.suffix) and "/" not in key[len(s3_prefix(spec)):])
        if not names:
            raise SourceError(f"dataset {spec.name!r}: no {spec.source.suffix} files under s3://{spec.source.bucket}/{s3_prefix(spec)}")
        return names
    root = spec.source_path
    if spec.source.kind == "duckdb":
        if not root.is_file():
            raise SourceError(f"dataset {spec.name!r}: DuckDB file {root} does not exist")
        import duckdb

        with duckdb.connect(str(root), read_only=True) as con:
            rows = con.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [spec.source.schema_name or "main"],
            ).fetchall()
        return sorted(r[0] for r in rows)
    if not root.is_dir():
        raise SourceError(f"dataset {spec.name!r}: source folder {root} does not exist")
    suffix = spec.source.suffix
    names = sorted(p.stem for p in root.glob(f"*{suffix}"))
    if not names:
        raise SourceError(f"dataset {spec.name!r}: no {suffix} files in source folder {root}")
    return names


def source_file(spec: DatasetSpec, table: str) -> Path:
    declared = spec.tables.get(table)
    if declared and declared.file:
        return spec.source_path / declared.file
    return spec.source_path / f"{table}{spec.source.suffix}"


# S3 (boto3, imported only for S3 sources; AWS_ENDPOINT_URL picks a local server)


def s3_client():
    import boto3  # only S3 sources need it

    return boto3.client("s3")


def s3_prefix(spec: DatasetSpec) -> str:
    prefix = spec.source.prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def s3_key(spec: DatasetSpec, table: str) -> str:
    declared = spec.tables.get(table)
    return s3_prefix(spec) + (declared.file if declared and declared.file else f"{table}{spec.source.suffix}")


def list_s3_objects(spec: DatasetSpec, client=None) -> dict[str, dict]:
    """Key -> {size, etag, modified} for every object under the prefix; a missing bucket is a SourceError."""
    from botocore.exceptions import ClientError

    client = client or s3_client()
    out: dict[str, dict] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=spec.source.bucket, Prefix=s3_prefix(spec)):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = {"size": int(obj["Size"]), "etag": obj["ETag"].strip('"'),
                                   "modified": obj["LastModified"].isoformat()}
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise SourceError(f"dataset {spec.name!r}: cannot list s3://{spec.source.bucket}/{s3_prefix(spec)} ({code})") from None
    return out
