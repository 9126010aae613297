"""The reports as a person meets them: metadata in the UI (links, headline, gates, column tags and lineage), the HTML
in headless Chromium (summary visible without scrolling, no console error), and the report link through the webserver.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
import pytest

from genesis_pipelines.engine.evaluation import catalog
from genesis_pipelines_tests.helpers import PROJECT_ROOT, materialize_all, write_shop

pytestmark = pytest.mark.dagster

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop_ui")
    data_dir = root / "data"
    spec = write_shop(root / "specs" / "shop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENESIS_DATA_DIR", str(data_dir))
        mp.delenv("GENESIS_WAREHOUSE", raising=False)
        mp.delenv("GENESIS_REPORTS_URL", raising=False)
        result = materialize_all(spec, dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = {e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
                for e in result.get_asset_materialization_events()}
    yield metadata, data_dir, root


# ---------------------------------------------------------------- numbers and metadata


def test_numbers_read_like_a_person_writes_them():
    assert catalog.readable(0.14954827961812006) == 0.1495
    assert catalog.readable(2.0029671421627253e-32) == 0.0
    assert catalog.readable(81.654321) == 81.65 and catalog.readable(2334) == 2334
    assert catalog.percent(0.14954827961812006) == "15.0%" and catalog.percent(0.0007171) == "0.0717%"
    assert catalog.percent(0.0) == "0%" and catalog.percent(1.0) == "100%"
    assert catalog.number_text(0.6) == "0.6" and catalog.number_text(0.0) == "0" and catalog.number_text(None) == "n/a"


def test_generator_summaries_carry_no_category_value():
    describe = {"column_order": ["__parent.GenreId.Name", "__parent.GenreId.Name=Rock", "__parent.GenreId.Name=Jazz"],
                "tokens_per_column": {"__parent.GenreId.Name=Rock": {"tokens": 2}, "Bytes": {"bins": 53}}, "loss": 0.123456789}
    safe = catalog.value_free(describe)
    text = json.dumps(safe)
    assert "Rock" not in text and "Jazz" not in text
    assert safe["column_order"] == ["__parent.GenreId.Name", "__parent.GenreId.Name=#1", "__parent.GenreId.Name=#2"]
    assert safe["tokens_per_column"] == {"__parent.GenreId.Name=#1": {"tokens": 2}, "Bytes": {"bins": 53}}
    assert safe["loss"] == 0.1235


def test_report_assets_link_their_html_and_lead_with_the_headline(shop):
    metadata, data_dir, _ = shop
    for kind in ("quality_report", "privacy_report"):
        m = metadata[f"shop/{kind}"]
        url = m["report"]
        assert isinstance(url, dg.UrlMetadataValue) and url.url.startswith("file://")
        assert Path(unquote(urlparse(url.url).path)) == (data_dir / "shop" / "reports" / f"{kind}.html").resolve()
        assert Path(unquote(urlparse(url.url).path)).is_file()
        headline = m["headline"].value
        assert headline.startswith("**") and ("Grade" in headline or "privacy gate" in headline)
        gates = [r.data for r in m["gates"].value.records]
        assert gates and all({"gate", "value", "threshold", "result"} <= set(g) for g in gates)
    privacy = metadata["shop/privacy_report"]
    assert isinstance(privacy["copies"], dg.IntMetadataValue)
    rate = privacy["copy_rate"].value
    assert rate == catalog.readable(rate) and len(repr(rate)) <= 8  # 4 significant digits, not 0.14954827961812006


def test_reports_url_follows_a_configured_server(shop, monkeypatch):
    from genesis_pipelines.defs.metadata import report_url

    _, data_dir, _ = shop
    path = data_dir / "shop" / "reports" / "quality_report.html"
    monkeypatch.setenv("GENESIS_REPORTS_URL", "http://127.0.0.1:8001/")
    assert report_url(path, data_dir) == "http://127.0.0.1:8001/shop/reports/quality_report.html"


def test_tables_carry_column_tags_descriptions_and_lineage(shop):
    metadata, _, _ = shop
    source = {c.name: c for c in metadata["shop/source/customers"]["dagster/column_schema"].value.columns}
    assert source["customer_id"].tags["semantic_type"] == "id" and source["customer_id"].tags["role"] == "primary key"
    assert source["email"].tags["pii"] == "email" and source["email"].tags["pii_policy"] == "fake"
    assert source["age"].tags["semantic_type"] in ("integer", "numeric") and "pii" not in source["age"].tags
    assert "distinct" in source["age"].description and "null" in source["age"].description
    synthetic = metadata["shop/synthetic/orders"]
    columns = {c.name: c for c in synthetic["dagster/column_schema"].value.columns}
    assert columns["amount"].description.startswith("synthetic, learned from orders.amount")
    assert synthetic["dagster/uri"].value.startswith("file://") and synthetic["dagster/uri"].value.endswith("orders.parquet")
    lineage = synthetic["dagster/column_lineage"].value.deps_by_column
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage["amount"]] == [("shop/source/orders", "amount")]
    assert ("shop/synthetic/customers", "customer_id") in [(d.asset_key.to_user_string(), d.column_name)
                                                          for d in lineage["customer_id"]]
    schema_rows = [r.data for r in metadata["shop/schema"]["columns"].value.records]
    age = next(r for r in schema_rows if r["column"] == "customers.age")
    assert age["null rate"] == "0%" and age["distinct"] > 10
    findings = [r.data for r in metadata["shop/pii_scan"]["findings"].value.records]
    assert {"customers.email", "customers.first_name"} <= {f["column"] for f in findings}
    assert "declared" not in metadata["shop/pii_scan"]["by_kind"].value


# ---------------------------------------------------------------- the HTML in a real browser


class _Chromium:
    """Headless Chromium driven over the DevTools protocol (websockets, already a dependency of the webserver)."""

    def __init__(self, width: int = 1280, height: int = 800):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="genesis-chromium-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60  # a fail-safe for a browser that never starts, not a measurement
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(p for p in pages if p.get("type") == "page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self.next_id, self.events = 0, []
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=60)))

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(str(params.get("args")))
            elif e.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text")))
        return errors

    def close(self) -> None:
        if getattr(self, "stack", None) is not None:
            self.stack.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


_LAYOUT = """JSON.stringify((() => {
  const s = document.getElementById("summary"), h = s && s.querySelector(".headline");
  const r = h ? h.getBoundingClientRect() : null, box = s ? s.getBoundingClientRect() : null;
  const images = [...document.images];
  return {headline: h ? h.innerText : null, top: r && r.top, bottom: r && r.bottom, box_top: box && box.top,
          viewport: window.innerHeight, scroll: window.scrollY, height: document.documentElement.scrollHeight,
          nav: [...document.querySelectorAll("nav a")].map(a => a.getAttribute("href")),
          broken_links: [...document.querySelectorAll("nav a")].filter(a => !document.querySelector(a.getAttribute("href"))).length,
          images: images.length, broken_images: images.filter(i => !i.complete || i.naturalWidth === 0).length,
          sections: document.querySelectorAll("details.block").length};
})())"""


@needs_chromium
def test_both_reports_lead_with_a_visible_summary_in_chromium(shop):
    _, data_dir, _ = shop
    browser = _Chromium()
    try:
        for kind in ("quality_report", "privacy_report"):
            browser.open((data_dir / "shop" / "reports" / f"{kind}.html").resolve().as_uri())
            layout = json.loads(browser.evaluate(_LAYOUT))
            assert layout["headline"], kind
            assert layout["scroll"] == 0 and 0 <= layout["box_top"] and layout["bottom"] <= layout["viewport"], (kind, layout)
            assert "#summary" in layout["nav"] and layout["broken_links"] == 0, (kind, layout)
            assert layout["broken_images"] == 0 and layout["sections"] >= 1, (kind, layout)
            assert browser.console_errors() == [], kind
            # a per-table section starts collapsed and opens with a click on its title
            opened = browser.evaluate("""(() => { const d = [...document.querySelectorAll("details.block")].find(d => !d.open);
                                          const before = d.open; d.querySelector("summary").click(); return [before, d.open]; })()""")
            assert opened == [False, True], kind
            assert browser.console_errors() == [], kind
    finally:
        browser.close()


# ---------------------------------------------------------------- the report link through the webserver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_REPORT_QUERY = """query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetMaterializations(limit: 1) { metadataEntries { label __typename ... on UrlMetadataEntry { url } ... on MarkdownMetadataEntry { mdStr } } }
  }
}"""


@pytest.mark.slow
def test_webserver_shows_the_report_link(tmp_path):
    """Launch a dataset's job as `scripts/demo.sh` does (through the workspace, so the run has an origin), serve the
    instance with the webserver on 127.0.0.1 and find each report's URL on its asset through GraphQL, the way the
    UI's asset page reads it."""
    home, data_dir, specs = tmp_path / "home", tmp_path / "data", tmp_path / "specs"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    write_shop(specs / "shop")
    env = {**os.environ, "DAGSTER_HOME": str(home), "GENESIS_DATA_DIR": str(data_dir), "GENESIS_SPECS_DIR": str(specs),
           "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("GENESIS_WAREHOUSE", None)
    env.pop("GENESIS_REPORTS_URL", None)
    bin_dir = Path(sys.executable).parent
    launched = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "launch_run.py"), "shop_synthetic_twin"],
                              env=env, cwd=tmp_path, capture_output=True, text=True)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.remote_job_origin is not None and run.remote_job_origin.location_name == "genesis_pipelines"
        assert run.tags.get("dataset") == "shop"
    port = _free_port()
    server = subprocess.Popen([str(bin_dir / "dagster-webserver"), "-m", "genesis_pipelines.definitions", "-h", "127.0.0.1",
                               "-p", str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180  # fail-safe: the webserver loads the code location before it answers
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the webserver did not start")
                time.sleep(0.2)
        for kind in ("quality_report", "privacy_report"):
            body = json.dumps({"query": _REPORT_QUERY, "variables": {"path": ["shop", kind]}}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                             headers={"Content-Type": "application/json"})
            answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
            (node,) = answer["data"]["assetNodes"]
            entries = {e["label"]: e for e in node["assetMaterializations"][0]["metadataEntries"]}
            assert entries["report"]["__typename"] == "UrlMetadataEntry"
            url = entries["report"]["url"]
            assert url == (data_dir / "shop" / "reports" / f"{kind}.html").resolve().as_uri()
            assert Path(unquote(urlparse(url).path)).is_file()
            assert entries["headline"]["__typename"] == "MarkdownMetadataEntry" and entries["headline"]["mdStr"].startswith("**")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_single_bin_plots_and_empty_cells_are_left_out():
    from genesis_pipelines.engine.evaluation.report import informative, render_html

    assert not informative({"real": [1.0], "synthetic": [1.0]})
    assert not informative({"real": [1.0, 0.0], "synthetic": [1.0, 0.0]})  # one bin holds every row
    assert informative({"real": [0.5, 0.5], "synthetic": [1.0, 0.0]})
    privacy = {"tables": {"t": {"columns_compared": 2, "exact_copies": {"copies": 0, "copy_rate": 0.0},
                                "dcr": {"share_closer_to_train": 0.5, "histogram": {"edges": [0.0, 0.1, 0.2], "synthetic": [9, 0],
                                                                                    "holdout": [9, 0]}},
                                "k_anonymity": {"k": 6, "l_diversity": {}}, "mia": {"distance": {"skipped": "too few rows"}}}},
               "gates": {"mia_auc_max": {"value": None, "threshold": 0.6, "passed": None}}}
    page = render_html(privacy, title="p", kind="privacy")
    assert "DCR histogram of t" not in page  # the histogram has a single filled bin
    assert "l-diversity" not in page and "Membership inference</th>" not in page and "k = 6" in page
    quality = {"overall_score": 90.0, "grade": "A", "tables": {"t": {"column_shapes": 90.0, "columns": {
        "a": {"metric": "tv_complement", "score": 0.9, "real_null_rate": 0.0, "synthetic_null_rate": 0.0}}}}}
    page = render_html(quality, title="q", kind="quality", charts=False)
    assert "Wasserstein" not in page and "JS distance" not in page  # n/a for every column: no such table column
    assert "Grade A" in page and 'id="summary"' in page


def test_model_kinds_follow_what_each_generator_trains_with():
    from genesis_pipelines.engine.synthesis.generators import available_methods, create_generator

    for method in available_methods():
        if method == "auto":
            continue
        cls = type(create_generator(method))
        uses_torch = any(hasattr(sys.modules.get(c.__module__), "torch") for c in cls.__mro__)
        assert ("torch" in catalog.generator_families([method])) == uses_torch, method
    assert catalog.generator_families(["auto"]) == {"scipy", "torch"}
