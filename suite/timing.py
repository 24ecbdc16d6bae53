"""Timing: closures in, raw samples out; statistics computed in one place.

On a GPU, each implementation of a case is warmed up and its time per call
estimated two ways: as back-to-back launches and as a CUDA graph replay of
`inner` calls. The case then gets ONE method for all its implementations: graph
replay where any of them gains more than `graph_gain` from it (launch gaps would
otherwise dominate microsecond kernels or host-heavy launchers) and every one
of them can be captured; plain launches otherwise. A ratio between two
implementations is therefore always a ratio of two measurements of one method.
Both estimates are kept for every implementation (the overhead share of a call
is 1 - graph / eager).

Each sample is one replay or loop between two device events, divided by
`inner`. The implementations are timed in alternating rounds (A B C, B C A, ...)
so a GPU drifting towards its power cap or heating up affects all of them
alike; each round's median is kept, and the rounds give every ratio its
interval (analysis.versus).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

GRAPH, EAGER, INTERPRETER = "cuda-graph", "cuda-events", "interpreter-wallclock"


@dataclass
class Timing:
    samples: list[float]  # seconds per call, one per sample
    method: str
    inner: int
    rounds: int
    intervals: list[tuple[float, float]] = field(default_factory=list)  # host time of each chunk
    meaningful: bool = True
    note: str = ""
    estimates: dict = field(default_factory=dict)  # this implementation's eager and graph estimates per call
    round_samples: list[int] = field(default_factory=list)  # samples taken in each round, in order
    method_reason: str = ""  # why the case was timed by `method`
    launches: float | None = None  # kernel and copy nodes per call in its captured graph
    # The energy run after the rounds (TimingPolicy.energy_s): {"interval", "calls", "seconds_per_call"}
    energy_window: dict | None = None

    @property
    def window(self) -> tuple[float, float]:
        return (self.intervals[0][0], self.intervals[-1][1]) if self.intervals else (0.0, 0.0)

    @property
    def round_p50(self) -> list[float]:
        """The median of each alternation round's samples."""
        out, i = [], 0
        for n in self.round_samples:
            out.append(float(np.median(self.samples[i:i + n])))
            i += n
        return out

    def describe(self) -> dict:
        d = {"method": self.method, "method_reason": self.method_reason, "inner": self.inner,
             "rounds": self.rounds, "window": list(self.window), "meaningful": self.meaningful}
        if self.note:
            d["note"] = self.note
        if self.launches is not None:
            d["launches_counted"] = self.launches
        if self.energy_window is not None:
            d["energy_window"] = {"window": list(self.energy_window["interval"]),
                                  "calls": self.energy_window["calls"],
                                  "seconds_per_call": self.energy_window["seconds_per_call"]}
        return {**d, **self.estimates}


def summarize(samples: list[float], round_p50: list[float] | None = None) -> dict:
    """Median with spread (p20/p80), extremes, mean and std, the raw samples and the rounds' medians."""
    a = np.asarray(samples, dtype=np.float64)
    p20, p50, p80 = np.percentile(a, [20, 50, 80])
    out = {"p20": float(p20), "p50": float(p50), "p80": float(p80), "min": float(a.min()),
           "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std()), "n": int(a.size),
           "samples": [float(x) for x in a]}
    if round_p50:
        out["round_p50"] = [float(x) for x in round_p50]
    return out


@dataclass(frozen=True)
class TimingPolicy:
    warmup_s: float = 0.05  # per implementation, before its estimate
    budget_s: float = 0.2  # timed seconds per implementation and case, all rounds together
    rounds: int = 8  # alternation rounds: each gives one ratio, their spread the interval
    min_samples: int = 16  # at least 2 per round
    target_sample_s: float = 1e-3  # one sample (graph replay or loop) lasts at least this long
    max_inner: int = 1000
    # A CUDA graph only where launch overhead would dominate: where replaying
    # a graph of the calls is clearly faster than launching them back to back.
    # Deciding by the eager time alone is wrong: when the launcher is
    # host-bound, back-to-back launches look like a long kernel (a 10 us
    # Triton GEMM measures 100 us eagerly).
    graph_gain: float = 0.05
    # After the rounds, each implementation alone for this long (device time), one window the energy
    # counter can measure (0: none; the rounds' short windows are then all there is).
    energy_s: float = 0.0


def gains_from_graph(eager_s: float, graph_s: float | None, gain: float) -> bool:
    """Whether the graph replay is more than `gain` faster per call than plain launches."""
    return graph_s is not None and graph_s < (1.0 - gain) * eager_s


def case_method(estimates: dict[str, tuple[float, float | None]], gain: float) -> tuple[str, str]:
    """(method, reason) for a case from each implementation's (eager, graph) estimates: graph
    replay for all where any gains more than `gain` and every one was captured; else plain
    launches for all."""
    gaining = [n for n, (e, g) in estimates.items() if gains_from_graph(e, g, gain)]
    uncapturable = [n for n, (_, g) in estimates.items() if g is None]
    if gaining and not uncapturable:
        best = max(gaining, key=lambda n: estimates[n][0] / estimates[n][1])
        e, g = estimates[best]
        return GRAPH, f"graph replay for every implementation: {best} runs {e / g:.2f}x faster replayed"
    if gaining:
        return EAGER, (f"plain launches for every implementation: {', '.join(uncapturable)} cannot be captured "
                       f"(graph replay would help {', '.join(gaining)})")
    return EAGER, f"plain launches for every implementation: none runs more than {gain:.0%} faster replayed"


def _inner(per_call_s: float, policy: "TimingPolicy", multiple: int) -> int:
    inner = min(policy.max_inner, max(1, math.ceil(policy.target_sample_s / per_call_s)))
    return math.ceil(inner / multiple) * multiple  # whole rotations of input sets


def time_on_gpu(fns: dict[str, Callable[[], object]], policy: TimingPolicy = TimingPolicy(),
                use_graph: bool = True, inner_multiple: int = 1) -> dict[str, Timing]:
    """Time each closure by one method for all (see the module docstring); returns {name: Timing}.
    Raises what a closure raises."""
    import torch

    graphs: dict[str, object] = {}
    meta: dict[str, dict] = {}
    for name, fn in fns.items():
        started = time.perf_counter()
        t_eager = _estimate(fn, policy.warmup_s)
        inner = _inner(t_eager, policy, inner_multiple)
        graph, t_graph, note = (_capture(fn, inner) if use_graph else (None, None, "graph replay not tried"))
        if gains_from_graph(t_eager, t_graph, policy.graph_gain) and t_graph * inner < policy.target_sample_s / 2:
            # The eager estimate was inflated by the launcher: more calls per replay.
            inner = _inner(t_graph, policy, inner_multiple)
            graph = None  # free the first graph's memory pool before capturing the second
            graph, t_graph, note = _capture(fn, inner)
        graphs[name] = graph
        meta[name] = {"eager": t_eager, "graph": t_graph, "inner": inner, "note": note,
                      "launches": _launches(graph, inner), "estimating_s": time.perf_counter() - started}

    method, reason = case_method({n: (m["eager"], m["graph"]) for n, m in meta.items()}, policy.graph_gain)
    runs: dict[str, Callable[[], None]] = {}
    per_call: dict[str, float] = {}
    for name, fn in fns.items():
        m = meta[name]
        if method == GRAPH:
            runs[name], per_call[name] = graphs[name].replay, m["graph"]
        else:
            # A graph kept alive would hold its memory pool (outputs allocated
            # inside it) while the eager loop allocates its own.
            graphs[name] = None
            inner = _inner(m["eager"], policy, inner_multiple)
            m["inner"] = inner
            runs[name], per_call[name] = _loop(fn, inner), m["eager"]

    samples: dict[str, list[float]] = {n: [] for n in fns}
    counts: dict[str, list[int]] = {n: [] for n in fns}
    intervals: dict[str, list[tuple[float, float]]] = {n: [] for n in fns}
    names = list(fns)
    rounds_started = time.perf_counter()
    per_round_min = max(2, math.ceil(policy.min_samples / policy.rounds))
    for r in range(policy.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            inner = meta[name]["inner"]
            per_round = policy.budget_s / policy.rounds / (per_call[name] * inner)
            n = max(per_round_min, min(50, int(per_round)))
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
            counts[name].append(n)
    rounds_s = time.perf_counter() - rounds_started
    windows = {n: _energy_window(runs[n], per_call[n] * meta[n]["inner"], meta[n]["inner"], policy.energy_s)
               for n in names} if policy.energy_s > 0 else {}
    # Where the case's timing time went: each implementation's warm-up, estimates and graph capture,
    # and the alternating rounds of all of them together.
    return {n: Timing(samples[n], method, meta[n]["inner"], policy.rounds, intervals[n], True, meta[n]["note"],
                      estimates={"eager_estimate_s": meta[n]["eager"], "graph_estimate_s": meta[n]["graph"],
                                 "estimating_s": meta[n]["estimating_s"], "rounds_s": rounds_s},
                      round_samples=counts[n], method_reason=reason, launches=meta[n]["launches"],
                      energy_window=windows.get(n))
            for n in names}


def _energy_window(run: Callable[[], None], sample_s: float, inner: int, seconds: float) -> dict:
    """`run` (one sample: a replay or a loop of `inner` calls) back to back for about `seconds` of
    device time, alone: one window long enough for the energy counter. Returns its host interval,
    its calls and their device time per call (the window's own throughput, beside the rounds')."""
    import torch

    n = max(1, math.ceil(seconds / max(sample_s, 1e-9)))
    torch.cuda.synchronize()
    t0 = time.time()
    device_s = _back_to_back(run, n)
    return {"interval": (t0, time.time()), "calls": n * inner, "seconds_per_call": device_s / (n * inner)}


def _new_graph():
    """A CUDA graph that keeps its cudaGraph_t after capture (so its nodes can be counted)."""
    import torch

    try:
        return torch.cuda.CUDAGraph(keep_graph=True)
    except TypeError:  # a torch without keep_graph
        return torch.cuda.CUDAGraph()


def _launches(graph, inner: int) -> float | None:
    """Nodes per call (kernels, copies, memsets) in a captured graph of `inner` calls: the
    launches one call makes. None where CUDA's runtime bindings cannot read the graph."""
    if graph is None:
        return None
    try:
        from cuda.bindings import runtime as cudart

        handle = graph.raw_cuda_graph()
        err, _, count = cudart.cudaGraphGetNodes(cudart.cudaGraph_t(init_value=handle), 0)
        if int(err) != 0:
            return None
        return count / inner
    except Exception:  # noqa: BLE001 -- no bindings, or a graph not kept: the declared count stands
        return None


# Calls the host may queue ahead of the device while estimating.
QUEUE_AHEAD = 64


def _estimate(fn: Callable[[], object], warmup_s: float) -> float:
    """Warm up for about `warmup_s` (and at least 3 calls) launched back to back; return the device
    time per call of those calls."""
    import torch

    fn()
    torch.cuda.synchronize()
    # One call and its wait, timed on the host: at least one call's device time. Launches are
    # asynchronous, so the host's clock alone would let a long kernel queue QUEUE_AHEAD calls
    # (a second of a 15 ms kernel) before the warm-up noticed its time was up.
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    calls = max(3, min(100_000, math.ceil(warmup_s / max(time.perf_counter() - t0, 1e-7))))
    return max(_back_to_back(fn, calls) / calls, 1e-7)


def _back_to_back(fn: Callable[[], object], calls: int) -> float:
    """Launch `calls` calls of `fn` back to back; return their device time in seconds (between two
    events around them). Every QUEUE_AHEAD calls the host waits, so it never queues far ahead of
    the device."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(1, calls + 1):
        fn()
        if i % QUEUE_AHEAD == 0:
            end.record()
            end.synchronize()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


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
        graph = _new_graph()
        with torch.cuda.graph(graph):
            for _ in range(inner):
                fn()
        if hasattr(graph, "instantiate"):
            graph.instantiate()
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
