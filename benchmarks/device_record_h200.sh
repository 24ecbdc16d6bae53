#!/usr/bin/env bash
# The recorded single-GPU run (device kind nvidia-h200): the GPU tests of the
# parts changed since the probe, the quick sweep of every family, then the full
# streaming working-set sweep. Results land under $OUT and are committed to
# benchmarks/results/ unedited.
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?set OUT to a results folder}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
timeout 100 python -m pytest -q -rfE tests/gpu/test_suite_gpu.py tests/gpu/test_decode_gpu.py \
    tests/gpu/test_attention_gpu.py -k "suite or every_fused or ragged_gqa" > "$out/pytest-gpu.log" 2>&1
echo "pytest rc=$?"
timeout 300 python -m suite sweep --quick --no-progress --no-report --out "$out/h200-quick.jsonl" > "$out/sweep-quick.log" 2>&1
echo "quick rc=$?"
timeout 170 python -m suite sweep --only streaming --no-progress --no-report --out "$out/h200-streaming-full.jsonl" \
    > "$out/sweep-streaming.log" 2>&1
echo "streaming rc=$?"
grep -E "passed|failed" "$out/pytest-gpu.log" | tail -3
tail -2 "$out/sweep-quick.log" "$out/sweep-streaming.log"
