"""time_on_gpu's control flow on a simulated device (no GPU needed).

A fake torch.cuda with a simulated clock: an eager call costs `eager` seconds
of device time (a host-bound launcher shows up as gaps between kernels), a call
replayed from a graph costs `graph`. The real device path is exercised by
tests/gpu; this pins down which method is chosen and that samples come out.
"""
import contextlib

import pytest
import torch

from suite import timing


class FakeCuda:
    def __init__(self, eager, graph, capturable=True):
        self.now, self.eager, self.graph, self.capturable, self.capturing = 0.0, eager, graph, capturable, None

    def call(self):
        if self.capturing is not None:
            if not self.capturable:
                raise RuntimeError("operation not permitted when stream is capturing")
            self.capturing.calls += 1
        else:
            self.now += self.eager

    def install(self, monkeypatch):
        fake = self

        class Event:
            def __init__(self, enable_timing=True):
                self.t = None

            def record(self):
                self.t = fake.now

            def synchronize(self):
                pass

            def elapsed_time(self, other):
                return (other.t - self.t) * 1e3

        class Graph:
            def __init__(self):
                self.calls = 0

            def replay(self):
                fake.now += self.calls * fake.graph

        @contextlib.contextmanager
        def graph(g):
            fake.capturing = g
            try:
                yield
            finally:
                fake.capturing = None

        class Stream:
            def wait_stream(self, other):
                pass

        for name, value in {"Event": Event, "CUDAGraph": Graph, "graph": graph, "Stream": Stream,
                            "stream": lambda s: contextlib.nullcontext(), "synchronize": lambda: None,
                            "empty_cache": lambda: None, "current_stream": Stream}.items():
            monkeypatch.setattr(torch.cuda, name, value, raising=False)


POLICY = timing.TimingPolicy(warmup_s=0.0, budget_s=0.01, rounds=2, min_samples=4)


@pytest.mark.parametrize("eager, graph, method, per_call", [
    (100e-6, 10e-6, "cuda-graph", 10e-6),   # host-bound launcher: the graph shows the kernel
    (1e-3, 0.99e-3, "cuda-events", 1e-3),   # launch overhead hidden: plain launches
    (1e-3, 1.5e-3, "cuda-events", 1e-3),    # a slower graph (memcpy node) is never chosen
])
def test_method_and_samples(monkeypatch, eager, graph, method, per_call):
    fake = FakeCuda(eager, graph)
    fake.install(monkeypatch)
    t = timing.time_on_gpu({"x": fake.call}, POLICY)["x"]
    assert t.method == method
    assert len(t.samples) >= POLICY.min_samples
    assert all(s == pytest.approx(per_call) for s in t.samples)
    if method == "cuda-graph":  # recaptured with enough calls per replay for the target sample length
        assert t.inner * per_call >= POLICY.target_sample_s / 2
    d = t.describe()
    assert d["eager_estimate_s"] == pytest.approx(eager) and d["graph_estimate_s"] == pytest.approx(graph)


def test_uncapturable_falls_back_to_plain_launches_with_a_note(monkeypatch):
    fake = FakeCuda(20e-6, 5e-6, capturable=False)
    fake.install(monkeypatch)
    t = timing.time_on_gpu({"x": fake.call}, POLICY)["x"]
    assert t.method == "cuda-events" and "graph capture failed" in t.note
    assert all(s == pytest.approx(20e-6) for s in t.samples)


def test_rotation_keeps_whole_rounds_of_input_sets(monkeypatch):
    fake = FakeCuda(50e-6, 5e-6)
    fake.install(monkeypatch)
    t = timing.time_on_gpu({"x": fake.call}, POLICY, inner_multiple=7)["x"]
    assert t.inner % 7 == 0


class MixedCuda(FakeCuda):
    """Several implementations on one simulated device, each with its own eager and graph cost."""

    def __init__(self):
        super().__init__(0.0, 0.0)

    def impl(self, eager, graph, capturable=True):
        def call():
            if self.capturing is not None:
                if not capturable:
                    raise RuntimeError("operation not permitted when stream is capturing")
                self.capturing.costs.append(graph)
            else:
                self.now += eager
        return call

    def install(self, monkeypatch):
        super().install(monkeypatch)
        fake = self

        class Graph:
            def __init__(self):
                self.costs = []

            def replay(self):
                fake.now += sum(self.costs)

        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph, raising=False)


@pytest.mark.parametrize("impls, method, reason", [
    # Triton's launcher gains from a graph, the vendor path barely: both are graph-timed.
    ({"triton": (100e-6, 10e-6), "vendor": (10.4e-6, 10e-6)}, "cuda-graph", "triton runs 10.00x faster"),
    # Nobody gains: both are timed as plain launches.
    ({"triton": (1e-3, 0.99e-3), "vendor": (1e-3, 1.2e-3)}, "cuda-events", "none runs more than 5% faster"),
    # One cannot be captured: plain launches for all, though the other would gain.
    ({"triton": (100e-6, 10e-6), "vendor": ((20e-6, 5e-6), False)}, "cuda-events", "vendor cannot be captured"),
])
def test_every_implementation_of_a_case_is_timed_by_one_method(monkeypatch, impls, method, reason):
    fake = MixedCuda()
    fake.install(monkeypatch)
    fns = {}
    for name, spec in impls.items():
        (eager, graph), capturable = (spec, True) if isinstance(spec[0], float) else spec
        fns[name] = fake.impl(eager, graph, capturable)
    timings = timing.time_on_gpu(fns, POLICY)
    assert {t.method for t in timings.values()} == {method}
    assert all(reason in t.method_reason for t in timings.values())
    for name, t in timings.items():
        spec = impls[name]
        (eager, graph), _ = (spec, True) if isinstance(spec[0], float) else spec
        expected = graph if method == "cuda-graph" else eager
        assert all(s == pytest.approx(expected) for s in t.samples)
        # Both estimates stay recorded whatever the case's method.
        assert t.estimates["eager_estimate_s"] == pytest.approx(eager)
        # Every round took samples, and each round's median is kept.
        assert len(t.round_samples) == POLICY.rounds and all(n >= 2 for n in t.round_samples)
        assert t.round_p50 == pytest.approx([expected] * POLICY.rounds)


def test_the_old_per_implementation_rule_would_have_mixed_methods():
    # The rule the case-level choice replaces: each side on its own would pick a different method.
    assert timing.gains_from_graph(100e-6, 10e-6, 0.05) and not timing.gains_from_graph(10.4e-6, 10e-6, 0.05)
    assert timing.case_method({"a": (100e-6, 10e-6), "b": (10.4e-6, 10e-6)}, 0.05)[0] == "cuda-graph"


def test_the_warm_up_of_a_long_kernel_lasts_its_budget_not_a_queue_of_calls(monkeypatch):
    """Launches return before their kernel ends: a warm-up timed by the host's clock alone would
    queue dozens of 15 ms calls before it noticed 50 ms had passed."""
    fake = FakeCuda(15e-3, 15e-3)
    fake.install(monkeypatch)
    host = {"t": 0.0, "calls": 0}

    def call():
        fake.call()
        host["t"] += 5e-6  # the launch's host time
        host["calls"] += 1

    def synchronize():
        host["t"] = max(host["t"], fake.now)  # the host waits for the device

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: host["t"])
    assert timing._estimate(call, 0.05) == pytest.approx(15e-3)
    assert host["calls"] <= 2 + 4  # the first call, the timed one, then 50 ms worth
    host["calls"] = 0
    short = FakeCuda(10e-6, 10e-6)
    short.install(monkeypatch)
    fake.now = 0.0
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)

    def short_call():
        short.call()
        fake.now = short.now
        host["t"] += 5e-6
        host["calls"] += 1
    assert timing._estimate(short_call, 0.05) == pytest.approx(10e-6)
    assert host["calls"] >= 1000  # a microsecond kernel still warms up over thousands of calls


def test_an_energy_run_follows_the_rounds_only_when_asked(monkeypatch):
    from dataclasses import replace

    from suite import runner

    fake = FakeCuda(1e-3, 0.99e-3)
    fake.install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    plain = timing.time_on_gpu({"x": fake.call}, POLICY)["x"]
    assert plain.energy_window is None and "energy_window" not in plain.describe()
    t = timing.time_on_gpu({"x": fake.call}, replace(POLICY, energy_s=0.5))["x"]
    w = t.energy_window
    assert w["calls"] == pytest.approx(500, abs=t.inner)  # 0.5 s of 1 ms calls, in whole samples
    assert w["seconds_per_call"] == pytest.approx(1e-3)
    assert w["interval"][0] >= t.intervals[-1][1]  # after the rounds, alone
    assert t.describe()["energy_window"]["calls"] == w["calls"]

    class Sampler:  # what _energy asks of the sampler: the windows and the calls in them, the readings
        def energy(self, windows, calls):
            return {"windows": windows, "calls": calls}

        def summary(self, intervals):
            return {"intervals": intervals}

    e = runner._energy(Sampler(), t)
    assert e == {"windows": [tuple(w["interval"])], "calls": w["calls"], "over": "energy run",
                 "telemetry": {"intervals": [tuple(w["interval"])]}}  # the energy run's own readings
    e = runner._energy(Sampler(), plain)
    assert e["over"] == "timed rounds" and e["windows"] == plain.intervals and "telemetry" not in e
    assert e["calls"] == len(plain.samples) * plain.inner
