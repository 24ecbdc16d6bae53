#!/usr/bin/env bash
# Single-GPU (nvidia-h200) streaming run after a kernel change: the streaming
# kernel tests on the GPU, then the full streaming working-set sweep.
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?set OUT to a results folder}
timeout 40 python -m pytest -q -rfE tests/kernels/test_streaming.py > "$out/pytest-gpu.log" 2>&1
echo "pytest rc=$?"
timeout 220 python -m suite sweep --only streaming ${STREAM_MODE:-} --no-progress --no-report \
    --out "$out/h200-streaming${STREAM_MODE:+-quick}.jsonl" > "$out/sweep-streaming.log" 2>&1
echo "streaming rc=$?"
grep -E "passed|failed" "$out/pytest-gpu.log" | tail -3
tail -n 2 "$out/sweep-streaming.log"
