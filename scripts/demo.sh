#!/usr/bin/env bash
# Set up, then materialize the bundled Chinook demo end to end with the real Dagster CLI.
# Usage: scripts/demo.sh [dataset]   (default: chinook; any spec under resources/datasets works)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

dataset="${1:-chinook}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

# launched through workspace.yaml, as the UI launches it: the run has its code location as origin, so the UI shows it
# on the Overview timeline and re-executes it without a version warning (scripts/launch_run.py runs dagster-daemon
# for as long as the run is queued or running)
.venv/bin/python scripts/launch_run.py "${dataset}_synthetic_twin"

data_dir="${GENESIS_DATA_DIR:-$PWD/data}"
echo
echo "Synthetic tables:   $data_dir/$dataset/synthetic/ (and schema synthetic_$dataset in $data_dir/warehouse.duckdb)"
echo "Reports:            $data_dir/$dataset/reports/quality_report.html, privacy_report.html"
echo "Browse the graph:   DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev"
