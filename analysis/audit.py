"""`audit`: a spec-sheet claim taken apart into the assumptions it silently makes, each checked
against the measurements, and a prediction for a GPU not measured.

"This GPU does 300 TFLOP/s and that one 200, so the first is 1.5x faster" assumes four things;
for each selected case of a results file the audit checks each against what was measured and
marks it holds / breaks / not measured, with the number it rests on:

1. compute-bound: the case's arithmetic intensity against the measured ridge, and which limit
   binds (analysis.bounds: the compute roof, the memory roof, or the launch floor);
2. the software reaches the fast path: the best implementation's share of that binding limit,
   and the spread between the implementations measured (Triton, each vendor backend);
3. data movement keeps pace: the bytes the case moves, at the measured memory roof, take no
   longer than its FLOPs at the measured compute roof; with the achieved bytes/s against the
   measured memory ceiling and against the spec;
4. sustained: the steady/burst throughput ratio of a sustain run of the same case (never
   assumed: "not measured" without one), beside the clocks, power and throttle reasons seen
   while the case was timed.

Beside them: the prediction a spec-sheet reader makes (the figure they would use and the time it
gives), the measured time, the launch overhead and the energy per unit of work where measured.

A second GPU (--vs OTHER.jsonl) adds the speed-up the two spec sheets predict beside the one
measured, with its 95% interval; a spec entry alone (--vs-spec NAME) the spec speed-up beside the
one this GPU's efficiencies predict. --predict NAME applies this GPU's measured efficiencies
(measured/spec per roof and dtype, and the sustained ratio where measured) to NAME's spec sheet:
predicted ceilings and case times, labelled as predictions, with the prediction's error where the
other GPU was measured too.

Every figure names its record in the Records section: file, line and run id. Only results files
are read; nothing here needs a GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from analysis import bounds
from analysis import energy as en
from analysis import roofline as rl
from analysis import specs as specdb
from analysis import sustain as sus
from analysis import versus as vs
from analysis.errors import AnalysisError
from analysis.records import Record, RecordError, parse
from analysis.tables import Col, Quantity, Section, Table, check_format, format_sections, natural, show

HOLDS, BREAKS, NOT_MEASURED = "holds", "breaks", "not measured"
# A sustain run whose throughput never settled: its steady/burst ratio is a number, not a verdict.
UNSETTLED = "unsettled"
# A fast path reaches its roof within the tail effects of a finite problem and the run-to-run
# spread (the roofs are themselves the best kernels measured); below this share of the binding
# limit a fifth of the time or more goes to work the roof does not count.
FAST_PATH_SHARE = 0.80
# A steady state more than this far below the burst changes a sizing: beyond the few percent
# that one run differs from the next.
SUSTAINED_RATIO = 0.95
# A claimed speed-up holds where the measured interval (or the prediction) comes within this of it.
CLAIM_TOLERANCE = 0.05
# Records that are not a workload's case: sustain series, launch-overhead probes, counter runs,
# collectives. The audit reads the first two for assumption 4 and the launch floors.
NOT_CASES = ("sustain", "overhead", "counters", "collective")

# ---------------------------------------------------------------- the default selection
#
# The cases a spec-sheet claim is usually about, chosen from whatever the file measured (by view,
# role, roof and parameters, never by workload name), in PREFERRED_DTYPE where measured, else in
# the first dtype of rl.DTYPE_ORDER measured:
# - the decode step (view "decode" with params "preset" and "batch") at batch 1 and 64: batch 1
#   is one user's latency, every weight read for one token; batch 64 a serving batch that shares
#   each weight among 64 tokens and still sits below the ridge. At each, the middle context
#   measured (the lower median): the KV cache neither negligible nor the whole cost;
# - decode attention (view "decode" with param "q_heads"): uniform lengths, grouped-query where
#   measured (how current models decode), at batch 64 (else the largest batch) and the longest
#   context there: reading the KV cache is then the whole cost, the case a bandwidth claim for
#   decoding rests on;
# - fused and naive attention (view "attention", each role): the largest-FLOP case without a
#   causal mask (its FLOPs counted are the FLOPs done) among those where every role was
#   measured, so the two compare on one problem: long sequences are where attention's FLOPs
#   (S^2) outgrow its bytes (S), the case a TFLOP/s claim for attention is about;
# - the largest GEMM (roof "compute", the most FLOPs): where a GEMM's TFLOP/s figure applies if
#   anywhere;
# - the skinny GEMM (view "gemm-skinny"): the fewest rows, then the largest weight: a decode
#   step's matrix-vector product, the extreme where the TFLOP/s figure says nothing.
PREFERRED_DTYPE = "bf16"
SKINNY_ASPECT = 64  # a GEMM of M <= min(N, K) / 64 rows: skinny (records without views of their own)
DECODE_BATCHES = (1, 64)
SERVING_BATCH = 64


@dataclass(frozen=True)
class Key:
    workload: str
    case: str
    dtype: str
    role: str


def key_of(r: Record) -> Key:
    return Key(r.workload, r.case, r.dtype, r.role)


@dataclass
class Item:
    """One audited case: a workload's case in one dtype, the implementations of one role, one run."""
    title: str  # what the selection calls it ("decode step", "fused attention", ...)
    key: Key
    label: str
    records: list  # this case's records of that role, of the run chosen

    @property
    def measured(self) -> list[Record]:
        return sorted((r for r in self.records if r.meaningful), key=lambda r: (r.seconds, r.impl))

    @property
    def best(self) -> Record | None:
        m = self.measured
        return m[0] if m else None

    @property
    def name(self) -> str:
        return f"{self.title}: {self.key.workload} {self.label} {self.key.dtype}"


# ---------------------------------------------------------------- reading, with line numbers

def load(paths) -> tuple[list[Record], dict[int, tuple[str, int]]]:
    """The records of results files, and where each lies: id(record) -> (file, line)."""
    records, where = [], {}
    for p in paths:
        path = Path(p)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise RecordError(f"{path}: cannot read ({e.strerror or e})") from None
        recs = parse(data, path)
        # parse() reads one record from every line that is not blank, in order, and refuses
        # anything else: the n-th record is the n-th non-blank line.
        lines = [n for n, line in enumerate(data.decode("utf-8").split("\n"), 1) if line.strip()]
        for r, n in zip(recs, lines):
            where[id(r)] = (str(path), n)
        records += recs
    return records, where


class Trace:
    """Numbers the records figures come from (R1, R2, ...) in the order they are cited."""

    def __init__(self, where: dict[int, tuple[str, int]]):
        self.where = where
        self.cited: dict[int, tuple[str, Record]] = {}

    def ref(self, *records) -> str:
        out = []
        for r in records:
            if r is None:
                continue
            if id(r) not in self.cited:
                self.cited[id(r)] = (f"R{len(self.cited) + 1}", r)
            name = self.cited[id(r)][0]
            if name not in out:
                out.append(name)
        return ", ".join(out)

    def section(self) -> Section:
        cols = [Col("ref", "Ref"), Col("file", "File"), Col("line", "Line", "int"), Col("run", "Run"),
                Col("workload", "Workload"), Col("case", "Case"), Col("dtype", "Dtype"), Col("impl", "Impl")]
        rows = []
        for name, r in self.cited.values():
            path, line = self.where.get(id(r), ("?", None))
            rows.append([name, path, line, r.run_id, r.workload, r.label, r.dtype, r.impl])
        return Section("Records", [Table(None, cols, rows)] if rows else [],
                       ["Each figure above names the records it comes from; here is where each lies: its results "
                        "file, the line of that file, and the run that wrote it."])


# ---------------------------------------------------------------- choosing the cases

def _one_gpu(records, which, flag: str, what: str) -> list[Record]:
    pool = [r for r in records if r.view != "collective"]
    if which is not None:
        return rl.select_gpu(pool, which)
    groups = rl.by_gpu(pool)
    if not groups:
        raise AnalysisError(f"{what} hold no GPU measurement (collectives only): nothing to audit")
    if len(groups) > 1:
        choices = "; ".join(f"{rl.gpu_label(rs[0])} ({key})" for key, rs in groups.items())
        raise AnalysisError(f"{what} hold {len(groups)} GPUs; audit one, chosen with {flag} GPU "
                            f"(a device index, host:index or UUID): {choices}")
    return next(iter(groups.values()))


def _when(r: Record) -> tuple:
    window = (r.timing or {}).get("window")
    start = window[0] if isinstance(window, (list, tuple)) and window and rl._is_number(window[0]) else -math.inf
    return (start, r.timestamp or "")


def cases(a: rl.GpuAnalysis) -> dict[Key, list[Record]]:
    """The meaningful measurements of the GPU's workload cases (flagged and unverified ones left out)."""
    out: dict[Key, list[Record]] = {}
    for r in a.records:
        if r.view not in NOT_CASES and r.meaningful and id(r) not in a.excluded:
            out.setdefault(key_of(r), []).append(r)
    return out


def item(a: rl.GpuAnalysis, title: str, key: Key, measured: list[Record]) -> Item:
    """The case's records of its latest run that measured it: a later run supersedes an earlier one
    (the code may have changed between them), and figures are never mixed across runs, so the
    implementations of one case compare within one run."""
    run = max(measured, key=_when).run_id
    recs = [r for r in a.records if key_of(r) == key and r.run_id == run and r.view not in NOT_CASES
            and id(r) not in a.excluded]
    return Item(title, key, measured[0].label, recs)


def _dtype(keys, wanted: str | None) -> str | None:
    dtypes = {k.dtype for k in keys}
    if wanted is not None:
        return wanted if wanted in dtypes else None
    if PREFERRED_DTYPE in dtypes:
        return PREFERRED_DTYPE
    return min(dtypes, key=rl.dtype_rank) if dtypes else None


def _in_dtype(keys, wanted: str | None) -> list:
    """The keys of the dtype `_dtype` picks for them."""
    d = _dtype(keys, wanted)
    return [k for k in keys if k.dtype == d]


def _lower_median(values):
    values = sorted(values)
    return values[(len(values) - 1) // 2] if values else None


def _skinny(p: dict) -> bool:
    dims = [p.get(k) for k in ("M", "N", "K")]
    return all(isinstance(d, int) and d > 0 for d in dims) and dims[0] * SKINNY_ASPECT <= min(dims[1:])


def default_selection(found: dict[Key, list[Record]], dtype: str | None) -> tuple[list[tuple[str, Key]], list[str]]:
    """(title, key) of each default case (see the rule above), and a note for each one not measured."""
    params = {k: rs[0].params for k, rs in found.items()}
    view = {k: rs[0].view for k, rs in found.items()}
    flops = {k: rs[0].flops for k, rs in found.items()}
    chosen: list[tuple[str, Key]] = []
    missing: list[str] = []

    def by_workload(keys):
        out: dict[str, list[Key]] = {}
        for k in sorted(keys, key=lambda k: (k.workload, natural(k.case), k.role)):
            out.setdefault(k.workload, []).append(k)
        return out

    def roles_of(keys, case):
        return [k for k in keys if k.case == case]

    steps = [k for k in found if view[k] == "decode" and {"preset", "batch"} <= set(params[k])]
    if not steps:
        missing.append("decode step: no record of view 'decode' with params 'preset' and 'batch'")
    for workload, keys in by_workload(steps).items():
        for preset in sorted({str(params[k]["preset"]) for k in keys}):
            of = [k for k in keys if str(params[k]["preset"]) == preset]
            d = _dtype(of, dtype)
            for batch in DECODE_BATCHES:
                at = [k for k in of if k.dtype == d and params[k]["batch"] == batch]
                if not at:
                    missing.append(f"decode step {workload} {preset} at batch {batch} in {d or dtype}: not measured")
                    continue
                context = _lower_median({params[k].get("context", 0) for k in at})
                case = next(k.case for k in at if params[k].get("context", 0) == context)
                chosen += [("decode step", k) for k in roles_of(at, case)]

    attn = [k for k in found if view[k] == "decode" and "q_heads" in params[k]]
    if not attn:
        missing.append("decode attention: no record of view 'decode' with param 'q_heads'")
    for workload, keys in by_workload(attn).items():
        of = _in_dtype(keys, dtype)
        of = [k for k in of if not params[k].get("ragged")] or of
        grouped = [k for k in of if params[k].get("kv_heads", params[k]["q_heads"]) < params[k]["q_heads"]] or of
        if not grouped:
            missing.append(f"decode attention {workload} in {dtype}: not measured")
            continue
        batches = {params[k].get("batch", 0) for k in grouped}
        batch = SERVING_BATCH if SERVING_BATCH in batches else max(batches)
        at = [k for k in grouped if params[k].get("batch", 0) == batch]
        longest = max(params[k].get("context", 0) for k in at)
        case = next(k.case for k in at if params[k].get("context", 0) == longest)
        chosen += [("decode attention", k) for k in roles_of(at, case)]

    full = [k for k in found if view[k] == "attention"]
    if not full:
        missing.append("attention: no record of view 'attention'")
    for workload, keys in by_workload(full).items():
        of = _in_dtype(keys, dtype)
        if not of:
            missing.append(f"attention {workload} in {dtype}: not measured")
            continue
        plain = [k for k in of if not params[k].get("causal")] or of
        roles = {k.role for k in of}
        shared = [k for k in plain if {x.role for x in roles_of(plain, k.case)} == roles] or plain
        case = max(shared, key=lambda k: (flops[k], natural(k.case))).case
        at = roles_of(of, case)
        chosen += [(f"{k.role} attention", k) for k in sorted(at, key=lambda k: k.role)]
        missing += [f"{role} attention {workload}: not measured at {found[at[0]][0].label}"
                    for role in sorted(roles - {k.role for k in at})]

    gemms = [k for k in found if found[k][0].roof == "compute"]
    if not gemms:
        missing.append("largest GEMM: no record of roof 'compute'")
    else:
        of = _in_dtype(gemms, dtype)
        if of:
            top = max(of, key=lambda k: (flops[k], k.workload, natural(k.case)))
            chosen += [("largest GEMM", k) for k in of if (k.workload, k.case) == (top.workload, top.case)]
        else:
            missing.append(f"largest GEMM in {dtype}: not measured")

    skinny = [k for k in found if view[k] == "gemm-skinny"]
    if not skinny:  # records older than views (schema 1) carry their family as view: their shape tells
        skinny = [k for k in found if found[k][0].roof == "compute" and _skinny(params[k])]
    if not skinny:
        missing.append(f"skinny GEMM: no record of view 'gemm-skinny' or of M <= min(N, K) / {SKINNY_ASPECT}")
    for workload, keys in by_workload(skinny).items():
        of = _in_dtype(keys, dtype)
        if not of:
            missing.append(f"skinny GEMM {workload} in {dtype}: not measured")
            continue
        top = min(of, key=lambda k: (params[k].get("M", 0), -flops[k], natural(k.case)))
        chosen += [("skinny GEMM", k) for k in roles_of(of, top.case)]
    return chosen, missing


def select(a: rl.GpuAnalysis, workloads: list[str] | None, labels: list[str] | None,
           dtype: str | None) -> tuple[list[Item], list[str]]:
    """The items to audit: the default selection, or the cases named by label or id, within the
    workloads named (the user's names, compared with each record's)."""
    found = cases(a)
    if not found:
        raise AnalysisError(f"{a.label}: no meaningful, verified measurement of a workload case to audit "
                            f"(interpreter timings prove correctness, never speed)")
    present = sorted({k.workload for k in found})
    if workloads:
        unknown = [w for w in workloads if w not in present]
        if unknown:
            raise AnalysisError(f"--workload {unknown[0]!r} has no meaningful measurement on {a.label}; "
                                f"measured: {', '.join(present)}")
        found = {k: v for k, v in found.items() if k.workload in workloads}
    if dtype is not None and not any(k.dtype == dtype for k in found):
        measured = sorted({k.dtype for k in found}, key=rl.dtype_rank)
        raise AnalysisError(f"--dtype {dtype!r} is not measured in the cases selected; measured: {', '.join(measured)}")
    missing: list[str] = []
    if labels:
        # A case the default rule would choose keeps its title; any other is named by its view.
        titles = {k: title for title, k in default_selection(found, dtype)[0]}
        picked = []
        for label in labels:
            hits = [k for k, rs in found.items() if label in (k.case, rs[0].label)]
            if not hits:
                known = sorted({rs[0].label for rs in found.values()}, key=natural)
                raise AnalysisError(f"--case {label!r} matches no case measured"
                                    + (f" in {', '.join(workloads)}" if workloads else "")
                                    + f"; cases: {', '.join(known[:40])}" + (" ..." if len(known) > 40 else ""))
            by_case: dict[tuple, list[Key]] = {}
            for k in hits:
                by_case.setdefault((k.workload, k.case), []).append(k)
            for (workload, _), keys in by_case.items():
                d = _dtype(keys, dtype)
                if d is None:
                    raise AnalysisError(f"--case {label!r} of {workload} is not measured in {dtype}; measured in "
                                        f"{', '.join(sorted({k.dtype for k in keys}, key=rl.dtype_rank))}")
                picked += [(titles.get(k, found[k][0].view), k) for k in sorted(keys, key=lambda k: k.role)
                           if k.dtype == d]
    else:
        picked, missing = default_selection(found, dtype)
        if workloads:
            have = {k.workload for _, k in picked}
            lacking = [w for w in workloads if w not in have]
            if lacking:
                raise AnalysisError(f"workload {lacking[0]!r} has no case in the default selection; name its cases "
                                    f"with --case LABEL")
            missing = [m for m in missing if any(w in m for w in workloads)]
    if not picked:
        raise AnalysisError(f"{a.label}: none of the default cases is measured ({'; '.join(missing)}); name the "
                            f"cases to audit with --case LABEL")
    seen, items = set(), []
    for title, k in picked:
        if k not in seen:
            seen.add(k)
            items.append(item(a, title, k, found[k]))
    return items, missing


# ---------------------------------------------------------------- one case on one GPU

@dataclass
class Check:
    name: str
    verdict: str | None  # HOLDS / BREAKS / UNSETTLED / NOT_MEASURED; None for the rows that only inform
    figure: object  # a Quantity, or text
    against: str
    detail: str
    records: list = field(default_factory=list)
    short: str = ""  # the verdict with its number, for the summary


@dataclass
class Assessment:
    """Everything the audit says about one item on one GPU."""
    item: Item
    analysis: rl.GpuAnalysis
    best: Record | None
    bound: bounds.Bound | None = None
    binding: str | None = None  # "compute" | "memory (HBM)" | "memory (L2)" | "launch floor"
    t_bind: float | None = None
    limit_record: Record | None = None  # the ceiling (or floor) record behind the binding limit
    spec_figure: str = ""
    spec_time: float | None = None
    sustain: tuple | None = None  # (record, summary) of the sustain run used
    checks: list = field(default_factory=list)  # Check, in the order shown
    other: Assessment | None = None  # the same case on the GPU it is compared with (--vs)
    prediction: CasePrediction | None = None  # its time on the SKU predicted (--predict, --vs-spec)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


ASSUMPTIONS = ("1 compute-bound", "2 fast path", "3 data keeps pace", "4 sustained")


def _t(seconds) -> str:
    return show(seconds, "seconds")


def _q(value, kind) -> str:
    return show(value, kind, with_unit=True)


def _tokens(r: Record) -> float | None:
    """Tokens of one call of a decode record (its batch), else None."""
    b = r.params.get("batch")
    return b if r.view == "decode" and isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 else None


def spec_prediction(spec: specdb.Spec | None, r: Record) -> tuple[str, float | None]:
    """The figure a spec-sheet reader uses for a case and the time it gives: max(FLOPs / the dense peak
    of its dtype, minimum bytes / the memory bandwidth). The reader knows the problem, not the
    implementation: the minimum bytes, not those an implementation moves."""
    if spec is None:
        return "no spec entry for this GPU", None
    peak, bw = spec.flops(r.dtype), spec.mem_bw
    if r.flops and not peak:
        return f"the {spec.key} sheet gives no {r.dtype} figure", None
    if r.bytes and not bw:
        return f"the {spec.key} sheet gives no memory bandwidth", None
    t_flops = r.flops / peak if r.flops else 0.0
    t_bytes = r.bytes / bw if r.bytes else 0.0
    if t_flops >= t_bytes:
        return f"{r.dtype} peak {_q(peak, 'flop_per_s')}", t_flops
    return f"memory {_q(bw, 'bytes_per_s')}", t_bytes


def _limits(a: rl.GpuAnalysis, b: bounds.Bound, r: Record) -> dict[str, float]:
    where, _ = a.memory_roof(r)
    limits = {"compute": b.t_compute, f"memory ({where})": b.t_memory, "launch floor": b.t_host}
    return {k: v for k, v in limits.items() if v is not None}


def assess(a: rl.GpuAnalysis, it: Item, floors, sustains: list[Record]) -> Assessment:
    best = it.best
    s = Assessment(it, a, best)
    s.spec_figure, s.spec_time = spec_prediction(a.spec, best or it.records[0])
    if best is None:
        s.checks = [Check(n, NOT_MEASURED, None, "", "no meaningful measurement", short=NOT_MEASURED)
                    for n in ASSUMPTIONS]
        return s
    b = s.bound = bounds.classify(a, best, floors)
    where, roof = a.memory_roof(best)
    compute = a.compute.get(best.dtype)
    memory_ceiling = a.l2 if where == "L2" else a.hbm
    floor = floors.get(bool(best.vendor))
    floor_record = None
    if floor is not None:
        floor_record = floor.graph_record if b.method == bounds.GRAPH else floor.eager_record
    limits = _limits(a, b, best)
    device = {k: v for k, v in limits.items() if k != "launch floor"}
    if len(device) == 2:  # the launch floor joins them where it is known
        s.binding = max(limits, key=lambda k: (limits[k], k == "compute"))
    if s.binding:
        s.t_bind = limits[s.binding]
        s.limit_record = {"compute": compute.record if compute else None, "launch floor": floor_record}.get(
            s.binding, memory_ceiling.record if memory_ceiling else None)
    s.checks = [_compute_bound(s, compute, memory_ceiling, floor_record, where, roof),
                _fast_path(s, compute, roof), _data_pace(s, memory_ceiling, where, roof),
                _sustained(s, sustains), _overhead(s, floor_record), _energy(s)]
    return s


def _compute_bound(s: Assessment, compute, memory_ceiling, floor_record, where, roof) -> Check:
    r, b, a = s.best, s.bound, s.analysis
    nbytes = rl.counted_bytes(r)
    intensity = r.flops / nbytes if nbytes else None
    ridge = compute.value / roof if compute and roof else None
    spec_ridge = a.ridge(r.dtype)[1] if where == "HBM" else None
    lacking = f"no {r.dtype} compute ceiling" if not compute else f"no {where} ceiling"
    against = f"measured ridge {ridge:.1f} FLOP/B under the {where} roof" if ridge else f"no measured ridge ({lacking})"
    if spec_ridge:
        against += f" (spec ridge {spec_ridge:.1f})"
    n = r.launches if isinstance(r.launches, int) else None
    parts = [f"compute roof {_t(b.t_compute)}", f"{where} roof {_t(b.t_memory)}"]
    if b.t_host is not None:
        parts.append(f"launch floor x {n} {_t(b.t_host)}")
    refs = [r, compute.record if compute else None, memory_ceiling.record if memory_ceiling else None]
    if s.binding is None:
        return Check(ASSUMPTIONS[0], NOT_MEASURED, Quantity(intensity, "flop_per_byte"), against,
                     f"no class ({b.unknown}); " + ", ".join(parts), refs, NOT_MEASURED)
    verdict = HOLDS if s.binding == "compute" else BREAKS
    cls = "compute-bound" if s.binding == "compute" else (
        "launch-bound" if s.binding == "launch floor" else f"{s.binding.split()[0]}-bound")
    return Check(ASSUMPTIONS[0], verdict, Quantity(intensity, "flop_per_byte"), against,
                 f"binds: {s.binding}; times at the limits: " + ", ".join(parts),
                 refs + [floor_record if b.t_host is not None else None], f"{verdict}: {cls}")


def _fast_path(s: Assessment, compute, roof) -> Check:
    r, it = s.best, s.item
    if s.t_bind is None:
        return Check(ASSUMPTIONS[1], NOT_MEASURED, None, "no binding limit known", _spread(it, r, None), [r],
                     NOT_MEASURED)
    share = s.t_bind / r.seconds
    if s.binding == "compute":
        against = f"the {r.dtype} compute roof " + (_q(compute.value, "flop_per_s") if compute else "(no FLOPs)")
    elif s.binding == "launch floor":
        against = f"the launch floor x launches {_t(s.t_bind)}"
    else:
        against = f"the {s.binding} roof {_q(roof, 'bytes_per_s')}"
    verdict = HOLDS if share >= FAST_PATH_SHARE else BREAKS
    return Check(ASSUMPTIONS[1], verdict, Quantity(share, "pct"), against, _spread(it, r, s.t_bind),
                 [r, s.limit_record] + it.measured[1:], f"{verdict}: {share:.0%}")


def _backend(r: Record) -> str:
    return r.backend or ("vendor" if r.vendor else "triton")


def _spread(it: Item, best: Record, t_bind: float | None) -> str:
    """The best implementation, and how far the others are from the binding limit (the implementations
    table gives each one's speed against the best, with its interval)."""
    text = f"best: {best.impl} ({_backend(best)})"
    others = it.measured[1:]
    if others and t_bind:
        shares = [t_bind / r.seconds for r in others]
        text += (f"; {len(others)} other{'s' if len(others) > 1 else ''} at "
                 + (f"{min(shares):.0%}-{max(shares):.0%}" if len(others) > 1 else f"{shares[0]:.0%}"))
    elif not others:
        text += "; no other implementation measured"
    failed = [r for r in it.records if not r.meaningful]
    if failed:
        text += "; " + ", ".join(f"{r.impl} {r.status}" for r in failed)
    return text


def _data_pace(s: Assessment, memory_ceiling, where, roof) -> Check:
    r, b, a = s.best, s.bound, s.analysis
    nbytes = rl.counted_bytes(r)
    achieved = nbytes / r.seconds if nbytes else None
    parts = []
    if roof and achieved:
        parts.append(f"{achieved / roof:.0%} of the measured {where} ceiling {_q(roof, 'bytes_per_s')}")
    spec_bw = a.spec.mem_bw if a.spec else None
    if spec_bw and achieved:
        parts.append(f"{achieved / spec_bw:.0%} of the spec {_q(spec_bw, 'bytes_per_s')}")
    against = "; ".join(parts) or f"no measured {where} ceiling"
    detail = f"bytes at the {where} roof {_t(b.t_memory)} against FLOPs at the compute roof {_t(b.t_compute)}"
    if r.moved_bytes is not None and r.bytes and abs(r.moved_bytes / r.bytes - 1) > 0.01:
        detail += f"; moves {r.moved_bytes / r.bytes:.2f}x the minimum bytes"
    compute = a.compute.get(r.dtype)
    refs = [r, memory_ceiling.record if memory_ceiling else None, compute.record if compute else None]
    if b.t_memory is None or b.t_compute is None:
        return Check(ASSUMPTIONS[2], NOT_MEASURED, Quantity(achieved, "bytes_per_s"), against, detail, refs,
                     NOT_MEASURED)
    verdict = HOLDS if b.t_memory <= b.t_compute else BREAKS
    pace = f"memory {_times(b.t_memory / b.t_compute)} compute" if b.t_compute else "no FLOPs"
    return Check(ASSUMPTIONS[2], verdict, Quantity(achieved, "bytes_per_s"), against, detail, refs,
                 f"{verdict}: {pace}")


def _times(x: float) -> str:
    """A ratio of two times, as '0.04x', '2.5x' or '130x'."""
    return f"{x:.0f}x" if x >= 10 else f"{x:.2g}x"


def _conditions(r: Record, gpu: dict) -> str:
    """Clocks and power while the case was timed, against the GPU's maximum clock and power limit."""
    t = r.telemetry
    if not t:
        return "no telemetry while it was timed"
    sm, power = rl._p50(t, "sm_clock_mhz"), rl._p50(t, "power_w")
    parts = []
    if rl._is_number(sm):
        top = gpu.get("max_sm_clock_mhz")
        parts.append(f"SM {sm:.0f}" + (f" of {top:.0f} MHz" if rl._is_number(top) else " MHz"))
    if rl._is_number(power):
        limit = gpu.get("power_limit_w")
        parts.append(f"{power:.0f}" + (f" of {limit:.0f} W" if rl._is_number(limit) else " W"))
    throttle = t.get("throttle") or []
    parts.append("throttle: " + (", ".join(throttle) if throttle else "none"))
    return "timed at " + ", ".join(parts)


def sustain_runs(records) -> list[Record]:
    """The sustain runs among `records` measured on a GPU (not through the interpreter)."""
    return [r for r in records if r.view == "sustain" and r.meaningful and r.sustain is not None]


def _sustain_for(it: Item, best: Record, runs: list[Record]):
    """The sustain run of the same workload, case and dtype (the best implementation's where there is one,
    the latest first), with its summary; None when there is none."""
    same = [r for r in runs if (r.workload, r.case, r.dtype) == (it.key.workload, it.key.case, it.key.dtype)]
    if not same:
        return None
    r = max(same, key=lambda r: (r.impl == best.impl, _when(r)))
    return r, sus.analyse(r)


def _sustained(s: Assessment, runs: list[Record]) -> Check:
    r, it = s.best, s.item
    against = _conditions(r, s.analysis.gpu)
    found = _sustain_for(it, r, runs)
    if found is None:
        return Check(ASSUMPTIONS[3], NOT_MEASURED, None, against, "no sustain run of this case", [r], NOT_MEASURED)
    s.sustain = found
    run, summary = found
    ratio = (summary["steady_vs_burst"] or {}).get("throughput")
    steady = summary["steady"] or {}
    parts = [f"{run.impl} run {summary['run_s']:.0f} s"]
    if steady:
        throttle = (steady.get("throttle") or {}).get("reason")
        parts.append(f"steady SM {show(steady.get('sm_clock_mhz'), 'mhz')} MHz, "
                     f"{show(steady.get('power_w'), 'watts')} W, throttle {throttle or '?'}")
    if summary["time_to_steady_s"] is not None:
        parts.append(f"settled at {summary['time_to_steady_s']:.1f} s")
    detail = "; ".join(parts)
    if ratio is None:
        return Check(ASSUMPTIONS[3], NOT_MEASURED, None, against, summary["problem"], [r, run], NOT_MEASURED)
    if summary["problem"]:
        # A ratio of two windows of a rate that still swings says neither holds nor breaks.
        return Check(ASSUMPTIONS[3], UNSETTLED, Quantity(ratio, "ratio"), against,
                     f"{detail}; {summary['problem']}", [r, run], f"{UNSETTLED}: {ratio:.3f}")
    verdict = HOLDS if ratio >= SUSTAINED_RATIO else BREAKS
    return Check(ASSUMPTIONS[3], verdict, Quantity(ratio, "ratio"), against, detail, [r, run],
                 f"{verdict}: {ratio:.3f}")


def _overhead(s: Assessment, floor_record) -> Check:
    r, b = s.best, s.bound
    if b.overhead_share is None:
        missing = "eager time" if b.eager_s is None else "graph replay (not capturable)"
        return Check("launch overhead", None, None, "", f"not measured: no {missing} in the record", [r])
    against = f"eager {_t(b.eager_s)}, graph replay {_t(b.graph_s)}"
    parts = [f"a graph replay removes {b.overhead_share:.0%} of the eager time"]
    if b.eager_kind:
        parts.append(f"eagerly {b.eager_kind}-bound")
    elif b.launch_bound:
        parts.append("launch-bound when launched eagerly")
    detail = "; ".join(parts + [f"timed by {b.method}"])
    return Check("launch overhead", None, Quantity(b.overhead_share, "pct"), against, detail, [r, floor_record])


def _energy(s: Assessment) -> Check:
    r = s.best
    e = en.check(r)
    if e is None or "not_measured" in e:
        return Check("energy", None, None, "", en.why_not(r), [r])
    tokens = _tokens(r)
    if tokens:
        unit, work = "tokens_per_s", tokens
    elif r.flops:
        unit, work = "flop_per_s", r.flops
    else:
        unit, work = "bytes_per_s", rl.counted_bytes(r)
    per = en.per_work(e, unit, work)
    spread = f" (±{e['uncertainty']:.1%})" if rl._is_number(e.get("uncertainty")) else ""
    return Check("energy", None, f"{per:.3g} {en.PER_WORK[unit]}{spread}", f"{e['joules_per_call']:.3g} J per call",
                 f"{e['watts']:.0f} W over the timed window (NVML's energy counter)", [r])


# ---------------------------------------------------------------- prediction for another SKU

@dataclass
class Efficiency:
    """This GPU's measured share of its spec sheet per roof, and the sustained ratio where measured."""
    name: str  # "HBM bandwidth", "compute bf16"
    kind: str
    measured: float
    spec: float
    record: Record
    sustained: float | None = None
    sustain_record: Record | None = None

    @property
    def share(self) -> float:
        return self.measured / self.spec


def efficiencies(a: rl.GpuAnalysis) -> dict[str, Efficiency]:
    if a.spec is None:
        raise AnalysisError(f"a prediction needs the spec sheet of {a.label}, which matches no entry: name it "
                            f"with --spec NAME ({', '.join(specdb.names())})")
    out = {}
    for c in a.ceilings():
        if c.spec:
            out[c.name] = Efficiency(c.name, c.kind, c.value, c.spec, c.record)
    # The sustained ratio of a roof: the lowest steady/burst throughput among the sustain runs of a
    # case of that roof (and dtype): how much of the burst figure the roof keeps under load.
    for run in sustain_runs(a.records):
        name = a.ceiling_name_of(run)
        if name not in out:
            continue
        ratio = kept_under_load(sus.analyse(run))
        if ratio is not None and (out[name].sustained is None or ratio < out[name].sustained):
            out[name].sustained, out[name].sustain_record = ratio, run
    return out


def kept_under_load(summary: dict) -> float | None:
    """The share of its burst throughput a sustain run keeps in steady state, for a prediction: None
    where the run never settled (two windows of a swinging rate predict nothing), and at most 1 (a
    steady state faster than its burst, as a launch-bound case warming up, promises nothing beyond
    the figure measured)."""
    ratio = (summary["steady_vs_burst"] or {}).get("throughput")
    return None if ratio is None or summary["problem"] else min(ratio, 1.0)


def _spec_value(spec: specdb.Spec, name: str) -> float | None:
    if name == "HBM bandwidth":
        return spec.mem_bw
    return spec.flops(name.split()[-1]) if name.startswith("compute ") else None


@dataclass
class CasePrediction:
    time: float | None
    why: str = ""  # why there is no prediction
    sustained: float | None = None  # with the case's own sustained ratio
    binding: str | None = None  # the limit that binds on the other SKU
    note: str = ""  # what the prediction could not include

    def figure(self, r: Record) -> Quantity | None:
        if self.time is None:
            return None
        if self.binding == "compute":
            return Quantity(r.flops / self.time, "flop_per_s")
        return Quantity(rl.counted_bytes(r) / self.time, "bytes_per_s")


def predict_case(s: Assessment, eff: dict[str, Efficiency], target: specdb.Spec) -> CasePrediction:
    """The case's time on `target`: it keeps its measured share of its binding limit, the limits there being
    the predicted roofs (this GPU's efficiency x the target's spec) and the same launch floor (host and driver
    costs do not scale with the GPU's spec sheet)."""
    r, b, a = s.best, s.bound, s.analysis
    if r is None:
        return CasePrediction(None, "no meaningful measurement")
    where, _ = a.memory_roof(r)
    if where == "L2" and rl.counted_bytes(r):
        return CasePrediction(None, "served from L2 here; spec sheets give no L2 bandwidth")
    terms_here, terms_there = {}, {}
    if r.flops:
        e = eff.get(f"compute {r.dtype}")
        peak = target.flops(r.dtype)
        if e is None or not peak:
            return CasePrediction(None, f"no {r.dtype} compute efficiency here" if e is None
                                  else f"the {target.key} sheet gives no {r.dtype} figure")
        terms_here["compute"], terms_there["compute"] = r.flops / e.measured, r.flops / (e.share * peak)
    nbytes = rl.counted_bytes(r)
    if nbytes:
        e = eff.get("HBM bandwidth")
        if e is None or not target.mem_bw:
            return CasePrediction(None, "no HBM efficiency here" if e is None
                                  else f"the {target.key} sheet gives no memory bandwidth")
        terms_here["memory"], terms_there["memory"] = nbytes / e.measured, nbytes / (e.share * target.mem_bw)
    if not terms_here:
        return CasePrediction(None, "no FLOPs or bytes to scale")
    note = ""
    if b.t_host is not None:
        terms_here["launch floor"] = terms_there["launch floor"] = b.t_host
    else:
        note = "launch floor not known here: the whole time follows the roofs"
    here, there = max(terms_here.values()), max(terms_there.values())
    binding = max(terms_there, key=lambda k: (terms_there[k], k == "compute"))
    t = r.seconds * there / here
    ratio = kept_under_load(s.sustain[1]) if s.sustain else None
    return CasePrediction(t, "", t / ratio if ratio else None, binding, note)


# ---------------------------------------------------------------- the claim: this GPU against another

def spec_speedup(spec_a: specdb.Spec | None, spec_b: specdb.Spec | None, r: Record) -> float | None:
    """How much faster A's spec sheet says a case runs than B's: B's spec-predicted time over A's."""
    _, ta = spec_prediction(spec_a, r)
    _, tb = spec_prediction(spec_b, r)
    return tb / ta if ta and tb else None


def claim_verdict(claim: float | None, measured: vs.Ratio | None, predicted: float | None) -> str:
    """Whether a claimed speed-up holds: the measured interval (else the prediction) comes within
    CLAIM_TOLERANCE of it."""
    if claim is None:
        return ""
    lo, hi = claim / (1 + CLAIM_TOLERANCE), claim * (1 + CLAIM_TOLERANCE)
    if measured is not None:
        low = measured.low if measured.low is not None else measured.value
        high = measured.high if measured.high is not None else measured.value
        return HOLDS if high >= lo and low <= hi else BREAKS
    if predicted is not None:
        return (HOLDS if lo <= predicted <= hi else BREAKS) + " (predicted)"
    return NOT_MEASURED


@dataclass
class GpuAudit:
    """The audit of one GPU's records: its analysis, each selected case assessed, the default cases
    it lacks."""
    analysis: rl.GpuAnalysis
    assessed: list
    missing: list

    @property
    def name(self) -> str:
        a = self.analysis
        return f"{a.label} ({a.spec.key if a.spec else 'no spec entry'})"


def audit_gpu(records, *, workloads=None, labels=None, dtype: str | None = None, spec: str | None = None,
              gpu=None, what: str = "the results files", flag: str = "--gpu") -> GpuAudit:
    """Select and assess the cases of one GPU's records (the one `gpu` names where there are several)."""
    rl.check_records(records, "records")
    if not records:
        raise AnalysisError(f"{what}: no records to audit (empty)")
    a = rl.analyze(_one_gpu(records, gpu, flag, what), spec)
    items, missing = select(a, workloads, labels, dtype)
    floors, runs = bounds.launch_floors(a.records), sustain_runs(a.records)
    return GpuAudit(a, [assess(a, it, floors, runs) for it in items], missing)


def compare_with(mine: GpuAudit, records, gpu=None) -> GpuAudit:
    """The same cases assessed on another GPU's records (attached to each case as `other`), where measured."""
    rl.check_records(records, "--vs records")
    if not records:
        raise AnalysisError("--vs: the other results file holds no records")
    b = rl.analyze(_one_gpu(records, gpu, "--vs-gpu", "the --vs records"))
    found = cases(b)
    floors, runs = bounds.launch_floors(b.records), sustain_runs(b.records)
    theirs = []
    for s in mine.assessed:
        if s.item.key in found:
            s.other = assess(b, item(b, s.item.title, s.item.key, found[s.item.key]), floors, runs)
            theirs.append(s.other)
    return GpuAudit(b, theirs, [])


def predict(mine: GpuAudit, target: specdb.Spec) -> dict[str, Efficiency]:
    """This GPU's efficiencies, and each case's time on `target` (attached to each case as `prediction`)."""
    eff = efficiencies(mine.analysis)
    for s in mine.assessed:
        s.prediction = predict_case(s, eff, target)
    return eff


# ---------------------------------------------------------------- the document

def _summary_section(mine: GpuAudit, trace: Trace, notes: list[str]) -> Section:
    cols = [Col("what", "What"), Col("workload", "Workload", csv_only=True), Col("case", "Case"),
            Col("dtype", "Dtype"), Col("spec_figure", "Spec figure used"),
            Col("spec_time", "Spec-predicted", "seconds"), Col("measured", "Measured", "seconds"),
            Col("of_spec", "Spec/measured", "pct"), Col("best", "Best"), Col("records", "Records")]
    rows, vrows = [], []
    for s in mine.assessed:
        it, r = s.item, s.best
        rows.append([it.title, it.key.workload, it.label, it.key.dtype, s.spec_figure, s.spec_time,
                     r.seconds if r else NOT_MEASURED, s.spec_time / r.seconds if r and s.spec_time else None,
                     r.impl if r else None, trace.ref(r)])
        overhead = s.check("launch overhead")
        vrows.append([it.title, it.label, it.key.dtype,
                      *(s.check(n).short if s.check(n) else NOT_MEASURED for n in ASSUMPTIONS),
                      overhead.figure.value if overhead and isinstance(overhead.figure, Quantity) else None])
    verdict_cols = [Col("what", "What"), Col("case", "Case"), Col("dtype", "Dtype"),
                    *(Col(f"a{i + 1}", name) for i, name in enumerate(ASSUMPTIONS)),
                    Col("overhead", "Launch overhead", "pct")]
    return Section(f"Audit of {mine.name}",
                   [Table("The spec sheet's prediction against the measurement", cols, rows),
                    Table("The assumptions it makes (each case's section below gives the numbers)", verdict_cols,
                          vrows)], notes)


def _check_table(s: Assessment, trace: Trace, title: str | None) -> Table:
    cols = [Col("check", "Check"), Col("verdict", "Verdict"), Col("figure", "Figure"), Col("against", "Against"),
            Col("detail", "Detail"), Col("records", "Records")]
    rows = [["spec sheet", None, Quantity(s.spec_time, "seconds"), s.spec_figure,
             f"measured {_t(s.best.seconds)}" if s.best else NOT_MEASURED, trace.ref(s.best)]]
    for c in s.checks:
        rows.append([c.name, c.verdict, c.figure, c.against, c.detail, trace.ref(*c.records)])
    return Table(title, cols, rows)


def _impl_table(s: Assessment, trace: Trace, title: str) -> Table:
    cols = [Col("impl", "Impl"), Col("backend", "Backend"), Col("time", "Time", "seconds"),
            Col("share", "Share of binding limit", "pct"), Col("vs_best", "Speed vs best [95%]", "speedup"),
            Col("timed_by", "Timed by"), Col("remark", "Remark"), Col("record", "Record")]
    rows = []
    best = s.best
    for r in s.item.measured:
        ratio = vs.speed_ratio(r, best) if r is not best else None
        rows.append([r.impl, _backend(r), r.seconds, s.t_bind / r.seconds if s.t_bind else None, ratio,
                     (r.timing or {}).get("method"), "" if r is best or ratio else vs.why_no_ratio(r, best),
                     trace.ref(r)])
    for r in (r for r in s.item.records if not r.meaningful):
        rows.append([r.impl, _backend(r), r.status, None, None, None,
                     vs.short_reason(r.reason) or (r.verify_problem or ""), trace.ref(r)])
    return Table(title, cols, rows)


def _case_sections(mine: GpuAudit, theirs: GpuAudit | None, trace: Trace) -> list[Section]:
    out = []
    a_name, b_name = mine.analysis.label, theirs.analysis.label if theirs else None
    for s in mine.assessed:
        o = s.other
        tables = [_check_table(s, trace, f"On {a_name}" if theirs else None)]
        if o is not None:
            tables.append(_check_table(o, trace, f"On {b_name}"))
        tables.append(_impl_table(s, trace, f"Implementations on {a_name}"))
        if o is not None:
            tables.append(_impl_table(o, trace, f"Implementations on {b_name}"))
        notes = [f"Binding limit: {s.binding} ({_t(s.t_bind)})." if s.binding else "No binding limit known."]
        if s.bound is not None and s.bound.t_host is None:
            notes.append(f"Launch floor: not known ({s.bound.unknown or 'no floor applies'}); the class stands on "
                         f"the device's two roofs.")
        if theirs and o is None:
            notes.append(f"Not measured on {b_name}.")
        out.append(Section(s.item.name, tables, notes))
    return out


def _claim_section(mine: GpuAudit, spec_b: specdb.Spec | None, b_name: str, measured_b: bool,
                   claim: float | None, trace: Trace) -> Section:
    cols = [Col("what", "What"), Col("case", "Case"), Col("dtype", "Dtype"), Col("spec_figure", "A's spec figure"),
            Col("spec", "Spec speed-up", "ratio"), Col("measured", "Measured speed-up [95%]", "speedup"),
            Col("predicted", "Predicted speed-up", "ratio"), Col("claim", "Claim", "ratio"),
            Col("verdict", "Claim verdict"), Col("remark", "Remark"), Col("records", "Records")]
    rows = []
    for s in mine.assessed:
        r, o, p = s.best, s.other, s.prediction
        rb = o.best if o else None
        spec = spec_speedup(s.analysis.spec, spec_b, r or s.item.records[0])
        ratio, remarks = None, []
        if r is not None and rb is not None:
            ratio = vs.independent_ratio(r, rb)  # B's time over A's: above 1, A is faster
            if ratio is None:
                remarks.append(f"timed by different methods ({vs.method(r)}, {vs.method(rb)}): no ratio")
        elif measured_b:
            remarks.append(f"not measured on {b_name}")
        predicted = p.time / r.seconds if p and p.time and r else None
        if p and p.time is None:
            remarks.append(f"no prediction: {p.why}")
        wanted = claim if claim is not None else spec
        rows.append([s.item.title, s.item.label, s.item.key.dtype, s.spec_figure, spec, ratio, predicted, wanted,
                     claim_verdict(wanted, ratio, predicted), "; ".join(remarks), trace.ref(r, rb)])
    notes = [f"A: {mine.name}. B: {b_name}. A speed-up is B's time per call over A's: above 1, A is faster.",
             "Spec speed-up: B's spec-predicted time over A's, each max(FLOPs / the dense peak of the dtype, minimum "
             "bytes / the memory bandwidth) from its own sheet: the speed-up a spec-sheet reader expects.",
             "Measured speed-up: the best implementation of each GPU, B's median time over A's; [95%]: each side's "
             "round-to-round spread combined (Welch), 'tie' where the interval holds 1.",
             "Predicted speed-up: B's predicted time (the prediction section) over A's measured one: a PREDICTION "
             "that assumes B reaches the same share of its spec sheet as A does of its own.",
             f"Claim: --claim where given, else the spec speed-up. It holds where the measured interval, or without "
             f"a measurement the prediction, comes within {CLAIM_TOLERANCE:.0%} of it."]
    return Section(f"The claim: {mine.name} against {b_name}", [Table(None, cols, rows)], notes)


def _prediction_section(mine: GpuAudit, eff: dict[str, Efficiency], target: specdb.Spec,
                        theirs: GpuAudit | None, trace: Trace) -> Section:
    a, b = mine.analysis, theirs.analysis if theirs else None
    cols = [Col("ceiling", "Ceiling"), Col("measured", "Measured here"), Col("spec", "Spec here"),
            Col("share", "Measured/spec", "pct"), Col("target_spec", f"{target.key} spec"),
            Col("predicted", f"{target.key} predicted"), Col("sustained_ratio", "Sustained ratio", "ratio"),
            Col("predicted_sustained", "Predicted sustained"), Col("b_measured", "Measured there"),
            Col("error", "Error", "pct"), Col("records", "Records")]
    rows = []
    for name, e in eff.items():
        spec_there = _spec_value(target, name)
        predicted = e.share * spec_there if spec_there else None
        there = b.ceiling(name) if b else None
        rows.append([name, Quantity(e.measured, e.kind), Quantity(e.spec, e.kind), e.share,
                     Quantity(spec_there, e.kind), Quantity(predicted, e.kind), e.sustained,
                     Quantity(predicted * e.sustained if predicted and e.sustained else None, e.kind),
                     Quantity(there.value if there else None, e.kind),
                     predicted / there.value - 1 if predicted and there else None,
                     trace.ref(e.record, e.sustain_record, there.record if there else None)])
    case_cols = [Col("what", "What"), Col("case", "Case"), Col("dtype", "Dtype"),
                 Col("measured", "Measured here", "seconds"), Col("predicted", f"{target.key} predicted", "seconds"),
                 Col("figure", "Predicted figure"), Col("binds", "Binds there"),
                 Col("sustained", "Predicted sustained", "seconds"), Col("b_measured", "Measured there", "seconds"),
                 Col("error", "Error", "pct"), Col("remark", "Remark"), Col("records", "Records")]
    case_rows = []
    for s in mine.assessed:
        p, o = s.prediction, s.other
        tb = o.best.seconds if o and o.best else None
        case_rows.append([s.item.title, s.item.label, s.item.key.dtype, s.best.seconds if s.best else None, p.time,
                          p.figure(s.best) if s.best else None, p.binding, p.sustained, tb,
                          p.time / tb - 1 if p.time and tb else None, p.why or p.note,
                          trace.ref(s.best, o.best if o else None)])
    notes = [f"PREDICTIONS for {target.key} ({target.name}), not measurements: each of {a.label}'s measured ceilings "
             f"as a share of its own spec sheet ({a.spec.key}), applied to the {target.key} sheet. The assumption "
             f"they add: that efficiency transfers between SKUs (the same share of the sheet's memory bandwidth and "
             f"of each dtype's dense peak), besides the four assumptions audited above.",
             "Cases: each keeps its measured share of its binding limit; the limits there are FLOPs at the "
             "predicted compute ceiling, bytes at the predicted HBM ceiling and the same launch floor (host and "
             "driver costs do not follow the spec sheet). Predicted figure: FLOP/s where compute binds there, "
             "bytes really moved per second otherwise.",
             "Sustained ratio: the lowest steady/burst throughput (at most 1) among this GPU's settled sustain runs of "
             "that roof (for a case, its own sustain run); empty where none was measured or settled, and then the "
             "prediction is a burst's.",
             "The L2 plateau has no prediction: spec sheets give no L2 bandwidth."]
    if b is not None:
        notes.append(f"Measured there: {b.label}'s own ceilings and best times; Error = predicted / measured - 1."
                     + (f" Its spec sheet is {b.spec.key}, not {target.key}: the error compares unlike SKUs."
                        if b.spec is not None and b.spec.key != target.key else ""))
    return Section(f"Prediction: {target.key} from {a.label}'s measured efficiencies",
                   [Table("Ceilings", cols, rows), Table("Cases", case_cols, case_rows)], notes)


def _rules() -> list[str]:
    return [
        "Spec sheet: the time a spec-sheet reader predicts, max(FLOPs / the dense peak of the dtype, minimum bytes / "
        "the memory bandwidth), and the figure that sets it; Spec/measured: that time over the best measured one.",
        "1 compute-bound holds where the compute roof is the limit that binds (analysis.bounds: the largest of FLOPs "
        "at the measured compute ceiling, bytes really moved at the measured memory roof, the launch floor x the "
        "launches); where no launch floor is measured, the class stands on the device's two roofs and says so.",
        f"2 fast path holds where the best implementation reaches {FAST_PATH_SHARE:.0%} or more of its binding limit "
        f"(the limit's time over the measured one); the others' speed against the best carries a 95% interval "
        f"from the rounds they alternated in.",
        "3 data keeps pace holds where the bytes really moved, at the measured memory roof, take no longer than the "
        "FLOPs at the measured compute roof; beside it the achieved bytes/s against the measured ceiling and the "
        "spec.",
        f"4 sustained holds where a sustain run of the same workload, case and dtype keeps a steady/burst throughput "
        f"ratio of {SUSTAINED_RATIO:.2f} or more, is 'unsettled' where that run's throughput never settled, and is "
        f"'not measured' without one (never assumed); the clocks, power and throttle reasons while the case was "
        f"timed stand beside it. A sustain run launches the case back to back from Python: where that is "
        f"launch-bound, its rate follows the host.",
        "Launch overhead: the share of the back-to-back time a CUDA graph replay removes (1 - graph / eager), "
        f"launch-bound at {bounds.LAUNCH_BOUND_SHARE:.0%} or more. Energy: from NVML's energy counter over the timed "
        "window, where measured; tokens per joule for a decode step.",
        "Each case's records come from the latest run that measured it, so its implementations compare within one "
        "run; only verified, meaningfully timed records count.",
    ]


def build(records, where, *, vs_records=None, vs_spec: str | None = None, predict_spec: str | None = None,
          claim: float | None = None, workloads=None, labels=None, dtype: str | None = None,
          spec: str | None = None, gpu=None, vs_gpu=None) -> list[Section]:
    """The audit's sections (see the module docstring); `where`: each record's (file, line), by id."""
    if vs_records is not None and vs_spec is not None:
        raise AnalysisError("audit takes --vs OTHER.jsonl or --vs-spec NAME, not both")
    if claim is not None and vs_records is None and vs_spec is None:
        raise AnalysisError("--claim is a speed-up over another GPU: give it with --vs OTHER.jsonl or --vs-spec NAME")
    if claim is not None and not (rl._is_number(claim) and claim > 0):
        raise AnalysisError(f"--claim must be a positive speed-up, got {claim!r}")
    for name in (vs_spec, predict_spec, spec):
        if name is not None:
            specdb.get(name)
    mine = audit_gpu(records, workloads=workloads, labels=labels, dtype=dtype, spec=spec, gpu=gpu)
    theirs = compare_with(mine, vs_records, vs_gpu) if vs_records is not None else None
    target = specdb.get(predict_spec or vs_spec) if (predict_spec or vs_spec) else None
    eff = predict(mine, target) if target is not None else None

    trace = Trace(where)
    notes = [f"Spec sheet: {mine.analysis.spec_how}.",
             "Cases: " + ("those named with --case" if labels else "the default selection (analysis/audit.py): the "
                          "decode step at batch 1 and 64, decode attention, fused and naive attention, the largest "
                          "GEMM and the skinny GEMM")
             + (f", within {', '.join(workloads)}" if workloads else "") + "."]
    notes += [f"Not in this audit: {m}." for m in mine.missing] + _rules()
    sections = [_summary_section(mine, trace, notes)]
    if theirs is not None:
        sections.append(_claim_section(mine, theirs.analysis.spec, theirs.name, True, claim, trace))
    elif vs_spec is not None:
        entry = specdb.get(vs_spec)
        sections.append(_claim_section(mine, entry, f"the {entry.key} spec sheet (not measured)", False, claim, trace))
    sections += _case_sections(mine, theirs, trace)
    if target is not None:
        sections.append(_prediction_section(mine, eff, target, theirs, trace))
    sections.append(trace.section())
    return sections


def render(paths, *, vs: str | None = None, fmt: str = "github", **options) -> str:
    """`python -m suite audit`: read the results files (keeping each record's line) and write the audit."""
    check_format(fmt)
    records, where = load(paths)
    vs_records = None
    if vs is not None:
        vs_records, vs_where = load([vs])
        where = {**where, **vs_where}
    return format_sections(build(records, where, vs_records=vs_records, **options), fmt)
