"""The "decode" view: a decode step's throughput in tokens/s beside the time the spec sheet
and the measured roofs predict for it."""
from __future__ import annotations

from analysis import bounds
from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, group, natural


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
    return [Section(f"{a.label}: decode step", [Table(None, cols, rows)] if rows else [], notes),
            *eager_and_graph(a, recs)]


# ---------------------------------------------------------------- eager and graph-replayed, per batch size

def eager_and_graph(a: rl.GpuAnalysis, recs) -> list[Section]:
    """Each decode case as a user's Python loop runs it (back-to-back launches) and replayed as a
    CUDA graph, Triton beside the fastest vendor path, by batch size: where the step stops being
    launch-bound (analysis.bounds)."""
    floors = bounds.launch_floors(a.records)
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("eager", "Eager", "seconds"), Col("graph", "Graph", "seconds"),
            Col("eager_over_graph", "Eager/graph", "ratio"), Col("overhead_share", "Overhead share", "pct"),
            Col("launch_bound", "Launch-bound (eager)"), Col("t_host", "Launch floor x launches", "seconds"),
            Col("eager_class", "Eager class"), Col("timed_by", "Timed by")]
    rows, runs = [], {}
    rest = lambda r: tuple((k, str(v)) for k, v in sorted(r.params.items()) if k != "batch")  # noqa: E731
    order = lambda k: (k[0], k[1], tuple((name, natural(v)) for name, v in k[2]), k[3])  # noqa: E731
    by_case = group([r for r in recs if isinstance(r.params.get("batch"), int)],
                    lambda r: (r.workload, rl.dtype_rank(r.dtype), rest(r), r.params["batch"], r.case, r.dtype))
    for key in sorted(by_case, key=order):
        triton, vendor, _ = vs.sides(by_case[key])
        # Every Triton implementation (a launcher and its prepared replay are two ways to run the
        # same kernels), and the fastest vendor path.
        picks = [(impl, rs) for impl, rs in sorted(group(triton, lambda r: r.impl).items())]
        for side, chosen in picks + [("vendor", vendor)]:
            if not chosen:
                continue
            r = min(chosen, key=lambda r: r.seconds)
            b = bounds.classify(a, r, floors)
            rows.append([r.workload, r.label, r.dtype, r.impl, b.eager_s, b.graph_s, vs.ratio(b.eager_s, b.graph_s),
                         b.overhead_share, None if b.launch_bound is None else ("yes" if b.launch_bound else "no"),
                         b.t_host_eager, bounds.class_text(b.eager_kind, b.eager_unknown), b.method])
            if b.launch_bound is not None:
                runs.setdefault((r.workload, r.dtype, key[2]), {}).setdefault(side, []).append(
                    (r.params["batch"], b.launch_bound))
    if not rows:
        return []
    tables = [Table(None, cols, rows)]
    sides_seen = sorted({s for sides in runs.values() for s in sides if s != "vendor"}) + ["vendor"]
    stops = [[workload, ", ".join(f"{k}={v}" for k, v in rest_key), dtype,
              *(_where_it_stops(sorted(sides[s])) if sides.get(s) else None for s in sides_seen)]
             for (workload, dtype, rest_key), sides in runs.items()
             if max(len(seen) for seen in sides.values()) >= 2]  # one batch size says nothing of where it stops
    if stops:
        tables.append(Table("Where the eager step stops being launch-bound", [
            Col("workload", "Workload"), Col("case", "Other parameters"), Col("dtype", "Dtype"),
            *(Col(s, "Vendor" if s == "vendor" else s) for s in sides_seen)], stops))
    notes = [
        "Eager: the step launched back to back, as a Python loop calls it; Graph: the same calls replayed as a "
        "CUDA graph (Timed by names the method of the record's median; the other figure is the sweep's "
        "estimate). Overhead share = 1 - graph / eager: the part of the eager step the device spends waiting "
        f"for the host. Launch-bound (eager): a share of {bounds.LAUNCH_BOUND_SHARE:.0%} or more.",
        "Launch floor x launches: the cheapest launch measured on this GPU (the overhead records) times the "
        "kernels the step launches; where the eager step takes far longer, the rest of the host's time is the "
        "launchers' own work, not the launches. Eager class: the largest of the three limits (analysis.bounds).",
        "Where it stops: over the batch sizes measured with the other parameters fixed, the largest batch at "
        "which the eager step is launch-bound and the next one measured, per Triton implementation; vendor: "
        "the fastest vendor path of each case.",
    ]
    return [Section(f"{a.label}: decode step, eager and graph-replayed", tables, notes)]


def _where_it_stops(seen: list[tuple[int, bool]]) -> str:
    """Where a run of batch sizes stops being launch-bound, from (batch, launch-bound) in batch order:
    'launch-bound up to B=16, not from B=32 on', 'at every batch (B=1-256)', 'at no batch (B=1-64)'."""
    span = f"B={seen[0][0]}-{seen[-1][0]}"
    bound = [b for b, lb in seen if lb]
    if not bound:
        return f"launch-bound at no batch ({span})"
    if len(bound) == len(seen):
        return f"launch-bound at every batch ({span})"
    if seen[-1][1]:
        return f"launch-bound at B={', '.join(map(str, bound))}, the largest included"
    last = max(bound)
    after = min(b for b, _ in seen if b > last)
    gaps = [b for b, lb in seen if b < last and not lb]
    return f"launch-bound up to B={last}, not from B={after} on" + \
        (f" (not at B={', '.join(map(str, gaps))})" if gaps else "")
