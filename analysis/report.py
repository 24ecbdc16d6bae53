"""`report`: a results file as per-GPU roofline tables, with the assumptions they rest on.

For each GPU: the measured ceilings and ridge points beside its spec sheet;
then one group of sections per view present in its records (each workload's
declaration names its view: streaming, GEMM cases, shape search, skinny GEMM,
attention, decode; see analysis.views); every case placed on the roofline;
what was flagged or failed its own re-check, apart. Several GPUs in one file
get their ceilings side by side with outliers flagged; collectives get the
interconnect's bus bandwidth.

Tables are built as raw numbers in base units (bytes/s, FLOP/s, seconds) and
formatted only when shown (analysis.tables); `--format csv` is one tidy table
of every record instead (analysis.tidy).
"""
from __future__ import annotations

from analysis import bounds
from analysis import energy as energy_table
from analysis import roofline as rl
from analysis import specs as specdb
from analysis import tidy
from analysis import versus as vs
from analysis.errors import AnalysisError
from analysis.records import recorded_at, run_started
from analysis.tables import Col, Quantity, Section, Table, check_format, fmt_bytes, format_sections, group, natural
from analysis.views import GLOBAL_VIEWS, VIEWS
from analysis.views import collective as collective_view


# ---------------------------------------------------------------- entry point

def render(records, *, fmt: str = "github", spec: str | None = None, plot: str | None = None) -> str:
    """The report of a results file's records (see the module docstring)."""
    check_format(fmt)
    rl.check_records(records)
    if not records:
        raise AnalysisError("no records to report: the results file is empty")
    if spec is not None:
        specdb.get(spec)
    if fmt == "csv":
        if plot is not None:
            from analysis import plot as plotting

            plotting.roofline_plot(records, plot, spec=spec)
        return tidy.records_csv(records)
    sections = build(records, spec)
    if plot is not None:
        from analysis import plot as plotting

        written = plotting.roofline_plot(records, plot, spec=spec)
        sections.append(Section("Roofline plot", notes=[
            f"Written to {written}: {plotting.ENCODING}"]))
    return format_sections(sections, fmt)


def build(records, spec: str | None = None) -> list[Section]:
    sections = [_summary(records)]
    spent = wall_section(records)
    if spent:
        sections.append(spent)
    per_gpu = [rl.analyze(rs, spec) for rs in rl.by_gpu([r for r in records if r.view not in GLOBAL_VIEWS]).values()]
    if len(per_gpu) > 1:
        sections.append(_side_by_side(per_gpu))
    for a in per_gpu:
        sections += gpu_sections(a)
    coll = [r for r in records if r.view == "collective"]
    if coll:
        sections += collective_view.sections(coll, spec)
    failures = _failures(records)
    if failures:
        sections.append(failures)
    return sections


def gpu_sections(a: rl.GpuAnalysis) -> list[Section]:
    by_view = group(a.records, lambda r: r.view)
    out = [ceilings_section(a)]
    if any(r.energy for r in a.records):  # pJ/byte, pJ/FLOP and tokens/J beside the ceilings
        out += energy_table.sections(a)
    for view, builder in VIEWS.items():
        # Flagged records and those failing their own re-check stay out of every table.
        shown = [r for r in by_view.get(view, []) if id(r) not in a.excluded]
        if shown:
            out += builder(a, shown)
    if a.placements:
        out.append(placement_section(a))
    if a.flagged or a.unverified:
        out.append(flagged_section(a))
    out.append(Section(f"{a.label}: assumptions", notes=rl.assumptions(a)))
    return out


# ---------------------------------------------------------------- helpers over records

def _summary(records) -> Section:
    count = lambda pred: sum(1 for r in records if pred(r))  # noqa: E731
    families = ", ".join(sorted({r.family for r in records}))
    gpus = len(rl.by_gpu(records))
    notes = [f"{len(records)} records ({count(lambda r: r.status == 'ok')} ok, "
             f"{count(lambda r: r.status == 'failed')} failed, {count(lambda r: r.status == 'skipped')} skipped) "
             f"from {gpus} GPU(s); families: {families}; runs: {rl.distinct(records, lambda r: r.run_id)}."]
    meaningful = count(lambda r: r.meaningful)
    if not meaningful:
        notes.append("No record holds a meaningful timing (interpreter runs prove correctness, never speed): "
                     "no ceiling can be measured from this file, and figures shown are labelled not meaningful.")
    elif meaningful < count(lambda r: r.status == "ok"):
        notes.append(f"{count(lambda r: r.status == 'ok') - meaningful} verified records have timings that are "
                     f"not meaningful (interpreter): labelled where shown, never in a ceiling.")
    return Section("Results file", notes=notes)


def _tuning_source(r) -> str | None:
    """'tuned' or 'cache': whether the configuration a record ran with was tuned in its run or
    taken from the tuning store (None where nothing was tuned)."""
    config = r.config if isinstance(r.config, dict) else {}
    nested = [v for v in config.values() if isinstance(v, dict)]
    for c in [config, *nested]:
        if c.get("tuning") in ("tuned", "cache"):
            return c["tuning"]
    return None


def wall_section(records) -> Section | None:
    """Where each sweep's wall time went, per family: each case's wall time (inputs, compiles,
    tuning, verification, timing) counted once, whatever the number of its records; how many
    configurations were tuned in the run or taken from the tuning store; and, where the records
    say, the parts of it: compiles and tuning (each implementation's first call), warm-ups and
    estimates (before the rounds), and the alternating rounds."""
    cases: dict = {}
    for r in records:
        case_s = (r.wall or {}).get("case_s")
        if rl._is_number(case_s) and r.sustain is None and r.counters is None:
            key = (r.run_id, r.gpu_key, r.workload, r.case, r.dtype)
            c = cases.setdefault(key, {"family": r.family, "wall": case_s, "sources": [], "setup": [],
                                       "estimating": [], "rounds": []})
            c["sources"].append(_tuning_source(r))
            c["setup"].append((r.wall or {}).get("setup_s"))
            c["estimating"].append((r.timing or {}).get("estimating_s"))
            c["rounds"].append((r.timing or {}).get("rounds_s"))
    if not cases:
        return None

    def part(items, name, once=False):
        """The part summed over cases (an implementation's own parts summed; a case's shared one once);
        None where no record says."""
        per_case = [[x for x in v[name] if rl._is_number(x)] for _, v in items]
        if not any(per_case):
            return None
        return sum((xs[0] if once else sum(xs)) for xs in per_case if xs)

    rows = []
    for run, items in group(cases.items(), lambda kv: kv[0][0]).items():
        total = sum(v["wall"] for _, v in items)
        for family, fam_items in [*sorted(group(items, lambda kv: kv[1]["family"]).items()), ("all", items)]:
            spent = sum(v["wall"] for _, v in fam_items)
            sources = [s for _, v in fam_items for s in v["sources"]]
            rows.append([run, family, len(fam_items), spent, spent / total if total else None,
                         sources.count("tuned"), sources.count("cache"),
                         _start_to_last(records, run) if family == "all" else None,
                         _compiled_ahead(records, run) if family == "all" else None,
                         part(fam_items, "setup"), part(fam_items, "estimating"),
                         part(fam_items, "rounds", once=True)])
    cols = [Col("run", "Run"), Col("family", "Family"), Col("cases", "Cases", "int"), Col("wall", "Wall", "seconds"),
            Col("share", "Share", "pct"), Col("tuned", "Configs tuned", "int"),
            Col("cached", "Configs from the store", "int"), Col("elapsed", "Start to last record", "seconds"),
            Col("ahead", "Compiled ahead", "seconds"), Col("setup", "Compiles, tuning", "seconds"),
            Col("estimating", "Warm-ups", "seconds"), Col("rounds", "Rounds", "seconds")]
    return Section("Where the sweep's time went", [Table(None, cols, rows)], [
        "Wall: each case's wall time from building its inputs to its last record, compiles, tuning, verification "
        "and timing included, summed per family (the time before the first case, such as importing the libraries, "
        "compiling ahead and --settle, is not in it). Configs: the records whose kernel configuration was tuned in "
        "the run, or taken from the tuning store of an earlier run on this GPU model and software.",
        "Start to last record: from the sweep's start (its run id, to the second) to its last record's timestamp: "
        "the command's own wall time, imports, compiling ahead and --settle included.",
        "Compiled ahead: before the first case, worker processes compiled the cases' Triton kernels into "
        "Triton's cache, several cases at once (sweep --compile-workers); the cases then load them, and their "
        "Compiles, tuning is mostly tuning. 0: every case had been compiled ahead into this cache before; "
        "— : not done (one worker or none, or an older sweep).",
        "Parts of Wall, where the records hold them: Compiles, tuning: each implementation's preparation and first "
        "call (where a kernel compiles and its tuner times the candidates); Warm-ups: each implementation's warm-up, "
        "eager and graph estimates and capture; Rounds: the case's alternating timed rounds. The rest is building "
        "and checking inputs and freeing memory."])


def _compiled_ahead(records, run: str) -> float | None:
    """The seconds the run spent compiling ahead, from its records' environment (None: not done)."""
    for r in records:
        if r.run_id == run:
            ahead = (r.env or {}).get("compile_ahead")
            return ahead.get("seconds") if isinstance(ahead, dict) else None
    return None


def _start_to_last(records, run: str) -> float | None:
    started = run_started(run)
    stamps = [t for r in records if r.run_id == run and (t := recorded_at(r.timestamp)) is not None]
    return (max(stamps) - started).total_seconds() if started and stamps else None


def ceilings_section(a: rl.GpuAnalysis) -> Section:
    mem_cols = [Col("ceiling", "Ceiling"), Col("measured", "Measured", "bytes_per_s"),
                Col("range", "Repeats range"),
                Col("spec", "Spec", "bytes_per_s"), Col("of_spec", "Measured/spec", "pct"),
                Col("set_by", "Set by"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
                Col("working_set", "Working set", "bytes"), Col("conditions", "Clocks, power while set")]
    mem_rows = []
    for name, c, rule in (("HBM bandwidth", a.hbm, f"working set >= {rl.HBM_FACTOR:g} x L2"),
                          ("L2 plateau", a.l2, f"working set <= {rl.L2_FRACTION:g} x L2")):
        if c:
            r = c.record
            mem_rows.append([name, c.value, _range_text(c), c.spec, c.of_spec, c.set_by, r.workload, r.label,
                             r.dtype, r.bytes, rl.telemetry_text(r)])
        else:
            spec = a.spec.mem_bw if a.spec and name.startswith("HBM") else None
            mem_rows.append([name, None, None, spec, None, f"not measured: no meaningful streaming case with {rule}",
                             None, None, None, None, None])
    comp_cols = [Col("dtype", "Dtype"), Col("measured", "Measured", "flop_per_s"), Col("range", "Repeats range"),
                 Col("spec", "Spec", "flop_per_s"),
                 Col("of_spec", "Measured/spec", "pct"), Col("set_by", "Set by"), Col("shape", "Shape"),
                 Col("triton", "Triton best", "flop_per_s"), Col("triton_shape", "Triton shape"),
                 Col("vendor", "Vendor best", "flop_per_s"), Col("vendor_impl", "Vendor"),
                 Col("vendor_shape", "Vendor shape"), Col("triton_vs_vendor", "Triton/vendor", "speedup"),
                 Col("conditions", "Clocks, power while set")]
    comp_rows = []
    for c in a.compute.values():
        t, v = c.triton, c.vendor
        # An interval only where both bests are one case of one run; else the two searches' bests.
        ratio = vs.speed_ratio(t, v) if t and v and t.case == v.case and t.workload == v.workload else None
        if ratio is None and t and v:
            ratio = vs.Ratio(t.flop_per_s / v.flop_per_s)
        comp_rows.append([c.dtype, c.value, _range_text(c), c.spec, c.of_spec, c.set_by, rl.shape_text(c.record),
                          t.flop_per_s if t else None, rl.shape_text(t) if t else None,
                          v.flop_per_s if v else None, v.impl if v else None, rl.shape_text(v) if v else None,
                          ratio, rl.telemetry_text(c.record)])
    comp_rows.sort(key=lambda row: rl.dtype_rank(row[0]))
    dtypes = sorted(set(a.compute) | {r.dtype for r in a.records if r.dtype in specdb.DTYPE_FIGURE and a.spec},
                    key=rl.dtype_rank)
    ridge_cols = [Col("dtype", "Dtype"), Col("measured", "Measured ridge", "flop_per_byte"),
                  Col("spec", "Spec ridge", "flop_per_byte")]
    ridge_rows = [[d, *a.ridge(d)] for d in dtypes]
    # Whether a clock limit held each ceiling's measurement (throttle reasons, clock or power settings).
    for cols in (mem_cols, comp_cols):
        cols.append(Col("throttled", "Throttled while set"))
    for row, c in zip(mem_rows, (a.hbm, a.l2)):
        row.append(rl.throttled_text(c.record) if c else None)
    for row in comp_rows:
        row.append(rl.throttled_text(a.compute[row[0]].record))
    tables = [Table("Memory ceilings", mem_cols, mem_rows)]
    notes = [f"Spec sheet: {a.spec_how}.",
             f"HBM bandwidth: the best meaningful verified streaming bytes/s with a working set >= {rl.HBM_FACTOR:g} x "
             f"L2 ({fmt_bytes(a.l2_bytes)} L2); L2 plateau: the best with a working set <= {rl.L2_FRACTION:g} x L2. "
             f"The spec sheet gives no L2 bandwidth."]
    if comp_rows:
        tables.append(Table("Compute ceilings (best GEMM per dtype)", comp_cols, comp_rows))
        notes.append("Compute: the best meaningful GEMM FLOP/s of each dtype, Triton or vendor; Triton/vendor compares "
                     "each side's best, with the interval of the alternating rounds where both are one case of one "
                     "run, else as the ratio of two bests (no interval). Spec figures are dense peaks (fp32: CUDA "
                     "cores).")
        notes.append("Repeats range: the lowest and highest figure of the ceiling's problem (same dtype, "
                     "implementation, FLOPs and bytes) where one run measured it more than once, e.g. in several "
                     "workloads.")
    else:
        notes.append("No meaningful GEMM record: no compute ceiling, no measured ridge point.")
    if ridge_rows:
        tables.append(Table("Ridge points (compute ceiling / HBM bandwidth)", ridge_cols, ridge_rows))
        notes.append("Ridge point: the arithmetic intensity where the memory roof meets the compute roof; below it "
                     "a kernel is memory-bound.")
    notes.append("Clocks, power while set: NVML medians during the measurement that set the ceiling.")
    notes.append("Throttled while set: the clock-event reasons NVML reported during that measurement (the GPU "
                 "idling is not one), and a locked clock, set application clocks or a power limit below its default "
                 "where the GPU reported one; 'no' means none of these held the clocks.")
    return Section(f"{a.label}: ceilings", tables, notes)


def _range_text(c: rl.Ceiling) -> str | None:
    span = c.repeat_range
    if span is None:
        return None
    scale, unit = (1e-9, "GB/s") if c.kind == "bytes_per_s" else (1e-12, "TFLOP/s")
    return f"{span[0] * scale:,.1f}-{span[1] * scale:,.1f} {unit} ({len(c.repeats)}x)"


def placement_section(a: rl.GpuAnalysis) -> Section:
    cols = [Col("family", "Family"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
            Col("impl", "Impl"), Col("intensity", "Intensity", "flop_per_byte"), Col("binding", "Binding roof"),
            Col("achieved", "Achieved"), Col("of_measured", "% of measured roof", "pct"),
            Col("spec_binding", "Spec binding roof"), Col("of_spec", "% of spec roof", "pct"),
            Col("achieved_flops", "Achieved", "flop_per_s", csv_only=True),
            Col("achieved_bw", "Achieved", "bytes_per_s", csv_only=True)] + bounds.COLS
    rows = []
    floors = bounds.launch_floors(a.records)
    for p in sorted(a.placements, key=lambda p: (p.record.family, p.record.workload, rl.dtype_rank(p.record.dtype),
                                                 natural(p.record.case), p.record.impl)):
        r = p.record
        memory = (p.binding or "").startswith("memory")
        shown = Quantity(p.achieved_bw, "bytes_per_s") if memory else Quantity(p.achieved, "flop_per_s")
        rows.append([r.family, r.workload, r.label, r.dtype, r.impl, p.intensity,
                     p.binding or f"unknown (no {r.dtype} GEMM ceiling)", shown, p.of_measured,
                     p.spec_binding or ("— (served from L2)" if p.memory_roof == "L2" else None), p.of_spec,
                     p.achieved, p.achieved_bw, *bounds.cells(bounds.classify(a, r, floors))])
    return Section(f"{a.label}: workloads on the roofline", [Table(None, cols, rows)], [
        "Intensity = FLOPs / bytes really moved. Binding roof: the lower of the compute ceiling of the dtype and "
        "intensity x memory roof (L2 plateau if the working set fits in L2, HBM ceiling otherwise). Achieved is "
        "shown in the binding roof's unit.",
        "% of spec roof uses the spec sheet's peak FLOP/s and memory bandwidth the same way; the spec sheet has no "
        "L2 bandwidth, so cases served from L2 have no spec placement.", bounds.RULE])


def flagged_section(a: rl.GpuAnalysis) -> Section:
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("bytes_per_s", "Bytes/s", "bytes_per_s"), Col("flop_per_s", "FLOP/s", "flop_per_s"),
            Col("why", "Why it cannot be right")]
    rows = [[r.workload, r.label, r.dtype, r.impl, rl.counted_bytes(r) / r.seconds if r.seconds else None,
             r.flop_per_s, why] for r, why in a.flagged]
    rows += [[r.workload, r.label, r.dtype, r.impl, rl.counted_bytes(r) / r.seconds if r.seconds else None,
              r.flop_per_s, f"marked ok, but its own verification fields fail: {why}"] for r, why in a.unverified]
    return Section(f"{a.label}: set apart (not reported as results)", [Table(None, cols, rows)], [
        f"A figure more than {rl.ABOVE_ROOF_MARGIN:.0%} above a roof the hardware cannot beat means the FLOP or byte "
        "count is wrong or the data was served from a cache the case claims to miss; a record whose verification "
        "fields, re-checked on reading, do not pass is no result either. These enter no ceiling, no table above and "
        "no comparison."])


def _side_by_side(analyses) -> Section:
    names = []
    for a in analyses:
        names += [c.name for c in a.ceilings() if c.name not in names]
    names.sort(key=lambda n: (n not in rl.MEMORY_CEILINGS, rl.MEMORY_CEILINGS.index(n) if n in rl.MEMORY_CEILINGS
                              else rl.dtype_rank(n.split()[-1])))
    kind = lambda n: "bytes_per_s" if n in rl.MEMORY_CEILINGS else "flop_per_s"  # noqa: E731
    cols = [Col("gpu", "GPU"), Col("uuid", "UUID"), Col("power_limit", "Power limit", "watts")]
    cols += [Col(n.replace(" ", "_").lower(), n, kind(n)) for n in names]
    rows = []
    for a in analyses:
        rows.append([a.label, a.gpu.get("uuid"), a.gpu.get("power_limit_w"),
                     *((a.ceiling(n).value if a.ceiling(n) else None) for n in names)])
    for host, medians in rl.node_medians(analyses).items():
        rows.append([f"median of {host}", None, None, *(medians.get(n) for n in names)])
    tables = [Table("Ceilings per GPU", cols, rows)]
    found = rl.outliers(analyses)
    notes = [f"A GPU is flagged when one of its ceilings falls more than {rl.OUTLIER_MARGIN:.0%} below the median of "
             f"that ceiling over the GPUs of its node (host); with two GPUs the median is their mean, so a GPU is "
             f"flagged when it trails the other by more than about "
             f"{2 * rl.OUTLIER_MARGIN / (1 - rl.OUTLIER_MARGIN):.0%}."]
    if found:
        flag_cols = [Col("gpu", "GPU"), Col("ceiling", "Ceiling"), Col("value", "Value"), Col("median", "Node median"),
                     Col("below", "Below median", "pct"), Col("conditions", "Clocks, power, throttle while set"),
                     Col("power_limit", "Power limit", "watts")]
        tables.append(Table("Flagged GPUs", flag_cols, [
            [o.analysis.label, o.ceiling.name, Quantity(o.ceiling.value, o.ceiling.kind), Quantity(o.median, o.ceiling.kind),
             o.shortfall, rl.telemetry_text(o.ceiling.record), o.analysis.gpu.get("power_limit_w")] for o in found]))
    else:
        notes.append("No GPU falls below that margin.")
    return Section("GPUs side by side", tables, notes)


def _failures(records) -> Section | None:
    bad = [r for r in records if r.status != "ok"]
    if not bad:
        return None
    cols = [Col("gpu", "GPU"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
            Col("impl", "Impl"), Col("status", "Status"), Col("reason", "Reason")]
    rows = [[rl.gpu_label(r), r.workload, r.label, r.dtype, r.impl, r.status, r.reason] for r in bad]
    return Section("Failures and skips", [Table(None, cols, rows)],
                   ["Failed and skipped records enter no ceiling and no comparison."])
