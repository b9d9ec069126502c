#!/usr/bin/env bash
# Install everything (as root) and pass the tests: lint, types, unit, kernel, conformance.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
bash scripts/install.sh --dev
PY=/opt/dockyard/bin/python
"$PY" -m ruff check dockyard tests bench
"$PY" -m mypy
"$PY" -m pytest -q -p no:cacheprovider "$@"
