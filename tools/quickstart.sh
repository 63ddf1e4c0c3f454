#!/usr/bin/env bash
# Set up, then train a CNN teacher and three students from it (no distillation, DeiT hard
# distillation, DearKD) on the CIFAR-10 subset shipped with kdzoo; prints the results table
# and writes the validation curves. Extra arguments go to tools/quickstart.py.
set -e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
python tools/quickstart.py "$@"
