"""End to end: no real PII value and no 20-character snippet of real free text leaves the pipeline.

The shop dataset of test_assets gets two free-text columns: delivery notes that mention people (names, phones,
emails: kind free_text_pii, replaced) and product reviews without PII (semantic type text, generated). After a
full dg.materialize every place a value could escape is scanned: synthetic tables (warehouse and exports),
reports, the model directory (model, guards, expectation suites), the event log and all metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster._serdes import serialize_value

from genesis_pipelines_tests.helpers import materialize_all, write_shop

pytestmark = pytest.mark.dagster

WIDTH = 20
_REVIEW_WORDS = ("sturdy parcel arrived promptly wrapped carefully colour matched photos sizing generous stitching "
                 "flawless battery lasted weekend hinge squeaks slightly zipper jammed twice fabric breathes").split()


def _add_free_text(spec: Path, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    data = spec.parent / "data"
    customers = pd.read_csv(data / "customers.csv")
    orders = pd.read_csv(data / "orders.csv")
    who = customers.set_index("customer_id").loc[orders["customer_id"]].reset_index()
    notes = []
    for i, row in who.iterrows():
        if i % 2 == 0:
            notes.append(f"Leave with {row.first_name} {row.last_name} or call {row.phone} before noon, order {i}")
        else:
            notes.append(f"Questions to {row.email} please, parcel {i} goes to the back door")
    reviews = [" ".join(rng.choice(_REVIEW_WORDS, size=int(rng.integers(6, 12)))) + f" ({i})" for i in range(len(orders))]
    orders["delivery_notes"] = notes
    orders["review"] = reviews
    orders.to_csv(data / "orders.csv", index=False)
    spec.write_text(spec.read_text() + "quasi_identifiers: {orders: [coupon, ordered_at]}\n"
                                       "sensitive_columns: {orders: [amount]}\n")
    return notes, reviews


def _real_identifiers(spec: Path) -> tuple[set[str], set[str]]:
    """Values that may appear nowhere (emails, phones, full names) and single names that may not be a whole cell."""
    customers = pd.read_csv(spec.parent / "data" / "customers.csv", dtype=str)
    anywhere = set(customers["email"]) | set(customers["phone"]) | set(customers["first_name"] + " " + customers["last_name"])
    whole = set(customers["first_name"]) | set(customers["last_name"])
    return anywhere, whole


def _windows(texts: list[str]) -> set[str]:
    return {t[i:i + WIDTH].casefold() for t in texts for i in range(len(t) - WIDTH + 1)}


def _snippets_in(text: str, windows: set[str]) -> int:
    folded = text.casefold()
    return sum(folded[i:i + WIDTH] in windows for i in range(len(folded) - WIDTH + 1))


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop_leaks")
    data_dir = root / "data_dir"
    spec = write_shop(root / "shop")
    notes, reviews = _add_free_text(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data_dir))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_all(spec, instance)
        yield spec, result, instance, data_dir, notes + reviews


def test_free_text_with_pii_is_found_and_replaced(shop_run):
    spec, result, _, data_dir, _ = shop_run
    assert result.success
    findings = {(f["table"], f["column"]): f for f in json.loads((data_dir / "shop" / "pii_scan.json").read_text())}
    assert findings[("orders", "delivery_notes")]["kind"] == "free_text_pii"
    assert ("orders", "review") not in findings  # prose without PII is not PII
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        synthetic = con.execute('select * from synthetic_shop."orders"').df()
    assert synthetic["delivery_notes"].notna().mean() > 0.9
    (model_dir,) = [p for p in (data_dir / "shop" / "models").iterdir() if p.is_dir() and p.name.startswith("v")]
    guard = json.loads((model_dir / "text_guard.json").read_text())
    assert guard["width"] == WIDTH and len(guard["digests"]) > 1000  # both text columns, digests only


def test_checks_ran_and_passed(shop_run):
    _, result, _, _, _ = shop_run
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    for table in ("customers", "orders"):
        leak = evaluations[(f"shop/synthetic/{table}", "no_pii_leak")]
        assert leak.passed and leak.metadata["text_snippet_leaks"].value == 0
        expectations = evaluations[(f"shop/synthetic/{table}", "expectations")]
        assert expectations.metadata["expectations_evaluated"].value > 5
    privacy = evaluations[("shop/privacy_report", "privacy_gates")]
    gates = {r.data["gate"]: r.data for r in privacy.metadata["gates"].value.records}
    assert gates["exact_copies_max"]["threshold"] == "0" and gates["exact_copies_max"]["result"] == "passed"
    assert "exact_copies_max at most 0" in privacy.metadata["thresholds"].value


def test_nothing_real_escapes_anywhere(shop_run):
    spec, result, instance, data_dir, texts = shop_run
    anywhere, whole = _real_identifiers(spec)
    windows = _windows(texts)
    scanned = {"event log": "\n".join(serialize_value(record) for record in instance.all_logs(result.run_id))}
    for folder in ("reports", "models", "synthetic"):
        for path in (data_dir / "shop" / folder).rglob("*"):
            if path.is_file() and path.suffix in (".json", ".html", ".csv", ".md"):
                scanned[str(path.relative_to(data_dir))] = path.read_text(encoding="utf-8")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for table in ("customers", "orders"):
            frame = con.execute(f'select * from synthetic_shop."{table}"').df()
            scanned[f"warehouse synthetic {table}"] = frame.to_csv()
            cells = set(frame.astype(str).to_numpy().ravel())
            assert not cells & whole, f"a real first or last name is a whole value in synthetic {table}"
    assert len(scanned) > 8
    for where, text in scanned.items():
        leaked = [value for value in anywhere if value in text]
        assert not leaked, f"{len(leaked)} real identifiers found in {where}"
        assert _snippets_in(text, windows) == 0, f"a 20-character snippet of real free text found in {where}"


def test_scan_would_catch_a_leak(shop_run):
    """The scanner itself works: a planted snippet and a planted email are found."""
    spec, _, _, _, texts = shop_run
    anywhere, _ = _real_identifiers(spec)
    planted = "lorem " + texts[0][3:3 + WIDTH + 2] + " ipsum " + sorted(anywhere)[0]
    assert _snippets_in(planted, _windows(texts)) > 0
    assert any(value in planted for value in anywhere)
