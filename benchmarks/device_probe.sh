#!/usr/bin/env bash
# One device call that checks everything before a recorded run: the quick
# sweep of every family, then the GPU tests (tests/gpu, and tests/kernels run
# for real on the GPU, bf16 included). Everything lands under $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?set OUT to a results folder}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
timeout "${SWEEP_LIMIT:-300}" python -m suite sweep --quick --no-progress --no-report \
    --out "$out/quick.jsonl" ${SWEEP_ARGS:-} > "$out/sweep.log" 2>&1
echo "sweep rc=$?"
python -m suite report "$out/quick.jsonl" --format plain > "$out/report.txt" 2>&1
timeout "${PYTEST_LIMIT:-200}" python -m pytest -q -s -rfE tests/gpu tests/kernels > "$out/pytest-gpu.log" 2>&1
echo "pytest rc=$?"
grep -E "passed|failed|FAILED|ERROR" "$out/pytest-gpu.log" | tail -25
tail -3 "$out/sweep.log"
