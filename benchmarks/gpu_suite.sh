#!/usr/bin/env bash
# GPU benchmark suite in one command (see benchmarks/gpu_suite.py for the options):
#   bash benchmarks/gpu_suite.sh            # fp32 and bf16 at 600x1000 and 800x1333, training step at batch 4
#   bash benchmarks/gpu_suite.sh --compile  # plus torch.compile
# Works from a clone without installing: this checkout's src/ goes first on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu_suite.py "$@"
