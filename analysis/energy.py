"""The report's energy table: what a byte, a FLOP and a token cost, from the records' `energy`.

Each record's `energy` comes from NVML's total-energy counter over its timed window: the
energy run after the timed rounds where the sweep made one (`sweep --energy`), else the rounds
themselves ("over"; suite.telemetry.counter_energy): {"joules_per_call", "watts", "uncertainty",
"window_s", "counter_resolution_s", "min_window_s", ...}, or {"not_measured": why}. An energy
run too short for the bracket is measured between the counter's own steps inside it
(suite.telemetry.step_energy; its record holds "span_s", the time between those steps).
Beside each measured ceiling this table puts the energy of the measurement that set
it: picojoules per byte for the memory ceilings, picojoules per FLOP for each dtype's
compute ceiling; and for each decode step, tokens per joule. Nothing is estimated
from power readings: a record without a counter figure says why.
"""
from __future__ import annotations

import math

from analysis import roofline as rl
from analysis import sustain as sus
from analysis.errors import AnalysisError
from analysis.tables import Col, Quantity, Section, Table, natural

# A window's mean power from this share of the power limit up is in the power cap's regime.
AT_LIMIT = 0.95
PER_WORK = {"flop_per_s": "pJ/FLOP", "bytes_per_s": "pJ/byte", "tokens_per_s": "tokens/J"}


def text(per: float, unit: str) -> str:
    """'1.00 pJ/FLOP', '158 pJ/byte', '132 tokens/J': three significant digits, kept."""
    digits = max(0, 2 - math.floor(math.log10(abs(per)))) if per else 0
    return f"{per:.{digits}f} {PER_WORK[unit]}"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(record) -> dict | None:
    """The record's energy field, checked: None, a measurement, or a reason it was not measured."""
    e = record.energy
    if e is None:
        return None
    where = f"{record.workload} {record.label} {record.dtype} {record.impl}"
    if not isinstance(e, dict):
        raise AnalysisError(f"{where}: energy must be a JSON object or null, got {type(e).__name__}")
    if "not_measured" in e:
        if not isinstance(e["not_measured"], str):
            raise AnalysisError(f"{where}: energy.not_measured must be the reason, as text")
        return e
    for name in ("joules_per_call", "watts"):
        v = e.get(name)
        if not _number(v) or v <= 0:
            raise AnalysisError(f"{where}: energy.{name} is {v!r}, not a positive number")
    return e


def measured(record) -> bool:
    e = check(record)
    return e is not None and "not_measured" not in e


def why_not(record) -> str:
    """Why a record has no energy figure ('' when it has one)."""
    e = check(record)
    if e is None:
        return "not measured: no energy reading in the record"
    return f"not measured: {e['not_measured']}" if "not_measured" in e else ""


def per_work(energy: dict | None, unit: str, work: float) -> float | None:
    """pJ per FLOP or per byte, or tokens per joule, of one call doing `work` (FLOPs, bytes, tokens)."""
    if not energy or "not_measured" in energy or not work:
        return None
    joules = energy["joules_per_call"]
    return work / joules if unit == "tokens_per_s" else joules / work * 1e12


def _cells(record, unit: str, work: float) -> list:
    """Per-work figure, watts, +-, window, joules per call (CSV), share of the power limit, throttle
    reasons during the run and remark of one record."""
    e = check(record) if record is not None else None
    if record is None or e is None or "not_measured" in e:
        return [None, None, None, None, None, None, None, why_not(record) if record is not None else ""]
    return [per_work(e, unit, work), e["watts"], e.get("uncertainty"), e.get("window_s"), e["joules_per_call"],
            of_limit(record), throttle_during(record), ""]


def throttle_during(record) -> str | None:
    """The clock-event reasons NVML reported during the record's own energy run ('none'; the GPU
    idling is not one), or None where the record holds no readings of its run."""
    t = (check(record) or {}).get("telemetry")
    if not isinstance(t, dict) or not isinstance(t.get("throttle"), list):
        return None
    reasons = rl.clock_reasons(t)
    return ", ".join(reasons) if reasons else "none"


def of_limit(record) -> float | None:
    """The window's mean power over the GPU's power limit (None where either is unknown)."""
    e, limit = check(record), rl.gpu_of(record).get("power_limit_w")
    if not e or "not_measured" in e or not _number(limit) or limit <= 0:
        return None
    return e["watts"] / limit


def _energy_cols(per: str, key: str) -> list[Col]:
    return [Col(key, per, "energy"), Col("watts", "Power (energy counter)", "watts"), Col("uncertainty", "±", "pct"),
            Col("window", "Window", "seconds"), Col("joules_per_call", "J/call", "energy", csv_only=True),
            Col("of_limit", "Of power limit", "pct"), Col("throttle", "Throttle during run"), Col("remark", "Remark")]


def _median_of(records, name: str, default=None):
    """The median of an energy field over the records that carry it (default when none does)."""
    values = sorted(e[name] for e in (check(r) for r in records) if e and _number(e.get(name)))
    return values[len(values) // 2] if values else default


def sections(a: rl.GpuAnalysis) -> list[Section]:
    """The energy section of one GPU: the memory and compute ceilings' energy, and the decode steps'."""
    for r in a.records:
        check(r)
    tables = []
    mem_rows = []
    for name, c in (("HBM bandwidth", a.hbm), ("L2 plateau", a.l2)):
        if c:
            mem_rows.append([name, c.value, c.set_by, f"{c.record.workload} {c.record.label} {c.record.dtype}",
                             *_cells(c.record, "bytes_per_s", rl.counted_bytes(c.record))])
    if mem_rows:
        tables.append(Table("Memory ceilings", [Col("ceiling", "Ceiling"), Col("measured", "Measured", "bytes_per_s"),
                                                Col("set_by", "Set by"), Col("case", "Case"),
                                                *_energy_cols("pJ/byte", "pj_per_byte")], mem_rows))
    comp_rows = [[c.dtype, c.value, c.set_by, rl.shape_text(c.record), *_cells(c.record, "flop_per_s", c.record.flops)]
                 for c in sorted(a.compute.values(), key=lambda c: rl.dtype_rank(c.dtype))]
    if comp_rows:
        tables.append(Table("Compute ceilings", [Col("dtype", "Dtype"), Col("measured", "Measured", "flop_per_s"),
                                                 Col("set_by", "Set by"), Col("shape", "Shape"),
                                                 *_energy_cols("pJ/FLOP", "pj_per_flop")], comp_rows))
    decode = sorted((r for r in a.records if r.view == "decode" and r.meaningful and id(r) not in a.excluded
                     and _number(r.params.get("batch"))),
                    key=lambda r: (r.workload, rl.dtype_rank(r.dtype), natural(r.case), r.impl))
    dec_rows = [[r.workload, r.label, r.dtype, r.impl, r.params["batch"] / r.seconds,
                 *_cells(r, "tokens_per_s", r.params["batch"])] for r in decode]
    if dec_rows:
        tables.append(Table("Decode step", [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"),
                                            Col("impl", "Impl"), Col("tokens", "Throughput", "tokens_per_s"),
                                            *_energy_cols("tokens/J", "tokens_per_joule")], dec_rows))
    notes = [
        "Energy from NVML's total-energy counter over each record's timed window (its energy run where the sweep "
        "made one, sweep --energy; else its timed rounds), never from power readings: the readings before and "
        "after each timed interval bracket its energy, the figure is the bracket's middle and "
        f"± its half-width; a bracket wider than ±{_median_of(a.records, 'max_uncertainty', 0.05):.0%} is reported "
        "as not measured, with the bracket.",
        "pJ/byte: joules per call over the bytes one call moves; pJ/FLOP: over its FLOPs; tokens/J: a decode step's "
        "batch over its joules per call. Each ceiling's row is the energy of the measurement that set it; Power is "
        "the counter's joules over the window's seconds.",
    ]
    between = [r for r in a.records if measured(r) and _number(check(r).get("span_s"))]
    if between:
        notes.append(f"{len(between)} figure(s) come from energy runs too short for the bracket, measured between "
                     "the counter's own steps inside the run: the energy it added from its first step past half a "
                     "counter period into the run to its last, over the time between them (each step placed "
                     "within one reading period), times the device time per call. This assumes each step adds "
                     "the energy used since the previous one.")
        capped = [r for r in between if (of_limit(r) or 0) >= AT_LIMIT]
        if capped:
            notes.append(f"{len(capped)} of them drew {AT_LIMIT:.0%} of the GPU's power limit or more (Of power "
                         "limit): there the power cap's controller moves clocks and power over periods longer than "
                         "one energy run, so such a figure is that run's own, and the same work in the next run "
                         "can read apart by more than its ±; a sustain run gives the steady figure.")
    resolution, window = _median_of(a.records, "counter_resolution_s"), _median_of(a.records, "min_window_s")
    if resolution is not None and window is not None:
        notes.append(f"The counter stepped every {1e3 * resolution:.1f} ms (median over the records that read it): "
                     f"a single window shorter than about {window:.2f} s cannot be measured that closely.")
    steady = _steady_table(a)
    if not tables and steady is None:
        notes.insert(0, "No measured ceiling or decode step on this GPU to put an energy figure beside.")
    elif tables and not any(measured(r) for r in a.records if r.sustain is None):
        # Nothing the sweep's tables would show is measured: one line says why instead of a row per figure.
        tables = []
        notes.insert(0, "No sweep record of this GPU has an energy figure: each implementation's timed window is too "
                        "short for the counter's steps (the records say by how much; sweep --energy adds a window "
                        "long enough)"
                        + ("; the figures below come from sustain runs." if steady else
                           "; a sustain run measures it (python -m suite sustain)."))
    if steady is not None:
        tables.append(steady)
        notes.append("In steady state: each sustain run's energy over the last half of its run, beside the ceiling "
                     "its case speaks for (a memory-roof case past L2: the HBM ceiling; a compute-roof case: its "
                     "dtype's) or, for a decode step, the sweep's own throughput of that case; Steady is the run's "
                     "throughput there, launched back to back.")
    return [Section(f"{a.label}: energy", tables, notes)]


def _steady_table(a: rl.GpuAnalysis) -> Table | None:
    """The energy of this GPU's sustain runs in steady state, beside what the sweep measured."""
    rows = []
    for r in sorted((r for r in a.records if r.status == "ok" and r.sustain is not None),
                    key=lambda r: (r.workload, rl.dtype_rank(r.dtype), natural(r.case), r.impl)):
        s = sus.checked(r)
        summary = sus.summarize(s)
        e = (s.get("energy") or {}).get("steady")
        per = per_work(e, s["unit"], s["work_per_call"])
        name = a.ceiling_name_of(r)
        ceiling = a.ceiling(name) if name else None
        if name is not None:
            figure, beside = name, Quantity(ceiling.value, ceiling.kind) if ceiling else None
        elif s["workload_view"] == "decode":
            swept = [x for x in a.records if x.sustain is None and x.meaningful and id(x) not in a.excluded
                     and (x.workload, x.case, x.dtype, x.impl) == (r.workload, r.case, r.dtype, r.impl)]
            figure = "decode step"
            beside = Quantity(max(x.params["batch"] / x.seconds for x in swept), "tokens_per_s") if swept else None
        else:
            continue
        why = "" if per is not None else (e.get("not_measured") if isinstance(e, dict) else "no steady energy")
        rows.append([figure, beside, f"{r.workload} {r.label} {r.dtype}", r.impl,
                     Quantity(summary["steady"]["throughput"], s["unit"]) if summary["steady"] else None,
                     text(per, s["unit"]) if per is not None else None, per,
                     e.get("watts") if per is not None else None, e.get("uncertainty") if per is not None else None,
                     summary["problem"] or why])
    if not rows:
        return None
    cols = [Col("figure", "Figure"), Col("swept", "Sweep's figure"), Col("case", "Sustain case"), Col("impl", "Impl"),
            Col("steady", "Steady"), Col("energy", "Energy"),
            Col("per_work", "Energy per work", "energy", csv_only=True),
            Col("watts", "Power (energy counter)", "watts"), Col("uncertainty", "±", "pct"), Col("remark", "Remark")]
    return Table("In steady state (sustain runs)", cols, rows)
