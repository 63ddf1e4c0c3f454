#!/usr/bin/env bash
# Set up, then run the test suite (CPU only). Extra arguments go to pytest.
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
python -m pytest tests -q "$@"
