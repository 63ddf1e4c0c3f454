#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install kdzoo with its test extras.
# Sourced by tools/quickstart.sh and tools/run_tests.sh. KDZOO_VENV picks the location.
set -e
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KDZOO_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e "$ROOT[tests]"
export PATH="$VENV/bin:$PATH"
