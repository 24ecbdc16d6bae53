"""The "counters" view: each profiled call's DRAM bytes and executed FLOPs, as Nsight Compute's
counters saw them, beside the bytes and FLOPs its declaration counts, their ratio and the verdict;
and beside them the figure the sweep put on the roofline for the same case, which is only as true
as those ratios."""
from __future__ import annotations

from analysis import counters as hw
from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Quantity, Section, Table, natural


# What the profiler's options recorded with the counters mean for the figures.
_MEANS = {("clock-control", "none"): "clocks as they run", ("clock-control", "base"): "clocks locked to base",
          ("cache-control", "none"): "the L2 as the previous call left it",
          ("cache-control", "all"): "caches flushed before each kernel"}


def _sweep_figure(a: rl.GpuAnalysis, r) -> Quantity | None:
    """The best meaningful figure of the same case and implementation among this GPU's sweep records:
    FLOP/s for workloads that set the compute roof, bytes/s of the counted bytes otherwise."""
    same = [s for s in a.records if s.view != "counters" and s.meaningful and id(s) not in a.excluded
            and (s.workload, s.case, s.dtype, s.impl) == (r.workload, r.case, r.dtype, r.impl)]
    if not same:
        return None
    if r.roof == "compute":
        return Quantity(max(s.flop_per_s or 0 for s in same) or None, "flop_per_s")
    return Quantity(max(s.moved_bytes_per_s or 0 for s in same) or None, "bytes_per_s")


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("kernels", "Kernels"), Col("model_bytes", "Counted bytes", "bytes"),
            Col("dram_read", "DRAM read", "bytes"), Col("dram_write", "DRAM write", "bytes"),
            Col("read_ratio", "Reads/model", "ratio"), Col("write_ratio", "Writes/model", "ratio"),
            Col("bytes_ratio", "DRAM/model", "ratio"), Col("model_flops", "Counted FLOPs", "int"),
            Col("flops", "Executed FLOPs", "int"), Col("flops_ratio", "Executed/model", "ratio"),
            Col("verdict", "Verdict"), Col("sweep", "Sweep figure"), Col("cause", "Why", csv_only=True),
            Col("time", "GPU time", "seconds", csv_only=True)]
    rows, causes = [], []
    key = lambda r: (r.workload, rl.dtype_rank(r.dtype), natural(r.case), r.impl)  # noqa: E731
    for r in sorted(recs, key=key):
        c = r.counters if isinstance(r.counters, dict) else {}
        j = hw.judge_record(r)
        model_bytes = c.get("model_bytes", rl.counted_bytes(r))
        if j is None:
            status = r.status if r.status != "ok" else "no counters"
            rows.append([r.workload, r.label, r.dtype, r.impl, None, model_bytes, None, None, None, None, None,
                         r.flops, None, None, f"{status}: {vs.short_reason(r.reason)}" if r.reason else status,
                         _sweep_figure(a, r), r.reason, None])
            continue
        kernels = len(c["kernels"])
        shown_kernels = f"{kernels}" + (f" of {r.launches}" if r.launches is not None and r.launches != kernels
                                        else "")
        rows.append([r.workload, r.label, r.dtype, r.impl, shown_kernels, model_bytes, c.get("dram_read_bytes"),
                     c.get("dram_write_bytes"), j.read_ratio, j.write_ratio, j.bytes_ratio,
                     c.get("model_flops", r.flops), c.get("flops_counted"), j.flops_ratio, j.verdict,
                     _sweep_figure(a, r), j.cause or None, c.get("time_s")])
        if j.causes:  # too long for a cell: under the table (and whole in the CSV's column)
            causes.append(f"{r.workload} {r.label} {r.dtype} {r.impl}: {j.cause}")
    infos = [r.counters for r in recs if isinstance(r.counters, dict)]
    versions = sorted({str(c["ncu"]) for c in infos if c.get("ncu")})
    options = sorted({f"--{k} {v}" + (f" ({_MEANS[k, v]})" if (k, v) in _MEANS else "")
                      for c in infos for k, v in (c.get("ncu_options") or {}).items()})
    notes = [
        f"One call of each implementation, warmed up first (tuning and compiles done), profiled under Nsight "
        f"Compute ({', '.join(versions) or 'version not recorded'}; {', '.join(options) or 'options not recorded'}); "
        f"every kernel the call launched is summed. Kernels: those profiled, 'of N' where the declaration states "
        f"another count.",
        "Counted bytes: the bytes the model says this implementation moves (the minimum, or what a naive path "
        "really moves); Counted FLOPs: the model's. Reads/model and Writes/model hold DRAM reads and writes "
        "against the model's inputs and outputs where the model moves only those; DRAM/model is reads plus "
        "writes over all the counted bytes.",
        f"Verdict: within {hw.TOLERANCE:.0%} when every checked ratio is. Reads are judged first; the L2 holds "
        "writes back (the last ones are not DRAM traffic yet when the kernels end, and lines an earlier call left "
        "dirty are written back during this one), so writes off the model by no more than the L2's size are a "
        "note, not a fault. Otherwise: cache-resident (below the model by no more than the L2 holds), wrong "
        "model (further below, or fewer FLOPs executed than counted), extra kernel or re-reads (above), extra "
        "FLOPs (masked or padded work executed).",
        "Executed FLOPs: tensor-core operations by data path, plus FFMA (2 FLOPs), FADD and FMUL thread "
        "instructions; judged where FLOPs enter a figure, given alone for workloads that set the memory roof. "
        "Sweep figure: the same case's figure in this file's sweep records (FLOP/s where the workload sets the "
        "compute roof, bytes/s of the counted bytes otherwise).",
    ]
    return [Section(f"{a.label}: hardware counters against the model", [Table(None, cols, rows)], notes + causes)]
