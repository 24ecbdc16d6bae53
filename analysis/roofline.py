"""Measured ceilings and the empirical roofline, from records.

For each GPU in a results file:

- HBM ceiling: the best verified, meaningful streaming bytes/s among cases
  whose working set (record.bytes) is at least HBM_FACTOR x the L2 size, so
  that the cache cannot serve it.
- L2 plateau: the best such figure among working sets of at most
  L2_FRACTION x L2, which stay resident in the cache.
- Compute ceiling per dtype: the best meaningful GEMM FLOP/s of that dtype,
  Triton or vendor.
- Ridge point per dtype: compute ceiling / HBM ceiling (FLOP per byte), and
  the same from the spec sheet.

A measurement above what the spec sheet allows (beyond ABOVE_ROOF_MARGIN)
cannot be true: it is flagged as a counting or caching bug and kept out of the
ceilings. Every other case (attention, decode, GEMM, ...) is then placed on
the roofline: intensity = FLOPs / bytes it really moves, attainable =
min(compute roof, intensity x memory roof), where the memory roof is the L2
plateau for working sets that fit in L2 (unless the runner rotated inputs past
L2, see `rotated`) and the HBM ceiling otherwise. A case above its attainable
roof is flagged the same way, not reported.

Interpreter timings, failed and skipped records never enter a ceiling
(Record.meaningful).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone

from analysis import specs as specdb
from analysis.errors import AnalysisError
from analysis.records import Record
from analysis.tables import fmt_bytes

HBM_FACTOR = 8.0  # working set >= 8 x L2: the HBM ceiling is read only there
L2_FRACTION = 0.5  # working set <= L2 / 2: the L2 plateau is read only there
ABOVE_ROOF_MARGIN = 0.03  # more than 3% above a roof is a counting or caching bug, not a record
OUTLIER_MARGIN = 0.05  # a GPU more than 5% below its node's median ceiling is flagged

DTYPE_ORDER = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")
MEMORY_CEILINGS = ("HBM bandwidth", "L2 plateau")


def dtype_rank(dtype: str) -> tuple:
    return (DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER), dtype)


# ---------------------------------------------------------------- input checks

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_records(records, what: str = "records") -> None:
    """Raise AnalysisError (one line naming the record) on input the analysis cannot trust."""
    if not isinstance(records, (list, tuple)):
        raise AnalysisError(f"{what}: expected a list of analysis.records.Record, got {type(records).__name__}")
    for i, r in enumerate(records):
        if not isinstance(r, Record):
            raise AnalysisError(f"{what}[{i}] is a {type(r).__name__}, not an analysis.records.Record")
        where = f"{what}[{i}] ({r.workload} {r.label} {r.dtype} {r.impl})"
        if not isinstance(r.params, dict) or not isinstance(r.env, dict):
            raise AnalysisError(f"{where}: params and env must be JSON objects")
        if not isinstance(r.env.get("gpu") or {}, dict):
            raise AnalysisError(f"{where}: env.gpu must be a JSON object")
        for name in ("flops", "bytes"):
            v = getattr(r, name)
            if not _is_number(v) or v < 0:
                raise AnalysisError(f"{where}: {name} is {v!r}, not a non-negative number")
        if r.moved_bytes is not None and (not _is_number(r.moved_bytes) or r.moved_bytes < 0):
            raise AnalysisError(f"{where}: moved_bytes is {r.moved_bytes!r}, not a non-negative number")
        for name in ("time_s", "timing", "telemetry", "verify", "config"):
            v = getattr(r, name)
            if v is not None and not isinstance(v, dict):
                raise AnalysisError(f"{where}: {name} must be a JSON object or null, got {type(v).__name__}")
        if r.time_s is not None:
            p50 = r.time_s.get("p50")
            if not _is_number(p50) or p50 <= 0:
                raise AnalysisError(f"{where}: time_s.p50 is {p50!r}, not a positive number of seconds")


# ---------------------------------------------------------------- GPU identity and conditions

def gpu_of(r: Record) -> dict:
    return r.env.get("gpu") or {}


def gpu_label(r: Record) -> str:
    gpu = gpu_of(r)
    name = (gpu.get("name") or "unknown GPU").replace("NVIDIA ", "")
    index = f" #{gpu['index']}" if gpu.get("index") is not None else ""
    return f"{name}{index} on {r.env.get('host') or '?'}"


def by_gpu(records) -> dict[str, list[Record]]:
    """Records grouped by the GPU that measured them, ordered by host then device index."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r.gpu_key, []).append(r)

    def order(item):
        r = item[1][0]
        index = gpu_of(r).get("index")
        return (str(r.env.get("host") or ""), index if isinstance(index, int) else 1 << 30, item[0])

    return dict(sorted(groups.items(), key=order))


def select_gpu(records, which) -> list[Record]:
    """The records of one GPU of a results file: `which` is a device index, "host:index" or a UUID.

    For comparing the GPUs of one file with each other (`compare A.jsonl A.jsonl`
    with a GPU chosen per side).
    """
    groups = by_gpu(records)
    text = str(which)
    hits = [rs for key, rs in groups.items()
            if text in (key, str(gpu_of(rs[0]).get("index")), f"{rs[0].env.get('host')}:{gpu_of(rs[0]).get('index')}")]
    if len(hits) != 1:
        choices = "; ".join(f"{rs[0].env.get('host')}:{gpu_of(rs[0]).get('index')} ({key})"
                            for key, rs in groups.items())
        problem = "matches several GPUs" if hits else "matches no GPU"
        raise AnalysisError(f"GPU {text!r} {problem} in these records; choose one of: {choices}")
    return hits[0]


def _p50(telemetry: dict | None, name: str):
    stat = (telemetry or {}).get(name)
    if isinstance(stat, dict):
        return stat.get("p50")
    return stat if _is_number(stat) else None


def clock_reasons(telemetry: dict | None) -> list[str]:
    """The clock-event reasons NVML reported in `telemetry` (the GPU idling is not one)."""
    return [x for x in (telemetry or {}).get("throttle") or [] if x != "gpu_idle"]


def throttled_text(r: Record) -> str:
    """Whether a clock limit held a measurement: NVML's reasons during it, and the GPU's settings."""
    t = r.telemetry
    reasons = clock_reasons(t)
    text = ("yes: " + ", ".join(reasons) if reasons else "no") if t else "unknown: no telemetry"
    g = gpu_of(r)
    settings = [name for name, key in (("clocks locked", "clocks_locked"),
                                       ("application clocks set", "applications_clocks_set")) if g.get(key)]
    if g.get("power_limit_below_default"):
        settings.append(f"power limit below its default ({g.get('power_limit_w')} W < "
                        f"{g.get('default_power_limit_w')} W)")
    return "; ".join([text, *settings])


def telemetry_text(r: Record | None) -> str:
    """Clocks, power and throttle reasons NVML saw while this record was measured."""
    t = r.telemetry if r is not None else None
    if not t:
        return "no telemetry"
    parts = []
    for name, fmt in (("sm_clock_mhz", "SM {:.0f} MHz"), ("mem_clock_mhz", "mem {:.0f} MHz"),
                      ("power_w", "{:.0f} W"), ("temp_c", "{:.0f} C")):
        v = _p50(t, name)
        if _is_number(v):
            parts.append(fmt.format(v))
    throttle = t.get("throttle") or []
    parts.append("throttle: " + (", ".join(throttle) if throttle else "none"))
    return ", ".join(parts)


def shape_text(r: Record) -> str:
    p = r.params
    if all(k in p for k in ("M", "N", "K")):
        return f"{p['M']}x{p['N']}x{p['K']}"
    return r.label


# ---------------------------------------------------------------- ceilings

@dataclass
class Ceiling:
    name: str  # "HBM bandwidth", "L2 plateau", "compute bf16"
    kind: str  # "bytes_per_s" | "flop_per_s"
    value: float
    record: Record  # the measurement that set it
    spec: float | None  # the spec sheet's figure, when there is one
    dtype: str | None = None
    triton: Record | None = None  # best non-vendor record (compute ceilings)
    vendor: Record | None = None  # best vendor record (compute ceilings)
    # Every meaningful measurement of the same problem (dtype, implementation, FLOPs and bytes)
    # in the run that set the ceiling: one problem measured in several workloads gives a range.
    repeats: list = field(default_factory=list)

    @property
    def repeat_range(self) -> tuple[float, float] | None:
        """(lowest, highest) figure over the repeats, when the problem was measured more than once."""
        if len(self.repeats) < 2:
            return None
        values = [getattr(r, self.kind) for r in self.repeats]
        return min(values), max(values)

    @property
    def of_spec(self) -> float | None:
        return self.value / self.spec if self.spec else None

    @property
    def set_by(self) -> str:
        return f"{'vendor' if self.record.vendor else 'Triton'} ({self.record.impl})"


def regime(working_set: float, l2_bytes: float | None) -> str | None:
    """Where a streaming working set lives: 'L2', 'HBM' or 'transition' (None if L2 is unknown)."""
    if not l2_bytes or not working_set:
        return None
    if working_set >= HBM_FACTOR * l2_bytes:
        return "HBM"
    if working_set <= L2_FRACTION * l2_bytes:
        return "L2"
    return "transition"


def rotated(r: Record) -> bool:
    """Whether the runner rotated several input sets past L2, so that a small case still reads HBM.

    The runner states it in timing["input_sets"] (> 1) or timing["rotate_past_l2"] (> 0).
    """
    t = r.timing or {}
    sets, factor = t.get("input_sets", 1), t.get("rotate_past_l2", 0)
    return (_is_number(sets) and sets > 1) or (_is_number(factor) and factor > 0)


def counted_bytes(r: Record) -> float:
    """Bytes the implementation really moves (naive attention's round trips), else the minimum."""
    return r.moved_bytes if r.moved_bytes is not None else r.bytes


def predicted_time(flops: float, nbytes: float, flop_rate: float | None, bandwidth: float | None) -> float | None:
    """max(flops / flop_rate, bytes / bandwidth): the roofline's time; None when a needed rate is unknown."""
    if (flops and not flop_rate) or (nbytes and not bandwidth):
        return None
    terms = ([flops / flop_rate] if flops else []) + ([nbytes / bandwidth] if nbytes else [])
    return max(terms) if terms else None


@dataclass
class Placement:
    record: Record
    intensity: float  # FLOP per byte really moved
    achieved: float  # FLOP/s
    achieved_bw: float  # bytes really moved per second
    memory_roof: str  # "HBM" or "L2"
    binding: str | None  # "compute" | "memory (HBM)" | "memory (L2)" | None when no roof is known
    attainable: float | None
    of_measured: float | None
    spec_binding: str | None
    spec_attainable: float | None
    of_spec: float | None
    problem: str | None = None  # why it is flagged, when it sits above a roof


@dataclass
class GpuAnalysis:
    key: str
    label: str
    gpu: dict
    records: list
    spec: specdb.Spec | None
    spec_how: str  # how the spec entry was chosen, or why there is none
    l2_bytes: float | None
    hbm: Ceiling | None = None
    l2: Ceiling | None = None
    compute: dict = field(default_factory=dict)  # dtype -> Ceiling
    placements: list = field(default_factory=list)
    flagged: list = field(default_factory=list)  # (Record, reason): above a roof the hardware cannot beat
    unverified: list = field(default_factory=list)  # (Record, problem): marked ok, but its verify fields fail

    @property
    def excluded(self) -> set[int]:
        """ids of the records no table, ceiling or comparison may use (listed apart instead)."""
        return {id(r) for r, _ in self.flagged} | {id(r) for r, _ in self.unverified}

    @property
    def host(self) -> str:
        return str(self.records[0].env.get("host") or "?")

    def ceilings(self) -> list[Ceiling]:
        mem = [c for c in (self.hbm, self.l2) if c is not None]
        return mem + [self.compute[d] for d in sorted(self.compute, key=dtype_rank)]

    def ceiling(self, name: str) -> Ceiling | None:
        return next((c for c in self.ceilings() if c.name == name), None)

    def ceiling_name_of(self, run: Record) -> str | None:
        """The ceiling a sustain run (or any record) of a ceiling-setting case speaks for: 'HBM
        bandwidth' for a memory-roof case whose working set is past L2, 'compute <dtype>' for a
        compute-roof case; None otherwise (an L2-resident stream says nothing of HBM)."""
        if run.roof == "memory" and regime(run.bytes, self.l2_bytes) == "HBM":
            return "HBM bandwidth"
        return f"compute {run.dtype}" if run.roof == "compute" else None

    def ridge(self, dtype: str) -> tuple[float | None, float | None]:
        """(measured, spec) ridge points in FLOP/byte for a dtype."""
        c = self.compute.get(dtype)
        measured = c.value / self.hbm.value if c and self.hbm else None
        s = self.spec
        spec = s.flops(dtype) / s.mem_bw if s and s.flops(dtype) and s.mem_bw else None
        return measured, spec

    def memory_roof(self, r: Record) -> tuple[str, float | None]:
        """The measured memory roof a case sits under: L2 if its working set stays in L2, else HBM."""
        if self.l2_bytes and r.bytes <= self.l2_bytes and not rotated(r):
            return "L2", self.l2.value if self.l2 else None
        return "HBM", self.hbm.value if self.hbm else None


def resolve_spec(gpu: dict, spec_name: str | None) -> tuple[specdb.Spec | None, str]:
    if spec_name is not None:
        s = specdb.get(spec_name)
        return s, f"{s.key}, chosen with --spec"
    name, mem = gpu.get("name") or "", gpu.get("mem_bytes")
    s = specdb.match(name, mem if _is_number(mem) else None)
    if s is not None:
        return s, f"{s.key}, matched from the reported name {name!r} and {fmt_bytes(mem)} of memory"
    memory = f" ({fmt_bytes(mem)})" if _is_number(mem) else ""
    return None, (f"no spec entry matches {name or 'an unnamed GPU'!r}{memory}: spec columns are left empty; "
                  f"choose one with --spec NAME ({', '.join(specdb.names())})")


def best_of(records, figure) -> Record | None:
    scored = [r for r in records if getattr(r, figure)]
    return max(scored, key=lambda r: getattr(r, figure)) if scored else None


def analyze(records: list[Record], spec_name: str | None = None) -> GpuAnalysis:
    """Ceilings, ridge points and roofline placement for the records of ONE GPU."""
    if not records:
        raise AnalysisError("no records to analyse")
    first = records[0]
    gpu = gpu_of(first)
    spec, how = resolve_spec(gpu, spec_name)
    l2 = gpu.get("l2_bytes") if _is_number(gpu.get("l2_bytes")) and gpu.get("l2_bytes") > 0 else None
    if l2 is None and spec is not None:
        l2 = spec.l2_bytes
    a = GpuAnalysis(first.gpu_key, gpu_label(first), gpu, list(records), spec, how, l2)
    margin = 1 + ABOVE_ROOF_MARGIN
    # Sweep measurements only: a sustain run's steady state and a profiled call under the counters
    # have views of their own, and set no ceiling and take no place on the roofline.
    meaningful = [r for r in records if r.meaningful and r.sustain is None and r.counters is None]
    a.unverified = [(r, r.verify_problem) for r in records if r.status == "ok" and r.verify_problem]

    # Streaming and GEMM figures beyond the spec sheet are bugs: flag them, keep them out of ceilings.
    stream = {"HBM": [], "L2": []}
    for r in (r for r in meaningful if r.roof == "memory" and r.bytes_per_s):
        where = regime(r.bytes, l2)
        if where == "HBM" and spec and spec.mem_bw and r.bytes_per_s > spec.mem_bw * margin:
            a.flagged.append((r, f"{r.bytes_per_s / spec.mem_bw:.0%} of the spec memory bandwidth with a working "
                                 f"set far beyond L2: bytes miscounted or data cached"))
        elif where in stream:
            stream[where].append(r)
    gemm: dict[str, list[Record]] = {}
    for r in (r for r in meaningful if r.roof == "compute" and r.flop_per_s):
        peak = spec.flops(r.dtype) if spec else None
        if peak and r.flop_per_s > peak * margin:
            a.flagged.append((r, f"{r.flop_per_s / peak:.0%} of the spec {r.dtype} peak: FLOPs miscounted"))
        else:
            gemm.setdefault(r.dtype, []).append(r)

    for name, where in (("HBM bandwidth", "HBM"), ("L2 plateau", "L2")):
        best = best_of(stream[where], "bytes_per_s")
        if best:
            spec_bw = spec.mem_bw if spec and where == "HBM" else None  # no spec L2 bandwidth
            ceiling = Ceiling(name, "bytes_per_s", best.bytes_per_s, best, spec_bw,
                              repeats=_repeats(best, stream[where]))
            setattr(a, "hbm" if where == "HBM" else "l2", ceiling)
    for dtype, rs in gemm.items():
        best = best_of(rs, "flop_per_s")
        a.compute[dtype] = Ceiling(f"compute {dtype}", "flop_per_s", best.flop_per_s, best,
                                   spec.flops(dtype) if spec else None, dtype,
                                   triton=best_of([r for r in rs if not r.vendor], "flop_per_s"),
                                   vendor=best_of([r for r in rs if r.vendor], "flop_per_s"),
                                   repeats=_repeats(best, rs))

    already = {id(r) for r, _ in a.flagged}
    for r in meaningful:
        if r.roof or r.view == "collective" or not r.flops or not counted_bytes(r) or id(r) in already:
            continue
        p = place(a, r)
        if p.problem:
            a.flagged.append((r, p.problem))
        else:
            a.placements.append(p)
    return a


def _repeats(best: Record, candidates) -> list[Record]:
    """The measurements of `best`'s problem in its run: same dtype, implementation, FLOPs and bytes."""
    same = (best.run_id, best.dtype, best.impl, best.flops, best.bytes)
    return [r for r in candidates if (r.run_id, r.dtype, r.impl, r.flops, r.bytes) == same]


def _min_roof(roofs):
    roofs = [(v, name) for v, name in roofs if v]
    return min(roofs) if roofs else (None, None)


def place(a: GpuAnalysis, r: Record) -> Placement:
    """Put one measured case on the roofline of its GPU (measured roofs and spec roofs)."""
    nbytes = counted_bytes(r)
    intensity = r.flops / nbytes
    achieved = r.flop_per_s
    where, mem = a.memory_roof(r)
    compute = a.compute.get(r.dtype)
    attainable, binding = _min_roof([(compute.value if compute else None, "compute"),
                                     (intensity * mem if mem else None, f"memory ({where})")])
    if compute is None and binding is not None:
        binding = None  # only the memory roof is known: which roof binds cannot be said
    s = a.spec
    spec_attainable = spec_binding = None
    if s and where == "HBM":  # the spec sheet has no L2 bandwidth: no spec placement for L2-served cases
        spec_attainable, spec_binding = _min_roof([(s.flops(r.dtype), "compute"),
                                                   (intensity * s.mem_bw if s.mem_bw else None, "memory (HBM)")])
        if s.flops(r.dtype) is None and spec_binding is not None:
            spec_binding, spec_attainable = None, None
    p = Placement(r, intensity, achieved, nbytes / r.seconds, where, binding,
                  attainable if binding else None, achieved / attainable if binding and attainable else None,
                  spec_binding, spec_attainable, achieved / spec_attainable if spec_attainable else None)
    margin = 1 + ABOVE_ROOF_MARGIN
    if mem and p.achieved_bw > mem * margin:
        p.problem = (f"moves {p.achieved_bw / mem:.0%} of the measured {where} bandwidth: "
                     f"bytes miscounted or data cached")
    elif p.of_measured and p.of_measured > margin:
        p.problem = f"{p.of_measured:.0%} of its measured {binding} roof: FLOPs or bytes miscounted, or data cached"
    elif p.of_spec and p.of_spec > margin:
        p.problem = f"{p.of_spec:.0%} of its spec {spec_binding} roof: FLOPs or bytes miscounted, or data cached"
    return p


# ---------------------------------------------------------------- several GPUs

@dataclass
class Outlier:
    analysis: GpuAnalysis
    ceiling: Ceiling
    median: float

    @property
    def shortfall(self) -> float:
        return 1 - self.ceiling.value / self.median


def outliers(analyses: list[GpuAnalysis]) -> list[Outlier]:
    """GPUs whose ceiling is more than OUTLIER_MARGIN below the median of the GPUs of their node."""
    found = []
    hosts: dict[str, list[GpuAnalysis]] = {}
    for a in analyses:
        hosts.setdefault(a.host, []).append(a)
    for node in hosts.values():
        names = {c.name for a in node for c in a.ceilings()}
        for name in sorted(names):
            have = [(a, a.ceiling(name)) for a in node if a.ceiling(name)]
            if len(have) < 2:
                continue
            median = statistics.median(c.value for _, c in have)
            found += [Outlier(a, c, median) for a, c in have if c.value < median * (1 - OUTLIER_MARGIN)]
    return found


def node_medians(analyses: list[GpuAnalysis]) -> dict[str, dict[str, float]]:
    """host -> ceiling name -> median over the GPUs of that host."""
    out: dict[str, dict[str, float]] = {}
    hosts: dict[str, list[GpuAnalysis]] = {}
    for a in analyses:
        hosts.setdefault(a.host, []).append(a)
    for host, node in hosts.items():
        names = {c.name for a in node for c in a.ceilings()}
        out[host] = {n: statistics.median(a.ceiling(n).value for a in node if a.ceiling(n)) for n in names}
    return out


# ---------------------------------------------------------------- assumptions

def distinct(records, getter) -> str:
    seen = []
    for r in records:
        v = getter(r)
        if v not in (None, "") and v not in seen:
            seen.append(v)
    return " / ".join(str(v) for v in seen) if seen else "?"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def telemetry_range(records) -> str:
    """Clocks, power, temperature and throttle reasons over all measurements of a GPU."""
    parts = []
    for name, label, unit in (("sm_clock_mhz", "SM clock", "MHz"), ("mem_clock_mhz", "memory clock", "MHz"),
                              ("power_w", "power", "W"), ("temp_c", "temperature", "C")):
        lows, mids, highs = [], [], []
        for r in records:
            stat = (r.telemetry or {}).get(name)
            if isinstance(stat, dict):
                lows += [stat["min"]] if _is_number(stat.get("min")) else []
                mids += [stat["p50"]] if _is_number(stat.get("p50")) else []
                highs += [stat["max"]] if _is_number(stat.get("max")) else []
        if mids:
            parts.append(f"{label} {min(lows or mids):.0f}-{max(highs or mids):.0f} {unit} "
                         f"(median {statistics.median(mids):.0f})")
    counts: dict[str, int] = {}
    for r in records:
        for reason in (r.telemetry or {}).get("throttle") or []:
            counts[reason] = counts.get(reason, 0) + 1
    with_telemetry = sum(1 for r in records if r.telemetry)
    if not with_telemetry:
        return "no NVML telemetry in these records"
    throttle = ", ".join(f"{k} in {v}" for k, v in sorted(counts.items())) or "none"
    return f"{'; '.join(parts)}; throttle reasons: {throttle} (of {with_telemetry} measurements with telemetry)"


def assumptions(a: GpuAnalysis) -> list[str]:
    """The conditions the tables of one GPU rest on, one sentence each."""
    rs, g = a.records, a.gpu
    if g.get("sm_count") is None and any(r.env.get("interpret") for r in rs):
        gpu_line = (f"GPU: none; {g.get('name') or 'the CPU'} on host {a.host}: the interpreter proves "
                    f"correctness, never speed.")
    else:
        gpu_line = (f"GPU: {g.get('name', '?')} (index {g.get('index', '?')}, UUID {g.get('uuid', '?')}, host "
                    f"{a.host}): {g.get('sm_count', '?')} SMs, L2 {fmt_bytes(g.get('l2_bytes'))}, memory "
                    f"{fmt_bytes(g.get('mem_bytes'))}, max clocks SM {g.get('max_sm_clock_mhz', '?')} / memory "
                    f"{g.get('max_mem_clock_mhz', '?')} MHz, power limit {g.get('power_limit_w', '?')} W (default "
                    f"{g.get('default_power_limit_w', '?')} W), compute capability "
                    f"{'.'.join(map(str, g.get('cc') or [])) or '?'}.")
    lines = [
        gpu_line,
        f"Spec sheet: {a.spec_how}.",
        "Software: " + (", ".join(
            f"{k} {v}" for k, v in ((k, distinct(rs, lambda r, k=k: r.env.get(k))) for k in
                                    ("driver", "cuda", "cudnn", "torch", "triton", "python", "numpy", "platform"))
            if v != "?") or "not recorded")
        + f"; suite {distinct(rs, lambda r: r.suite_version or r.env.get('suite_version'))}"
        + "".join(f", {label} {v}" for label, v in (
            ("git", distinct(rs, lambda r: r.env.get("git_commit"))),
            ("source digest", distinct(rs, lambda r: r.env.get("source_digest")))) if v != "?") + ".",
        f"Seen by NVML while measuring: {telemetry_range([r for r in rs if r.meaningful])}.",
    ]
    methods: dict[str, int] = {}
    starts, ends = [], []
    for r in rs:
        t = r.timing or {}
        if r.status == "ok":
            methods[t.get("method", "?")] = methods.get(t.get("method", "?"), 0) + 1
        window = t.get("window")
        if isinstance(window, (list, tuple)) and len(window) == 2 and all(map(_is_number, window)):
            starts.append(window[0])
            ends.append(window[1])
    timing = (f"Timing: {', '.join(f'{m} ({n})' for m, n in sorted(methods.items())) or 'none'}; every figure uses "
              f"the median (p50) time per call, the records keep p20/p80 and the raw samples")
    if starts:
        timing += f"; measured between {_utc(min(starts))} and {_utc(max(ends))} ({max(ends) - min(starts):.0f} s)"
    lines.append(timing + ".")
    sizes = sorted({r.bytes for r in rs if r.roof == "memory" and r.bytes})
    if sizes:
        lines.append(f"Streaming working sets {fmt_bytes(sizes[0])} to {fmt_bytes(sizes[-1])}; L2 "
                     f"{fmt_bytes(a.l2_bytes)}: HBM ceiling from working sets >= {HBM_FACTOR:g} x L2 "
                     f"({fmt_bytes(HBM_FACTOR * a.l2_bytes) if a.l2_bytes else '?'}), L2 plateau from working "
                     f"sets <= {L2_FRACTION:g} x L2; bytes = each input read once, each output written once.")
    lines.append(f"Roofline placement: intensity = FLOPs / bytes really moved; memory roof = L2 plateau for working "
                 f"sets that fit in L2, HBM ceiling otherwise; more than {ABOVE_ROOF_MARGIN:.0%} above a measured "
                 f"or spec roof is flagged as a counting or caching bug and kept out of every table.")
    failed = sum(r.status == "failed" for r in rs)
    skipped = sum(r.status == "skipped" for r in rs)
    not_meaningful = sum(r.status == "ok" and not r.meaningful for r in rs)
    lines.append(f"Records: {len(rs)} ({failed} failed, {skipped} skipped, {not_meaningful} verified but not "
                 f"meaningfully timed, e.g. interpreter runs); none of these enters a ceiling. "
                 f"Runs: {distinct(rs, lambda r: r.run_id)}.")
    return lines
