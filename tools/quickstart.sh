#!/usr/bin/env bash
# Set up, then train a CNN teacher and distil a DeiT-style student on the CIFAR-10 subset
# shipped with kdzoo. Extra arguments go to tools/quickstart.py.
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
python tools/quickstart.py "$@"
