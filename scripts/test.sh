#!/usr/bin/env bash
# Set up, then run the tests on 2 workers. Default: the whole suite (engine, assets, sensors, CLI end to end), the
# command CI runs. `--fast`: the unit tier only (`-m unit`: every test not marked slow, dagster or cli).
# Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
tier=()
if [ "${1:-}" = "--fast" ]; then
    shift
    tier=(-m unit)
fi
# --dist loadscope: each module's tests stay on one worker, so a module's shared fixture (a trained model) is
# built once, not once per worker; --no-loadscope-reorder: the workers take the modules in conftest's order,
# heaviest first, so the long end-to-end modules do not all land at the end on one worker
exec .venv/bin/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder ${tier[@]+"${tier[@]}"} "$@"
