"""Timing: closures in, raw samples out; statistics computed in one place.

On a GPU, each implementation is warmed up and its per-call time estimated;
calls shorter than `graph_below_s` are captured as a CUDA graph of `inner`
back-to-back calls (launch gaps would otherwise dominate microsecond kernels),
longer ones run as `inner` plain launches; each sample is one replay or loop
between two device events, divided by `inner`. The implementations of a case are timed in
alternating rounds (A B C, B C A, ...) so a GPU drifting towards its power cap
or heating up affects all of them alike; each keeps its own measurement window.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Timing:
    samples: list[float]  # seconds per call, one per sample
    method: str
    inner: int
    rounds: int
    intervals: list[tuple[float, float]] = field(default_factory=list)  # host time of each chunk
    meaningful: bool = True
    note: str = ""

    @property
    def window(self) -> tuple[float, float]:
        return (self.intervals[0][0], self.intervals[-1][1]) if self.intervals else (0.0, 0.0)

    def describe(self) -> dict:
        d = {"method": self.method, "inner": self.inner, "rounds": self.rounds,
             "window": list(self.window), "meaningful": self.meaningful}
        if self.note:
            d["note"] = self.note
        return d


def summarize(samples: list[float]) -> dict:
    """Median with spread (p20/p80), extremes, mean and std, and the raw samples."""
    a = np.asarray(samples, dtype=np.float64)
    p20, p50, p80 = np.percentile(a, [20, 50, 80])
    return {"p20": float(p20), "p50": float(p50), "p80": float(p80), "min": float(a.min()),
            "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std()), "n": int(a.size),
            "samples": [float(x) for x in a]}


@dataclass(frozen=True)
class TimingPolicy:
    warmup_s: float = 0.05  # per implementation, before its estimate
    budget_s: float = 0.2  # timed seconds per implementation and case, all rounds together
    rounds: int = 5
    min_samples: int = 10
    target_sample_s: float = 1e-3  # one sample (graph replay or loop) lasts at least this long
    max_inner: int = 1000
    # CUDA graphs only where launch overhead would dominate: longer calls are
    # timed as plain launches, the way a user runs them (a graph also turns a
    # torch copy into a memcpy node, which runs differently from the kernel).
    graph_below_s: float = 1e-4


def time_on_gpu(fns: dict[str, Callable[[], object]], policy: TimingPolicy = TimingPolicy(),
                use_graph: bool = True, inner_multiple: int = 1) -> dict[str, Timing]:
    """Time each closure; returns {name: Timing}. Raises what a closure raises."""
    import torch

    runs: dict[str, Callable[[], None]] = {}
    per_call: dict[str, float] = {}
    meta: dict[str, tuple[str, int, str]] = {}
    for name, fn in fns.items():
        t = _estimate(fn, policy.warmup_s)
        inner = min(policy.max_inner, max(1, math.ceil(policy.target_sample_s / t)))
        inner = math.ceil(inner / inner_multiple) * inner_multiple  # whole rotations of input sets
        if use_graph and t < policy.graph_below_s:
            run, method, note = _capture(fn, inner)
        else:
            run, method, note = _loop(fn, inner), "cuda-events", ""
        runs[name], per_call[name], meta[name] = run, t, (method, inner, note)

    samples: dict[str, list[float]] = {n: [] for n in fns}
    intervals: dict[str, list[tuple[float, float]]] = {n: [] for n in fns}
    names = list(fns)
    for r in range(policy.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            inner = meta[name][1]
            per_round = policy.budget_s / policy.rounds / (per_call[name] * inner)
            n = max(math.ceil(policy.min_samples / policy.rounds), min(50, int(per_round)))
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(n)]
            t0 = time.time()
            for start, end in events:
                start.record()
                runs[name]()
                end.record()
            events[-1][1].synchronize()
            intervals[name].append((t0, time.time()))
            samples[name].extend(s.elapsed_time(e) / 1e3 / inner for s, e in events)
    return {n: Timing(samples[n], meta[n][0], meta[n][1], policy.rounds, intervals[n], True, meta[n][2])
            for n in names}


def _estimate(fn: Callable[[], object], warmup_s: float) -> float:
    """Warm up for at least `warmup_s` (and 3 calls); return the device time per call."""
    import torch

    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, t0 = 0, time.perf_counter()
    start.record()
    while calls < 3 or time.perf_counter() - t0 < warmup_s:
        fn()
        calls += 1
        if calls % 64 == 0:  # keep the host from queueing far ahead of the device
            end.record()
            end.synchronize()
    end.record()
    end.synchronize()
    return max(start.elapsed_time(end) / 1e3 / calls, 1e-7)


def _loop(fn: Callable[[], object], inner: int) -> Callable[[], None]:
    def run():
        for _ in range(inner):
            fn()
    return run


def _capture(fn: Callable[[], object], inner: int) -> tuple[Callable[[], None], str, str]:
    """A CUDA graph of `inner` calls; falls back to a plain loop when capture fails."""
    import torch

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # capture needs one call on a side stream first (lazy initialisation)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(inner):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        return graph.replay, "cuda-graph", ""
    except Exception as e:  # not every implementation is capturable; time it eagerly instead
        torch.cuda.synchronize()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return _loop(fn, inner), "cuda-events", f"graph capture failed ({first[:160]}); timed eagerly"


def time_on_cpu(fns: dict[str, Callable[[], object]], reps: int = 3) -> dict[str, Timing]:
    """Interpreter timings: wall clock of a few calls, marked not meaningful."""
    out = {}
    for name, fn in fns.items():
        samples, intervals = [], []
        for _ in range(reps):
            t0 = time.time()
            fn()
            t1 = time.time()
            samples.append(t1 - t0)
            intervals.append((t0, t1))
        out[name] = Timing(samples, "interpreter-wallclock", 1, 1, intervals, meaningful=False,
                           note="Triton interpreter on the CPU: proves correctness, never speed")
    return out
