"""Bus bandwidth as nccl-tests define it (doc/PERFORMANCE.md)."""
import pytest

from analysis import collectives
from analysis.errors import AnalysisError


@pytest.mark.parametrize("op, n, factor", [
    ("all-reduce", 2, 1.0), ("all-reduce", 8, 1.75), ("all-reduce", 1, 0.0),
    ("all-gather", 2, 0.5), ("all-gather", 8, 0.875),
    ("reduce-scatter", 4, 0.75), ("all-to-all", 8, 0.875),
    ("broadcast", 8, 1.0), ("reduce", 8, 1.0), ("send-recv", 2, 1.0),
])
def test_bus_factors(op, n, factor):
    assert collectives.bus_factor(op, n) == pytest.approx(factor)


def test_algbw_and_busbw():
    # 8 ranks all-reduce 1 GB in 10 ms: algbw 100 GB/s, busbw 175 GB/s.
    assert collectives.algbw("all-reduce", 1e9, 0.01) == pytest.approx(100e9)
    assert collectives.busbw("all-reduce", 1e9, 0.01, 8) == pytest.approx(175e9)
    # all-gather: S is the total output; 2 ranks gathering 512 MB each = 1 GB in 10 ms -> busbw 50 GB/s,
    # which is what each rank really received: 512 MB in 10 ms... times (n-1)/n of S.
    assert collectives.busbw("all-gather", 1e9, 0.01, 2) == pytest.approx(50e9)
    assert collectives.busbw("send-recv", 1e9, 0.01, 2) == pytest.approx(100e9)


@pytest.mark.parametrize("spelling", ["all_reduce", "AllReduce", "allreduce", "all-reduce"])
def test_op_spellings(spelling):
    assert collectives.canonical_op(spelling) == "all-reduce"
    assert collectives.canonical_op("all_to_all_single") == "all-to-all"
    assert collectives.canonical_op("send/recv") == "send-recv"


@pytest.mark.parametrize("call", [
    lambda: collectives.bus_factor("all-scatter", 2),
    lambda: collectives.bus_factor("all-reduce", 0),
    lambda: collectives.bus_factor("all-reduce", 2.5),
    lambda: collectives.algbw("all-reduce", 1e6, 0.0),
    lambda: collectives.algbw("all-reduce", -1, 1.0),
])
def test_bad_input_is_one_line(call):
    with pytest.raises(AnalysisError) as e:
        call()
    assert "\n" not in str(e.value)


def test_unknown_op_lists_valid_ones():
    with pytest.raises(AnalysisError, match="all-reduce, all-gather, reduce-scatter, all-to-all"):
        collectives.canonical_op("gossip")
