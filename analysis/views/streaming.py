"""The "streaming" view: bandwidth by working set, Triton against the vendor path, under the
measured memory ceilings (which these records set)."""
from __future__ import annotations

from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, fmt_bytes, group, show


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    groups = group(recs, lambda r: (r.workload, r.dtype, r.bytes))
    cols = [Col("workload", "Workload"), Col("dtype", "Dtype"), Col("array", "Array"),
            Col("working_set", "Working set", "bytes"), Col("regime", "Regime"),
            Col("triton", "Triton", "bytes_per_s"), Col("vendor_impl", "Vendor"),
            Col("vendor", "Vendor", "bytes_per_s"), Col("triton_vs_vendor", "Triton/vendor [95%]", "speedup"),
            Col("of_ceiling", "Triton/regime ceiling", "pct"), Col("remark", "Remark")]
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], rl.dtype_rank(k[1]), k[2])):
        rs = groups[key]
        t_val, t_rec, vendor_name, v_val, v_rec, ratio, remark = vs.triton_vs_vendor(rs, "bytes_per_s")
        ref = t_rec or v_rec or rs[0]
        where = rl.regime(ref.bytes, a.l2_bytes)
        ceiling = {"HBM": a.hbm, "L2": a.l2}.get(where)
        of_ceiling = vs.ratio(t_val, ceiling.value) if ceiling and t_rec is not None and t_rec.meaningful else None
        rows.append([key[0], key[1], ref.label, ref.bytes, where or "?", t_val, vendor_name, v_val, ratio,
                     of_ceiling, remark])
    notes = []
    if a.hbm:
        notes.append(f"Measured HBM ceiling: {show(a.hbm.value, 'bytes_per_s')} GB/s, set by {a.hbm.set_by} on "
                     f"{a.hbm.record.workload} {a.hbm.record.label} {a.hbm.record.dtype}"
                     + (f" ({a.hbm.of_spec:.1%} of the spec sheet's {show(a.hbm.spec, 'bytes_per_s')} GB/s)"
                        if a.hbm.spec else "") + f"; {rl.telemetry_text(a.hbm.record)}.")
    else:
        notes.append(f"No HBM ceiling: no meaningful streaming case has a working set >= {rl.HBM_FACTOR:g} x L2.")
    notes += [f"Regime: L2 for working sets <= {rl.L2_FRACTION:g} x L2, HBM for >= {rl.HBM_FACTOR:g} x L2 "
              f"(L2 = {fmt_bytes(a.l2_bytes)}), transition between; only HBM rows set the HBM ceiling.",
              "GB/s: minimum bytes of one call (each array read once, written once; working set) over the median "
              "time per call. Vendor: the fastest vendor implementation of the case. Triton/vendor > 1: Triton "
              "faster; [95%]: the interval from the alternating rounds, 'tie' where it holds 1.",
              "Triton/regime ceiling: against the HBM ceiling in HBM rows, the L2 plateau in L2 rows."]
    notes += _above_the_plateau(a, recs)
    return [Section(f"{a.label}: streaming bandwidth by working set", [Table(None, cols, rows)], notes)]


def _above_the_plateau(a: rl.GpuAnalysis, recs) -> list[str]:
    """A note where a transition row outruns the L2 plateau: the plateau's rule (the working set
    within half of L2) keeps clear of evictions, so it is the L2's rate with margin, not its peak."""
    if not (a.l2 and a.hbm):
        return []
    fast = [r for r in recs if r.meaningful and id(r) not in a.excluded
            and rl.regime(r.bytes, a.l2_bytes) == "transition" and r.bytes_per_s > a.l2.value]
    if not fast:
        return []
    top = max(fast, key=lambda r: r.bytes_per_s)
    return [f"{len(fast)} transition row(s) run faster than the L2 plateau, the fastest {top.workload} {top.label} "
            f"{top.dtype} ({top.impl}, working set {fmt_bytes(top.bytes)}) at {show(top.bytes_per_s, 'bytes_per_s')} "
            f"GB/s, {top.bytes_per_s / a.hbm.value:.2f}x the HBM ceiling, so L2 served most of its traffic. The "
            f"plateau comes only from working sets within {rl.L2_FRACTION:g} x L2 (the rule that keeps HBM out of "
            f"it): it is the rate L2 keeps with margin, and between half and all of L2 a case can run faster."]
