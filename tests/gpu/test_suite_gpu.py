"""The runner on a real GPU: graph timing, telemetry, env, big-array streaming. Run on the device."""
import pytest
import torch

from suite import env, runner, timing
from suite.workloads import all_workloads
from suite.telemetry import nvml_handle

pytestmark = pytest.mark.gpu


@pytest.fixture
def ctx():
    return runner.Context(device="cuda:0", env=env.collect(0, command="test"), interpret=False,
                          policy=timing.TimingPolicy(budget_s=0.05), run_id="gpu-test", nvml=nvml_handle(0))


def test_env_reads_the_gpu(ctx):
    gpu = ctx.env["gpu"]
    assert gpu["name"] and gpu["uuid"].startswith("GPU-") and gpu["sm_count"] > 0 and gpu["l2_bytes"] > 0
    assert gpu["max_sm_clock_mhz"] and gpu["power_limit_w"] and ctx.env["driver"]


@pytest.mark.parametrize("array_bytes, method", [(4 << 20, "cuda-graph"), (256 << 20, "cuda-events")])
def test_streaming_case_records_timing_and_telemetry(ctx, array_bytes, method):
    recs = []
    w = all_workloads()["stream-triad"]
    runner.run_task(runner.Task(w, {"array_bytes": array_bytes}, "bf16"), ctx, recs.append)
    assert [r.status for r in recs] == ["ok", "ok"], [r.reason for r in recs]
    for r in recs:
        # Graphs where launch gaps would dominate (microsecond calls), plain launches otherwise.
        assert r.timing["method"] == method and r.timing["meaningful"]
        assert r.telemetry and r.telemetry["samples"] > 0 and r.telemetry["sm_clock_mhz"]["max"] > 0
        assert 1e11 < r.bytes_per_s < 2e13  # between 100 GB/s and 20 TB/s: a sane HBM figure


def test_rotation_builds_sets_past_l2(ctx):
    from suite.registry import Workload
    w = all_workloads()["stream-copy"]
    rotating = Workload(**{**w.__dict__, "name": "rot", "rotate_past_l2": 3.0})
    sets = runner._input_sets(runner.Task(rotating, {"array_bytes": 4 << 20}, "fp32"), ctx)
    assert len(sets) * 8 << 20 >= 3 * ctx.l2_bytes
    assert not torch.equal(sets[0]["a"], sets[1]["a"])  # fresh random inputs per set


def test_allocator_poison_reaches_a_fresh_output():
    a = torch.randn(256, 256, device="cuda")
    from suite.verify import poison_allocator
    poison_allocator(a.numel() * 4, "cuda")
    fresh = torch.empty(256, 256, device="cuda")
    assert torch.isnan(fresh).all()


def _measure(ctx, workload, params, dtype):
    recs = []
    runner.run_task(runner.Task(all_workloads()[workload], params, dtype), ctx, recs.append)
    assert all(r.status == "ok" for r in recs), [(r.impl, r.reason) for r in recs]
    return {r.impl: r for r in recs}


def test_host_bound_launcher_is_timed_as_a_graph(ctx):
    # A 1024^3 bf16 GEMM runs ~10 us; the autotuned Triton launcher's Python
    # work per call is longer, so back-to-back launches measure the host. The
    # graph replay must be chosen, and it must be the faster estimate.
    t = _measure(ctx, "gemm-square", {"M": 1024, "N": 1024, "K": 1024}, "bf16")["triton"].timing
    assert t["method"] == "cuda-graph", t
    assert t["graph_estimate_s"] < 0.95 * t["eager_estimate_s"]


def test_long_copy_is_timed_as_plain_launches(ctx):
    # A 2 GiB copy_ takes ~1 ms: launch gaps cost nothing, and a graph would
    # turn torch's copy into a memcpy node that runs slower than the kernel.
    recs = _measure(ctx, "stream-copy", {"array_bytes": 2 << 30}, "fp32")
    for r in recs.values():
        assert r.timing["method"] == "cuda-events", (r.impl, r.timing)
        assert r.timing["eager_estimate_s"] > 5e-4


def test_tuning_times_the_device_not_the_launcher():
    # A 4 KiB fill runs ~2 us; the autotuned launcher's host work per call is
    # longer, so plain back-to-back timing (do_bench) measures the host. The
    # tuners must see the kernel's own time, or their choice is noise.
    import triton

    from kernels import streaming as ks
    from kernels.tuning import device_time_ms
    x = torch.empty(1024, device="cuda")
    ks.stream("fill", None, None, x, 1.0)  # tunes first
    f = lambda: ks.stream("fill", None, None, x, 1.0)  # noqa: E731
    graph_ms = device_time_ms(f)
    plain_ms = triton.testing.do_bench(f, return_mode="median")
    assert graph_ms < 0.8 * plain_ms, (graph_ms, plain_ms)
