#!/usr/bin/env bash
# Single-GPU (nvidia-h200) run after the streaming cache-hint change: the
# streaming and attention GPU tests, then the full streaming working-set sweep.
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?set OUT to a results folder}
timeout 90 python -m pytest -q -rfE tests/gpu/test_suite_gpu.py tests/kernels/test_streaming.py \
    tests/gpu/test_attention_gpu.py -k "not target and not tuned and not naive and not backends" \
    > "$out/pytest-gpu.log" 2>&1
echo "pytest rc=$?"
timeout 200 python -m suite sweep --only streaming --no-progress --no-report \
    --out "$out/h200-streaming-full.jsonl" > "$out/sweep-streaming.log" 2>&1
echo "streaming rc=$?"
grep -E "passed|failed" "$out/pytest-gpu.log" | tail -3
tail -n 2 "$out/sweep-streaming.log"
