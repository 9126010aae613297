#!/usr/bin/env bash
# Services the tests can use when present: Postgres server binaries (Debian's `postgresql`) for
# genesis_pipelines_tests/test_postgres_instance.py. Best effort: without them that test skips with its reason.
set -uo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ci: no apt-get; the Postgres instance test will skip" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "ci: not root and no sudo; the Postgres instance test will skip" >&2
        exit 0
    fi
fi
echo "ci: installing postgresql for the Postgres instance test" >&2
if ! ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql) >/dev/null 2>&1; then
    echo "ci: could not install postgresql; the Postgres instance test will skip" >&2
fi
exit 0
