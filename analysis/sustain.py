"""Burst against steady state: what a `sustain` record's time series says.

A sustain run times one case back to back in chunks; its record holds, per chunk,
the start time, the calls made and their device time, and the median NVML
readings (SM and memory clocks, power, temperature) with the throttle reasons
seen. From that series:

- burst: the chunks that start within the first `burst_s` seconds (what a short
  benchmark sees); steady state: the chunks that start in the last half of the run;
- for each window, its throughput (work of its calls over their device time), the
  median SM clock, memory clock, power and temperature, and the dominant throttle
  reason (the one seen in most of its chunks, with that share);
- steady/burst ratios of throughput, SM clock and power;
- the time to reach steady state: the start of the first chunk from which the
  throughput, as a running median over SMOOTH_S seconds, stays within STEADY_BAND
  of the steady state's median.

Everything is recomputed from the series on reading; the summary the suite wrote
beside it is for readers of the raw file. `plot` draws throughput, SM clock and
power over time (matplotlib, imported there only).
"""
from __future__ import annotations

import bisect
import math
import statistics
from pathlib import Path

from analysis.errors import AnalysisError

SERIES = ("t_s", "host_s", "calls", "device_s", "sm_clock_mhz", "mem_clock_mhz", "power_w", "temp_c", "throttle")
READINGS = ("sm_clock_mhz", "mem_clock_mhz", "power_w", "temp_c")
UNITS = ("flop_per_s", "bytes_per_s", "tokens_per_s")
STEADY_BAND = 0.02  # within 2% of the steady median counts as settled
SMOOTH_S = 1.0  # the running median's span when finding the time to steady state
PLOT_SUFFIXES = (".png", ".svg")
_AXIS = {"flop_per_s": ("TFLOP/s", 1e-12), "bytes_per_s": ("GB/s", 1e-9), "tokens_per_s": ("tokens/s", 1.0)}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def checked(record) -> dict:
    """The record's `sustain` field, checked; AnalysisError (one line naming the record) if it is not a
    well-formed sustain series."""
    where = f"{record.workload} {record.label} {record.dtype} {record.impl}"
    s = record.sustain
    if not isinstance(s, dict):
        raise AnalysisError(f"{where}: sustain must be a JSON object, got {type(s).__name__}")
    if s.get("unit") not in UNITS:
        raise AnalysisError(f"{where}: sustain.unit is {s.get('unit')!r}, not one of {', '.join(UNITS)}")
    for name in ("work_per_call", "burst_s"):
        if not _number(s.get(name)) or s[name] <= 0:
            raise AnalysisError(f"{where}: sustain.{name} is {s.get(name)!r}, not a positive number")
    series = s.get("series") if isinstance(s.get("series"), dict) else {}
    missing = [k for k in SERIES if not isinstance(series.get(k), list)]
    if missing:
        raise AnalysisError(f"{where}: sustain.series lacks the list(s) {', '.join(missing)}")
    n = len(series["t_s"])
    if n == 0 or any(len(series[k]) != n for k in SERIES):
        raise AnalysisError(f"{where}: sustain.series lists must be non-empty and of one length "
                            f"({', '.join(f'{k} {len(series[k])}' for k in SERIES)})")
    for k in ("t_s", "host_s", "calls", "device_s"):
        bad = [v for v in series[k] if not _number(v) or v < 0 or (k in ("calls", "device_s") and v <= 0)]
        if bad:
            raise AnalysisError(f"{where}: sustain.series.{k} holds {bad[0]!r}, not a valid figure")
    for k in READINGS:
        bad = [v for v in series[k] if v is not None and not _number(v)]
        if bad:
            raise AnalysisError(f"{where}: sustain.series.{k} holds {bad[0]!r}, not a number or null")
    bad = [v for v in series["throttle"] if v is not None and not (isinstance(v, list)
                                                                   and all(isinstance(x, str) for x in v))]
    if bad:
        raise AnalysisError(f"{where}: sustain.series.throttle holds {bad[0]!r}, not a list of reasons or null")
    if any(b < a for a, b in zip(series["t_s"], series["t_s"][1:])):
        raise AnalysisError(f"{where}: sustain.series.t_s is not in time order")
    energy = s.get("energy") or {}
    if not isinstance(energy, dict):
        raise AnalysisError(f"{where}: sustain.energy must be a JSON object of windows")
    for window, e in energy.items():
        if e is None or (isinstance(e, dict) and isinstance(e.get("not_measured"), str)):
            continue
        if not (isinstance(e, dict) and all(_number(e.get(k)) and e[k] > 0 for k in ("joules_per_call", "watts"))):
            raise AnalysisError(f"{where}: sustain.energy.{window} is neither a measurement (positive joules_per_call "
                                f"and watts) nor a reason it was not measured")
    return s


def throughputs(s: dict) -> list[float]:
    """Each chunk's throughput: the work of its calls over their device time."""
    series = s["series"]
    return [s["work_per_call"] * n / d for n, d in zip(series["calls"], series["device_s"])]


def midpoints(s: dict) -> list[float]:
    """Each chunk's middle, in seconds since the run started."""
    return [t + h / 2 for t, h in zip(s["series"]["t_s"], s["series"]["host_s"])]


def run_seconds(s: dict) -> float:
    series = s["series"]
    return float(series["t_s"][-1] + series["host_s"][-1])


def windows(s: dict) -> tuple[list[int], list[int]]:
    """Indices of the burst chunks (starting within the first burst_s seconds) and of the steady-state
    chunks (starting in the last half of the run)."""
    t = s["series"]["t_s"]
    half = run_seconds(s) / 2
    return [i for i, x in enumerate(t) if x < s["burst_s"]], [i for i, x in enumerate(t) if x >= half]


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def _throttle(lists) -> dict:
    """The dominant throttle reason of a window: seen in most of its chunks (ties by name)."""
    seen = [v for v in lists if v is not None]
    if not seen:
        return {"reason": None, "share": None, "reasons": {}}
    counts: dict[str, int] = {}
    for reasons in seen:
        for r in set(reasons):
            counts[r] = counts.get(r, 0) + 1
    shares = {r: c / len(seen) for r, c in sorted(counts.items())}
    if not counts:
        return {"reason": "none", "share": None, "reasons": {}}
    top = min(counts, key=lambda r: (-counts[r], r))
    return {"reason": top, "share": shares[top], "reasons": shares}


def _window(s: dict, idx: list[int], thr: list[float]) -> dict | None:
    if not idx:
        return None
    series = s["series"]
    device = math.fsum(series["device_s"][i] for i in idx)
    work = math.fsum(thr[i] * series["device_s"][i] for i in idx)
    out = {"start_s": float(series["t_s"][idx[0]]),
           "end_s": float(series["t_s"][idx[-1]] + series["host_s"][idx[-1]]),
           "chunks": len(idx), "throughput": work / device}
    for k in READINGS:
        out[k] = _median(series[k][i] for i in idx)
    out["throttle"] = _throttle(series["throttle"][i] for i in idx)
    return out


def _ratio(a, b):
    return a / b if _number(a) and _number(b) and b else None


def time_to_steady(s: dict, thr: list[float], steady: list[int]) -> float | None:
    """The start of the first chunk from which the running median throughput (over SMOOTH_S seconds,
    centred) stays within STEADY_BAND of the steady-state median; None when the end is outside it."""
    if not steady:
        return None
    t = midpoints(s)
    ref = statistics.median(thr[i] for i in steady)
    by_time = sorted(zip(t, thr))
    mids, values = [m for m, _ in by_time], [v for _, v in by_time]
    running = [statistics.median(values[bisect.bisect_left(mids, x - SMOOTH_S / 2):
                                        bisect.bisect_right(mids, x + SMOOTH_S / 2)]) for x in t]
    inside = [abs(m / ref - 1) <= STEADY_BAND for m in running]
    if not inside[-1]:
        return None
    outside = [i for i, ok in enumerate(inside) if not ok]
    first = outside[-1] + 1 if outside else 0
    return float(s["series"]["t_s"][first])


def summarize(s: dict) -> dict:
    """Burst and steady state of a checked sustain field (see the module docstring), as JSON."""
    thr = throughputs(s)
    burst_idx, steady_idx = windows(s)
    run = run_seconds(s)
    burst, steady = _window(s, burst_idx, thr), _window(s, steady_idx, thr)
    out = {"run_s": run, "chunks": len(thr), "burst_s": s["burst_s"], "burst": burst, "steady": steady,
           "steady_vs_burst": None, "time_to_steady_s": None, "problem": None}
    if not steady_idx or (burst_idx and burst_idx[-1] >= steady_idx[0]):
        out["problem"] = (f"the run lasted {run:.3g} s, not more than twice the burst window ({s['burst_s']:g} s): "
                          f"burst and steady state overlap and are not compared")
        return out
    out["steady_vs_burst"] = {"throughput": _ratio(steady["throughput"], burst["throughput"]),
                              "sm_clock": _ratio(steady["sm_clock_mhz"], burst["sm_clock_mhz"]),
                              "power": _ratio(steady["power_w"], burst["power_w"])}
    out["time_to_steady_s"] = time_to_steady(s, thr, steady_idx)
    if out["time_to_steady_s"] is None:
        out["problem"] = (f"throughput did not settle: its last {SMOOTH_S:g} s lie more than {STEADY_BAND:.0%} "
                          f"from the steady-state median")
    return out


def analyse(record) -> dict:
    """summarize(checked(record)): the burst/steady summary of a sustain record, from its series."""
    return summarize(checked(record))


def plot(records, path) -> str:
    """Throughput, SM clock and power over time for each sustain record (one column each), the burst
    and steady windows shaded and the time to steady state marked; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise AnalysisError(f"plot file {str(path)!r} must end in {' or '.join(PLOT_SUFFIXES)}")
    recs = [r for r in records if r.status == "ok" and r.sustain is not None]
    if not recs:
        raise AnalysisError("nothing to plot: no sustain record with a time series")
    summaries = [analyse(r) for r in recs]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(recs), figsize=(9 * len(recs), 8), sharex="col", squeeze=False)
    for col, (r, summary) in enumerate(zip(recs, summaries)):
        s = r.sustain
        series = s["series"]
        t = midpoints(s)
        unit, scale = _AXIS[s["unit"]]
        gaps = lambda k: [math.nan if v is None else v for v in series[k]]  # noqa: E731  (a missing reading)
        panels = [([x * scale for x in throughputs(s)], unit, "tab:blue"),
                  (gaps("sm_clock_mhz"), "SM clock MHz", "tab:green"), (gaps("power_w"), "power W", "tab:red")]
        for ax, (y, label, colour) in zip(axes[:, col], panels):
            ax.plot(t, y, color=colour, lw=1.2, marker=".", ms=2)
            ax.set_ylim(bottom=0)  # from zero, so a drop looks as large as it is
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if summary["burst"]:
                ax.axvspan(0, min(s["burst_s"], summary["run_s"]), color="0.85", lw=0)
            if summary["steady"]:
                ax.axvspan(summary["steady"]["start_s"], summary["run_s"], color="tab:olive", alpha=0.12, lw=0)
            if summary["time_to_steady_s"] is not None:
                ax.axvline(summary["time_to_steady_s"], color="0.3", ls=":", lw=1)
        steady = summary["steady"] or {}
        reason = (steady.get("throttle") or {}).get("reason")
        settled = summary["time_to_steady_s"]
        axes[0, col].set_title(f"{r.workload} {r.label} {r.dtype} {r.impl}: burst (grey), steady state (green)"
                               + (f", steady from {settled:.1f} s (dotted)" if settled is not None else "")
                               + f"; steady throttle: {reason or 'no telemetry'}", fontsize=9)
        axes[-1, col].set_xlabel("seconds since the run started")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return str(path)
