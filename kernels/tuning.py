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

import statistics

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


def interleaved_times_ms(fns: dict, rep: int = 25) -> dict:
    """Median device time (ms) of each candidate {name: ms}, the candidates timed in rotating order.

    Timed one after the other, a candidate's position matters: on long
    kernels the GPU heats up and lowers its clock toward its power cap while
    the later ones run. There are as many rounds as candidates and each
    round starts one candidate later, so every candidate is timed once in
    every position and a drift that depends on the position cancels out of
    the comparison.

    It does not make a short tuning measurement a steady-state one: at B4
    H32 S16384 causal bf16 attention on the H200 the split and the
    warp-specialized kernels read within 3% of each other in tuning (17.6
    against 18.1 ms timed in order, 17.8 against 17.8 rotated), while the
    sweep's alternating measurement ran the warp-specialized one at 15.8 ms
    and the split one at 17.0-17.1 (h200-followup.jsonl, h200-session3*.jsonl).
    """
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(len(names)):
        for name in names[r:] + names[:r]:
            times[name].append(device_time_ms(fns[name], rep=rep))
    return {name: statistics.median(t) for name, t in times.items()}
