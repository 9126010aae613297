#!/usr/bin/env bash
# Set up, then run the whole test suite (engine, assets, sensors, CLI end to end). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python -m pytest -n 2 "$@"
