"""`compare A B`: two GPUs as advertised against as measured.

For every ceiling and every workload case present on both sides: the ratio
B/A the two spec sheets predict beside the ratio B/A measured, and the
difference, sorted so the largest surprises come first. Ratios above 1 mean
B is faster (a higher ceiling, a shorter time per call).

The spec ratio of a ceiling is the ratio of the two spec figures (memory
bandwidth, peak FLOP/s of the dtype, interconnect bandwidth per direction).
The spec ratio of a case is the ratio of the times the two sheets predict for
it, max(FLOPs / peak FLOP/s, bytes / peak bandwidth): the roofline the buyer
draws from the sheets.

Side B may be a spec sheet alone (records_b None, spec_b given): then only
spec ratios exist, and the tables say so, with what B would measure if it
kept A's measured share of its spec sheet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from analysis import collectives
from analysis import roofline as rl
from analysis import specs as specdb
from analysis import versus as vs
from analysis.errors import AnalysisError
from analysis.tables import Col, Quantity, Section, Table, check_format, format_sections, fmt_bytes


@dataclass
class Side:
    name: str  # "A" or "B"
    analysis: rl.GpuAnalysis | None  # None when the side holds collectives only
    collective: list
    spec: specdb.Spec | None
    spec_how: str

    @property
    def label(self) -> str:
        if self.analysis:
            return self.analysis.label
        return f"collectives on {self.collective[0].env.get('host') or '?'}"

    def ceilings(self) -> dict:
        """name -> (measured value, kind, the spec figure, what set it, the record that set it or None)."""
        out = {}
        if self.analysis:
            for c in self.analysis.ceilings():
                out[c.name] = (c.value, c.kind, _spec_of(self.spec, c.name), c.set_by, c.record)
        for (op, n, nodes), (bus, size) in collectives.collective_rows(self.collective)[1].items():
            within_node = nodes in (1, None)
            out[f"busbw {op}, {n} ranks" + ("" if within_node else f", {nodes} nodes")] = (
                bus, "bytes_per_s", _spec_of(self.spec, "busbw") if within_node else None, f"at {fmt_bytes(size)}",
                None)
        return out

    def cases(self) -> dict:
        """(workload, case, dtype, impl) -> fastest meaningful record of that case."""
        out = {}
        excluded = self.analysis.excluded if self.analysis else set()
        for r in self.analysis.records if self.analysis else []:
            if r.meaningful and id(r) not in excluded:
                key = (r.workload, r.case, r.dtype, r.impl)
                if key not in out or r.seconds < out[key].seconds:
                    out[key] = r
        return out

    def predicted(self, r) -> float | None:
        """The time this side's spec sheet predicts for a case."""
        s = self.spec
        return rl.predicted_time(r.flops, rl.counted_bytes(r), s.flops(r.dtype) if s else None,
                                 s.mem_bw if s else None)


def _spec_of(s: specdb.Spec | None, ceiling: str) -> float | None:
    if s is None:
        return None
    if ceiling == "HBM bandwidth":
        return s.mem_bw
    if ceiling.startswith("compute "):
        return s.flops(ceiling.split()[-1])
    if ceiling == "busbw":
        return s.link_per_direction
    return None  # the spec sheet has no L2 bandwidth


def _side(records, spec_name: str | None, name: str) -> Side:
    rl.check_records(records, name)
    if not records:
        raise AnalysisError(f"compare: side {name} holds no records")
    coll = [r for r in records if r.view == "collective"]
    groups = rl.by_gpu([r for r in records if r.view != "collective"])
    if len(groups) > 1:
        labels = "; ".join(rl.gpu_label(rs[0]) for rs in groups.values())
        raise AnalysisError(f"compare: side {name} holds {len(groups)} GPUs ({labels}); compare one GPU per side "
                            f"(select its records by GPU first)")
    analysis = rl.analyze(next(iter(groups.values())), spec_name) if groups else None
    spec, how = (analysis.spec, analysis.spec_how) if analysis else rl.resolve_spec(rl.gpu_of(coll[0]), spec_name)
    return Side(name, analysis, coll, spec, how)


def _ratio(b, a):
    return b / a if a and b else None


def _surprise(measured, spec) -> tuple:
    """Sort key: rows with both ratios first, the largest |ln(measured/spec)| first; then by |ln(measured)|."""
    if measured and spec:
        return (0, -abs(math.log(measured / spec)))
    return (1, -abs(math.log(measured)) if measured else 0)


def render(records_a, records_b, *, spec_a: str | None = None, spec_b: str | None = None,
           fmt: str = "github") -> str:
    """Side A against side B (see the module docstring); B may be `spec_b` alone."""
    check_format(fmt)
    for name in (spec_a, spec_b):
        if name is not None:
            specdb.get(name)
    if records_a is None:
        raise AnalysisError("compare: side A needs measured records")
    a = _side(records_a, spec_a, "A")
    if records_b is None:
        if spec_b is None:
            raise AnalysisError("compare: side B needs a results file or a spec name")
        return format_sections(_spec_only(a, specdb.get(spec_b)), fmt)
    b = _side(records_b, spec_b, "B")
    return format_sections(_measured(a, b), fmt)


def _assumptions(side: Side) -> Section:
    lines = rl.assumptions(side.analysis) if side.analysis else [f"Spec sheet: {side.spec_how}."]
    return Section(f"Assumptions of {side.name}: {side.label}", notes=lines)


def _measured(a: Side, b: Side) -> list[Section]:
    ca, cb = a.ceilings(), b.ceilings()
    cols = [Col("item", "Ceiling"), Col("a", "A"), Col("b", "B"), Col("spec_ratio", "Spec B/A", "ratio"),
            Col("measured_ratio", "Measured B/A [95%]", "speedup"), Col("difference", "Measured - spec", "delta"),
            Col("a_set_by", "A set by"), Col("b_set_by", "B set by"),
            Col("unit", "Unit", csv_only=True)]
    rows = []
    for name in (n for n in ca if n in cb):
        (va, kind, sa, by_a, ra), (vb, _, sb, by_b, rb) = ca[name], cb[name]
        spec = _ratio(sb, sa)
        measured = _ceiling_ratio(ra, rb) or vs.Ratio(vb / va)
        rows.append([name, Quantity(va, kind), Quantity(vb, kind), spec, measured,
                     measured.value - spec if spec else None, by_a, by_b, kind.replace("_per_", "/")])
    rows.sort(key=lambda row: _surprise(row[4].value, row[3]))

    case_cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
                 Col("a_time", "A time", "seconds"), Col("b_time", "B time", "seconds"),
                 Col("spec_ratio", "Spec B/A", "ratio"), Col("measured_ratio", "Measured B/A [95%]", "speedup"),
                 Col("difference", "Measured - spec", "delta"), Col("spec_bound", "Spec-bound on A")]
    ka, kb = a.cases(), b.cases()
    case_rows = []
    for key in (k for k in ka if k in kb):
        ra, rb = ka[key], kb[key]
        pa, pb = a.predicted(ra), b.predicted(rb)
        spec = _ratio(pa, pb)
        measured = vs.independent_ratio(rb, ra)  # B/A: A's time over B's
        if measured is None:  # timed by different methods: no ratio
            continue
        case_rows.append([ra.workload, ra.label, ra.dtype, ra.impl, ra.seconds, rb.seconds, spec, measured,
                          measured.value - spec if spec else None, _bound(a, ra)])
    case_rows.sort(key=lambda row: _surprise(row[7].value, row[6]))

    same = a.spec is not None and b.spec is not None and a.spec.key == b.spec.key
    notes = [f"A: {a.label} ({a.spec_how}). B: {b.label} ({b.spec_how}).",
             "Ratios are B/A: above 1, B is faster (a higher ceiling; a shorter time per call). Spec B/A: the ratio "
             "of the spec figures for a ceiling, of the spec-predicted times max(FLOPs / peak, bytes / bandwidth) "
             "for a case. Measured - spec: how far execution departs from the sheets' promise.",
             "Sorted by |ln(measured / spec)|, the largest surprise first; rows without a spec ratio (L2, or a GPU "
             "with no spec entry) follow, by |ln(measured)|. Only meaningful, verified measurements timed by one "
             "method on both sides are compared; [95%]: each side's round-to-round spread combined, 'tie' where "
             "the interval holds 1. A ceiling set by different measurements on the two sides (another case or "
             "implementation) is a ratio of two bests, without an interval."]
    if same:
        notes.append(f"Both sides are {a.spec.key}: every spec ratio is 1, so the measured ratio is the difference "
                     f"between two cards (or two runs) of one SKU.")
    sections = [Section("Compare: ceilings", [Table(None, cols, rows)] if rows else [],
                        notes if rows else ["No ceiling is measured on both sides."] + notes)]
    sections.append(Section("Compare: workload cases present on both sides",
                            [Table(None, case_cols, case_rows)] if case_rows else [],
                            [] if case_rows else ["No workload case is measured on both sides."]))
    return sections + [_assumptions(a), _assumptions(b)]


def _ceiling_ratio(ra, rb):
    """B/A of two ceilings with its interval, where both were set by the same measurement (the same
    workload, case, dtype and implementation, timed by one method); else None (a ratio of two bests)."""
    if ra is None or rb is None:
        return None
    if (ra.workload, ra.case, ra.dtype, ra.impl) != (rb.workload, rb.case, rb.dtype, rb.impl):
        return None
    return vs.independent_ratio(rb, ra)


def _bound(side: Side, r) -> str | None:
    s = side.spec
    if not s:
        return None
    peak, bw = s.flops(r.dtype), s.mem_bw
    if not r.flops:
        return "memory" if bw else None
    if not peak or not bw:
        return None
    return "compute" if r.flops / peak >= rl.counted_bytes(r) / bw else "memory"


def _spec_only(a: Side, spec_b: specdb.Spec) -> list[Section]:
    if a.spec is None:
        raise AnalysisError(f"compare: A ({a.label}) matches no spec entry, so no spec ratio can be formed; "
                            f"name A's spec too ({', '.join(specdb.names())})")
    b = Side("B", None, [], spec_b, f"{spec_b.key}, a spec sheet only: no measurements")
    cols = [Col("item", "Ceiling"), Col("a", "A measured"), Col("a_spec", "A spec"), Col("b_spec", "B spec"),
            Col("spec_ratio", "Spec B/A", "ratio"), Col("b_at_a", "B at A's share of spec"),
            Col("unit", "Unit", csv_only=True)]
    rows = []
    for name, (va, kind, sa, _, _) in a.ceilings().items():
        sb = _spec_of(spec_b, "busbw" if name.startswith("busbw") and "nodes" not in name else name)
        ratio = _ratio(sb, sa)
        rows.append([name, Quantity(va, kind), Quantity(sa, kind), Quantity(sb, kind), ratio, Quantity(va * ratio if ratio else None, kind),
                     kind.replace("_per_", "/")])
    rows.sort(key=lambda row: -abs(math.log(row[4])) if row[4] else 0)
    case_cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
                 Col("a_time", "A measured", "seconds"), Col("a_spec", "A spec-predicted", "seconds"),
                 Col("b_spec", "B spec-predicted", "seconds"), Col("spec_ratio", "Spec B/A", "ratio"),
                 Col("b_at_a", "B at A's share of spec", "seconds"), Col("spec_bound", "Spec-bound on A")]
    case_rows = []
    for r in a.cases().values():
        pa, pb = a.predicted(r), b.predicted(r)
        ratio = _ratio(pa, pb)
        case_rows.append([r.workload, r.label, r.dtype, r.impl, r.seconds, pa, pb, ratio,
                          r.seconds / ratio if ratio else None, _bound(a, r)])
    case_rows.sort(key=lambda row: -abs(math.log(row[7])) if row[7] else 0)
    notes = [f"B is the spec sheet {spec_b.key} ({spec_b.name}) alone: no measurements of B, so every ratio here is a "
             f"SPEC ratio (B/A, above 1 = B faster on paper), none is measured.",
             f"A: {a.label} ({a.spec_how}). 'B at A's share of spec' is what B would measure if it reached the same "
             f"fraction of its spec sheet as A does of its own: an estimate, not a measurement.",
             "Sorted by |ln(spec ratio)|, the largest predicted difference first."]
    return [Section(f"Compare (spec ratios only): ceilings of A against the {spec_b.key} spec sheet",
                    [Table(None, cols, rows)] if rows else [], notes),
            Section(f"Compare (spec ratios only): workload cases of A against the {spec_b.key} spec sheet",
                    [Table(None, case_cols, case_rows)] if case_rows else [],
                    [] if case_rows else ["No meaningful workload case on A."]),
            _assumptions(a)]
