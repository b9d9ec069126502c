#!/usr/bin/env bash
# Install everything (as root) and pass the tests: lint, types, unit, kernel, conformance.
# The code under test goes into a virtualenv of its own ($DOCKYARD_TEST_VENV, default
# /opt/dockyard-test, an editable install of this clone): the user's /opt/dockyard and
# the /usr/local/bin links are left alone, and the tests run the `dockyard` and
# `dockyard-runtime` beside the test interpreter (first on PATH as well).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
VENV="${DOCKYARD_TEST_VENV:-/opt/dockyard-test}"
DOCKYARD_VENV="$VENV" bash scripts/install.sh --dev --no-links
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"
"$PY" -m ruff check dockyard tests bench
"$PY" -m mypy
"$PY" -m pytest -q -p no:cacheprovider "$@"
