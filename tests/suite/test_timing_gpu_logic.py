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
