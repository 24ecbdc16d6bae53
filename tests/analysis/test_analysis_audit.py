"""The assumption audit on synthetic records with known answers: the default case selection (by view,
role and parameters, whatever the workloads are called), each assumption made to hold and to break,
the two-GPU claim with its interval, the prediction for another SKU against hand-computed figures,
every figure traced to its file and line, and bad input refused in one line."""
import csv
import io
import json
import math

import pytest

from analysis import audit
from analysis import sustain as sus
from analysis.errors import AnalysisError
from analysis.records import Record, dump
from suite.cli import main

MiB, GiB = 1 << 20, 1 << 30
L2 = 60 * MiB
H200_MEM, H100_MEM = 143771 * MiB, 81559 * MiB  # what torch reports for each
H200_BW, H100_BW, PEAK_BF16 = 4.8e12, 3.35e12, 989.5e12  # the two spec sheets (bf16 dense: the same)
HBM, BF16 = 0.9 * H200_BW, 0.75 * PEAK_BF16  # this GPU's measured ceilings: 90% and 75% of its sheet
ROUNDS = (1.0, 1.01, 0.99, 1.0, 1.005)


def env(name="NVIDIA H200", mem=H200_MEM, uuid="GPU-h200", index=0):
    return {"host": "node0", "rank": 0, "world_size": 1, "interpret": False,
            "gpu": {"index": index, "name": name, "uuid": uuid, "cc": [9, 0], "sm_count": 132, "l2_bytes": L2,
                    "mem_bytes": mem, "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 3201, "power_limit_w": 700}}


def telemetry(sm=1980.0, power=600.0, throttle=()):
    return {"samples": 10, "sm_clock_mhz": {"min": sm, "p50": sm, "max": sm},
            "mem_clock_mhz": {"min": 3201.0, "p50": 3201.0, "max": 3201.0},
            "power_w": {"min": power, "p50": power, "max": power},
            "temp_c": {"min": 50.0, "p50": 50.0, "max": 50.0}, "throttle": list(throttle)}


def rec(workload, impl="triton", *, view, params, flops, nbytes, seconds, dtype="bf16", vendor=False, roof="",
        role="fused", moved=None, launches=None, method="cuda-graph", eager=None, graph=None, rounds=ROUNDS,
        run="run-1", env_=None, status="ok", meaningful=True, start=1.7e9, reason="", tel=None):
    ok = status == "ok"
    timing = {"method": method if meaningful else "interpreter-wallclock", "inner": 8, "rounds": len(rounds),
              "window": [start, start + 1.0], "meaningful": meaningful,
              "eager_estimate_s": eager, "graph_estimate_s": graph}
    return Record(
        workload=workload, family=view, impl=impl, vendor=vendor, dtype=dtype, params=dict(params),
        case=",".join(f"{k}={params[k]}" for k in sorted(params)),
        label=" ".join(f"{k}={v}" for k, v in params.items()), status=status, reason=reason, view=view, roof=roof,
        role=role, backend="cuBLAS" if vendor else "triton", launches=launches, flops=int(flops), bytes=int(nbytes),
        moved_bytes=moved, verify={"rel_err": 1e-4, "tolerance": 1e-2} if ok else None,
        time_s={"p20": seconds, "p50": seconds, "p80": seconds, "n": 40,
                "round_p50": [seconds * f for f in rounds]} if ok else None,
        timing=timing if ok else None, telemetry=(tel or telemetry()) if ok else None,
        env=env_ or env(), run_id=run)


def ceilings(env_=None, hbm=HBM, bf16=BF16):
    """A streaming record that sets the HBM ceiling and a GEMM that sets the bf16 compute ceiling."""
    ws, n = 2 * GiB, 8192
    return [rec("stream-copy", view="streaming", roof="memory", params={"array_bytes": GiB}, flops=0, nbytes=ws,
                seconds=ws / hbm, dtype="fp32", env_=env_),
            rec("gemm-square", view="gemm", roof="compute", params={"M": n, "N": n, "K": n}, flops=2 * n ** 3,
                nbytes=3 * n * n * 2, seconds=2 * n ** 3 / bf16, env_=env_)]


def memory_case(workload="step", share=0.8, nbytes=GiB, flops=GiB, env_=None, **kw):
    """A memory-bound case moving `nbytes` at `share` of the HBM ceiling (2 x batch FLOPs per byte at most)."""
    params = kw.pop("params", {"preset": "p", "batch": 1, "context": 8192})
    return rec(workload, view=kw.pop("view", "decode"), params=params, flops=flops, nbytes=nbytes,
               seconds=nbytes / (share * HBM), env_=env_, **kw)


def one(records, **kw) -> audit.GpuAudit:
    return audit.audit_gpu(records, **kw)


def assessed(records, title=None, **kw) -> audit.Assessment:
    found = [s for s in one(records, **kw).assessed if title is None or s.item.title == title]
    assert len(found) == 1, [s.item.name for s in one(records, **kw).assessed]
    return found[0]


def verdicts(s: audit.Assessment) -> dict:
    return {c.name: c.verdict for c in s.checks if c.verdict is not None}


# ---------------------------------------------------------------- the default selection

def selection_records():
    """Workloads with names of their own: the rule goes by view, role, roof and parameters."""
    rs = ceilings()
    for dtype in ("fp16", "bf16"):
        for batch in (1, 4, 64):
            for context in (1024, 8192, 32768):
                rs.append(memory_case("my-decoder", dtype=dtype,
                                      params={"preset": "m", "batch": batch, "context": context}))
    for batch, kv, ragged, context in [(1, 8, False, 4096), (64, 32, False, 131072), (64, 8, False, 4096),
                                       (64, 8, False, 32768), (64, 8, True, 131072), (8, 8, False, 131072)]:
        rs.append(memory_case("kv-read", params={"batch": batch, "q_heads": 32, "kv_heads": kv, "context": context,
                                                 "ragged": ragged}))
    for seq, causal in [(1024, False), (4096, False), (8192, False), (16384, True)]:
        flops = 4 * 4 * 32 * seq * seq * 128
        for impl, role in (("flash", "fused"), ("naive", "naive")):
            skipped = role == "naive" and seq >= 8192
            rs.append(rec("attn", impl, view="attention", role=role, params={"S": seq, "causal": causal},
                          flops=flops, nbytes=seq * 4 * 32 * 128 * 8, seconds=flops / (0.6 * BF16),
                          status="skipped" if skipped else "ok", reason="needs too much memory" if skipped else ""))
    for m in (1, 16, 1024):
        for n in (8192, 28672):
            rs.append(rec("thin", view="gemm-skinny", roof="compute", params={"M": m, "N": n, "K": 8192},
                          flops=2 * m * n * 8192, nbytes=n * 8192 * 2, seconds=n * 8192 * 2 / (0.8 * HBM)))
    return rs


def test_default_selection_follows_the_rule():
    picked = {(s.item.title, s.item.label, s.item.key.dtype) for s in one(selection_records()).assessed}
    assert picked == {
        ("decode step", "preset=m batch=1 context=8192", "bf16"),  # bf16 preferred, the middle context
        ("decode step", "preset=m batch=64 context=8192", "bf16"),
        # uniform, grouped-query (8 < 32 heads), batch 64, its longest context (not the ragged nor 32/32 one)
        ("decode attention", "batch=64 q_heads=32 kv_heads=8 context=32768 ragged=False", "bf16"),
        # the largest non-causal case where both roles were measured (naive was skipped at 8192)
        ("fused attention", "S=4096 causal=False", "bf16"), ("naive attention", "S=4096 causal=False", "bf16"),
        ("largest GEMM", "M=8192 N=8192 K=8192", "bf16"),
        ("skinny GEMM", "M=1 N=28672 K=8192", "bf16"),  # the fewest rows, the largest weight
    }


def test_default_selection_in_another_dtype_and_what_is_missing():
    mine = one(selection_records(), dtype="fp16")
    assert {(s.item.title, s.item.key.dtype) for s in mine.assessed} == {("decode step", "fp16")}
    assert any("largest GEMM in fp16: not measured" in m for m in mine.missing)
    lacking = one(ceilings()).missing
    assert any(m.startswith("decode step: no record of view 'decode'") for m in lacking)
    assert any(m.startswith("attention: no record of view 'attention'") for m in lacking)


def test_records_without_views_of_their_own_find_the_skinny_gemm_by_shape():
    rs = ceilings() + [rec("thin", view="gemm", roof="compute", params={"M": m, "N": 8192, "K": 8192},
                           flops=2 * m * 8192 * 8192, nbytes=8192 * 8192 * 2, seconds=1e-4) for m in (1, 512)]
    titles = {s.item.title: s.item.label for s in one(rs).assessed}
    assert titles["skinny GEMM"] == "M=1 N=8192 K=8192"  # M=512 is not below min(N, K) / 64


def test_workload_and_case_choose_what_is_audited():
    rs = selection_records()
    assert {s.item.key.workload for s in one(rs, workloads=["my-decoder", "attn"]).assessed} == {"my-decoder", "attn"}
    s = one(rs, workloads=["my-decoder"], labels=["preset=m batch=4 context=1024", "preset=m batch=1 context=8192"])
    assert [(x.item.title, x.item.label, x.item.key.dtype) for x in s.assessed] == [
        ("decode", "preset=m batch=4 context=1024", "bf16"),  # named by its view
        ("decode step", "preset=m batch=1 context=8192", "bf16")]  # the default rule's own case keeps its title
    by_id = one(rs, labels=["batch=4,context=1024,preset=m"], dtype="fp16").assessed
    assert [(x.item.label, x.item.key.dtype) for x in by_id] == [("preset=m batch=4 context=1024", "fp16")]
    with pytest.raises(AnalysisError, match="--workload 'nope' has no meaningful measurement.*measured: attn"):
        one(rs, workloads=["nope"])
    with pytest.raises(AnalysisError, match="'stream-copy' has no case in the default selection.*--case"):
        one(rs, workloads=["stream-copy"])
    with pytest.raises(AnalysisError, match="--case 'batch=3' matches no case measured in my-decoder"):
        one(rs, workloads=["my-decoder"], labels=["batch=3"])
    with pytest.raises(AnalysisError, match="--dtype 'fp8' is not measured"):
        one(rs, dtype="fp8")
    with pytest.raises(AnalysisError, match="of kv-read is not measured in fp16; measured in bf16"):
        one(rs, labels=["batch=1 q_heads=32 kv_heads=8 context=4096 ragged=False"], dtype="fp16")
    with pytest.raises(AnalysisError, match="none of the default cases is measured .*--case LABEL"):
        one(ceilings()[:1])  # a streaming record alone


def test_a_later_run_of_a_case_supersedes_an_earlier_one():
    old = memory_case(share=0.5, run="run-1", start=1.7e9)
    new = memory_case(share=0.8, run="run-2", start=1.8e9)
    faster_but_older = memory_case(share=0.9, impl="torch", vendor=True, run="run-1", start=1.7e9)
    s = assessed(ceilings() + [old, faster_but_older, new], "decode step")
    assert s.best is new and s.item.records == [new]


# ---------------------------------------------------------------- each assumption, holding and breaking

def test_a_compute_bound_gemm_on_its_fast_path_keeps_every_measured_assumption():
    s = assessed(ceilings(), "largest GEMM")  # the ceiling's own record: 100% of the compute roof
    assert verdicts(s) == {"1 compute-bound": "holds", "2 fast path": "holds", "3 data keeps pace": "holds",
                           "4 sustained": "not measured"}
    assert s.binding == "compute" and s.t_bind == pytest.approx(2 * 8192 ** 3 / BF16)
    one_ = s.check("1 compute-bound")
    assert one_.figure.value == pytest.approx(2 * 8192 ** 3 / (3 * 8192 * 8192 * 2))  # 2731 FLOP/B
    assert "measured ridge 171.8 FLOP/B" in one_.against and "spec ridge 206.1" in one_.against
    # The spec sheet's reader: 2 x 8192^3 FLOPs at 989.5 TFLOP/s.
    assert s.spec_time == pytest.approx(2 * 8192 ** 3 / PEAK_BF16) and s.spec_figure.startswith("bf16 peak 989.5")


def test_software_off_its_fast_path_breaks_assumption_two_with_the_spread():
    n = 8192
    slow = rec("gemm-square", "torch.matmul", vendor=True, view="gemm", roof="compute",
               params={"M": n, "N": n, "K": n}, flops=2 * n ** 3, nbytes=3 * n * n * 2, seconds=2 * 2 * n ** 3 / BF16,
               rounds=(1.0, 0.98, 1.03, 1.0, 0.99))
    rs = ceilings() + [slow]
    s = assessed(rs, "largest GEMM")
    assert s.check("2 fast path").verdict == "holds"  # the best reaches its roof; the other trails at 50%
    assert "1 other at 50%" in s.check("2 fast path").detail
    ratio = audit.vs.speed_ratio(slow, s.best)
    assert ratio.value == pytest.approx(0.5) and ratio.low < 0.5 < ratio.high
    # Only the slow one measured: the fast path is not reached.
    alone = assessed([rs[0], rec("gemm-other", view="gemm", roof="compute", params={"M": 4096, "N": 4096, "K": 4096},
                                 flops=2 * 4096 ** 3, nbytes=1, seconds=2 * 4096 ** 3 / BF16), slow], "largest GEMM")
    two = alone.check("2 fast path")
    assert two.verdict == "breaks" and two.figure.value == pytest.approx(0.5) and two.short == "breaks: 50%"


def test_a_memory_bound_decode_step_breaks_one_and_three_and_keeps_two():
    s = assessed(ceilings() + [memory_case(share=0.9)], "decode step")
    assert verdicts(s) == {"1 compute-bound": "breaks", "2 fast path": "holds", "3 data keeps pace": "breaks",
                           "4 sustained": "not measured"}
    assert s.binding == "memory (HBM)" and s.check("1 compute-bound").short == "breaks: memory-bound"
    three = s.check("3 data keeps pace")
    assert three.figure.value == pytest.approx(0.9 * HBM)
    assert "90% of the measured HBM ceiling 4,320 GB/s" in three.against
    assert "81% of the spec 4,800 GB/s" in three.against
    assert s.check("2 fast path").figure.value == pytest.approx(0.9)
    assert s.spec_figure == "memory 4,800 GB/s" and s.spec_time == pytest.approx(GiB / H200_BW)


def test_naive_attention_moves_what_fused_attention_keeps_on_chip():
    flops, nbytes = 2e12, GiB  # 1863 FLOP/B: compute-bound, as long as the bytes are the minimum
    fused = rec("attn", "fused", view="attention", params={"S": 8192}, flops=flops, nbytes=nbytes,
                seconds=flops / (0.9 * BF16))
    naive = rec("attn", "naive", view="attention", role="naive", params={"S": 8192}, flops=flops, nbytes=nbytes,
                moved=40 * nbytes, seconds=40 * nbytes / (0.7 * HBM))
    mine = one(ceilings() + [fused, naive])
    by = {s.item.title: s for s in mine.assessed}
    assert verdicts(by["fused attention"])["1 compute-bound"] == "holds"
    assert verdicts(by["fused attention"])["3 data keeps pace"] == "holds"
    assert verdicts(by["naive attention"])["1 compute-bound"] == "breaks"
    assert verdicts(by["naive attention"])["3 data keeps pace"] == "breaks"
    assert verdicts(by["naive attention"])["2 fast path"] == "breaks"  # 70% of its memory roof
    assert "moves 40.00x the minimum bytes" in by["naive attention"].check("3 data keeps pace").detail
    # The spec sheet's reader knows the problem, not the implementation: one prediction for both.
    assert by["naive attention"].spec_time == by["fused attention"].spec_time == pytest.approx(flops / PEAK_BF16)


def launch_floor_records():
    """What the overhead probes measured: 2 us per Triton launch in a graph, 10 us eagerly."""
    return [rec("launch-empty", view="overhead", params={"args": 1}, flops=0, nbytes=0, seconds=2e-6, dtype="fp32",
                launches=1, eager=10e-6, graph=2e-6)]


def test_a_step_of_many_small_launches_is_launch_bound():
    # 40 launches at the 2 us graph floor: 80 us; its 100 MiB (past L2) at the HBM ceiling: 24 us.
    step = memory_case(nbytes=100 * MiB, flops=100 * MiB, launches=40, eager=500e-6, graph=90e-6)
    step.time_s["p50"] = 90e-6
    s = assessed(ceilings() + launch_floor_records() + [step], "decode step")
    assert s.binding == "launch floor" and s.t_bind == pytest.approx(80e-6)
    assert s.check("1 compute-bound").short == "breaks: launch-bound"
    assert s.check("2 fast path").verdict == "holds"  # 89% of the floor
    overhead = s.check("launch overhead")
    # Eagerly, 40 launches at the 10 us eager floor (400 us) set its 500 us.
    assert overhead.figure.value == pytest.approx(0.82) and "eagerly overhead-bound" in overhead.detail


def test_without_a_compute_ceiling_of_its_dtype_the_class_is_not_measured():
    s = assessed(ceilings() + [memory_case(dtype="fp16")], "decode step")
    assert verdicts(s) == {name: "not measured" for name in audit.ASSUMPTIONS}
    assert "no fp16 compute ceiling" in s.check("1 compute-bound").against


def sustain_run(burst, steady, *, workload="step", view="decode", params=None, roof="", seconds=60.0, chunk=0.2,
                impl="triton", unit="tokens_per_s", work=1.0, nbytes=GiB):
    """A sustain record: `burst` throughput in the first 2 s, `steady` afterwards."""
    t = [round(i * chunk, 9) for i in range(int(round(seconds / chunk)))]
    throughput = [burst if x < 2.0 else steady for x in t]
    series = {"t_s": t, "host_s": [chunk] * len(t), "calls": [100] * len(t),
              "device_s": [100 * work / v for v in throughput],
              "sm_clock_mhz": [1980.0 if x < 2 else 1600.0 for x in t],
              "mem_clock_mhz": [3201.0] * len(t), "power_w": [600.0 if x < 2 else 700.0 for x in t],
              "temp_c": [60.0] * len(t), "throttle": [[] if x < 2 else ["sw_power_cap"] for x in t]}
    r = rec(workload, impl, view="sustain", roof=roof, params=params or {"preset": "p", "batch": 1, "context": 8192},
            flops=0, nbytes=nbytes, seconds=nbytes / (0.5 * HBM), start=1.6e9)
    r.sustain = {"workload_view": view, "unit": unit, "work_per_call": work, "seconds": seconds, "chunk_s": chunk,
                 "burst_s": 2.0, "method": "cuda-events", "interrupted": False, "series": series,
                 "energy": {"burst": None, "steady": None}}
    return r


@pytest.mark.parametrize("steady, verdict", [(0.97, "holds"), (0.80, "breaks")])
def test_assumption_four_from_the_sustain_run_of_the_same_case(steady, verdict):
    s = assessed(ceilings() + [memory_case(), sustain_run(1.0, steady)], "decode step")
    four = s.check("4 sustained")
    assert four.verdict == verdict and four.figure.value == pytest.approx(steady)
    assert "steady SM 1,600 MHz, 700 W, throttle sw_power_cap" in four.detail
    assert four.against == "timed at SM 1980 of 1980 MHz, 600 of 700 W, throttle: none"


def test_a_sustain_run_that_never_settles_neither_holds_nor_breaks():
    swinging = sustain_run(1.0, 1.2)
    d = swinging.sustain["series"]["device_s"]
    for i in range(len(d) - 5, len(d)):  # the last second runs a third slower than the steady median
        d[i] *= 1.5
    four = assessed(ceilings() + [memory_case(), swinging], "decode step").check("4 sustained")
    ratio = sus.analyse(swinging)["steady_vs_burst"]["throughput"]
    assert four.verdict == "unsettled" and four.figure.value == pytest.approx(ratio) and 1.1 < ratio < 1.2
    assert "did not settle" in four.detail and four.short == f"unsettled: {ratio:.3f}"
    steady = assessed(ceilings() + [memory_case(), sustain_run(1.0, 1.2)], "decode step").check("4 sustained")
    assert steady.verdict == "holds"  # the same ratio from a run that settled


def test_assumption_four_is_never_assumed():
    other_case = sustain_run(1.0, 0.5, params={"preset": "p", "batch": 64, "context": 8192})
    s = assessed(ceilings() + [memory_case(), other_case], "decode step")
    assert s.check("4 sustained").verdict == "not measured"
    assert s.check("4 sustained").detail == "no sustain run of this case"
    short = sustain_run(1.0, 0.5, seconds=3.0)  # burst and steady state overlap: nothing to compare
    s = assessed(ceilings() + [memory_case(), short], "decode step")
    assert s.check("4 sustained").verdict == "not measured" and "overlap" in s.check("4 sustained").detail


def test_a_malformed_sustain_series_is_refused_in_one_line():
    broken = sustain_run(1.0, 0.9)
    broken.sustain["series"]["calls"][3] = -1
    with pytest.raises(AnalysisError, match=r"sustain.series.calls holds -1"):
        one(ceilings() + [memory_case(), broken])


def test_energy_per_unit_of_work_where_measured():
    step = memory_case(params={"preset": "p", "batch": 8, "context": 8192})
    step.energy = {"joules_per_call": 0.02, "watts": 500.0, "uncertainty": 0.01}
    e = assessed(ceilings() + [step], labels=[step.label]).check("energy")
    assert e.figure == "400 tokens/J (±1.0%)"  # 8 tokens over 0.02 J
    bare = assessed(ceilings() + [memory_case()], "decode step").check("energy")
    assert bare.figure is None and bare.detail.startswith("not measured")


# ---------------------------------------------------------------- two GPUs, and the claim

def h100(records):
    """The same records as measured on an H100 SXM."""
    out = []
    for r in records:
        r2 = Record.from_dict(json.loads(dump(r)))
        r2.env = env("NVIDIA H100 80GB HBM3", H100_MEM, "GPU-h100")
        out.append(r2)
    return out


def test_a_two_gpu_audit_sets_the_measured_speed_up_beside_the_spec_one():
    mine = one(ceilings() + [memory_case(share=0.8)])
    theirs_records = h100(ceilings(hbm=0.85 * H100_BW) + [memory_case(share=0.8)])
    theirs_records[-1].time_s["p50"] *= 1.40
    theirs_records[-1].time_s["round_p50"] = [x * 1.40 for x in theirs_records[-1].time_s["round_p50"]]
    theirs = audit.compare_with(mine, theirs_records)
    s = next(x for x in mine.assessed if x.item.title == "decode step")
    assert s.other is not None and s.other.analysis.spec.key == "H100-SXM"
    spec = audit.spec_speedup(s.analysis.spec, s.other.analysis.spec, s.best)
    assert spec == pytest.approx(H200_BW / H100_BW)  # 1.433: the bandwidth ratio, the case being memory-bound
    measured = audit.vs.independent_ratio(s.best, s.other.best)
    assert measured.value == pytest.approx(1.40) and measured.low < 1.40 < measured.high
    assert audit.claim_verdict(1.43, measured, None) == "holds"  # within 5%
    assert audit.claim_verdict(1.60, measured, None) == "breaks"
    assert audit.claim_verdict(1.60, None, 1.55) == "holds (predicted)"
    assert audit.claim_verdict(1.60, None, None) == "not measured"
    assert theirs.assessed == [x.other for x in mine.assessed if x.other]


def test_the_claim_table_names_both_sides_and_the_verdict():
    a = ceilings() + [memory_case(share=0.8)]
    b = h100(ceilings(hbm=0.85 * H100_BW) + [memory_case(share=0.8)])
    b[-1].time_s["p50"] = GiB / (0.8 * 0.85 * H100_BW)  # 80% of its own HBM ceiling, 85% of its sheet
    def row(claim):
        text = audit.format_sections(audit.build(a, {}, vs_records=b, claim=claim, workloads=["step"]), "plain")
        return text, next(line for line in text.splitlines() if line.startswith("decode step") and "1.433" in line)

    # 4.32 / 2.85 TB/s = 1.517 measured: within 5% of 1.43 at its interval's low end, more than 5% above 1.3.
    text, line = row(1.43)
    assert "1.517 [1.497, 1.537]" in line and "holds" in line
    text, line = row(1.3)
    assert "1.517 [1.497, 1.537]" in line and "breaks" in line
    assert "The claim: H200 #0 on node0 (H200-SXM) against H100 80GB HBM3 #0 on node0 (H100-SXM)" in text


# ---------------------------------------------------------------- the prediction for another SKU

def test_predicted_ceilings_are_this_gpus_efficiency_times_the_other_sheet():
    hbm_sustain = sustain_run(1.0, 0.9, workload="stream-copy", view="streaming", roof="memory",
                              params={"array_bytes": GiB}, unit="bytes_per_s", nbytes=2 * GiB)
    mine = one(ceilings() + [memory_case(), hbm_sustain])
    eff = audit.predict(mine, audit.specdb.get("H100-SXM"))
    assert eff["HBM bandwidth"].share == pytest.approx(0.9) and eff["compute bf16"].share == pytest.approx(0.75)
    assert eff["HBM bandwidth"].sustained == pytest.approx(0.9) and eff["compute bf16"].sustained is None
    section = audit._prediction_section(mine, eff, audit.specdb.get("H100-SXM"), None, audit.Trace({}))
    rows = {row[0]: row for row in section.tables[0].rows}
    assert rows["HBM bandwidth"][5].value == pytest.approx(0.9 * H100_BW)  # 3,015 GB/s
    assert rows["HBM bandwidth"][7].value == pytest.approx(0.9 * H100_BW * 0.9)  # sustained
    assert rows["compute bf16"][5].value == pytest.approx(0.75 * PEAK_BF16)


def test_predicted_case_times_against_known_answers():
    flops = 200.0 * GiB  # 200 FLOP/B: compute-bound here (ridge 171.8), memory-bound there (ridge 246.1)
    mixed = rec("mid", view="mid-view", params={"n": 1}, flops=flops, nbytes=GiB, seconds=flops / (0.9 * BF16))
    launchy = memory_case(nbytes=100 * MiB, flops=100 * MiB, launches=40, eager=500e-6, graph=100e-6)
    launchy.time_s["p50"] = 100e-6
    steps = [memory_case(share=0.8), launchy]
    rs = ceilings() + launch_floor_records() + [mixed, sustain_run(1.0, 0.8)]
    target = audit.specdb.get("H100-SXM")
    memory_bound, launch_bound = (one(rs + [x], labels=[x.label]) for x in steps)
    mid = one(rs, labels=["n=1"])
    for mine in (memory_bound, launch_bound, mid):
        audit.predict(mine, target)
    p = memory_bound.assessed[0].prediction
    # Memory-bound: it keeps its 80% of the HBM roof, there 0.9 x 3.35 TB/s.
    assert p.time == pytest.approx(GiB / (0.8 * HBM) * HBM / (0.9 * H100_BW)) and p.binding == "memory"
    assert p.sustained == pytest.approx(p.time / 0.8)  # its own sustain run kept 80%
    assert p.note == "launch floor not known here: the whole time follows the roofs"  # its launches are not declared
    # Launch-bound: the floor does not follow the spec sheet, so neither does the time.
    q = launch_bound.assessed[0].prediction
    assert q.time == pytest.approx(100e-6) and q.binding == "launch floor" and q.note == ""
    # Between the two ridges: 200 GiB FLOPs at the compute roof here, its GiB at 3.015 TB/s there.
    m = mid.assessed[0].prediction
    assert m.time == pytest.approx(flops / (0.9 * BF16) * (GiB / (0.9 * H100_BW)) / (flops / BF16))
    assert m.binding == "memory" and m.figure(mid.assessed[0].best).kind == "bytes_per_s"


def test_the_prediction_error_where_the_other_gpu_was_measured():
    a = ceilings() + [memory_case(share=0.8)]
    b = h100(ceilings(hbm=0.85 * H100_BW) + [memory_case(share=0.8)])
    b[-1].time_s["p50"] = GiB / (0.8 * 0.85 * H100_BW)
    sections = audit.build(a, {}, vs_records=b, predict_spec="H100-SXM", workloads=["step"])
    prediction = next(s for s in sections if s.title.startswith("Prediction: H100-SXM"))
    ceilings_rows = {row[0]: row for row in prediction.tables[0].rows}
    assert ceilings_rows["HBM bandwidth"][9] == pytest.approx(0.90 / 0.85 - 1)  # predicted 90%, measured 85%
    case_row = prediction.tables[1].rows[0]
    assert case_row[9] == pytest.approx(0.85 / 0.90 - 1)  # the time: predicted / measured - 1
    assert any("not measurements" in n and "efficiency transfers between SKUs" in n for n in prediction.notes)


def test_a_prediction_needs_this_gpus_spec_sheet():
    unknown = env("Mystery GPU", 10 * GiB, "GPU-x")
    with pytest.raises(AnalysisError, match="a prediction needs the spec sheet of Mystery GPU.*--spec NAME"):
        audit.build(ceilings(unknown) + [memory_case(env_=unknown)], {}, predict_spec="H100-SXM")


# ---------------------------------------------------------------- traced to file and line; the command

def write(path, records, blank_after=()):
    lines = []
    for i, r in enumerate(records):
        lines.append(dump(r))
        if i in blank_after:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_figure_names_its_file_and_line(tmp_path):
    rs = ceilings() + [memory_case(share=0.9)]
    f = write(tmp_path / "r.jsonl", rs, blank_after=(0,))  # records on lines 1, 3 and 4
    records, where = audit.load([f])
    assert [where[id(r)] for r in records] == [(str(f), 1), (str(f), 3), (str(f), 4)]
    sections = audit.build(records, where, workloads=["step"])
    refs = {row[0]: (row[1], row[2], row[3], row[4]) for row in sections[-1].tables[0].rows}
    summary = sections[0].tables[0].rows[0]
    assert refs[summary[-1]] == (str(f), 4, "run-1", "step")  # the case's best record
    assert {line for _, line, _, _ in refs.values()} == {1, 3, 4}  # its ceilings' records too


def test_the_command_in_a_terminal_as_markdown_and_as_csv(tmp_path, capsys):
    f = write(tmp_path / "r.jsonl", selection_records() + [sustain_run(1.0, 0.97, workload="my-decoder",
                                                                       params={"preset": "m", "batch": 1,
                                                                               "context": 8192})])
    assert main(["audit", str(f), "--vs-spec", "H100-SXM", "--claim", "1.43", "--format", "plain"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 120
    for needed in ("Audit of H200 #0 on node0 (H200-SXM)", "The claim:", "Prediction: H100-SXM", "Records",
                   "holds: 0.970"):
        assert needed in text
    assert main(["audit", str(f), "--format", "github"]) == 0
    md = capsys.readouterr().out
    assert "## Audit of H200 #0 on node0 (H200-SXM)" in md and "| decode step" in md
    assert main(["audit", str(f), "--format", "csv", "--workload", "my-decoder"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    header = next(r for r in rows if r and r[0] == "what")
    spec_col = header.index("spec_time_s")
    first = rows[rows.index(header) + 1]
    assert float(first[spec_col]) == pytest.approx(GiB / H200_BW)  # full precision in CSV


def test_two_files_each_figure_traced_to_its_own(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", ceilings() + [memory_case(share=0.8)])
    b_records = h100(ceilings(hbm=0.85 * H100_BW) + [memory_case(share=0.8)])
    b_records[-1].time_s["p50"] = GiB / (0.8 * 0.85 * H100_BW)
    b = write(tmp_path / "b.jsonl", b_records)
    assert main(["audit", str(a), "--vs", str(b), "--predict", "H100-SXM", "--workload", "step", "--format",
                 "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    header = next(r for r in rows if r and r[0] == "ref")
    files = {(r[1], r[2]) for r in rows[rows.index(header) + 1:] if r and r[0].startswith("R")}
    assert {(str(a), "3"), (str(b), "3"), (str(a), "1"), (str(b), "1")} <= files  # each side's case and HBM ceiling


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = capsys.readouterr().out
    for needed in ("compute-bound", "fast path", "data keeps pace", "sustained", "holds / breaks / not measured",
                   "--vs-spec", "--predict", "examples:"):
        assert needed in text


@pytest.fixture
def good(tmp_path):
    return write(tmp_path / "good.jsonl", ceilings() + [memory_case()])


@pytest.mark.parametrize("extra, needle", [
    (["--claim", "1.43"], "--claim is a speed-up over another GPU"),
    (["--claim", "-1", "--vs-spec", "H100-SXM"], "must be a positive speed-up"),
    (["--vs", "x.jsonl", "--vs-spec", "H100-SXM"], "not allowed with argument"),
    (["--predict", "H900"], "unknown spec 'H900'"),
    (["--workload", "nope"], "--workload 'nope' has no meaningful measurement"),
    (["--case", "nope"], "--case 'nope' matches no case"),
])
def test_bad_arguments_are_one_line_and_exit_2(good, capsys, extra, needle):
    assert main(["audit", str(good), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_bad_files_are_one_line_and_exit_2(tmp_path, good, capsys):
    cut = tmp_path / "cut.jsonl"
    cut.write_text(good.read_text()[:-40])  # the last record cut off mid-write
    assert main(["audit", str(cut)]) == 2
    err = capsys.readouterr().err
    assert f"{cut}:3: malformed record" in err and err.count("\n") == 1
    two_gpus = write(tmp_path / "two.jsonl", ceilings() + ceilings(env("NVIDIA H200", uuid="GPU-2", index=1)))
    assert main(["audit", str(two_gpus)]) == 2
    assert "hold 2 GPUs; audit one, chosen with --gpu GPU" in capsys.readouterr().err
    assert main(["audit", str(two_gpus), "--gpu", "1", "--workload", "gemm-square"]) == 0
    capsys.readouterr()
    interpreted = write(tmp_path / "cpu.jsonl", [memory_case(meaningful=False)])
    assert main(["audit", str(interpreted)]) == 2
    assert "no meaningful, verified measurement" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["audit", str(empty)]) == 2
    assert "no records to audit" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_spec_sheet_prediction_needs_the_dtype_on_the_sheet():
    fig, t = audit.spec_prediction(audit.specdb.get("L4"), memory_case(dtype="fp64", flops=GiB))
    assert t is None and "gives no fp64 figure" in fig
    fig, t = audit.spec_prediction(None, memory_case())
    assert t is None and fig == "no spec entry for this GPU"
    assert math.isclose(audit.spec_prediction(audit.specdb.get("H100-SXM"), memory_case())[1], GiB / H100_BW)


def test_a_prediction_never_takes_speed_from_a_steady_state_faster_than_its_burst_or_unsettled():
    assert audit.kept_under_load({"steady_vs_burst": {"throughput": 1.26}, "problem": None}) == 1.0
    assert audit.kept_under_load({"steady_vs_burst": {"throughput": 0.8}, "problem": None}) == 0.8
    assert audit.kept_under_load({"steady_vs_burst": {"throughput": 1.26}, "problem": "did not settle"}) is None
    assert audit.kept_under_load({"steady_vs_burst": None, "problem": "overlap"}) is None
    faster = sustain_run(1.0, 1.3)
    rs = ceilings() + launch_floor_records() + [memory_case(share=0.8), faster]
    mine = one(rs, labels=[memory_case().label])
    audit.predict(mine, audit.specdb.get("H100-SXM"))
    p = mine.assessed[0].prediction
    assert p.sustained == pytest.approx(p.time)  # kept at most what was measured
