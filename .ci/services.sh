#!/usr/bin/env bash
# Services the tests can use when present, installed best effort (each test skips with its reason without them):
#   - Postgres server binaries (Debian's `postgresql`) for genesis_pipelines_tests/test_postgres_instance.py
#   - Chromium (Debian's `chromium`) for genesis_pipelines_tests/test_reports_ui.py (the HTML reports in a browser)
set -uo pipefail

have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; }
have_chromium() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; }

wanted=()
have_postgres || wanted+=(postgresql)
have_chromium || wanted+=(chromium)
[ ${#wanted[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "ci: no apt-get; tests needing ${wanted[*]} will skip" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "ci: not root and no sudo; tests needing ${wanted[*]} will skip" >&2
        exit 0
    fi
fi
$SUDO apt-get update -qq >/dev/null 2>&1 || true
for package in "${wanted[@]}"; do  # one at a time: a package that fails to install does not stop the other
    echo "ci: installing $package for the tests that use it" >&2
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
        echo "ci: could not install $package; the tests that need it will skip" >&2
    fi
done
exit 0
