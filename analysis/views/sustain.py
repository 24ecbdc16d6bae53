"""The "sustain" view: a case run back to back for minutes, its burst against its steady state
(throughput, clocks, power, their ratios, the dominant throttle reason, the time to settle) and
the energy of a call in steady state."""
from __future__ import annotations

from analysis import energy as en
from analysis import roofline as rl
from analysis import sustain as sus
from analysis import versus as vs
from analysis.tables import Col, Quantity, Section, Table, natural


def _throttle_text(window: dict | None) -> str | None:
    if window is None:
        return None
    t = window["throttle"]
    if t["reason"] is None:
        return "no telemetry"
    if t["reason"] == "none":
        return "none"
    return f"{t['reason']} ({t['share']:.0%} of chunks)"


def _energy_text(per: float, unit: str, e: dict) -> str:
    spread = f" (±{e['uncertainty']:.1%})" if isinstance(e.get("uncertainty"), (int, float)) else ""
    return en.text(per, unit) + spread


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    recs = sorted((r for r in recs if r.status == "ok" and r.sustain is not None),
                  key=lambda r: (r.workload, rl.dtype_rank(r.dtype), natural(r.case), r.impl, r.timestamp))
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl"),
            Col("run", "Run", "seconds"), Col("unit", "Unit", csv_only=True),
            Col("burst", "Burst"), Col("steady", "Steady"), Col("throughput_ratio", "Steady/burst", "ratio"),
            Col("burst_sm", "Burst SM", "mhz"), Col("steady_sm", "Steady SM", "mhz"),
            Col("sm_ratio", "SM steady/burst", "ratio"),
            Col("burst_power", "Burst power", "watts"), Col("steady_power", "Steady power", "watts"),
            Col("power_ratio", "Power steady/burst", "ratio"),
            Col("burst_throttle", "Burst throttle"), Col("steady_throttle", "Steady throttle"),
            Col("settle", "Time to steady", "seconds"),
            Col("steady_energy", "Steady energy"),
            Col("steady_joules_per_call", "Steady J/call", "energy", csv_only=True),
            Col("steady_energy_watts", "Steady power (energy counter)", "watts", csv_only=True),
            Col("remark", "Remark")]
    rows, bursts = [], []
    for r in recs:
        s = sus.checked(r)
        bursts += [] if s["burst_s"] in bursts else [s["burst_s"]]
        summary = sus.summarize(s)
        burst, steady, ratios = summary["burst"], summary["steady"], summary["steady_vs_burst"] or {}
        steady_e = (s.get("energy") or {}).get("steady")
        per = en.per_work(steady_e, s["unit"], s["work_per_call"])
        measured = per is not None
        remark = [summary["problem"] or ""]
        if not measured:
            why = steady_e.get("not_measured") if isinstance(steady_e, dict) else "no steady-state energy recorded"
            remark.append(f"steady energy not measured: {why}")
        if not r.meaningful:
            remark.append(vs.NOT_MEANINGFUL)
        if s.get("interrupted"):
            remark.append("interrupted before its planned length")
        rows.append([r.workload, r.label, r.dtype, r.impl, summary["run_s"], s["unit"],
                     Quantity(burst["throughput"], s["unit"]) if burst else None,
                     Quantity(steady["throughput"], s["unit"]) if steady else None, ratios.get("throughput"),
                     burst and burst["sm_clock_mhz"], steady and steady["sm_clock_mhz"], ratios.get("sm_clock"),
                     burst and burst["power_w"], steady and steady["power_w"], ratios.get("power"),
                     _throttle_text(burst), _throttle_text(steady), summary["time_to_steady_s"],
                     _energy_text(per, s["unit"], steady_e) if measured else None,
                     steady_e["joules_per_call"] if measured else None, steady_e["watts"] if measured else None,
                     "; ".join(x for x in remark if x)])
    notes = [
        "A sustain run (`python -m suite sustain`) times one verified case back to back, in chunks of a few hundred "
        "milliseconds between CUDA events, while NVML is read every few milliseconds. Burst: the chunks that start "
        f"in the run's first {' or '.join(f'{b:g}' for b in bursts) or '?'} s; steady: those that start in the last "
        "half of the run. Throughput: the work of a window's calls over their device time.",
        "SM clock and power: medians of the chunks' NVML medians (NVML's power reading is the driver's own running "
        "average, so it trails a change); throttle: the clock-event reason seen in most of the window's chunks, "
        "with that share. Time to steady: the start of the first chunk from which the "
        f"{sus.SMOOTH_S:g} s running median of the throughput stays within {sus.STEADY_BAND:.0%} of the steady "
        "median.",
        "Steady energy: NVML's energy counter over the steady window (pJ/FLOP, pJ/byte, or tokens/J for a decode "
        "step), ± the half-width of its bracket.",
    ]
    if not rows:
        notes.insert(0, "No sustain record with a time series.")
    return [Section(f"{a.label}: sustained load, burst against steady state", [Table(None, cols, rows)] if rows else [],
                    notes)]
