"""Hardware counters against the model: Nsight Compute's DRAM and instruction counters beside the
bytes and FLOPs a workload's declaration counts.

A `counters` run profiles one call of an implementation under `ncu --csv` (suite/counters.py);
this module reads what ncu wrote, sums it over every kernel the call launched, and judges the
model by it:

- Reads first. DRAM reads are what the model's "each input read once" promises. Writes get a
  caveat: the L2 holds writes back (the call's last ones have not reached DRAM when its last kernel
  ends, and lines an earlier call left dirty are written back during this one), so writes off the
  model by up to the L2's size, either way, are no fault of the model.
- Within TOLERANCE (5%) the model holds. Otherwise the likely cause is named: DRAM bytes well
  below the model, by no more than the L2 holds, is cache-resident data; further below, the model
  counts bytes the kernels never move (a wrong model); above it, an extra kernel (more kernels
  than the declaration states) or re-reads. Executed FLOPs below the model mean the model counts
  work the kernels skip; above it, masked or padded tiles that still multiply. FLOPs are judged
  where they enter a figure; for workloads that set the memory roof their ratio is only given.

The metrics read, and how each becomes bytes, seconds or FLOPs, are the table METRICS: a metric
the profiler does not offer, or reports as "n/a", is "not read", never a crash.

ncu's `--csv` output (the default "details" page) has one row per (kernel, metric) with the columns
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",
"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value" (newer releases append rule
columns); only ID, Kernel Name, Metric Name, Metric Unit and Metric Value are needed here. Values
may carry thousands separators; units are SI-prefixed (byte, Kbyte, Mbyte, ...; nsecond, usecond,
msecond, ...) unless ncu ran with `--print-units base`.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

from analysis.errors import AnalysisError
from analysis.tables import fmt_bytes

TOLERANCE = 0.05  # the model holds when the counters are within 5% of it


@dataclass(frozen=True)
class Metric:
    name: str  # as passed to `ncu --metrics`
    quantity: str  # "dram_read_bytes" | "dram_write_bytes" | "time_s" | "flops"
    weight: float = 1.0  # FLOPs per counted unit (flops metrics only)
    unless: str = ""  # a metric that counts the same work where the GPU offers it: then this one is left out


# Tensor-core work is counted per data path: sm__ops_path_tensor_src_* counts the math operations of
# the tensor path in FLOPs (a multiply-add counts two: a 1024^3 bf16 product reads 2 x 1024^3), for
# HMMA and Hopper's warpgroup GMMA alike. Hopper offers one fp16 path whatever the accumulator;
# earlier GPUs split it by destination type. CUDA-core work is counted per executed thread
# instruction: an FFMA is two FLOPs, an FADD or FMUL one. Half-precision CUDA-core instructions are
# left out: the suite's kernels compute in fp32 whatever their storage type, and packed HFMA2 counts
# are ambiguous.
_FP16 = "sm__ops_path_tensor_src_fp16.sum"
METRICS = (
    Metric("dram__bytes_read.sum", "dram_read_bytes"),
    Metric("dram__bytes_write.sum", "dram_write_bytes"),
    Metric("gpu__time_duration.sum", "time_s"),
    Metric(_FP16, "flops"),
    Metric("sm__ops_path_tensor_src_fp16_dst_fp16.sum", "flops", unless=_FP16),
    Metric("sm__ops_path_tensor_src_fp16_dst_fp32.sum", "flops", unless=_FP16),
    Metric("sm__ops_path_tensor_src_bf16_dst_fp32.sum", "flops"),
    Metric("sm__ops_path_tensor_src_tf32_dst_fp32.sum", "flops"),
    Metric("sm__ops_path_tensor_src_fp8.sum", "flops"),
    Metric("smsp__sass_thread_inst_executed_op_ffma_pred_on.sum", "flops", 2.0),
    Metric("smsp__sass_thread_inst_executed_op_fadd_pred_on.sum", "flops", 1.0),
    Metric("smsp__sass_thread_inst_executed_op_fmul_pred_on.sum", "flops", 1.0),
)
_BY_NAME = {m.name: m for m in METRICS}
_DIMENSION = {"dram_read_bytes": "bytes", "dram_write_bytes": "bytes", "time_s": "seconds", "flops": "count"}

REQUIRED_COLUMNS = ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")

# Unit -> factor to base units (bytes, seconds), per dimension. ncu's prefixes are decimal.
_UNITS = {
    "bytes": {"byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Tbyte": 1e12,
              "B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12},
    "seconds": {"second": 1.0, "msecond": 1e-3, "usecond": 1e-6, "nsecond": 1e-9,
                "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9},
}
_COUNT_PREFIX = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class CounterError(AnalysisError):
    """Profiler output that is not the documented `ncu --csv` format; the message says what is missing."""


def metric_names() -> list[str]:
    return [m.name for m in METRICS]


def base_name(metric: str) -> str:
    """'dram__bytes_read.sum' -> 'dram__bytes_read' (the name `ncu --query-metrics` lists)."""
    return metric.split(".", 1)[0]


# ---------------------------------------------------------------- parsing

@dataclass
class Kernel:
    """One profiled kernel launch: its metrics in base units, and those not read (with why)."""
    id: str
    name: str
    values: dict = field(default_factory=dict)  # metric -> float (bytes, seconds or a count)
    unread: dict = field(default_factory=dict)  # metric -> why it has no value

    def quantity(self, quantity: str) -> float | None:
        """The kernel's bytes, seconds or FLOPs from the metrics read; None when none was read."""
        read = [(m, self.values[m.name]) for m in METRICS if m.quantity == quantity and m.name in self.values
                and m.unless not in self.values]
        return sum(m.weight * v for m, v in read) if read else None


def to_base(value: str, unit: str, dimension: str) -> tuple[float | None, str]:
    """A CSV cell as a number in base units, or (None, why it cannot be read)."""
    text = (value or "").strip().replace(",", "")
    if not text or text.lower() in ("n/a", "na", "nan", "-"):
        return None, f"reported as {value.strip() or 'empty'!r}"
    try:
        number = float(text)
    except ValueError:
        return None, f"value {value!r} is not a number"
    if not math.isfinite(number):
        return None, f"value {value!r} is not finite"
    unit = (unit or "").strip()
    if dimension in _UNITS:
        factor = _UNITS[dimension].get(unit)
        if factor is None:
            return None, f"unit {unit!r} is not a unit of {dimension}"
        return number * factor, ""
    # A count: "", "inst", or an SI-prefixed count ("Kinst", "Minst", ...).
    if len(unit) > 1 and unit[0] in _COUNT_PREFIX and unit[1].islower():
        return number * _COUNT_PREFIX[unit[0]], ""
    return number, ""


def parse_csv(text: str) -> list[Kernel]:
    """The kernels of `ncu --csv` output, in launch order. ncu's own lines (==PROF==, ==WARNING==) and
    anything else before the header are skipped; a missing header or column raises CounterError."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith('"ID"')), None)
    if start is None:
        raise CounterError("no CSV header in the profiler's output (no line starting with \"ID\")")
    # After the header, rows are quoted; ncu's messages and the application's output are not.
    body = [lines[start].strip()] + [line for line in lines[start + 1:] if line.startswith('"')]
    reader = csv.DictReader(body)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CounterError(f"the profiler's CSV lacks the column(s) {', '.join(missing)}")
    kernels: dict[str, Kernel] = {}
    for row in reader:
        kid = row["ID"]
        k = kernels.setdefault(kid, Kernel(kid, row["Kernel Name"] or "?"))
        name = (row["Metric Name"] or "").strip()
        metric = _BY_NAME.get(name)
        if metric is None:
            continue  # a metric this module does not use
        value, why = to_base(row["Metric Value"] or "", row["Metric Unit"] or "", _DIMENSION[metric.quantity])
        if value is None:
            k.unread[name] = why
        else:
            k.values[name] = value
    return list(kernels.values())


def profiler_errors(text: str) -> list[str]:
    """ncu's own error lines (==ERROR== ...), without the marker, in order and once each."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("==ERROR=="):
            msg = line[len("==ERROR=="):].strip()
            if msg and msg not in out:
                out.append(msg)
    return out


# ---------------------------------------------------------------- sums over a call's kernels

QUANTITIES = ("dram_read_bytes", "dram_write_bytes", "time_s", "flops")


def summarize(kernels: list[Kernel]) -> dict:
    """Per kernel and summed over all of them: DRAM bytes read and written, GPU time and executed
    FLOPs (None where no kernel had the metric read), and the metrics not read, with why."""
    per_kernel = [{"id": k.id, "name": k.name, **{q: k.quantity(q) for q in QUANTITIES}} for k in kernels]
    totals = {}
    for q in QUANTITIES:
        values = [row[q] for row in per_kernel if row[q] is not None]
        totals[q] = sum(values) if values else None
    unread: dict[str, str] = {}
    for k in kernels:
        for name, why in k.unread.items():
            unread.setdefault(name, f"{why} (kernel {k.id})")
        for name in metric_names():
            if name not in k.values and name not in k.unread:
                unread.setdefault(name, f"not in the profiler's output (kernel {k.id})")
    return {"kernels": per_kernel, "dram_read_bytes": totals["dram_read_bytes"],
            "dram_write_bytes": totals["dram_write_bytes"], "time_s": totals["time_s"],
            "flops_counted": totals["flops"], "not_read": unread}


# ---------------------------------------------------------------- the verdict

@dataclass(frozen=True)
class Judgement:
    flags: tuple  # () when the model holds; else short tags ("cache-resident", "re-reads", ...)
    causes: tuple  # one sentence per flag, and notes (writes still in L2, kernel counts)
    read_ratio: float | None = None  # DRAM reads / the model's reads
    write_ratio: float | None = None  # DRAM writes / the model's writes
    bytes_ratio: float | None = None  # DRAM reads + writes / the model's bytes
    flops_ratio: float | None = None  # executed FLOPs / the model's FLOPs

    @property
    def verdict(self) -> str:
        return "; ".join(self.flags) if self.flags else f"within {TOLERANCE:.0%}"

    @property
    def cause(self) -> str:
        return " ".join(self.causes)


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def judge(sums: dict, *, model_bytes: float, model_flops: float, model_write_bytes: float | None = None,
          l2_bytes: float | None = None, launches: int | None = None, flops_first: bool = False,
          judge_flops: bool = True) -> Judgement:
    """Hold the counters of one call (`summarize`'s sums) against the model.

    model_write_bytes: the bytes the model writes, where known (the output of an implementation that
    moves the minimum); reads are then judged alone and writes apart. launches: the kernel launches
    the declaration states, where it does. flops_first: name FLOP findings first (compute-bound
    workloads). judge_flops: False where FLOPs enter no figure (workloads that set the memory roof):
    their ratio is given, not judged."""
    n = len(sums.get("kernels") or [])
    if n == 0:
        said = f" (the declaration says {launches})" if launches else ""
        return Judgement(("no kernel",), (f"The profiler saw no kernel in the profiled call{said}: the work went "
                                          "through a path it does not profile (a driver memcpy, as torch's copy_ "
                                          "between contiguous tensors is), so these bytes cannot be checked here.",))
    byte_flags, byte_causes, ratios = _judge_bytes(sums, model_bytes, model_write_bytes, l2_bytes, launches, n)
    flop_flags, flop_causes, flops_ratio = _judge_flops(sums, model_flops, judge_flops)
    if flops_first:
        flags, causes = flop_flags + byte_flags, flop_causes + byte_causes
    else:
        flags, causes = byte_flags + flop_flags, byte_causes + flop_causes
    if launches is not None and n != launches and "extra kernel" not in flags:
        causes.append(f"The call launched {n} kernel(s) where the declaration says {launches}.")
    # One tag per kind of finding, in order.
    flags = list(dict.fromkeys(flags))
    return Judgement(tuple(flags), tuple(causes), *ratios, flops_ratio)


def _judge_bytes(sums, model, model_write, l2, launches, n):
    flags, causes = [], []
    read, write = sums.get("dram_read_bytes"), sums.get("dram_write_bytes")
    total = read + write if read is not None and write is not None else None
    bytes_ratio = _ratio(total, model)
    split = model_write is not None and 0 <= model_write <= model
    model_read = model - model_write if split else None
    read_ratio = _ratio(read, model_read) if split else None
    write_ratio = _ratio(write, model_write) if split else None
    if not model:
        return flags, causes, (read_ratio, write_ratio, bytes_ratio)
    if read is None or write is None:
        missing = " and ".join(q for q, v in (("reads", read), ("writes", write)) if v is None)
        flags.append("not read")
        causes.append(f"The profiler reported no DRAM {missing}: the bytes are not checked.")
        return flags, causes, (read_ratio, write_ratio, bytes_ratio)
    extra_kernels = launches is not None and n > launches
    if split:
        parts = [("reads", read, model_read, False)] if model_read else []
        parts += [("writes", write, model_write, True)] if model_write else []
    else:
        parts = [("bytes", total, model, None)]
    for what, seen, counted, is_write in parts:
        r = seen / counted
        if abs(r - 1) <= TOLERANCE:
            continue
        short = counted - seen
        if is_write and l2 and abs(short) <= l2:
            # The L2 holds writes back: this call's last ones may not have reached DRAM when it ends,
            # and lines an earlier call left dirty are written back during this one.
            if r < 1:
                causes.append(f"DRAM writes are {_pct(r)} of the model's: up to the L2's {fmt_bytes(l2)} of "
                              f"writes can still sit in L2 when the kernels end, not yet DRAM traffic.")
            else:
                causes.append(f"DRAM writes are {r:.2f}x the model's, {fmt_bytes(-short)} more: within the "
                              f"L2's {fmt_bytes(l2)}, lines an earlier call left dirty being written back (or "
                              f"intermediates the call's kernels pass through memory).")
            continue
        if r < 1:
            if is_write:
                flags.append("wrong model")
                causes.append(f"DRAM writes are {_pct(r)} of the model's, short by {fmt_bytes(short)}, more "
                              f"than the L2 ({fmt_bytes(l2)}) can hold back: the model counts writes the kernels "
                              f"do not make.")
            elif l2 and short <= l2:
                flags.append("cache-resident")
                also = "; or writes still in L2 when the kernels ended" if is_write is None else ""
                causes.append(f"DRAM saw {_pct(r)} of the counted {what}: the {fmt_bytes(short)} missing fit in the "
                              f"L2 ({fmt_bytes(l2)}), so that data was served from L2{also}.")
            elif l2:
                flags.append("wrong model")
                causes.append(f"DRAM saw {_pct(r)} of the counted {what}, short by {fmt_bytes(short)}, more than "
                              f"the L2 ({fmt_bytes(l2)}) could serve: the model counts bytes the kernels never "
                              f"move.")
            else:
                flags.append("below the model")
                causes.append(f"DRAM saw {_pct(r)} of the counted {what}; the L2's size is not recorded, so "
                              f"cache-resident data and a model that overcounts cannot be told apart.")
        elif extra_kernels:
            flags.append("extra kernel")
            causes.append(f"DRAM moved {r:.2f}x the counted {what} over {n} kernels where the declaration says "
                          f"{launches}: the extra launch moves {fmt_bytes(-short)} the model does not count.")
        elif is_write:
            flags.append("extra writes")
            causes.append(f"DRAM writes are {r:.2f}x the model's: the kernels write {fmt_bytes(-short)} more, "
                          f"beyond what the L2 holds back (partial results, a second pass), than the model "
                          f"counts.")
        else:
            flags.append("re-reads")
            dirty = (f"; or, being within the L2's {fmt_bytes(l2)}, lines an earlier call left dirty written back"
                     if is_write is None and l2 and -short <= l2 else "")
            causes.append(f"DRAM moved {r:.2f}x the counted {what}: tiles read more than once (the L2 did not "
                          f"keep them), or traffic the model does not count ({fmt_bytes(-short)}){dirty}.")
    return flags, causes, (read_ratio, write_ratio, bytes_ratio)


def _judge_flops(sums, model, judged: bool):
    counted = sums.get("flops_counted")
    ratio = _ratio(counted, model)
    if not model or (counted is None and not judged):
        return [], [], ratio
    if counted is None:
        return ["not read"], ["The profiler reported no FLOP counter: the FLOPs are not checked."], ratio
    if abs(ratio - 1) <= TOLERANCE:
        return [], [], ratio
    if not judged:
        return [], [f"Executed FLOPs are {ratio:.2f}x the model's; not judged: this workload's figures are "
                    f"bytes/s."], ratio
    if ratio > 1:
        return ["extra FLOPs"], [f"The kernels executed {ratio:.2f}x the model's FLOPs: work beyond the model's "
                                 f"count (masked or padded tiles that still multiply, as causal blocks on the "
                                 f"diagonal or rows padded to the MMA shape; recomputation), or a model that "
                                 f"leaves work out."], ratio
    unread = sorted(name for name in (sums.get("not_read") or {}) if name in _BY_NAME
                    and _BY_NAME[name].quantity == "flops")
    why = f" Not read here: {', '.join(unread)}." if unread else ""
    return ["wrong model"], [f"The kernels executed {_pct(ratio)} of the model's FLOPs: the model counts work the "
                             f"kernels skip (a causal mask counted as dense), or the work runs on an instruction "
                             f"kind these counters do not read.{why}"], ratio


def judge_record(r) -> Judgement | None:
    """The judgement of a counters record, from its raw counts (None for a record without them):
    recomputed on every read, like the records' derived figures, never trusted from disk."""
    c = r.counters
    if r.status != "ok" or not isinstance(c, dict) or not isinstance(c.get("kernels"), list):
        return None
    model = c.get("model_bytes")
    if not isinstance(model, (int, float)):
        model = r.moved_bytes if r.moved_bytes is not None else r.bytes
    l2 = (r.env.get("gpu") or {}).get("l2_bytes")
    return judge(c, model_bytes=model, model_flops=c.get("model_flops", r.flops),
                 model_write_bytes=c.get("model_write_bytes"), l2_bytes=l2 if isinstance(l2, (int, float)) else None,
                 launches=r.launches, flops_first=r.roof == "compute", judge_flops=r.roof != "memory")
