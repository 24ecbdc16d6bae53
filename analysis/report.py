"""`report`: a results file as per-GPU roofline tables, with the assumptions they rest on.

Sections appear only for the families present in the records: the measured
ceilings and ridge points of each GPU beside its spec sheet; the streaming
working-set table (Triton against the vendor path, the HBM ceiling under it);
the GEMM compute ceilings, cases, shape search and skinny (decode-shaped)
table; attention's fused/naive speed-up; decode tokens/s beside the times the
spec sheet and the measured roofs predict; every case placed on the roofline;
per-GPU ceilings side by side when a file holds several GPUs, with outliers
flagged; the interconnect's bus bandwidth; failures and skips.

Tables are built as raw numbers in base units (bytes/s, FLOP/s, seconds) and
formatted only when shown: github and plain through tabulate, csv through the
csv module at full precision.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

from analysis import collectives
from analysis import roofline as rl
from analysis import specs as specdb
from analysis.errors import AnalysisError

FORMATS = ("github", "plain", "csv")
STREAM_ORDER = ("stream-copy", "stream-scale", "stream-add", "stream-triad", "stream-read", "stream-fill")
NOT_MEANINGFUL = "not meaningful (interpreter timing)"


# ---------------------------------------------------------------- tables and their formatting

@dataclass(frozen=True)
class Col:
    key: str  # CSV column name (its unit is appended)
    title: str  # shown header (its display unit is appended)
    kind: str = "text"
    csv_only: bool = False


@dataclass(frozen=True)
class Q:
    """A quantity carrying its own kind, for columns that mix units (shown with its unit in the cell)."""
    value: float | None
    kind: str


@dataclass
class Table:
    title: str | None
    cols: list
    rows: list


@dataclass
class Section:
    title: str
    tables: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# kind -> (unit in the header, scale for display, unit suffix of the CSV column)
_UNITS = {
    "bytes_per_s": ("GB/s", 1e-9, "bytes_per_s"), "flop_per_s": ("TFLOP/s", 1e-12, "flop_per_s"),
    "flop_per_byte": ("FLOP/B", 1.0, "flop_per_byte"), "tokens_per_s": ("tok/s", 1.0, "tokens_per_s"),
    "mhz": ("MHz", 1.0, "mhz"), "watts": ("W", 1.0, "w"), "ratio": ("", 1.0, "ratio"),
    "pct": ("", 1.0, "fraction"), "delta": ("", 1.0, "delta"), "seconds": ("", 1.0, "s"), "bytes": ("", 1.0, "bytes"),
    "int": ("", 1.0, ""), "text": ("", 1.0, ""),
}
_CELL_UNIT = {"bytes_per_s": " GB/s", "flop_per_s": " TFLOP/s", "flop_per_byte": " FLOP/B", "tokens_per_s": " tok/s"}


def _number(x: float) -> str:
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.001 or a == 0:
        return f"{x:.3f}"
    return f"{x:.2e}"


def show(value, kind: str, with_unit: bool = False) -> str:
    """A raw value as it is shown in github/plain tables."""
    if isinstance(value, Q):
        return show(value.value, value.kind, with_unit=True)
    if value is None:
        return "—"
    if isinstance(value, str) or kind == "text":
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if kind == "seconds":
        return f"{value * 1e6:.1f} us" if value < 1e-3 else f"{value * 1e3:.3f} ms" if value < 1 else f"{value:.3f} s"
    if kind == "bytes":
        return rl.fmt_bytes(value)
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "delta":
        return f"{value:+.3f}"
    if kind == "int":
        return str(int(value))
    if kind in ("mhz", "watts"):
        return f"{value:,.0f}"
    unit, scale, _ = _UNITS.get(kind, ("", 1.0, ""))
    return _number(value * scale) + (_CELL_UNIT.get(kind, "") if with_unit else "")


def _raw(value):
    """A cell as written to CSV: raw numbers at full precision, empty for missing."""
    if isinstance(value, Q):
        value = value.value
    return "" if value is None else value


def _header(col: Col) -> str:
    unit = _UNITS.get(col.kind, ("",))[0]
    return f"{col.title} {unit}" if unit else col.title


def _csv_header(col: Col) -> str:
    suffix = _UNITS.get(col.kind, ("", 1.0, ""))[2]
    return f"{col.key}_{suffix}" if suffix and not col.key.endswith(suffix) else col.key


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")


def format_sections(sections: list[Section], fmt: str = "github") -> str:
    check_format(fmt)
    if fmt == "csv":
        return _format_csv(sections)
    from tabulate import tabulate

    out = []
    for s in sections:
        out.append(f"## {s.title}\n" if fmt == "github" else f"{s.title}\n{'=' * len(s.title)}\n")
        for t in s.tables:
            cols = [c for c in t.cols if not c.csv_only]
            idx = [i for i, c in enumerate(t.cols) if not c.csv_only]
            if t.title:
                out.append(f"**{t.title}**\n" if fmt == "github" else f"{t.title}\n")
            body = [[show(row[i], t.cols[i].kind) for i in idx] for row in t.rows]
            out.append(tabulate(body, headers=[_header(c) for c in cols], tablefmt=fmt, disable_numparse=True)
                       + "\n")
        out.extend(f"- {note}" for note in s.notes)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _format_csv(sections: list[Section]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in sections:
        w.writerow([f"# {s.title}"])
        for t in s.tables:
            if t.title:
                w.writerow([f"# {t.title}"])
            w.writerow([_csv_header(c) for c in t.cols])
            w.writerows([_raw(v) for v in row] for row in t.rows)
            w.writerow([])
        for note in s.notes:
            w.writerow([f"# {note}"])
        if s.notes:
            w.writerow([])
    return buf.getvalue()


# ---------------------------------------------------------------- entry point

def render(records, *, fmt: str = "github", spec: str | None = None, plot: str | None = None) -> str:
    """The report of a results file's records (see the module docstring)."""
    check_format(fmt)
    rl.check_records(records)
    if not records:
        raise AnalysisError("no records to report: the results file is empty")
    if spec is not None:
        specdb.get(spec)
    sections = build(records, spec)
    if plot is not None:
        from analysis import plot as plotting

        written = plotting.roofline_plot(records, plot, spec=spec)
        sections.append(Section("Roofline plot", notes=[
            f"Written to {written}: log-log roofline per GPU, spec roofs dashed, measured roofs solid, "
            f"cases coloured by family, circles Triton, triangles vendor, red crosses flagged."]))
    return format_sections(sections, fmt)


def build(records, spec: str | None = None) -> list[Section]:
    sections = [_summary(records)]
    per_gpu = [rl.analyze(rs, spec) for rs in rl.by_gpu([r for r in records if r.family != "collective"]).values()]
    if len(per_gpu) > 1:
        sections.append(_side_by_side(per_gpu))
    for a in per_gpu:
        sections += gpu_sections(a)
    coll = [r for r in records if r.family == "collective"]
    if coll:
        sections.append(collectives_section(coll, spec))
    failures = _failures(records)
    if failures:
        sections.append(failures)
    return sections


def gpu_sections(a: rl.GpuAnalysis) -> list[Section]:
    families = {r.family for r in a.records}
    out = [ceilings_section(a)]
    if "streaming" in families:
        out.append(streaming_section(a))
    if "gemm" in families:
        out += gemm_sections(a)
    if "attention" in families:
        out.append(attention_section(a))
    if "decode" in families or any(r.workload.startswith("decode") for r in a.records):
        out.append(decode_section(a))
    if a.placements:
        out.append(placement_section(a))
    if a.flagged:
        out.append(flagged_section(a))
    out.append(Section(f"{a.label}: assumptions", notes=rl.assumptions(a)))
    return out


# ---------------------------------------------------------------- helpers over records

def _best(records, figure: str):
    return rl.best_of([r for r in records if r.meaningful], figure)


def _shown(records, figure: str):
    """(value for a cell, the record behind it, a remark) for one implementation's records of one case.

    The best meaningful figure; else an interpreter figure (remarked as not
    meaningful); else the status of a failed or skipped run.
    """
    best = _best(records, figure)
    if best:
        return getattr(best, figure), best, ""
    timed = [r for r in records if r.status == "ok" and getattr(r, figure)]
    if timed:
        return getattr(timed[-1], figure), timed[-1], NOT_MEANINGFUL
    for status in ("failed", "skipped"):
        bad = [r for r in records if r.status == status]
        if bad:
            return status, bad[-1], f"{status}: {bad[-1].reason}" if bad[-1].reason else status
    return None, None, ""


def _sides(records):
    """Split one case's records into Triton (non-vendor) and the best vendor implementation's."""
    triton = [r for r in records if not r.vendor]
    vendors: dict[str, list] = {}
    for r in records:
        if r.vendor:
            vendors.setdefault(r.impl, []).append(r)
    if not vendors:
        return triton, [], None
    # The vendor shown is the fastest meaningful one (ties and untimed ones by name).
    name = min(vendors, key=lambda n: (_best_time(vendors[n]), n))
    return triton, vendors[name], name


def _best_time(records) -> float:
    times = [r.seconds for r in records if r.meaningful]
    return min(times) if times else math.inf


def _ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def _group(records, key) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out


def natural(text) -> tuple:
    """Sort key that orders 'M=16' before 'M=1024'."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", str(text)))


def _side_remark(triton_note: str, vendor_note: str) -> str:
    """One remark for a row from the notes on its Triton and vendor cells."""
    if triton_note and triton_note == vendor_note:
        return triton_note
    return "; ".join(note for note in (triton_note and f"Triton {triton_note}",
                                        vendor_note and f"vendor {vendor_note}") if note)


# ---------------------------------------------------------------- sections

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


def ceilings_section(a: rl.GpuAnalysis) -> Section:
    mem_cols = [Col("ceiling", "Ceiling"), Col("measured", "Measured", "bytes_per_s"),
                Col("spec", "Spec", "bytes_per_s"), Col("of_spec", "Measured/spec", "pct"),
                Col("set_by", "Set by"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
                Col("working_set", "Working set", "bytes"), Col("conditions", "Clocks, power while set")]
    mem_rows = []
    for name, c, rule in (("HBM bandwidth", a.hbm, f"working set >= {rl.HBM_FACTOR:g} x L2"),
                          ("L2 plateau", a.l2, f"working set <= {rl.L2_FRACTION:g} x L2")):
        if c:
            r = c.record
            mem_rows.append([name, c.value, c.spec, c.of_spec, c.set_by, r.workload, r.label, r.dtype, r.bytes,
                             rl.telemetry_text(r)])
        else:
            spec = a.spec.mem_bw if a.spec and name.startswith("HBM") else None
            mem_rows.append([name, None, spec, None, f"not measured: no meaningful streaming case with {rule}",
                             None, None, None, None, None])
    comp_cols = [Col("dtype", "Dtype"), Col("measured", "Measured", "flop_per_s"), Col("spec", "Spec", "flop_per_s"),
                 Col("of_spec", "Measured/spec", "pct"), Col("set_by", "Set by"), Col("shape", "Shape"),
                 Col("triton", "Triton best", "flop_per_s"), Col("triton_shape", "Triton shape"),
                 Col("vendor", "Vendor best", "flop_per_s"), Col("vendor_impl", "Vendor"),
                 Col("vendor_shape", "Vendor shape"), Col("triton_vs_vendor", "Triton/vendor", "ratio"),
                 Col("conditions", "Clocks, power while set")]
    comp_rows = []
    for c in a.compute.values():
        t, v = c.triton, c.vendor
        comp_rows.append([c.dtype, c.value, c.spec, c.of_spec, c.set_by, rl.shape_text(c.record),
                          t.flop_per_s if t else None, rl.shape_text(t) if t else None,
                          v.flop_per_s if v else None, v.impl if v else None, rl.shape_text(v) if v else None,
                          _ratio(t.flop_per_s if t else None, v.flop_per_s if v else None),
                          rl.telemetry_text(c.record)])
    comp_rows.sort(key=lambda row: rl.dtype_rank(row[0]))
    dtypes = sorted(set(a.compute) | {r.dtype for r in a.records if r.dtype in specdb.DTYPE_FIGURE and a.spec},
                    key=rl.dtype_rank)
    ridge_cols = [Col("dtype", "Dtype"), Col("measured", "Measured ridge", "flop_per_byte"),
                  Col("spec", "Spec ridge", "flop_per_byte")]
    ridge_rows = [[d, *a.ridge(d)] for d in dtypes]
    tables = [Table("Memory ceilings", mem_cols, mem_rows)]
    notes = [f"Spec sheet: {a.spec_how}.",
             f"HBM bandwidth: the best meaningful verified streaming bytes/s with a working set >= {rl.HBM_FACTOR:g} x "
             f"L2 ({rl.fmt_bytes(a.l2_bytes)} L2); L2 plateau: the best with a working set <= {rl.L2_FRACTION:g} x L2. "
             f"The spec sheet gives no L2 bandwidth."]
    if comp_rows:
        tables.append(Table("Compute ceilings (best GEMM per dtype)", comp_cols, comp_rows))
        notes.append("Compute: the best meaningful GEMM FLOP/s of each dtype, Triton or vendor; Triton/vendor compares "
                     "each side's best, whatever shape reached it. Spec figures are dense peaks (fp32: CUDA cores).")
    else:
        notes.append("No meaningful GEMM record: no compute ceiling, no measured ridge point.")
    if ridge_rows:
        tables.append(Table("Ridge points (compute ceiling / HBM bandwidth)", ridge_cols, ridge_rows))
        notes.append("Ridge point: the arithmetic intensity where the memory roof meets the compute roof; below it "
                     "a kernel is memory-bound.")
    notes.append("Clocks, power while set: NVML medians during the measurement that set the ceiling.")
    return Section(f"{a.label}: ceilings", tables, notes)


def streaming_section(a: rl.GpuAnalysis) -> Section:
    recs = [r for r in a.records if r.family == "streaming"]
    order = {w: i for i, w in enumerate(STREAM_ORDER)}
    groups = _group(recs, lambda r: (r.workload, r.dtype, r.params.get("array_bytes", r.bytes)))
    cols = [Col("workload", "Workload"), Col("dtype", "Dtype"), Col("array", "Array"),
            Col("working_set", "Working set", "bytes"), Col("regime", "Regime"),
            Col("triton", "Triton", "bytes_per_s"), Col("vendor_impl", "Vendor"),
            Col("vendor", "Vendor", "bytes_per_s"), Col("triton_vs_vendor", "Triton/vendor", "ratio"),
            Col("of_ceiling", "Triton/ceiling of its regime", "pct"), Col("remark", "Remark")]
    rows = []
    for key in sorted(groups, key=lambda k: (order.get(k[0], len(order)), k[0], rl.dtype_rank(k[1]), k[2])):
        rs = groups[key]
        triton, vendor, vendor_name = _sides(rs)
        t_val, t_rec, t_note = _shown(triton, "bytes_per_s")
        v_val, v_rec, v_note = _shown(vendor, "bytes_per_s")
        ref = t_rec or v_rec or rs[0]
        ws = ref.bytes
        where = rl.regime(ws, a.l2_bytes)
        ceiling = {"HBM": a.hbm, "L2": a.l2}.get(where)
        of_ceiling = _ratio(t_val, ceiling.value) if ceiling and not t_note else None
        rows.append([key[0], key[1], ref.label, ws, where or "?", t_val, vendor_name, v_val,
                     None if t_note or v_note else _ratio(t_val, v_val), of_ceiling,
                     _side_remark(t_note, v_note)])
    notes = []
    if a.hbm:
        notes.append(f"Measured HBM ceiling: {show(a.hbm.value, 'bytes_per_s')} GB/s, set by {a.hbm.set_by} on "
                     f"{a.hbm.record.workload} {a.hbm.record.label} {a.hbm.record.dtype}"
                     + (f" ({a.hbm.of_spec:.1%} of the spec sheet's {show(a.hbm.spec, 'bytes_per_s')} GB/s)"
                        if a.hbm.spec else "") + f"; {rl.telemetry_text(a.hbm.record)}.")
    else:
        notes.append(f"No HBM ceiling: no meaningful streaming case has a working set >= {rl.HBM_FACTOR:g} x L2.")
    notes += [f"Regime: L2 for working sets <= {rl.L2_FRACTION:g} x L2, HBM for >= {rl.HBM_FACTOR:g} x L2 "
              f"(L2 = {rl.fmt_bytes(a.l2_bytes)}), transition between; only HBM rows set the HBM ceiling.",
              "GB/s: minimum bytes of one call (each array read once, written once; working set) over the median "
              "time per call. Vendor: the fastest vendor implementation of the case. Triton/vendor > 1: Triton faster. "
              "Triton/ceiling of its regime: against the HBM ceiling in HBM rows, the L2 plateau in L2 rows."]
    return Section(f"{a.label}: streaming bandwidth by working set", [Table(None, cols, rows)], notes)


def gemm_sections(a: rl.GpuAnalysis) -> list[Section]:
    recs = [r for r in a.records if r.family == "gemm"]
    skinny = [r for r in recs if "skinny" in r.workload]
    search = [r for r in recs if "search" in r.workload]
    plain = [r for r in recs if r not in skinny and r not in search]
    out = []
    if plain:
        out.append(_gemm_cases(a, plain))
    if search:
        out.append(_gemm_search(a, search))
    if skinny:
        out.append(_gemm_skinny(a, skinny))
    return out


def _gemm_cases(a, recs) -> Section:
    groups = _group(recs, lambda r: (r.workload, r.dtype, r.case))
    cols = [Col("workload", "Workload"), Col("dtype", "Dtype"), Col("shape", "Shape"),
            Col("triton", "Triton", "flop_per_s"), Col("vendor_impl", "Vendor"), Col("vendor", "Vendor", "flop_per_s"),
            Col("triton_vs_vendor", "Triton/vendor", "ratio"), Col("of_ceiling", "Triton/compute ceiling", "pct"),
            Col("remark", "Remark")]
    rows = []
    for key, rs in groups.items():
        triton, vendor, vendor_name = _sides(rs)
        t_val, t_rec, t_note = _shown(triton, "flop_per_s")
        v_val, v_rec, v_note = _shown(vendor, "flop_per_s")
        ceiling = a.compute.get(key[1])
        rows.append([key[0], key[1], rl.shape_text(t_rec or v_rec or rs[0]), t_val, vendor_name, v_val,
                     None if t_note or v_note else _ratio(t_val, v_val),
                     None if t_note else _ratio(t_val, ceiling.value if ceiling else None),
                     _side_remark(t_note, v_note)])
    rows.sort(key=lambda row: (row[0], rl.dtype_rank(row[1]), natural(row[2])))
    return Section(f"{a.label}: GEMM cases", [Table(None, cols, rows)],
                   ["FLOPs = 2MNK per call. Triton/vendor > 1: Triton faster. Vendor: the fastest vendor "
                    "implementation of the case (cuBLAS through torch, torch._scaled_mm for fp8)."])


def _gemm_search(a, recs) -> Section:
    cols = [Col("dtype", "Dtype"), Col("shapes", "Shapes measured", "int"), Col("triton", "Triton best", "flop_per_s"),
            Col("triton_shape", "Triton shape"), Col("vendor", "Vendor best", "flop_per_s"),
            Col("vendor_shape", "Vendor shape"), Col("triton_vs_vendor", "Triton best/vendor best", "ratio")]
    rows = []
    for dtype, rs in sorted(_group(recs, lambda r: r.dtype).items(), key=lambda kv: rl.dtype_rank(kv[0])):
        t = _best([r for r in rs if not r.vendor], "flop_per_s")
        v = _best([r for r in rs if r.vendor], "flop_per_s")
        rows.append([dtype, len({r.case for r in rs if r.meaningful}), t.flop_per_s if t else None, rl.shape_text(t) if t else None,
                     v.flop_per_s if v else None, rl.shape_text(v) if v else None,
                     _ratio(t.flop_per_s if t else None, v.flop_per_s if v else None)])
    return Section(f"{a.label}: GEMM shape search", [Table(None, cols, rows)],
                   ["Best meaningful FLOP/s over every shape of the search, per side; the two sides' best "
                    "shapes may differ. Shapes measured: those with a meaningful, verified measurement "
                    "(skipped ones, such as fp8 off its K plane, are listed under failures and skips)."])


def _gemm_skinny(a, recs) -> Section:
    groups = _group(recs, lambda r: (r.dtype, r.params.get("N"), r.params.get("K")))
    tables, notes = [], []
    cols = [Col("M", "M", "int"), Col("intensity", "Intensity", "flop_per_byte"),
            Col("triton_bw", "Triton", "bytes_per_s"), Col("triton_flops", "Triton", "flop_per_s"),
            Col("vendor_impl", "Vendor"), Col("vendor_bw", "Vendor", "bytes_per_s"),
            Col("vendor_flops", "Vendor", "flop_per_s"), Col("triton_vs_vendor", "Triton/vendor", "ratio"),
            Col("bound", "Bound (measured ridge)"), Col("of_roof", "Triton/attainable", "pct"), Col("remark", "Remark")]
    for (dtype, n, k), rs in sorted(groups.items(), key=lambda kv: (rl.dtype_rank(kv[0][0]), str(kv[0][1:]))):
        measured_ridge, spec_ridge = a.ridge(dtype)
        rows = []
        turn = spec_turn = None
        for case, crs in sorted(_group(rs, lambda r: r.case).items(), key=lambda kv: kv[1][0].params.get("M", 0)):
            triton, vendor, vendor_name = _sides(crs)
            tb, t_rec, t_note = _shown(triton, "bytes_per_s")
            tf = t_rec.flop_per_s if t_rec and not isinstance(tb, str) else None
            vb, v_rec, v_note = _shown(vendor, "bytes_per_s")
            vf = v_rec.flop_per_s if v_rec and not isinstance(vb, str) else None
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
            rows.append([m, intensity, tb, tf, vendor_name, vb, vf, None if t_note or v_note else _ratio(tb, vb),
                         bound, None if t_note else _ratio(tf, attainable),
                         _side_remark(t_note, v_note)])
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
    return Section(f"{a.label}: skinny GEMM (decode-shaped)", tables, notes)


def _is_naive(r) -> bool:
    return "naive" in r.workload.lower() or "naive" in r.impl.lower() or (
        r.moved_bytes is not None and r.moved_bytes > r.bytes and not r.vendor)


def attention_section(a: rl.GpuAnalysis) -> Section:
    recs = [r for r in a.records if r.family == "attention"]
    p = lambda r, k: r.params.get(k)  # noqa: E731
    groups = _group(recs, lambda r: (r.dtype, bool(p(r, "causal")), p(r, "B"), p(r, "H"), p(r, "D"), p(r, "S")))
    cols = [Col("dtype", "Dtype"), Col("causal", "Causal"), Col("bhd", "B x H x D"), Col("S", "S", "int"),
            Col("naive_time", "Naive time", "seconds"), Col("naive_moved_bw", "Naive moved", "bytes_per_s"),
            Col("fused_time", "Fused time", "seconds"), Col("fused", "Fused", "flop_per_s"),
            Col("speedup", "Fused/naive speed-up", "ratio"), Col("vendor_impl", "Best vendor"),
            Col("vendor", "Vendor", "flop_per_s"), Col("fused_vs_vendor", "Fused/vendor", "ratio")]
    rows = []
    for key in sorted(groups, key=lambda k: (rl.dtype_rank(k[0]), k[1], str(k[2:5]), k[5] or 0)):
        rs = groups[key]
        naive = _best([r for r in rs if _is_naive(r) and not r.vendor], "flop_per_s")
        fused = _best([r for r in rs if not _is_naive(r) and not r.vendor], "flop_per_s")
        vendor = _best([r for r in rs if r.vendor], "flop_per_s")
        rows.append([key[0], "yes" if key[1] else "no", f"{key[2]} x {key[3]} x {key[4]}", key[5],
                     naive.seconds if naive else None, naive.moved_bytes_per_s if naive else None,
                     fused.seconds if fused else None, fused.flop_per_s if fused else None,
                     _ratio(naive.seconds if naive else None, fused.seconds if fused else None),
                     vendor.impl if vendor else None, vendor.flop_per_s if vendor else None,
                     _ratio(fused.flop_per_s if fused else None, vendor.flop_per_s if vendor else None)])
    return Section(f"{a.label}: attention, fused against naive", [Table(None, cols, rows)], [
        "Speed-up = naive time / fused time (both Triton). Naive moved: bytes it really moves per second, the S and P "
        "round trips included (record.moved_bytes); that is where it sits under the memory roof.",
        "FLOPs = 4 B H S^2 D, halved for causal. Only meaningful measurements are shown; the roofline placement of "
        "every attention case is in 'workloads on the roofline'."])


def decode_section(a: rl.GpuAnalysis) -> Section:
    recs = [r for r in a.records if r.meaningful and (r.family == "decode" or r.workload.startswith("decode"))]
    s = a.spec
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("tokens", "Throughput", "tokens_per_s"), Col("measured", "Measured", "seconds"),
            Col("spec_predicted", "Spec-predicted", "seconds"), Col("roof_predicted", "Roof-predicted", "seconds"),
            Col("vs_spec", "Measured/spec-predicted", "ratio"), Col("vs_roof", "Measured/roof-predicted", "ratio"),
            Col("achieved_bw", "Achieved", "bytes_per_s")]
    rows = []
    key = lambda r: (r.workload, rl.dtype_rank(r.dtype), str(r.params.get("preset", "")),  # noqa: E731
                     natural(r.params.get("batch", "")),
                     natural(r.params.get("context", r.params.get("ctx", ""))), natural(r.case), r.impl)
    for r in sorted(recs, key=key):
        nbytes = rl.counted_bytes(r)
        batch = r.params.get("batch")
        spec_t = rl.predicted_time(r.flops, nbytes, s.flops(r.dtype) if s else None, s.mem_bw if s else None)
        ceiling = a.compute.get(r.dtype)
        roof_t = rl.predicted_time(r.flops, nbytes, ceiling.value if ceiling else None,
                                   a.hbm.value if a.hbm else None)
        rows.append([r.workload, r.label, r.dtype, r.impl,
                     batch / r.seconds if isinstance(batch, (int, float)) else None, r.seconds, spec_t, roof_t,
                     _ratio(r.seconds, spec_t), _ratio(r.seconds, roof_t), r.moved_bytes_per_s])
    notes = ["Tokens/s = batch / time of one decode step. Spec-predicted time = max(FLOPs / spec FLOP/s, bytes / spec "
             "bandwidth); roof-predicted time is the same with the measured compute ceiling and HBM ceiling.",
             "Measured/spec-predicted is the gap between the spec sheet's promise and execution (1.00 = the spec "
             "sheet's time; 1.5 = 50% slower); measured/roof-predicted is the gap to what this GPU measurably "
             "sustains."]
    if not recs:
        notes.insert(0, "No meaningful decode measurement.")
    return Section(f"{a.label}: decode step", [Table(None, cols, rows)] if rows else [], notes)


def placement_section(a: rl.GpuAnalysis) -> Section:
    cols = [Col("family", "Family"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
            Col("impl", "Impl"), Col("intensity", "Intensity", "flop_per_byte"), Col("binding", "Binding roof"),
            Col("achieved", "Achieved"), Col("of_measured", "% of measured roof", "pct"),
            Col("spec_binding", "Spec binding roof"), Col("of_spec", "% of spec roof", "pct"),
            Col("achieved_flops", "Achieved", "flop_per_s", csv_only=True),
            Col("achieved_bw", "Achieved", "bytes_per_s", csv_only=True)]
    rows = []
    for p in sorted(a.placements, key=lambda p: (p.record.family, p.record.workload, rl.dtype_rank(p.record.dtype),
                                                 natural(p.record.case), p.record.impl)):
        r = p.record
        memory = (p.binding or "").startswith("memory")
        shown = Q(p.achieved_bw, "bytes_per_s") if memory else Q(p.achieved, "flop_per_s")
        rows.append([r.family, r.workload, r.label, r.dtype, r.impl, p.intensity,
                     p.binding or f"unknown (no {r.dtype} GEMM ceiling)", shown, p.of_measured,
                     p.spec_binding or ("— (served from L2)" if p.memory_roof == "L2" else None), p.of_spec,
                     p.achieved, p.achieved_bw])
    return Section(f"{a.label}: workloads on the roofline", [Table(None, cols, rows)], [
        "Intensity = FLOPs / bytes really moved. Binding roof: the lower of the compute ceiling of the dtype and "
        "intensity x memory roof (L2 plateau if the working set fits in L2, HBM ceiling otherwise). Achieved is "
        "shown in the binding roof's unit.",
        "% of spec roof uses the spec sheet's peak FLOP/s and memory bandwidth the same way; the spec sheet has no "
        "L2 bandwidth, so cases served from L2 have no spec placement."])


def flagged_section(a: rl.GpuAnalysis) -> Section:
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("bytes_per_s", "Bytes/s", "bytes_per_s"), Col("flop_per_s", "FLOP/s", "flop_per_s"),
            Col("why", "Why it cannot be right")]
    rows = [[r.workload, r.label, r.dtype, r.impl, rl.counted_bytes(r) / r.seconds if r.seconds else None,
             r.flop_per_s, why] for r, why in a.flagged]
    return Section(f"{a.label}: flagged above a roof (not reported as results)", [Table(None, cols, rows)], [
        f"A figure more than {rl.ABOVE_ROOF_MARGIN:.0%} above a roof the hardware cannot beat means the FLOP or byte "
        "count is wrong or the data was served from a cache the case claims to miss. These figures enter no ceiling "
        "and no table above."])


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
            [o.analysis.label, o.ceiling.name, Q(o.ceiling.value, o.ceiling.kind), Q(o.median, o.ceiling.kind),
             o.shortfall, rl.telemetry_text(o.ceiling.record), o.analysis.gpu.get("power_limit_w")] for o in found]))
    else:
        notes.append("No GPU falls below that margin.")
    return Section("GPUs side by side", tables, notes)


def collective_rows(records):
    """Rows (op, ranks, nodes, dtype, S, time, algbw, busbw, records) and the peak busbw per (op, ranks, nodes)."""

    def key(r):
        op = collectives.canonical_op(r.params.get("op") or r.workload.split("-", 1)[-1])
        n = r.params.get("world_size") or r.env.get("world_size")
        return op, n, r.params.get("nodes", 1), r.params.get("message_bytes", r.bytes), r.dtype

    rows, peaks = [], {}
    groups = _group([r for r in records if r.meaningful], key)
    for (op, n, nodes, size, dtype), rs in sorted(groups.items(), key=lambda kv: (
            collectives.OPS.index(kv[0][0]), kv[0][1] or 0, kv[0][2] or 0, kv[0][3], kv[0][4])):
        t = sum(r.seconds for r in rs) / len(rs)
        bus = collectives.busbw(op, size, t, n) if isinstance(n, int) else None
        rows.append([op, n, nodes, dtype, size, t, collectives.algbw(op, size, t), bus, len(rs)])
        if bus is not None and bus > peaks.get((op, n, nodes), (0, None))[0]:
            peaks[(op, n, nodes)] = (bus, size)
    return rows, peaks


def collectives_section(records, spec: str | None) -> Section:
    s, how = rl.resolve_spec(rl.gpu_of(records[0]), spec)
    rows, peaks = collective_rows(records)
    cols = [Col("op", "Collective"), Col("world_size", "Ranks", "int"), Col("nodes", "Nodes", "int"),
            Col("dtype", "Dtype"), Col("message", "Message", "bytes"), Col("time", "Time", "seconds"),
            Col("algbw", "algbw", "bytes_per_s"), Col("busbw", "busbw", "bytes_per_s"),
            Col("records", "Records", "int")]
    link = s.link_per_direction if s else None
    peak_cols = [Col("op", "Collective"), Col("world_size", "Ranks", "int"), Col("nodes", "Nodes", "int"),
                 Col("peak", "Peak busbw", "bytes_per_s"), Col("at", "At message", "bytes"),
                 Col("spec", "Spec link per direction", "bytes_per_s"), Col("of_spec", "Peak/spec", "pct")]
    # Across nodes the network binds, and the spec database holds no network figure.
    peak_rows = [[op, n, nodes, bus, size, link if nodes in (1, None) else None,
                  _ratio(bus, link) if nodes in (1, None) else None]
                 for (op, n, nodes), (bus, size) in peaks.items()]
    notes = [
        "algbw = S / t and busbw = algbw x factor, as nccl-tests define them: all-reduce 2(n-1)/n; all-gather, "
        "reduce-scatter, all-to-all (n-1)/n; broadcast, reduce, send/recv 1. S is the message as nccl-tests count it "
        "(all-gather: the total output; reduce-scatter: the total input; all-to-all: a rank's whole send buffer).",
        "Time: each record's median time per call (the suite's collective sweep records the slowest rank's "
        "median, since a collective ends when its slowest rank does); several records of one case (repeated runs, "
        "or one per rank) are averaged. Only verified collectives are shown: a wrong result is a failure, not a "
        "figure. Across nodes the network binds; the spec database holds no network figure, so those rows have no "
        "spec column.",
        f"Spec: {how}. " + (f"Interconnect {s.link_name}: {show(s.link_bidir, 'bytes_per_s')} GB/s bidirectional, "
                            f"{show(link, 'bytes_per_s')} GB/s per direction. " if s and link else "")
        + "busbw is compared with the per-direction figure: nccl-tests' bus bandwidth is a unidirectional "
          "bandwidth (each GPU sends and receives at that rate at once), while the vendor's headline adds both "
          "directions; comparing with the headline would halve every ratio.",
    ]
    if not rows:
        notes.insert(0, "No meaningful collective measurement.")
    return Section("Interconnect: collective bandwidth",
                   [Table("Bus bandwidth per size", cols, rows), Table("Peak bus bandwidth against the spec", peak_cols,
                                                                       peak_rows)] if rows else [], notes)


def _failures(records) -> Section | None:
    bad = [r for r in records if r.status != "ok"]
    if not bad:
        return None
    cols = [Col("gpu", "GPU"), Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
            Col("impl", "Impl"), Col("status", "Status"), Col("reason", "Reason")]
    rows = [[rl.gpu_label(r), r.workload, r.label, r.dtype, r.impl, r.status, r.reason] for r in bad]
    return Section("Failures and skips", [Table(None, cols, rows)],
                   ["Failed and skipped records enter no ceiling and no comparison."])
