#!/usr/bin/env bash
# GPU parity and throughput checks of dermx, in at most 8 minutes: one line per check,
# "PASS|FAIL|SKIP <check>: <figures>" (benchmarks/gpu_check.py; BENCHMARKS.md, "GPU check").
# Without a CUDA device the GPU checks say SKIP and the CPU ones run (CPU bf16 vs float32, CPU throughput).
# Exit status: 0 when no check FAILs, 1 on a FAIL, 124 when the 8 minutes run out.
#
#   bash benchmarks/gpu_check.sh [--preset resnet50] [--n-images 4] [--batch-size 16] [--seconds 20]
#
# PYTHON picks the interpreter (default: python); this checkout's src/ comes first on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
