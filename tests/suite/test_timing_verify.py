"""Statistics, interpreter timing and the verification helpers."""
import math

import pytest
import torch

from suite import timing, verify
from suite.telemetry import decode_reasons


def test_summarize_median_and_spread():
    s = timing.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s["p50"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["p20"] == pytest.approx(1.8) and s["p80"] == pytest.approx(4.2)
    assert s["samples"] == [5.0, 1.0, 3.0, 2.0, 4.0]  # raw, in order taken


def test_cpu_timing_is_marked_not_meaningful():
    t = timing.time_on_cpu({"x": lambda: sum(range(100))}, reps=4)["x"]
    assert len(t.samples) == 4 and not t.meaningful
    d = t.describe()
    assert d["method"] == "interpreter-wallclock" and d["meaningful"] is False
    assert d["window"][0] <= d["window"][1]


def test_rel_error_is_normwise_and_shape_strict():
    ref = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert verify.rel_error(torch.tensor([3.0, 4.0]), ref) == 0.0
    assert verify.rel_error(torch.tensor([3.0, 3.0]), ref) == pytest.approx(1 / 5)
    assert verify.rel_error(torch.tensor([math.nan, 4.0]), ref) == math.inf
    with pytest.raises(ValueError, match="shape"):
        verify.rel_error(torch.tensor([[3.0, 4.0]]), ref)


def test_rel_error_chunks_agree(monkeypatch):
    x = torch.rand(1000, dtype=torch.float64) + 0.5
    y = x + 1e-3 * torch.rand(1000, dtype=torch.float64)
    whole = verify.rel_error(y, x)
    monkeypatch.setattr(verify, "_CHUNK", 7)
    assert verify.rel_error(y, x) == pytest.approx(whole, rel=1e-12)


def test_poison_fills_outputs_with_nan():
    inp = {"out": (torch.zeros(3), torch.zeros(2, dtype=torch.bfloat16)), "a": torch.zeros(2)}
    verify.poison(inp)
    assert all(torch.isnan(t).all() for t in inp["out"]) and not torch.isnan(inp["a"]).any()


def test_throttle_reasons_from_pynvml_constants():
    pynvml = pytest.importorskip("pynvml")
    bits = pynvml.nvmlClocksThrottleReasonSwPowerCap | pynvml.nvmlClocksThrottleReasonHwSlowdown
    assert decode_reasons(bits) == ["hw_slowdown", "sw_power_cap"]
    assert decode_reasons(0) == []


def test_graph_only_where_it_is_clearly_faster():
    # Host-bound launcher: back-to-back launches look 10x slower than the kernel.
    assert timing.gains_from_graph(eager_s=100e-6, graph_s=10e-6, gain=0.05)
    # Launch overhead hidden behind a long kernel: time it as a user runs it.
    assert not timing.gains_from_graph(eager_s=1.00e-3, graph_s=0.98e-3, gain=0.05)
    # A graph that runs slower (a copy captured as a memcpy node) is never chosen.
    assert not timing.gains_from_graph(eager_s=1.0e-3, graph_s=1.5e-3, gain=0.05)
    assert not timing.gains_from_graph(eager_s=5e-6, graph_s=None, gain=0.05)  # capture failed


def test_describe_records_both_estimates():
    t = timing.Timing([1e-3], "cuda-graph", 4, 5, [(1.0, 2.0)], estimates={"eager_estimate_s": 2e-3,
                                                                            "graph_estimate_s": 1e-3})
    d = t.describe()
    assert d["eager_estimate_s"] == 2e-3 and d["graph_estimate_s"] == 1e-3 and d["window"] == [1.0, 2.0]
