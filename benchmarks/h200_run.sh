#!/usr/bin/env bash
# The H200 results of record, made by the suite's own commands, in stages that each fit a
# ten-minute run on a GPU machine.
#
#   bash benchmarks/h200_run.sh quick     # a cold quick sweep (empty Triton cache and tuning store),
#                                         # the same warm (SETTLE=1: and with --settle 30 and 0),
#                                         # then the GPU tests (GPU_TESTS=0: not them)
#   bash benchmarks/h200_run.sh full      # the full sweep; a later run of the stage continues it
#                                         # (ENERGY=SECONDS: with an energy run per implementation)
#   bash benchmarks/h200_run.sh sustain [RUN...]   # the sustain runs (all, or those named: a workload,
#                                                   # or workload:impl)
#   bash benchmarks/h200_run.sh launch    # launch overhead and the decode layer, every case, with the
#                                         # prepared-launch implementations
#   bash benchmarks/h200_run.sh counters  # the hardware counters of the headline cases
#   bash benchmarks/h200_run.sh kernels [gemm|attention]   # the GEMM families (fp32, bf16) and
#                                         # attention (bf16, fp16) against the vendor, for kernel
#                                         # work (both, or the one named)
#
# Records go to $RESULTS_DIR (default /tmp/suite-results), which later stages on the same machine
# continue from; PREVIOUS=file.jsonl seeds the full sweep from an earlier machine's file. Each stage
# ends by copying what it wrote to $COPY_TO, when set. STAGE_LIMIT (seconds, default 560) bounds a
# stage: a sweep is stopped with SIGINT before it and keeps every record it wrote. Wheels in .whl/
# are installed first (for a machine without network access).
set -uo pipefail
export PYTHONUNBUFFERED=1
dir=${RESULTS_DIR:-/tmp/suite-results}
mkdir -p "$dir"
limit=${STAGE_LIMIT:-560}
export PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
# One Triton cache and tuning store for every stage but the cold quick sweep.
export TRITON_CACHE_DIR=$dir/cache/triton XDG_CACHE_HOME=$dir/cache
left() { echo $(( limit - SECONDS )); }
say() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$log"; }
copy() { [ -n "${COPY_TO:-}" ] && for f in "$@"; do [ -f "$f" ] && cp "$f" "$COPY_TO/"; done; return 0; }

case "${1:-}" in
quick)
    log=$dir/quick.log
    nvidia-smi > "$dir/nvidia-smi.txt" 2>&1
    # The cold run starts as a fresh machine would (nothing compiled, nothing tuned); the warm one
    # finds what the cold one left. SETTLE=1 adds two more warm ones, after 30 s of settling load
    # and after none.
    fresh=$(mktemp -d)
    runs="cold: warm:"
    [ "${SETTLE:-0}" = 1 ] && runs="$runs settle-30:--settle=30 settle-0:--settle=0"
    for run in $runs; do
        name=${run%%:*} opts=${run#*:}
        t0=$(date +%s)
        TRITON_CACHE_DIR=$fresh/triton XDG_CACHE_HOME=$fresh/cache timeout -s INT -k 20 "$(left)" \
            python -m suite sweep --quick $opts --no-progress --no-report --out "$dir/quick-$name.jsonl" \
            >> "$log" 2>&1
        say "quick $name ($opts) rc=$? wall $(( $(date +%s) - t0 )) s"
    done
    if [ "${GPU_TESTS:-1}" = 1 ]; then
        timeout -k 10 "$(( $(left) - 15 ))" python -m pytest -q -rfE -p no:cacheprovider tests/gpu \
            > "$dir/pytest-gpu.log" 2>&1
        say "pytest rc=$?"; grep -E "^FAILED|^ERROR|passed|failed" "$dir/pytest-gpu.log" | tail -15
    fi
    copy "$dir/nvidia-smi.txt" "$dir"/quick-*.jsonl "$log" "$dir/pytest-gpu.log"
    ;;
full)
    log=$dir/full.log
    dest=$dir/full.jsonl
    resume=""
    if [ ! -f "$dest" ] && [ -n "${PREVIOUS:-}" ] && [ -f "$PREVIOUS" ]; then cp "$PREVIOUS" "$dest"; fi
    [ -f "$dest" ] && resume=--resume
    timeout -s INT -k 30 "$(left)" python -m suite sweep --full $resume --energy "${ENERGY:-0}" --no-progress \
        --no-report --out "$dest" >> "$log" 2>&1
    say "full rc=$? after ${SECONDS}s: $(wc -l < "$dest") records"
    copy "$dest" "$log"
    ;;
sustain)
    log=$dir/sustain.log
    shift
    for run in "gemm-square|8192x8192x8192|bf16|125|triton" "stream-copy|2048 MiB|fp32|62|triton" \
               "decode-layer|llama-3-8b B=64 ctx=8192|bf16|62|triton" \
               "decode-layer|llama-3-8b B=64 ctx=8192|bf16|62|triton-prepared"; do
        IFS='|' read -r workload label dtype seconds impl <<< "$run"
        [ $# -eq 0 ] || [[ " $* " == *" $workload "* ]] || [[ " $* " == *" $workload:$impl "* ]] || continue
        plot=$dir/sustain-$workload$([ "$impl" = triton ] || echo "-$impl").png
        timeout -s INT -k 20 "$(( seconds + 90 ))" python -m suite sustain --workload "$workload" --case "$label" \
            --dtype "$dtype" --impl "$impl" --seconds "$seconds" --out "$dir/sustain.jsonl" --append \
            --plot "$plot" >> "$log" 2>&1
        say "sustain $workload $label $dtype $impl ${seconds}s rc=$?"
    done
    copy "$dir/sustain.jsonl" "$dir"/sustain-*.png "$log"
    ;;
launch)
    log=$dir/launch.log
    timeout -s INT -k 30 "$(left)" python -m suite sweep --full --only overhead,decode-layer --no-progress \
        --no-report --out "$dir/launch.jsonl" >> "$log" 2>&1
    say "launch rc=$? after ${SECONDS}s: $(wc -l < "$dir/launch.jsonl") records"
    copy "$dir/launch.jsonl" "$log"
    ;;
kernels)
    log=$dir/kernels.log
    case "${2:-}" in ""|gemm|attention) ;; *) echo "kernels: no run named '$2' (gemm, attention)" >&2; exit 2 ;; esac
    for run in "gemm|gemm-square,gemm-skinny,gemm-shape-search|fp32,bf16" "attention|attention-fwd|bf16,fp16"; do
        IFS='|' read -r name only dtypes <<< "$run"
        [ -n "${2:-}" ] && [ "$2" != "$name" ] && continue
        timeout -s INT -k 30 "$(left)" python -m suite sweep --only "$only" --dtype "$dtypes" \
            --no-progress --no-report --out "$dir/kernels-$name.jsonl" >> "$log" 2>&1
        say "kernels $name rc=$? after ${SECONDS}s: $(wc -l < "$dir/kernels-$name.jsonl") records"
    done
    copy "$dir"/kernels-*.jsonl "$log"
    ;;
counters)
    log=$dir/counters.log
    timeout -k 20 "$(left)" python -m suite counters --out "$dir/counters.jsonl" >> "$log" 2>&1
    say "counters rc=$?"
    copy "$dir/counters.jsonl" "$log"
    ;;
*)
    echo "usage: bash benchmarks/h200_run.sh quick|full|sustain [RUN...]|launch|kernels [gemm|attention]|counters" >&2
    exit 2
    ;;
esac
