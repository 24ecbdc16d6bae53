"""The "decode" view: a decode step's throughput in tokens/s beside the time the spec sheet
and the measured roofs predict for it."""
from __future__ import annotations

from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, natural


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    recs = [r for r in recs if r.meaningful]
    s = a.spec
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("tokens", "Throughput", "tokens_per_s"), Col("measured", "Measured", "seconds"),
            Col("spec_predicted", "Spec-predicted", "seconds"), Col("roof_predicted", "Roof-predicted", "seconds"),
            Col("vs_spec", "Measured/spec-predicted", "ratio"), Col("vs_roof", "Measured/roof-predicted", "ratio"),
            Col("achieved_bw", "Achieved (min bytes)", "bytes_per_s"),
            Col("moved_bw", "Moved", "bytes_per_s")]
    rows = []
    key = lambda r: (r.workload, rl.dtype_rank(r.dtype), str(r.params.get("preset", "")),  # noqa: E731
                     natural(r.params.get("batch", "")), natural(r.params.get("context", "")), natural(r.case),
                     r.impl)
    for r in sorted(recs, key=key):
        # One prediction per case: the minimum bytes of the case, whatever an implementation moves.
        batch = r.params.get("batch")
        spec_t = rl.predicted_time(r.flops, r.bytes, s.flops(r.dtype) if s else None, s.mem_bw if s else None)
        ceiling = a.compute.get(r.dtype)
        roof_t = rl.predicted_time(r.flops, r.bytes, ceiling.value if ceiling else None,
                                   a.hbm.value if a.hbm else None)
        moved = r.moved_bytes_per_s if r.moved_bytes is not None and r.moved_bytes != r.bytes else None
        rows.append([r.workload, r.label, r.dtype, r.impl,
                     batch / r.seconds if isinstance(batch, (int, float)) else None, r.seconds, spec_t, roof_t,
                     vs.ratio(r.seconds, spec_t), vs.ratio(r.seconds, roof_t), r.bytes_per_s, moved])
    notes = ["Tokens/s = batch / time of one decode step. Spec-predicted time = max(FLOPs / spec FLOP/s, minimum "
             "bytes / spec bandwidth); roof-predicted time is the same with the measured compute ceiling and HBM "
             "ceiling. Both use the case's minimum bytes, so every implementation of a case has one prediction.",
             "Measured/spec-predicted is the gap between the spec sheet's promise and execution (1.00 = the spec "
             "sheet's time; 1.5 = 50% slower); measured/roof-predicted is the gap to what this GPU measurably "
             "sustains. Achieved: minimum bytes per second; Moved: the bytes this implementation really moves "
             "(split partials, masked padding) per second, where they differ."]
    if not recs:
        notes.insert(0, "No meaningful decode measurement.")
    return [Section(f"{a.label}: decode step", [Table(None, cols, rows)] if rows else [], notes)]
