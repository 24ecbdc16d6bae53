"""The "intensity" view: the roofline that the multiply-add sweep traces on the CUDA cores.

Each record is one point of the curve: k multiply-adds per element streamed, at intensity
FLOPs / bytes. Per dtype, over a GPU's meaningful points:

- plateau: the highest FLOP/s of the sweep, and the point that set it. A curve whose best point is
  its last and no other point reaches PLATEAU_SHARE of it may still be rising (every point
  memory-bound): it has no plateau, and the view says so. Where the best point is not the last
  but no other point reaches PLATEAU_SHARE of it, the plateau is a single peak, and the view says
  that too.
- held: the lowest FLOP/s from the plateau's point to the end of the sweep, as a share of the
  plateau (100%: flat to the end; a plateau that sags at large k shows).
- measured ridge: plateau / the measured HBM ceiling, in FLOP per byte: where the two-line model
  min(plateau, intensity x HBM ceiling) bends.
- bend: I90, the intensity at which the curve first reaches 90% of the plateau (interpolated on
  log-log axes between the two points around it), against the ridge: the two-line model's sharp
  corner gives I90 / ridge = 0.9, a rounder bend more.
- spec: the spec sheet's CUDA-core rate. The database's fp32 figure is that one (the non-tensor
  rate); its fp16 and bf16 figures are tensor-core rates and it holds no non-tensor figure for
  them, so those cells stay empty rather than hold a number from elsewhere. For fp32 the best fp32
  GEMM (IEEE fp32, on the same CUDA cores) is set beside the plateau.

A point above the spec CUDA-core rate or the spec memory bandwidth by more than the analysis'
margin cannot be true: it is listed apart (FLOPs or bytes miscounted) and kept out of the curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis import roofline as rl
from analysis.records import Record
from analysis.tables import Col, Section, Table, group, show

PLATEAU_SHARE = 0.9
# Dtypes whose spec figure (analysis.specs: Spec.flops) is the CUDA cores' own rate: the fp32 figure
# is the non-tensor one; the 16-bit figures are tensor-core rates, no ceiling for this kernel.
CUDA_CORE_SPEC = ("fp32",)


@dataclass
class Curve:
    """One dtype's points and what they say about the CUDA cores' roofline."""
    dtype: str
    points: list  # meaningful records, by intensity
    peak: Record | None = None  # the highest FLOP/s
    plateau: float | None = None  # the peak's FLOP/s; None where the curve still rises at its end
    no_plateau: str = ""  # why there is none, where there is none
    single_peak: str = ""  # where the plateau is one point the others stay well below
    held: float | None = None
    held_by: Record | None = None
    i90: float | None = None
    i90_note: str = ""
    best_bw: Record | None = None  # the highest bytes/s (the sweep's own memory slope)
    impossible: list = field(default_factory=list)  # (Record, why): above a spec roof


def _sm_clock(r: Record):
    stat = (r.telemetry or {}).get("sm_clock_mhz")
    return stat.get("p50") if isinstance(stat, dict) else None


def _power(r: Record):
    stat = (r.telemetry or {}).get("power_w")
    return stat.get("p50") if isinstance(stat, dict) else None


def cuda_core_spec(a: rl.GpuAnalysis, dtype: str) -> float | None:
    return a.spec.flops(dtype) if a.spec and dtype in CUDA_CORE_SPEC else None


def _impossible(a: rl.GpuAnalysis, r: Record) -> str | None:
    margin = 1 + rl.ABOVE_ROOF_MARGIN
    peak = cuda_core_spec(a, r.dtype)
    if peak and r.flop_per_s and r.flop_per_s > peak * margin:
        return f"{r.flop_per_s / peak:.0%} of the spec CUDA-core {r.dtype} rate: FLOPs miscounted"
    bw = a.spec.mem_bw if a.spec else None
    if bw and r.bytes_per_s and r.bytes_per_s > bw * margin:
        return f"{r.bytes_per_s / bw:.0%} of the spec memory bandwidth: bytes miscounted or data cached"
    return None


def _best_by_intensity(points) -> list[tuple[float, float, Record]]:
    """(intensity, FLOP/s, record) per intensity above 0, the best record of each, by intensity."""
    best: dict[float, Record] = {}
    for r in points:
        if r.intensity and r.flop_per_s and (r.intensity not in best or r.flop_per_s > best[r.intensity].flop_per_s):
            best[r.intensity] = r
    return [(i, best[i].flop_per_s, best[i]) for i in sorted(best)]


def _interpolate(lo: tuple, hi: tuple, target: float) -> float:
    """The intensity where the straight log-log line from lo to hi reaches `target` FLOP/s."""
    (i0, f0, _), (i1, f1, _) = lo, hi
    t = (math.log(target) - math.log(f0)) / (math.log(f1) - math.log(f0))
    return math.exp(math.log(i0) + t * (math.log(i1) - math.log(i0)))


def curve(a: rl.GpuAnalysis, dtype: str, recs) -> Curve:
    c = Curve(dtype, [])
    for r in sorted((r for r in recs if r.meaningful), key=lambda r: (r.intensity or 0, r.run_id)):
        why = _impossible(a, r)
        if why:
            c.impossible.append((r, why))
        else:
            c.points.append(r)
    c.best_bw = rl.best_of(c.points, "bytes_per_s")
    curve_points = _best_by_intensity(c.points)
    if not curve_points:
        c.no_plateau = "no point with FLOPs (only k = 0)" if c.points else "every point kept out"
        return c
    c.peak = max(curve_points, key=lambda p: p[1])[2]
    top = c.peak.flop_per_s
    reaching = [p for p in curve_points if p[1] >= PLATEAU_SHARE * top]
    if len(reaching) < 2 and c.peak is curve_points[-1][2]:
        c.no_plateau = (f"the curve still rises at its last point ({c.peak.label}): no other point reaches "
                        f"{PLATEAU_SHARE:.0%} of it, so the sweep may never have left the memory-bound slope; "
                        f"{show(top, 'flop_per_s', True)} is a lower bound of the plateau")
        return c
    c.plateau = top
    if len(reaching) < 2:
        c.single_peak = (f"a single peak at {c.peak.label}, not a held plateau: no other point reaches "
                         f"{PLATEAU_SHARE:.0%} of its {show(top, 'flop_per_s', True)}")
    at_peak = next(i for i, p in enumerate(curve_points) if p[2] is c.peak)
    low = min(curve_points[at_peak:], key=lambda p: p[1])
    c.held, c.held_by = low[1] / top, low[2]
    first = curve_points.index(reaching[0])
    if first == 0:
        c.i90_note = (f"the lowest intensity swept ({curve_points[0][0]:.3g} FLOP/B) already reaches "
                      f"{PLATEAU_SHARE:.0%}: the bend lies below it")
    else:
        c.i90 = _interpolate(curve_points[first - 1], curve_points[first], PLATEAU_SHARE * top)
    return c


SUMMARY_COLS = [
    Col("dtype", "Dtype"), Col("plateau", "Plateau", "flop_per_s"), Col("set_by", "Set by"),
    Col("held", "Held to the end", "pct"), Col("spec", "Spec CUDA-core", "flop_per_s"),
    Col("of_spec", "Plateau/spec", "pct"), Col("ridge", "Measured ridge", "flop_per_byte"),
    Col("spec_ridge", "Spec ridge", "flop_per_byte"), Col("i90", "90% of plateau at", "flop_per_byte"),
    Col("bend", "I90/ridge", "ratio"), Col("gemm", "fp32 GEMM", "flop_per_s"), Col("gemm_share", "GEMM/plateau", "pct"),
    Col("best_bw", "Sweep best", "bytes_per_s"), Col("bw_share", "Sweep best/HBM ceiling", "pct"),
    Col("conditions", "Clocks, power at the plateau")]
POINT_COLS = [
    Col("dtype", "Dtype"), Col("case", "Case"), Col("intensity", "Intensity", "flop_per_byte"),
    Col("achieved", "Achieved", "flop_per_s"), Col("achieved_bw", "Achieved", "bytes_per_s"),
    Col("model", "Two-line model", "flop_per_s"), Col("of_model", "Achieved/model", "ratio"),
    Col("of_plateau", "Of plateau", "pct"), Col("of_hbm", "Bytes/HBM", "pct"), Col("sm_clock", "SM clock", "mhz"),
    Col("power", "Power", "watts")]


def _summary_row(a: rl.GpuAnalysis, c: Curve, hbm: float | None, gemm) -> list:
    spec = cuda_core_spec(a, c.dtype)
    ridge = c.plateau / hbm if c.plateau and hbm else None
    best_bw = c.best_bw.bytes_per_s if c.best_bw else None
    return [c.dtype, c.plateau, c.peak.label if c.plateau else None, c.held, spec,
            c.plateau / spec if c.plateau and spec else None, ridge,
            spec / a.spec.mem_bw if spec and a.spec.mem_bw else None, c.i90,
            c.i90 / ridge if c.i90 and ridge else None, gemm.value if gemm else None,
            gemm.value / c.plateau if gemm and c.plateau else None, best_bw,
            best_bw / hbm if best_bw and hbm else None, rl.telemetry_text(c.peak) if c.plateau else None]


def _point_rows(c: Curve, hbm: float | None) -> list[list]:
    rows = []
    for r in c.points:
        model = min(c.plateau, r.intensity * hbm) if c.plateau and hbm and r.flops else None
        rows.append([c.dtype, r.label, r.intensity, r.flop_per_s, r.bytes_per_s, model,
                     r.flop_per_s / model if model and r.flop_per_s else None,
                     r.flop_per_s / c.plateau if c.plateau and r.flop_per_s else None,
                     r.bytes_per_s / hbm if hbm and r.bytes_per_s else None, _sm_clock(r), _power(r)])
    return rows


def _curve_notes(c: Curve, gemm) -> list[str]:
    notes = [f"{c.dtype}: no plateau: {c.no_plateau}." if c.no_plateau else "",
             f"{c.dtype}: {c.single_peak}." if c.single_peak else "",
             f"{c.dtype}: {c.i90_note}." if c.i90_note else ""]
    if c.held is not None and c.held_by is not c.peak:
        notes.append(f"{c.dtype}: the plateau ({c.peak.label}) falls to {c.held:.1%} of itself at {c.held_by.label}.")
    notes += [f"{c.dtype}: {r.label} kept out: {why}." for r, why in c.impossible]
    if gemm and c.plateau:
        why = (": a GEMM's multiply-adds share the instruction issue slots with its shared-memory loads and loop "
               "bookkeeping, where this sweep issues multiply-adds alone" if gemm.value < c.plateau else "")
        notes.append(f"{c.dtype}: the best fp32 GEMM ({gemm.set_by}, {rl.shape_text(gemm.record)}) reaches "
                     f"{gemm.value / c.plateau:.1%} of the CUDA-core plateau{why}. GEMM while set: "
                     f"{rl.telemetry_text(gemm.record)}.")
    return [n for n in notes if n]


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    title = f"{a.label}: arithmetic-intensity sweep (CUDA cores)"
    by_dtype = group([r for r in recs if r.meaningful], lambda r: r.dtype)
    if not by_dtype:
        return [Section(title, notes=[f"No meaningful intensity measurement among {len(recs)} record(s) "
                                      f"(interpreter timings prove correctness, never speed): no curve."])]
    curves = [curve(a, d, by_dtype[d]) for d in sorted(by_dtype, key=rl.dtype_rank)]
    hbm = a.hbm.value if a.hbm else None
    # The fp32 GEMM ceiling is IEEE fp32 on the same CUDA cores; the 16-bit ones are tensor-core rates.
    gemms = {d: a.compute.get(d) for d in CUDA_CORE_SPEC}
    summary = [_summary_row(a, c, hbm, gemms.get(c.dtype)) for c in curves]
    points = [row for c in curves for row in _point_rows(c, hbm)]
    notes = [n for c in curves for n in _curve_notes(c, gemms.get(c.dtype))]
    if hbm is None:
        notes.append("No HBM ceiling measured (no streaming case far beyond L2): the ridge, the bend against it "
                     "and the two-line model cannot be placed.")
    no_spec = "/".join(c.dtype for c in curves if c.dtype not in CUDA_CORE_SPEC)
    if no_spec:
        notes.append(f"Spec CUDA-core: the spec database's {no_spec} figures are tensor-core rates and it holds no "
                     f"non-tensor {no_spec} figure, so there is no spec plateau or ridge for them.")
    notes += [
        f"Plateau: the highest FLOP/s of the dtype's sweep (none where the curve still rises at its last point; a "
        f"single peak where no other point reaches {PLATEAU_SHARE:.0%} of it). Held to the end: the lowest FLOP/s "
        f"from the plateau's point to the end of the sweep, as a share of the plateau.",
        "Measured ridge: plateau / measured HBM ceiling; spec ridge: spec CUDA-core rate / spec bandwidth. "
        f"90% of plateau at (I90): where the curve first reaches {PLATEAU_SHARE:.0%} of the plateau, "
        "interpolated on log-log axes between its two neighbouring points; the two-line model's sharp corner "
        "has I90/ridge = 0.9, a rounder bend more.",
        "Points: intensity = FLOPs / bytes (x read once, y written once); two-line model = min(plateau, "
        "intensity x HBM ceiling); Bytes/HBM = the point's bytes/s against the measured HBM ceiling.",
    ]
    tables = [Table("Plateau, ridge and bend per dtype", SUMMARY_COLS, summary)]
    if points:
        tables.append(Table("Points", POINT_COLS, points))
    return [Section(title, tables, notes)]
