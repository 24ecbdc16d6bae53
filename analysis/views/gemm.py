"""GEMM views: "gemm" (one row per case), "gemm-search" (the best shape per side) and
"gemm-skinny" (few rows of x against a large weight, with where it stops being memory-bound)."""
from __future__ import annotations

from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, group, natural, show


def cases(a: rl.GpuAnalysis, recs) -> list[Section]:
    groups = group(recs, lambda r: (r.workload, r.dtype, r.case))
    cols = [Col("workload", "Workload"), Col("dtype", "Dtype"), Col("shape", "Shape"),
            Col("triton", "Triton", "flop_per_s"), Col("vendor_impl", "Vendor"), Col("vendor", "Vendor", "flop_per_s"),
            Col("triton_vs_vendor", "Triton/vendor [95%]", "speedup"),
            Col("of_ceiling", "Triton/compute ceiling", "pct"), Col("remark", "Remark")]
    rows = []
    for key, rs in groups.items():
        t_val, t_rec, vendor_name, v_val, v_rec, ratio, remark = vs.triton_vs_vendor(rs, "flop_per_s")
        ceiling = a.compute.get(key[1])
        of_ceiling = (vs.ratio(t_val, ceiling.value) if ceiling and t_rec is not None and t_rec.meaningful
                      else None)
        rows.append([key[0], key[1], rl.shape_text(t_rec or v_rec or rs[0]), t_val, vendor_name, v_val, ratio,
                     of_ceiling, remark])
    rows.sort(key=lambda row: (row[0], rl.dtype_rank(row[1]), natural(row[2])))
    return [Section(f"{a.label}: GEMM cases", [Table(None, cols, rows)],
                    ["FLOPs = 2MNK per call. Triton/vendor > 1: Triton faster; [95%]: the interval from the "
                     "alternating rounds, 'tie' where it holds 1. Vendor: the fastest vendor implementation of the "
                     "case (cuBLAS through torch, torch._scaled_mm for fp8)."])]


def search(a: rl.GpuAnalysis, recs) -> list[Section]:
    cols = [Col("dtype", "Dtype"), Col("shapes", "Shapes measured", "int"),
            Col("triton", "Triton best", "flop_per_s"), Col("triton_shape", "Triton shape"),
            Col("vendor", "Vendor best", "flop_per_s"), Col("vendor_shape", "Vendor shape"),
            Col("triton_vs_vendor", "Triton best/vendor best", "ratio")]
    rows = []
    for dtype, rs in sorted(group(recs, lambda r: r.dtype).items(), key=lambda kv: rl.dtype_rank(kv[0])):
        t = vs.best([r for r in rs if not r.vendor], "flop_per_s")
        v = vs.best([r for r in rs if r.vendor], "flop_per_s")
        rows.append([dtype, len({r.case for r in rs if r.meaningful}), t.flop_per_s if t else None,
                     rl.shape_text(t) if t else None, v.flop_per_s if v else None, rl.shape_text(v) if v else None,
                     vs.ratio(t.flop_per_s if t else None, v.flop_per_s if v else None)])
    return [Section(f"{a.label}: GEMM shape search", [Table(None, cols, rows)],
                    ["Best meaningful FLOP/s over every shape of the search, per side; the two sides' best shapes "
                     "may differ, so their ratio compares two searches, not two measurements of one case (it has "
                     "no interval; each shape's own ratio is in the GEMM cases). Shapes measured: those with a "
                     "meaningful, verified measurement."])]


def skinny(a: rl.GpuAnalysis, recs) -> list[Section]:
    groups = group(recs, lambda r: (r.dtype, r.params.get("N"), r.params.get("K")))
    tables, notes = [], []
    cols = [Col("M", "M", "int"), Col("intensity", "Intensity", "flop_per_byte"),
            Col("triton_bw", "Triton", "bytes_per_s"), Col("triton_flops", "Triton", "flop_per_s"),
            Col("vendor_impl", "Vendor"), Col("vendor_bw", "Vendor", "bytes_per_s"),
            Col("triton_vs_vendor", "Triton/vendor [95%]", "speedup"),
            Col("bound", "Bound (measured ridge)"), Col("of_roof", "Triton/attainable", "pct"),
            Col("remark", "Remark")]
    for (dtype, n, k), rs in sorted(groups.items(), key=lambda kv: (rl.dtype_rank(kv[0][0]), str(kv[0][1:]))):
        measured_ridge, spec_ridge = a.ridge(dtype)
        rows = []
        turn = spec_turn = None
        for case, crs in sorted(group(rs, lambda r: r.case).items(), key=lambda kv: kv[1][0].params.get("M", 0)):
            tb, t_rec, vendor_name, vb, v_rec, ratio, remark = vs.triton_vs_vendor(crs, "bytes_per_s")
            tf = t_rec.flop_per_s if t_rec is not None and t_rec.meaningful else None
            ref = t_rec or v_rec or crs[0]
            m, intensity = ref.params.get("M"), ref.intensity
            bound = None
            if measured_ridge and intensity:
                bound = "memory" if intensity < measured_ridge else "compute"
                if bound == "compute" and turn is None:
                    turn = m
            if spec_ridge and intensity and intensity >= spec_ridge and spec_turn is None:
                spec_turn = m
            attainable = None
            if a.hbm and intensity and a.compute.get(dtype):
                attainable = min(a.compute[dtype].value, intensity * a.hbm.value)
            rows.append([m, intensity, tb, tf, vendor_name, vb, ratio, bound, vs.ratio(tf, attainable), remark])
        tables.append(Table(f"{dtype}, weight N={n} x K={k}", cols, rows))
        notes.append(f"{dtype} N={n} K={k}: memory-bound until M = {turn if turn is not None else 'beyond the sweep'} "
                     f"by the measured ridge ({show(measured_ridge, 'flop_per_byte')} FLOP/B); the spec ridge "
                     f"({show(spec_ridge, 'flop_per_byte')} FLOP/B) says M = "
                     f"{spec_turn if spec_turn is not None else 'beyond the sweep' if spec_ridge else '—'}."
                     if measured_ridge else
                     f"{dtype} N={n} K={k}: no measured ridge point (needs an HBM ceiling and a {dtype} GEMM ceiling).")
    notes.append("A skinny GEMM stops being memory-bound at the first M whose intensity (2MNK FLOPs / minimum bytes "
                 "of A, B and C) reaches the ridge point, where HBM bandwidth x intensity meets the compute ceiling. "
                 "Triton/attainable: achieved FLOP/s over min(compute ceiling, intensity x HBM ceiling).")
    return [Section(f"{a.label}: skinny GEMM (decode-shaped)", tables, notes)]
