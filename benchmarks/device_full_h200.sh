#!/usr/bin/env bash
# The full sweep on one H200 (device kind nvidia-h200), over as many device
# calls as it needs. Each call copies the results file so far (RESULTS, kept in
# the repo between calls) to $OUT, resumes it, and stops the sweep with SIGINT
# before the call's limit (the sweep keeps every record it wrote). Optional:
# PYTEST="tests/..." runs those GPU tests first; SWEEP_ARGS adds sweep options
# (--only, --skip, ...).
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?set OUT to a results folder}
results=${RESULTS:-benchmarks/results/h200-full.jsonl}
dest="$out/$(basename "$results")"
stamp=$(date -u +%H%M%S)
resume=""
[ -f "$results" ] && cp "$results" "$dest" && resume=--resume
nvidia-smi > "$out/nvidia-smi-$stamp.txt" 2>&1
if [ -n "${PYTEST:-}" ]; then
    timeout "${PYTEST_LIMIT:-150}" python -m pytest -q -rfE $PYTEST > "$out/pytest-gpu-$stamp.log" 2>&1
    echo "pytest rc=$?"
    grep -E "^FAILED|passed|failed" "$out/pytest-gpu-$stamp.log" | tail -12
fi
left=$(( ${CALL_LIMIT:-560} - SECONDS ))
timeout -s INT -k 30 "$left" python -m suite sweep --full $resume --out "$dest" ${SWEEP_ARGS:-} \
    --no-progress --no-report > "$out/sweep-full-$stamp.log" 2>&1
echo "sweep rc=$? after ${SECONDS}s"
tail -n 3 "$out/sweep-full-$stamp.log"
