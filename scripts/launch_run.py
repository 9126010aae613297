#!/usr/bin/env python
"""Launch a job through the workspace, as the UI does, and wait for it: `python scripts/launch_run.py <job>`.

`dagster job execute -m ...` runs a job in process, so its run has no code-location origin: the UI then offers
"Re-execute" with a version warning and the Overview timeline leaves it out. This launches the job from
`workspace.yaml` with `dagster job launch` (the run is queued with its origin, like a run started in the UI),
runs `dagster-daemon` for as long as the run needs it (the instance's queue hands the run to the run launcher),
prints each step as it finishes and exits 0 when the run succeeds, 1 otherwise. DAGSTER_HOME must be set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> int:
    if len(sys.argv) != 2 or not os.environ.get("DAGSTER_HOME"):
        print("usage: DAGSTER_HOME=... python scripts/launch_run.py <job name>", file=sys.stderr)
        return 2
    import dagster as dg

    job, run_id = sys.argv[1], str(uuid.uuid4())
    with dg.DagsterInstance.get() as instance:  # create the storage once, before two processes race to migrate it
        instance.get_runs(limit=1)
    log = Path(os.environ["DAGSTER_HOME"]) / "launch-daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j", job,
                            "--run-id", run_id], cwd=ROOT, check=True)
            return _follow(dg, run_id)
        finally:
            daemon.send_signal(signal.SIGINT)  # the daemon's own clean shutdown
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()


def _follow(dg, run_id: str) -> int:
    """Print the run's step results until it ends (aggregates only: step names, durations, check results)."""
    seen = 0
    with dg.DagsterInstance.get() as instance:
        while True:
            run = instance.get_run_by_id(run_id)
            records = instance.all_logs(run_id)
            for record in records[seen:]:
                event = record.dagster_event
                if event is not None and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION"):
                    print(f"{event.event_type_value:24s} {event.step_key or ''} {record.user_message[:120]}", flush=True)
            seen = len(records)
            if run is not None and run.is_finished:
                print(f"run {run_id}: {run.status.value}")
                return 0 if run.status == dg.DagsterRunStatus.SUCCESS else 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
