"""How long the code location takes to load with N dataset specs, and whether it reads source data.

Usage: python benchmarks/bench_load.py [--specs 10]

Makes N specs in a temp folder (copies of the bundled chinook, nycflights and nycflights_inferred, renamed), then
loads `genesis_pipelines.definitions` in a fresh interpreter three times, each timed in wall and CPU seconds (and
CPU s per phase: importing Dagster, Dagster's scan of installed component libraries, this project's build, job
resolution, and the repository snapshot a code server sends the webserver):
  baseline   no stored plans: every dataset whose plan needs data (inferred keys) is planned from its source
  stored     the plans the first load stored (what the schema step stores too): no source data is read
  stored     again (file cache warm)
and prints whether torch / pandas were imported (they should not be at load). Target: < 5 s with 10.
Writes nothing under the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "resources" / "datasets"

PROBE = """
import json, os, sys, time
def cpu():
    t = os.times()
    return t.user + t.system
wall, start = time.perf_counter(), cpu()
import dagster as dg
from dagster.components.core import package_entry
imported = cpu()
library = [0.0]
discover = package_entry.discover_entry_point_package_objects
def timed_discovery():  # Dagster's scan of installed component libraries (entry points, e.g. dagster-aws), wherever
    t = cpu()           # it runs: load_from_defs_folder's metadata, or the snapshot of an attached component tree
    try:
        return discover()
    finally:
        library[0] += cpu() - t
package_entry.discover_entry_point_package_objects = timed_discovery
from genesis_pipelines.definitions import build_definitions
defs = build_definitions()
built, library_in_build = cpu(), library[0]
jobs = sum(j.name.endswith("_synthetic_twin") for j in defs.resolve_all_job_defs())
broken = sum(k.path[-1] == "definition_error" for k in defs.resolve_asset_graph().get_all_asset_keys())
resolved = cpu()
from dagster._core.remote_representation.external_data import RepositorySnap
RepositorySnap.from_def(defs.get_repository_def())  # what a code server sends the webserver
done = cpu()
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": done - start, "dagster": imported - start,
                  "library": library[0], "build": built - imported - library_in_build, "jobs": resolved - built,
                  "snapshot": done - resolved - (library[0] - library_in_build), "twins": jobs, "broken": broken, "torch": "torch" in sys.modules,
                  "pandas": "pandas" in sys.modules,
                  "relational": "genesis_pipelines.engine.synthesis.relational" in sys.modules,
                  "jobs_count": len(defs.resolve_all_job_defs())}))
"""


def make_specs(folder: Path, count: int) -> None:
    bases = ["chinook", "nycflights", "nycflights_inferred"]
    for i in range(count):
        base = bases[i % len(bases)]
        target = folder / f"{base}_{i}"
        shutil.copytree(BUNDLED / base, target)
        spec = target / "dataset.yaml"
        text = spec.read_text(encoding="utf-8").replace(f"name: {base}\n", f"name: {base}_{i}\n", 1)
        # nycflights_inferred reads ../nycflights/data: point it at the bundled copy
        text = text.replace("../nycflights/data", str(BUNDLED / "nycflights" / "data"))
        spec.write_text(text, encoding="utf-8")


def load_once(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"load failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genesis-bench-load-") as tmp:
        work = Path(tmp)
        make_specs(work / "specs", args.specs)
        env = {**os.environ, "GENESIS_SPECS_DIR": str(work / "specs"), "GENESIS_DATA_DIR": str(work / "data"),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("GENESIS_WAREHOUSE", None)
        rows = [("baseline: no stored plans", load_once(env)), ("stored plans", load_once(env)),
                ("stored plans, again", load_once(env))]
    print(f"code location load with {args.specs} dataset specs (fresh interpreter: import, build, jobs, snapshot; "
          "CPU s per phase)")
    print(f"{'run':<24}{'wall s':>8}{'CPU s':>8}{'dagster':>9}{'dg libs':>9}{'build':>7}{'jobs':>6}{'snap':>6}"
          f"{'twins':>6}{'jobs#':>6}{'broken':>7}{'torch':>7}{'pandas':>7}")
    for name, r in rows:
        print(f"{name:<24}{r['wall']:>8.2f}{r['cpu']:>8.2f}{r['dagster']:>9.2f}{r['library']:>9.2f}{r['build']:>7.2f}"
              f"{r['jobs']:>6.2f}{r['snapshot']:>6.2f}{r['twins']:>6}{r['jobs_count']:>6}{r['broken']:>7}{str(r['torch']):>7}"
              f"{str(r['pandas']):>7}")
    best = min(rows[1:], key=lambda row: row[1]["wall"])[1]
    print("dagster: import dagster; dg libs: Dagster's scan of the installed component libraries (entry points: "
          "dagster-aws when installed; 0 when nothing runs it); build: this project's definitions; jobs: job "
          "resolution (jobs#: how many, Dagster's implicit asset job among them); snap: the repository snapshot a "
          "code server sends")
    print(f"target < 5 s with stored plans: {'met' if best['wall'] < 5 else 'NOT met'} ({best['wall']:.2f} s wall, "
          f"{best['cpu']:.2f} CPU s; without Dagster's library scan {best['cpu'] - best['library']:.2f} CPU s; "
          f"baseline {rows[0][1]['wall']:.2f} s)")

if __name__ == "__main__":
    main()
