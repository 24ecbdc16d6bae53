#!/usr/bin/env bash
# The recorded two-GPU run (one node, two H200s): the NCCL GPU tests,
# a sweep of every GPU (streaming and GEMM: the per-GPU ceilings) and the
# collective sweep. NVLink multicast stays off (the suite sets the variables
# in every process it starts; they are set here too).
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
out=${OUT:?set OUT to a results folder}
{ nvidia-smi; nvidia-smi topo -m; } > "$out/nvidia-smi.txt" 2>&1
timeout 120 python -m pytest -q -rfE tests/gpu/test_collectives_gpu.py > "$out/pytest-collectives.log" 2>&1
echo "pytest rc=$?"
timeout 240 python -m suite sweep --all-gpus --quick --only streaming,gemm --no-progress --no-report \
    --out "$out/h200x2-quick.jsonl" > "$out/sweep-x2.log" 2>&1
echo "sweep rc=$?"
timeout 180 python -m suite collectives --all-gpus --out "$out/h200x2-collectives.jsonl" > "$out/collectives.log" 2>&1
echo "collectives rc=$?"
grep -E "passed|failed" "$out/pytest-collectives.log" | tail -3
tail -n 3 "$out/sweep-x2.log"
tail -n 25 "$out/collectives.log"
