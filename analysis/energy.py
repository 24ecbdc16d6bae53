"""The report's energy table: what a byte, a FLOP and a token cost, from the records' `energy`.

Each record's `energy` comes from NVML's total-energy counter over its timed window
(suite.telemetry.counter_energy): {"joules_per_call", "watts", "uncertainty",
"window_s", "counter_resolution_s", "min_window_s", ...}, or {"not_measured": why}.
Beside each measured ceiling this table puts the energy of the measurement that set
it: picojoules per byte for the memory ceilings, picojoules per FLOP for each dtype's
compute ceiling; and for each decode step, tokens per joule. Nothing is estimated
from power readings: a record without a counter figure says why.
"""
from __future__ import annotations

import math

from analysis import roofline as rl
from analysis.errors import AnalysisError
from analysis.tables import Col, Section, Table, natural

PER_WORK = {"flop_per_s": "pJ/FLOP", "bytes_per_s": "pJ/byte", "tokens_per_s": "tokens/J"}


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
    """Per-work figure, watts, +-, window, joules per call (CSV) and remark of one record."""
    e = check(record) if record is not None else None
    if record is None or e is None or "not_measured" in e:
        return [None, None, None, None, None, why_not(record) if record is not None else ""]
    return [per_work(e, unit, work), e["watts"], e.get("uncertainty"), e.get("window_s"), e["joules_per_call"], ""]


def _energy_cols(per: str, key: str) -> list[Col]:
    return [Col(key, per, "energy"), Col("watts", "Power (energy counter)", "watts"), Col("uncertainty", "±", "pct"),
            Col("window", "Window", "seconds"), Col("joules_per_call", "J/call", "energy", csv_only=True),
            Col("remark", "Remark")]


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
        "Energy from NVML's total-energy counter over each record's timed window, never from power readings: the "
        "readings before and after each timed interval bracket its energy, the figure is the bracket's middle and "
        f"± its half-width; a bracket wider than ±{_median_of(a.records, 'max_uncertainty', 0.05):.0%} is reported "
        "as not measured, with the bracket.",
        "pJ/byte: joules per call over the bytes one call moves; pJ/FLOP: over its FLOPs; tokens/J: a decode step's "
        "batch over its joules per call. Each ceiling's row is the energy of the measurement that set it; Power is "
        "the counter's joules over the window's seconds.",
    ]
    resolution, window = _median_of(a.records, "counter_resolution_s"), _median_of(a.records, "min_window_s")
    if resolution is not None and window is not None:
        notes.append(f"The counter stepped every {1e3 * resolution:.1f} ms (median over the records that read it): "
                     f"a single window shorter than about {window:.2f} s cannot be measured that closely.")
    if not tables:
        notes.insert(0, "No measured ceiling or decode step on this GPU to put an energy figure beside.")
    elif not any(measured(r) for r in a.records if r.sustain is None):
        # Nothing the tables would show is measured: one line says why instead of a row per figure.
        sustained = sum(1 for r in a.records if r.sustain is not None)
        tables = []
        notes.insert(0, "No sweep record of this GPU has an energy figure: each implementation's timed window is too "
                        "short for the counter's steps (the records say by how much)"
                        + (f"; the sustain runs' steady energy is in their section ({sustained} run(s))." if sustained
                           else "; a sustain run measures it (python -m suite sustain)."))
    return [Section(f"{a.label}: energy", tables, notes)]
