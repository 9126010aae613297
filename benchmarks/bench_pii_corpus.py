"""PII detection on the shared corpus (chinook, sakila, bakeoff): precision and recall per database, headers as-is
and headers replaced by c1..cn (then only the values speak).

Ground truth is labelled here from each SOURCE.md (names, emails, phones, addresses are the PII they document);
key columns are left out, as the scan leaves them to the relational layer (the tables are profiled here, with the
keys of schema.yaml, and go through `scan_tables` as in the pipeline). A PII column counts as found when the
scan flags it with any kind, a non-PII column as a false positive when flagged at all (city, kept by default, is
not counted: a city alone is not personal data, and the scan keeps it).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pii_corpus.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _harness import corpus_dir  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import profile_table  # noqa: E402
from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey  # noqa: E402
from genesis_pipelines.engine.core.spec import DatasetSpec  # noqa: E402
from genesis_pipelines.engine.privacy.pii import scan_tables  # noqa: E402
from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types  # noqa: E402

PII = {
    "chinook": {"Customer": "FirstName LastName Company Address PostalCode Phone Fax Email",
                "Employee": "LastName FirstName BirthDate Address PostalCode Phone Fax Email",
                "Invoice": "BillingAddress BillingPostalCode", "Track": "Composer"},
    "sakila": {"actor": "first_name last_name", "customer": "first_name last_name email",
               "staff": "first_name last_name email username", "address": "address address2 postal_code phone"},
    "bakeoff": {"bakers": "baker_full baker_last baker_first",
                "series_raw": "winner runner_up_1 runner_up_2",
                "episodes": "sb_name winner_name eliminated"},
    "adult": {},  # no personal data: every finding is a false positive
    "nycflights13": {},
}


def _dataset(database: str, renamed: bool):
    """The tables (headers as-is or c1..cn), their schema (keys from schema.yaml) and a header -> column map."""
    folder = corpus_dir() / database
    schema_file = folder / "schema.yaml"  # adult has none: one table, no keys
    declared = yaml.safe_load(schema_file.read_text()) if schema_file.is_file() else {"tables": {}}
    tables, headers = {}, {}
    for path in sorted(folder.glob("*.csv")):
        df = coerce_types(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS))
        headers[path.stem] = {c: f"c{i + 1}" if renamed else c for i, c in enumerate(df.columns)}
        tables[path.stem] = df.rename(columns=headers[path.stem])
    spec = DatasetSpec(name=database)
    metas = {}
    for table, df in tables.items():
        meta = profile_table(table, df, spec)
        pk = declared["tables"].get(table, {}).get("primary_key") or []
        meta.primary_key = [headers[table][c] for c in ([pk] if isinstance(pk, str) else pk)]
        metas[table] = meta
    fks = [ForeignKey(child_table=fk["child_table"], child_column=headers[fk["child_table"]][fk["child_column"]],
                      parent_table=fk["parent_table"], parent_column=headers[fk["parent_table"]][fk["parent_column"]])
           for fk in declared.get("foreign_keys", [])]
    schema = DatasetSchema(dataset=database, tables=metas, foreign_keys=fks, generation_order=list(tables))
    return tables, schema, spec, headers


def score(database: str, renamed: bool) -> tuple[int, int, int, list[str], list[str]]:
    """TP, FP, FN over the non-key columns; a personal-data column without any value counts neither way."""
    tables, schema, spec, headers = _dataset(database, renamed)
    found = {(f.table, f.column) for f in scan_tables(tables, schema, spec) if f.kind != "city"}
    tp = fp = fn = 0
    missed, false = [], []
    for table, columns in headers.items():
        truth = set(PII.get(database, {}).get(table, "").split())
        keys = schema.key_columns(table)
        for column, header in columns.items():
            if header in keys:
                continue
            flagged, pii = (table, header) in found, column in truth
            if pii and not flagged and not tables[table][header].notna().any():
                continue  # a column with no values (sakila's address2) holds nothing to find or to leak
            tp += flagged and pii
            fp += flagged and not pii
            fn += pii and not flagged
            if pii and not flagged:
                missed.append(f"{table}.{column}")
            if flagged and not pii:
                false.append(f"{table}.{column}")
    return tp, fp, fn, missed, false


def main() -> None:
    if not corpus_dir().is_dir():
        print(f"corpus not found at {corpus_dir()}: set GENESIS_CORPUS_DIR")
        return
    print(f"{'database':10} {'headers':8} {'TP':>3} {'FP':>3} {'FN':>3} {'precision':>9} {'recall':>6}  missed / false positives")
    for database in PII:
        for renamed in (False, True):
            tp, fp, fn, missed, false = score(database, renamed)
            precision = tp / (tp + fp) if tp + fp else 1.0
            recall = tp / (tp + fn) if tp + fn else 1.0
            print(f"{database:10} {'c1..cn' if renamed else 'as-is':8} {tp:3} {fp:3} {fn:3} {precision:9.2f} {recall:6.2f}  "
                  f"{', '.join(missed) or '-'} / {', '.join(false) or '-'}")


if __name__ == "__main__":
    main()
