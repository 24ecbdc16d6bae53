"""Timing: closures in, raw samples out; statistics computed in one place.

On a GPU, each implementation is warmed up, its per-call time estimated both
as back-to-back launches and as a CUDA graph replay of `inner` calls, and the
graph is used where it is clearly faster (launch gaps would otherwise dominate
microsecond kernels or host-heavy launchers); otherwise `inner` plain launches.
Each sample is one replay or loop between two device events, divided by
`inner`; both estimates are recorded. The implementations of a case are timed in
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
    estimates: dict = field(default_factory=dict)  # per-call eager and graph estimates that chose the method

    @property
    def window(self) -> tuple[float, float]:
        return (self.intervals[0][0], self.intervals[-1][1]) if self.intervals else (0.0, 0.0)

    def describe(self) -> dict:
        d = {"method": self.method, "inner": self.inner, "rounds": self.rounds,
             "window": list(self.window), "meaningful": self.meaningful}
        if self.note:
            d["note"] = self.note
        return {**d, **self.estimates}


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
    # A CUDA graph only where launch overhead would dominate: where replaying
    # a graph of the calls is clearly faster than launching them back to back.
    # Otherwise the calls are timed as plain launches, the way a user runs them
    # (a graph also turns a torch copy into a memcpy node, which ran slower on
    # the H200 than the copy kernel). Deciding by the eager time alone is wrong:
    # when the launcher is host-bound, back-to-back launches look like a long
    # kernel (a 10 us Triton GEMM measured 100 us eagerly).
    graph_gain: float = 0.05


def choose_method(eager_s: float, graph_s: float | None, gain: float) -> str:
    """'cuda-graph' where the graph replay is more than `gain` faster per call, else 'cuda-events'."""
    return "cuda-graph" if graph_s is not None and graph_s < (1.0 - gain) * eager_s else "cuda-events"


def _inner(per_call_s: float, policy: "TimingPolicy", multiple: int) -> int:
    inner = min(policy.max_inner, max(1, math.ceil(policy.target_sample_s / per_call_s)))
    return math.ceil(inner / multiple) * multiple  # whole rotations of input sets


def time_on_gpu(fns: dict[str, Callable[[], object]], policy: TimingPolicy = TimingPolicy(),
                use_graph: bool = True, inner_multiple: int = 1) -> dict[str, Timing]:
    """Time each closure; returns {name: Timing}. Raises what a closure raises."""
    import torch

    runs: dict[str, Callable[[], None]] = {}
    per_call: dict[str, float] = {}
    meta: dict[str, tuple[str, int, str, dict]] = {}
    for name, fn in fns.items():
        t_eager = _estimate(fn, policy.warmup_s)
        inner = _inner(t_eager, policy, inner_multiple)
        graph, t_graph, note = (_capture(fn, inner) if use_graph else (None, None, ""))
        if choose_method(t_eager, t_graph, policy.graph_gain) == "cuda-graph" and \
                t_graph * inner < policy.target_sample_s / 2:  # the eager estimate was inflated: more calls
            inner = _inner(t_graph, policy, inner_multiple)
            graph = None  # free the first graph's memory pool before capturing the second
            graph, t_graph, note = _capture(fn, inner)
        method = choose_method(t_eager, t_graph, policy.graph_gain)
        if method == "cuda-graph":
            run, t = graph.replay, t_graph
        else:
            # A graph kept alive would hold its memory pool (outputs allocated
            # inside it) while the eager loop allocates its own.
            graph = None
            run, t = _loop(fn, inner), t_eager
        estimates = {"eager_estimate_s": t_eager, "graph_estimate_s": t_graph}
        runs[name], per_call[name], meta[name] = run, t, (method, inner, note, estimates)

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
    return {n: Timing(samples[n], meta[n][0], meta[n][1], policy.rounds, intervals[n], True, meta[n][2],
                      estimates=meta[n][3]) for n in names}


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


def _capture(fn: Callable[[], object], inner: int):
    """A CUDA graph of `inner` calls and its time per call (3 replays); (None, None, why) when
    capture fails: not every implementation is capturable, and it is then timed eagerly."""
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
        graph.replay()  # the first replay uploads the graph
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            graph.replay()
        end.record()
        end.synchronize()
        return graph, start.elapsed_time(end) / 1e3 / (3 * inner), ""
    except Exception as e:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # what the failed capture's memory pool held
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, None, f"graph capture failed ({first[:160]}); timed eagerly"


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
