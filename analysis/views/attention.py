"""The "attention" view: the fused kernel against the naive composition (scores through
memory) and against the vendor's fused backends."""
from __future__ import annotations

from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, group


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    p = lambda r, k: r.params.get(k)  # noqa: E731
    groups = group(recs, lambda r: (r.dtype, bool(p(r, "causal")), p(r, "B"), p(r, "H"), p(r, "D"), p(r, "S")))
    cols = [Col("dtype", "Dtype"), Col("causal", "Causal"), Col("bhd", "B x H x D"), Col("S", "S", "int"),
            Col("naive_time", "Naive time", "seconds"), Col("naive_moved_bw", "Naive moved", "bytes_per_s"),
            Col("fused_time", "Fused time", "seconds"), Col("fused", "Fused", "flop_per_s"),
            Col("speedup", "Fused/naive [95%]", "speedup"), Col("vendor_impl", "Best vendor"),
            Col("vendor", "Vendor", "flop_per_s"), Col("fused_vs_vendor", "Fused/vendor [95%]", "speedup"),
            Col("remark", "Remark")]
    rows = []
    for key in sorted(groups, key=lambda k: (rl.dtype_rank(k[0]), k[1], str(k[2:5]), k[5] or 0)):
        rs = groups[key]
        naive = vs.best([r for r in rs if r.role == "naive" and not r.vendor], "flop_per_s")
        fused_rs = [r for r in rs if r.role != "naive" or r.vendor]
        t_val, fused, vendor_name, v_val, vendor, ratio, remark = vs.triton_vs_vendor(
            [r for r in fused_rs if not r.vendor or r.role != "naive"], "flop_per_s")
        fused = fused if fused is not None and fused.meaningful else None
        speedup = vs.speed_ratio(fused, naive)
        rows.append([key[0], "yes" if key[1] else "no", f"{key[2]} x {key[3]} x {key[4]}", key[5],
                     naive.seconds if naive else None, naive.moved_bytes_per_s if naive else None,
                     fused.seconds if fused else None, fused.flop_per_s if fused else None, speedup,
                     vendor_name if vendor is not None else None, v_val if vendor is not None else None,
                     ratio, remark])
    return [Section(f"{a.label}: attention, fused against naive", [Table(None, cols, rows)], [
        "Fused/naive = naive time / fused time (both Triton). Naive moved: bytes it really moves per second, the S "
        "and P round trips included (record.moved_bytes); that is where it sits under the memory roof.",
        "Fused/vendor: the fused kernel against the fastest fused vendor backend of the same run. [95%]: the "
        "interval from the alternating rounds, 'tie' where it holds 1.",
        "FLOPs = 4 B H S^2 D, halved for causal. The roofline placement of every attention case is in 'workloads "
        "on the roofline'."])]
