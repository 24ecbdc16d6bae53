"""Several GPUs for real: NCCL collectives verified and timed, and `sweep --all-gpus`. Run on the device.

Each test starts the real command (which re-runs itself under torchrun, one
process per GPU) at small sizes and reads back the records it wrote.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.collectives import busbw
from analysis.records import load
from suite import collectives as coll
from suite import distributed

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs at least 2 GPUs")]

ROOT = Path(__file__).resolve().parents[2]


def _suite(argv, timeout=300):
    p = subprocess.run([sys.executable, "-m", "suite", *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-4000:]
    return p


def test_nccl_collectives_verified_at_several_sizes(tmp_path):
    out = tmp_path / "coll.jsonl"
    n = 2
    p = _suite(["collectives", "--all-gpus", "--nproc", str(n), "--min-bytes", "4KiB", "--max-bytes", "64MiB",
                "--budget", "0.05", "--no-progress", "--out", str(out)])
    print(p.stdout)  # the bandwidth table, for the log
    recs = load(out)
    sizes = coll.message_sizes(4 << 10, 64 << 20)
    assert [(r.params["op"], r.params["message_bytes"]) for r in recs] == [(o, s) for o in coll.OPS for s in sizes]
    uuids = {g["gpu_uuid"] for g in recs[0].env["ranks"]}
    assert len(uuids) == n and all(u and u.startswith("GPU-") for u in uuids)  # one GPU per rank
    assert recs[0].env["nccl_env"] == distributed.MULTICAST_OFF and recs[0].env["nccl_version"]
    for r in recs:
        assert r.status == "ok", (r.label, r.reason)
        assert r.workload == f"nccl-{r.params['op']}" and r.impl == "nccl"
        assert r.verify["rel_err"] <= r.verify["tolerance"]
        assert r.meaningful and r.timing["method"] == "cuda-events"
        assert r.telemetry and r.telemetry["samples"] > 0
    # Sanity bounds, not targets (how the GPUs are linked is what this measures): at 64 MiB
    # any GPU interconnect moves more than 1 GB/s, and none a TB/s per direction.
    for r in recs:
        if r.params["message_bytes"] == 64 << 20:
            bw = busbw(r.params["op"], r.bytes, r.seconds, n)
            print(f"{r.label}: busbw {bw / 1e9:.1f} GB/s")
            assert 1e9 < bw < 1e12, (r.label, bw)


def test_sweep_all_gpus_measures_each_gpu(tmp_path):
    out = tmp_path / "sweep.jsonl"
    _suite(["sweep", "--all-gpus", "--only", "stream-copy", "--dtype", "fp32", "--size", "16 MiB",
            "--settle", "0", "--budget", "0.05", "--no-progress", "--no-report", "--out", str(out)])
    recs = load(out)
    n = torch.cuda.device_count()
    assert sorted({r.env["rank"] for r in recs}) == list(range(n))
    assert len({r.env["gpu"]["uuid"] for r in recs}) == n  # each rank on its own GPU
    assert {r.env["gpu"]["index"] for r in recs} == set(range(n))
    assert all(r.status == "ok" and r.meaningful for r in recs), [(r.impl, r.reason) for r in recs]
    assert not distributed.part_files(out)
