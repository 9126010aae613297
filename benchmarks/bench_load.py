"""How long the code location takes to load with N dataset specs, and whether it reads source data.

Usage: python benchmarks/bench_load.py [--specs 10]

Makes N specs in a temp folder (copies of the bundled chinook, nycflights and nycflights_inferred, renamed), then
loads `genesis_pipelines.definitions` in a fresh interpreter three times, each timed in wall and CPU seconds:
  baseline   no stored plans: every dataset whose plan needs data (inferred keys) is planned from its source
  stored     the plans the first load stored (what the schema step stores too): no source data is read
  stored     again (file cache warm)
and prints whether torch / the relational engine were imported (they should not be at load). Target: < 5 s with 10.
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
wall, cpu = time.perf_counter(), os.times()
from genesis_pipelines.definitions import build_definitions
defs = build_definitions()
jobs = sum(j.name.endswith("_synthetic_twin") for j in defs.resolve_all_job_defs())
broken = sum(k.path[-1] == "definition_error" for k in defs.resolve_asset_graph().get_all_asset_keys())
done = os.times()
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": done.user + done.system - cpu.user - cpu.system,
                  "jobs": jobs, "broken": broken, "torch": "torch" in sys.modules,
                  "relational": "genesis_pipelines.engine.synthesis.relational" in sys.modules}))
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
    print(f"code location load with {args.specs} dataset specs (fresh interpreter, import + build)")
    print(f"{'run':<28}{'wall s':>9}{'CPU s':>9}{'twins':>6}{'broken':>7}{'torch':>7}{'relational':>12}")
    for name, r in rows:
        print(f"{name:<28}{r['wall']:>9.2f}{r['cpu']:>9.2f}{r['jobs']:>6}{r['broken']:>7}{str(r['torch']):>7}{str(r['relational']):>12}")
    best = min(r["wall"] for _, r in rows[1:])
    print(f"target < 5 s with stored plans: {'met' if best < 5 else 'NOT met'} ({best:.2f} s wall; "
          f"baseline {rows[0][1]['wall']:.2f} s)")


if __name__ == "__main__":
    main()
