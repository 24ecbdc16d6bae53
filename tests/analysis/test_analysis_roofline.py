"""Ceilings, ridge points, roofline placement and GPU outliers on synthetic records with known answers.

The record builders here are shared by the other analysis test modules.
"""
import math

import pytest

from analysis import roofline as rl
from analysis.errors import AnalysisError
from analysis.records import Record

MiB, GiB = 1 << 20, 1 << 30
L2 = 60 * MiB
H200_MEM = 143771 * MiB  # what torch reports on an H200 SXM


def env(index=0, host="node0", name="NVIDIA H200", mem=H200_MEM, l2=L2, power_limit=700):
    return {"host": host, "rank": index, "world_size": 1, "interpret": False,
            "gpu": {"index": index, "name": name, "uuid": f"GPU-{host}-{index}", "cc": [9, 0], "sm_count": 132,
                    "l2_bytes": l2, "mem_bytes": mem, "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 3201,
                    "power_limit_w": power_limit, "default_power_limit_w": 700},
            "driver": "570.86", "cuda": "13.0", "torch": "2.11.0", "triton": "3.6.0", "python": "3.12.3"}


def telemetry(sm=1980.0, power=610.0, throttle=()):
    return {"samples": 12, "sm_clock_mhz": {"min": sm - 30, "p50": sm, "max": sm},
            "mem_clock_mhz": {"min": 3201.0, "p50": 3201.0, "max": 3201.0},
            "power_w": {"min": power - 40, "p50": power, "max": power + 10},
            "temp_c": {"min": 48.0, "p50": 52.0, "max": 55.0}, "throttle": list(throttle)}


# What the declarations say for the synthetic workloads (suite/workloads declares the real ones).
VIEWS = {"gemm-skinny": "gemm-skinny", "gemm-shape-search": "gemm-search", "attention-fwd": "attention"}
ROOFS = {"streaming": "memory", "gemm": "compute"}


def rec(workload, family, impl="triton", *, vendor=False, dtype="bf16", params=None, flops=0, nbytes=0,
        seconds=1e-3, status="ok", meaningful=True, moved=None, env_=None, tel=None, reason="", timing=None,
        view=None, roof=None, role=None, rounds=None, verify=None):
    params = dict(params or {})
    ok = status == "ok"
    time_s = {"p20": seconds * 0.98, "p50": seconds, "p80": seconds * 1.02, "n": 40}
    if rounds is not None:
        time_s["round_p50"] = [seconds * f for f in rounds]
    return Record(
        workload=workload, family=family, impl=impl, vendor=vendor, dtype=dtype, params=params,
        case=",".join(f"{k}={params[k]}" for k in sorted(params)),
        label=" ".join(f"{k}={v}" for k, v in params.items()), status=status, reason=reason,
        view=view or VIEWS.get(workload, family), roof=ROOFS.get(family, "") if roof is None else roof,
        role=role or ("naive" if "naive" in impl else "fused"), backend="" if vendor else "triton",
        flops=int(flops), bytes=int(nbytes), moved_bytes=moved,
        verify=(verify if verify is not None else {"rel_err": 1e-4, "tolerance": 1e-2}) if ok else None,
        time_s=time_s if ok else None,
        timing=({"method": "cuda-graph" if meaningful else "interpreter-wallclock", "inner": 8, "rounds": 5,
                 "window": [1.7e9, 1.7e9 + 2.0], "meaningful": meaningful, **(timing or {})} if ok else None),
        telemetry=(tel if tel is not None else telemetry()) if ok and meaningful else None,
        env=env_ or env(), run_id="run-1")


def stream(kind, working_set, bytes_per_s, impl="triton", vendor=False, dtype="fp32", **kw):
    """A streaming record whose working set (record.bytes) and bytes/s are given."""
    return rec(f"stream-{kind}", "streaming", impl, vendor=vendor, dtype=dtype,
               params={"array_bytes": working_set // 2}, nbytes=working_set,
               seconds=working_set / bytes_per_s, **kw)


def gemm(m, n, k, flop_per_s, impl="triton", vendor=False, dtype="bf16", workload="gemm-square", **kw):
    esize = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}[dtype]
    flops = 2 * m * n * k
    return rec(workload, "gemm", impl, vendor=vendor, dtype=dtype, params={"M": m, "N": n, "K": k}, flops=flops,
               nbytes=(m * k + k * n + m * n) * esize, seconds=flops / flop_per_s, **kw)


def case(family, workload, flops, nbytes, flop_per_s, impl="triton", vendor=False, dtype="bf16", **kw):
    """Any workload case: FLOPs, minimum bytes and achieved FLOP/s."""
    return rec(workload, family, impl, vendor=vendor, dtype=dtype, params=kw.pop("params", {"n": nbytes}),
               flops=flops, nbytes=nbytes, seconds=flops / flop_per_s, **kw)


def h200(env_=None, hbm=4.4e12, l2_bw=9.0e12, bf16=750e12):
    """A small H200 sweep: streaming in L2, in transition and far beyond L2; bf16 GEMMs."""
    e = env_ or env()
    return [
        stream("copy", 8 * MiB, l2_bw, env_=e),  # <= L2/2: L2 plateau
        stream("copy", 8 * MiB, l2_bw * 0.95, impl="torch.copy_", vendor=True, env_=e),
        stream("copy", 48 * MiB, l2_bw * 1.3, env_=e),  # transition: in no ceiling however fast
        stream("copy", 4 * GiB, hbm, env_=e),  # >= 8 x L2: HBM ceiling
        stream("copy", 4 * GiB, hbm * 0.97, impl="torch.copy_", vendor=True, env_=e),
        gemm(8192, 8192, 8192, bf16 * 0.96, env_=e),
        gemm(8192, 8192, 8192, bf16, impl="torch.matmul", vendor=True, env_=e),
    ]


def test_ceilings_follow_the_working_set_rules():
    a = rl.analyze(h200())
    assert a.hbm.value == pytest.approx(4.4e12) and a.hbm.record.bytes == 4 * GiB
    assert a.l2.value == pytest.approx(9.0e12) and a.l2.record.bytes == 8 * MiB
    # The 48 MiB case (between L2/2 and 8 x L2) is faster than both but sets neither.
    assert rl.regime(48 * MiB, L2) == "transition"
    assert rl.regime(8 * L2, L2) == "HBM" and rl.regime(8 * L2 - 1, L2) == "transition"
    assert rl.regime(L2 // 2, L2) == "L2" and rl.regime(L2 // 2 + 1, L2) == "transition"
    assert a.hbm.spec == pytest.approx(4.8e12) and a.hbm.of_spec == pytest.approx(4.4 / 4.8)
    assert a.hbm.set_by == "Triton (triton)"


def test_compute_ceiling_names_triton_and_vendor_best():
    a = rl.analyze(h200())
    c = a.compute["bf16"]
    assert c.value == pytest.approx(750e12) and c.record.vendor
    assert c.triton.flop_per_s == pytest.approx(720e12) and c.vendor.impl == "torch.matmul"
    assert c.spec == pytest.approx(989.5e12)


def test_ridge_points_measured_and_spec():
    a = rl.analyze(h200())
    measured, spec = a.ridge("bf16")
    assert measured == pytest.approx(750e12 / 4.4e12)
    assert spec == pytest.approx(989.5e12 / 4.8e12)
    assert a.ridge("fp8") == (None, pytest.approx(1979e12 / 4.8e12))


@pytest.mark.parametrize("bad", [
    dict(meaningful=False),  # interpreter timing
    dict(status="failed", reason="verification failed"),
    dict(status="skipped", reason="no fp8"),
])
def test_unmeaningful_records_never_set_a_ceiling(bad):
    rs = h200() + [stream("fill", 4 * GiB, 4.7e12, **bad), gemm(4096, 4096, 4096, 900e12, **bad)]
    a = rl.analyze(rs)
    assert a.hbm.value == pytest.approx(4.4e12)
    assert a.compute["bf16"].value == pytest.approx(750e12)
    assert all(p.record.status == "ok" and p.record.meaningful for p in a.placements)


def test_figures_above_the_spec_sheet_are_flagged_not_ceilings():
    rs = h200() + [stream("read", 4 * GiB, 6.0e12), gemm(4096, 4096, 4096, 1.2e15)]
    a = rl.analyze(rs)
    assert a.hbm.value == pytest.approx(4.4e12)
    assert a.compute["bf16"].value == pytest.approx(750e12)
    flagged = {r.workload: why for r, why in a.flagged}
    assert "miscounted or data cached" in flagged["stream-read"]
    assert "FLOPs miscounted" in flagged["gemm-square"]


def test_placement_binding_roof_and_shares():
    big = 8 * GiB  # far beyond L2: the HBM roof applies
    mem_bound = case("decode", "decode-attention", flops=big, nbytes=big, flop_per_s=2.2e12)  # intensity 1
    comp_bound = case("attention", "attention-fused", flops=600 * big, nbytes=big, flop_per_s=600e12)
    a = rl.analyze(h200() + [mem_bound, comp_bound])
    p = {pl.record.family: pl for pl in a.placements}
    assert p["decode"].intensity == pytest.approx(1.0)
    assert p["decode"].binding == "memory (HBM)"
    assert p["decode"].of_measured == pytest.approx(2.2e12 / 4.4e12)
    assert p["decode"].spec_binding == "memory (HBM)" and p["decode"].of_spec == pytest.approx(2.2 / 4.8)
    assert p["attention"].binding == "compute" and p["attention"].of_measured == pytest.approx(600 / 750)
    assert p["attention"].of_spec == pytest.approx(600 / 989.5)


def test_placement_counts_the_bytes_really_moved():
    nbytes, moved = 1 * GiB, 20 * GiB
    naive = case("attention", "attention-naive", flops=100 * nbytes, nbytes=nbytes, flop_per_s=3.5e12 * 5,
                 moved=moved, impl="triton-naive")
    a = rl.analyze(h200() + [naive])
    p = a.placements[-1]
    assert p.intensity == pytest.approx(100 * nbytes / moved)  # 5 FLOP/B, not 100
    assert p.binding == "memory (HBM)"
    assert p.achieved_bw == pytest.approx(3.5e12)


def test_case_above_the_measured_roof_is_flagged():
    cheat = case("decode", "decode-attention", flops=8 * GiB, nbytes=8 * GiB, flop_per_s=5.0e12)
    a = rl.analyze(h200() + [cheat])
    assert cheat not in [p.record for p in a.placements]
    assert [r for r, _ in a.flagged] == [cheat]


def test_small_working_set_sits_under_the_l2_roof_unless_inputs_rotate():
    small = case("decode", "decode-attention", flops=16 * MiB, nbytes=16 * MiB, flop_per_s=6.0e12)
    rotated = case("decode", "decode-attention", flops=16 * MiB, nbytes=16 * MiB, flop_per_s=4.0e12,
                   params={"batch": 2}, timing={"input_sets": 8})
    a = rl.analyze(h200() + [small, rotated])
    by_params = {tuple(p.record.params): p for p in a.placements if p.record.family == "decode"}
    assert by_params[("n",)].memory_roof == "L2" and by_params[("n",)].of_spec is None
    assert by_params[("n",)].of_measured == pytest.approx(6.0 / 9.0)
    assert by_params[("batch",)].memory_roof == "HBM"


def test_unknown_gpu_has_no_spec_and_says_so():
    e = env(name="NVIDIA Mystery X1", mem=33 * GiB)
    a = rl.analyze(h200(e))
    assert a.spec is None and "no spec entry matches" in a.spec_how
    assert a.hbm.spec is None and a.ridge("bf16")[1] is None
    assert rl.analyze(h200(e), "H100-SXM").spec.key == "H100-SXM"


def test_outlier_gpu_is_flagged_against_the_node_median():
    slow = env(2, power_limit=500)
    rs = h200(env(0)) + h200(env(1)) + h200(slow, hbm=4.4e12 * 0.9)
    analyses = [rl.analyze(g) for g in rl.by_gpu(rs).values()]
    found = rl.outliers(analyses)
    assert [(o.analysis.gpu["index"], o.ceiling.name) for o in found] == [(2, "HBM bandwidth")]
    assert found[0].shortfall == pytest.approx(0.1)
    # Within the margin: not flagged.
    rs = h200(env(0)) + h200(env(1)) + h200(slow, hbm=4.4e12 * 0.96)
    assert rl.outliers([rl.analyze(g) for g in rl.by_gpu(rs).values()]) == []


def test_outliers_are_judged_per_node():
    rs = h200(env(0, host="a")) + h200(env(0, host="b"), hbm=3.8e12)
    assert rl.outliers([rl.analyze(g) for g in rl.by_gpu(rs).values()]) == []


def test_predicted_time_is_the_roofline_maximum():
    assert rl.predicted_time(1e12, 1e9, 1e15, 1e12) == pytest.approx(1e-3)
    assert rl.predicted_time(1e15, 1e9, 1e15, 1e12) == pytest.approx(1.0)
    assert rl.predicted_time(1e12, 1e9, None, 1e12) is None
    assert rl.predicted_time(0, 1e9, None, 1e12) == pytest.approx(1e-3)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: setattr(r, "time_s", {"p50": "fast"}), "time_s.p50"),
    (lambda r: setattr(r, "time_s", {"p50": 0.0}), "time_s.p50"),
    (lambda r: setattr(r, "bytes", -4), "bytes"),
    (lambda r: setattr(r, "flops", math.nan), "flops"),
    (lambda r: setattr(r, "params", [1, 2]), "params"),
    (lambda r: setattr(r, "telemetry", "hot"), "telemetry"),
])
def test_malformed_records_raise_one_line(mutate, message):
    rs = h200()
    mutate(rs[3])
    with pytest.raises(AnalysisError, match=message) as e:
        rl.check_records(rs)
    assert "\n" not in str(e.value) and "records[3]" in str(e.value)


def test_non_records_are_refused():
    with pytest.raises(AnalysisError, match="not an analysis.records.Record"):
        rl.check_records([{"workload": "stream-copy"}])
    with pytest.raises(AnalysisError, match="expected a list"):
        rl.check_records("results.jsonl")


def test_assumptions_state_rules_conditions_and_versions():
    rs = h200() + [stream("fill", 4 * GiB, 4e12, meaningful=False)]
    text = " ".join(rl.assumptions(rl.analyze(rs)))
    for needle in ("NVIDIA H200", "H200-SXM", "torch 2.11.0", "triton 3.6.0", "SM clock", "throttle",
                   ">= 8 x L2", "<= 0.5 x L2", "cuda-graph", "1 verified but not meaningfully timed"):
        assert needle in text, needle


def test_select_gpu_by_index_host_index_or_uuid():
    rs = h200(env(0)) + h200(env(1))
    assert {r.env["gpu"]["index"] for r in rl.select_gpu(rs, 1)} == {1}
    assert rl.select_gpu(rs, "node0:0") == rl.select_gpu(rs, "GPU-node0-0") == rl.select_gpu(rs, "0")
    with pytest.raises(AnalysisError, match="matches no GPU.*node0:0.*node0:1"):
        rl.select_gpu(rs, 7)
    with pytest.raises(AnalysisError, match="matches several GPUs"):
        rl.select_gpu(h200(env(0, host="a")) + h200(env(0, host="b")), 0)


def test_sustain_and_counter_runs_set_no_ceiling_and_take_no_place():
    recs = h200()
    fast = gemm(8192, 8192, 8192, 900e12)  # faster than any sweep record of the file
    fast.sustain = {"unit": "flop_per_s"}
    profiled = gemm(8192, 8192, 8192, 950e12, impl="torch.matmul", vendor=True)
    profiled.counters = {"verdict": "within 5%"}
    a = rl.analyze(recs + [fast, profiled])
    assert a.compute["bf16"].value == pytest.approx(750e12)
    assert all(p.record is not fast and p.record is not profiled for p in a.placements)
