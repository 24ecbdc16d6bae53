"""How tuning candidates are timed: by device time, from a CUDA-graph replay.

Launching an autotuned Triton kernel from Python costs tens of microseconds of
host time per call. `triton.testing.do_bench` times back-to-back launches, so on
a problem that runs for a few microseconds it measures the launcher, every
candidate looks alike, and the choice is noise: on the lent H200 each
candidate of a 1024^3 bf16 GEMM timed 15-20 us by do_bench while the kernel
ran 10.5 us (the sweep, which graph-times host-bound launchers, showed it).
A graph replay of many calls measures the kernels alone. Where a call cannot be
captured the plain timing is the fallback.
"""
from __future__ import annotations

import triton


def device_time_ms(fn, quantiles=None, rep: int = 25):
    """Median (or `quantiles`) of `fn`'s device time per call, in ms."""
    import torch

    torch.cuda.synchronize()  # the graph is captured on a side stream: inputs must be ready
    try:
        return triton.testing.do_bench_cudagraph(fn, rep=rep, quantiles=quantiles, return_mode="median")
    except Exception:  # noqa: BLE001 -- not capturable: time plain launches instead
        torch.cuda.synchronize()
        return triton.testing.do_bench(fn, warmup=5, rep=rep, quantiles=quantiles, return_mode="median")
