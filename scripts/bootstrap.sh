#!/usr/bin/env bash
# Create .venv (once) and install the project with its test extras; skipped when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
    echo "Genesis Pipelines needs Python 3.11-3.13; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.genesis-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # the CPU build of torch first, so resolving the project never pulls the multi-GB CUDA build
    .venv/bin/python -m pip install --quiet "torch==${GENESIS_TORCH_VERSION:-2.13.0}"
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    rm -f .venv/.genesis-installed-*
    touch "$stamp"
fi
