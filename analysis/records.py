"""The record schema: one JSON object per (workload, case, dtype, implementation).

The suite writes records with `dump`; analysis reads them with `load`. Each
record carries the full conditions of its run (`env`) and what the GPU did
while it was measured (`telemetry`), so a single line explains itself.
Numbers are stored at full precision and rounded only when shown.

Shapes of the nested fields, as the suite writes them:

    time_s    {"p20", "p50", "p80", "min", "max", "mean", "std", "n", "samples": [...],
               "round_p50": [median of each alternation round]}  seconds per call
    timing    {"method": "cuda-graph" | "cuda-events" | "interpreter-wallclock" (one per case: every
               implementation of a case is timed the same way), "method_reason": why,
               "inner": calls per sample, "rounds": alternation rounds,
               "window": [start, end] unix seconds of this implementation's timed samples,
               "meaningful": False for interpreter timings,
               "input_sets": input sets rotated among (>1: data rotated past L2),
               "eager_estimate_s", "graph_estimate_s": this implementation's per-call estimates
               as plain launches and as a CUDA graph replay (None: not capturable)}
    verify    {"rel_err": ||out-ref||/||ref|| over the checked elements, "tolerance": accepted,
               "max_excess": max over checked elements of |out-ref| / its own tolerance (<= 1 passes),
               "checked": elements compared, "elements": elements of the output, "finite": every
               element of the whole output finite, "method": what was compared}
    wall      {"case_s": wall seconds of the whole case (inputs, tuning, compiles, checks, timing),
               "setup_s": this implementation's preparation and first call (tuning and compiles),
               "verify_s", "timing_s"}
    telemetry {"samples": n, "sm_clock_mhz": {"min", "p50", "max"}, "mem_clock_mhz": {...},
               "power_w": {...}, "temp_c": {...}, "throttle": ["sw_power_cap", ...]}  or None
    env       {"host", "rank", "world_size", "local_rank", "interpret": bool,
               "gpu": {"index", "name", "uuid", "cc": [9, 0], "sm_count", "l2_bytes", "mem_bytes",
                       "max_sm_clock_mhz", "max_mem_clock_mhz", "power_limit_w",
                       "default_power_limit_w"},
               "driver", "cuda", "cudnn", "torch", "triton", "python", "numpy", "platform",
               "suite_version", "git_commit", "source_digest", "command"}
"""
from __future__ import annotations

import datetime
import json
import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "skipped")
REQUIRED = ("workload", "family", "impl", "vendor", "dtype", "params", "case", "label", "status")


class RecordError(ValueError):
    """A results file that cannot be read; the message names the file and line."""

    def __init__(self, message: str):
        # One line of bounded length, whatever a mangled file put in it: the CLI shows it as is.
        text = " ".join(str(message).split())
        super().__init__(text if len(text) <= 400 else text[:397] + "...")


@dataclass
class Record:
    workload: str
    family: str
    impl: str
    vendor: bool
    dtype: str
    params: dict
    case: str  # canonical case id (suite.registry.case_id)
    label: str  # human label of the case
    status: str  # ok | failed | skipped
    reason: str = ""
    view: str = ""  # how the report tables the workload's records (analysis.views)
    roof: str = ""  # "memory" / "compute": the record can set that ceiling; "traced": it traces a roofline
    #                 of its own (the intensity sweep); "": placed under the roofs
    role: str = "fused"  # "fused", or "naive": intermediates go through memory
    backend: str = ""  # what runs it: "triton", or the vendor library (cuBLAS, cuDNN, ...)
    launches: int | None = None  # kernel launches of one call, where declared
    flops: int = 0
    bytes: int = 0  # minimum bytes (inputs read once, outputs written once)
    moved_bytes: int | None = None  # bytes this implementation really moves, when it differs
    config: dict | None = None  # kernel configuration used (autotuner's choice)
    time_s: dict | None = None  # p20/p50/p80/min/max/mean/n and raw samples, seconds per call
    timing: dict | None = None  # method, rounds, window start/end (unix s), meaningful
    verify: dict | None = None  # rel_err, tolerance
    telemetry: dict | None = None  # NVML readings during the measurement window
    energy: dict | None = None  # joules per call and mean watts from NVML's energy counter, where measured
    wall: dict | None = None  # where the case's wall time went
    sustain: dict | None = None  # a `sustain` run: its time series and burst/steady summary
    counters: dict | None = None  # a `counters` run: hardware counters beside the model's counts
    env: dict = field(default_factory=dict)  # GPU, driver, versions, host, run id, rank
    run_id: str = ""
    timestamp: str = ""
    suite_version: str = ""
    schema: int = SCHEMA_VERSION

    # Derived figures use the median time; they are recomputed on read, never trusted from disk.
    @property
    def seconds(self) -> float | None:
        return self.time_s["p50"] if self.time_s else None

    @property
    def flop_per_s(self) -> float | None:
        s = self.seconds
        return self.flops / s if s and self.flops else None

    @property
    def bytes_per_s(self) -> float | None:
        s = self.seconds
        return self.bytes / s if s and self.bytes else None

    @property
    def moved_bytes_per_s(self) -> float | None:
        s = self.seconds
        b = self.moved_bytes if self.moved_bytes is not None else self.bytes
        return b / s if s and b else None

    @property
    def intensity(self) -> float | None:
        return self.flops / self.bytes if self.bytes else None

    @property
    def verify_problem(self) -> str | None:
        """Why this record's own verification fields do not show a pass (None: they do).

        Re-checked on every read: a record marked ok whose error exceeds its
        tolerance, whose elementwise check failed or whose output was not all
        finite is not a result, whatever its status says."""
        v = self.verify
        if not isinstance(v, dict):
            return "no verification recorded"
        err, tol = v.get("rel_err"), v.get("tolerance")
        if not (_number(err) and _number(tol) and err <= tol):
            return f"rel_err {err!r} does not pass tolerance {tol!r}"
        excess = v.get("max_excess")
        if excess is not None and not (_number(excess) and excess <= 1):
            return f"an element exceeds its tolerance {excess!r} times"
        if v.get("finite") is False:
            return "the output holds NaN or inf"
        return None

    @property
    def meaningful(self) -> bool:
        """A verified, timed measurement on a real GPU (interpreter timings are not)."""
        return (self.status == "ok" and self.time_s is not None
                and bool((self.timing or {}).get("meaningful", False)) and self.verify_problem is None)

    @property
    def gpu_key(self) -> str:
        return gpu_key(self.env)

    @property
    def key(self) -> tuple:
        """What --resume matches on: the same measurement on the same GPU."""
        return (self.workload, self.case, self.dtype, self.impl, self.gpu_key)

    def to_dict(self) -> dict:
        d = asdict(self)
        # Derived figures are written for readers with jq; `load` ignores them.
        d["derived"] = {
            "flop_per_s": self.flop_per_s,
            "bytes_per_s": self.bytes_per_s,
            "moved_bytes_per_s": self.moved_bytes_per_s,
            "intensity": self.intensity,
        }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        names = {f.name for f in fields(cls)}
        missing = [n for n in REQUIRED if n not in d]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        if d.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise ValueError(f"schema {d['schema']} is newer than this reader ({SCHEMA_VERSION})")
        if d["status"] not in STATUSES:
            raise ValueError(f"status {d['status']!r} is not one of {', '.join(STATUSES)}")
        if d.get("schema", 1) < 2:
            d = _from_schema_1(d)
        return cls(**{k: v for k, v in d.items() if k in names})


# Schema 1 records carry no view, roof or role; they get their family's defaults.
_V1_ROOF = {"streaming": "memory", "gemm": "compute"}


def _from_schema_1(d: dict) -> dict:
    d = dict(d)
    d.setdefault("schema", 1)  # the reader's default is the current schema; this record is older
    d.setdefault("view", d["family"])
    d.setdefault("roof", _V1_ROOF.get(d["family"], ""))
    moved, nbytes = d.get("moved_bytes"), d.get("bytes") or 0
    naive = d["family"] == "attention" and isinstance(moved, (int, float)) and moved > nbytes
    d.setdefault("role", "naive" if naive else "fused")
    return d


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def gpu_key(env: dict) -> str:
    """Identifies the GPU a record was measured on (UUID, else host and index)."""
    gpu = env.get("gpu") or {}
    return gpu.get("uuid") or f"{env.get('host', '?')}:{gpu.get('index', '?')}"


def dump(record: Record) -> str:
    return json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=True)


def load(path: str | Path) -> list[Record]:
    """Read a JSONL results file. Anything but whole records raises RecordError naming the file
    (and the line, where one is at fault)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse(data, path)


def parse(data: bytes, source: str | Path) -> list[Record]:
    """The records of a results file's contents; `source` names the file in errors."""
    if data[:2] == b"\x1f\x8b":
        raise RecordError(f"{source}: gzip-compressed, not a JSONL results file; decompress it first "
                          "(gunzip -k)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{source}: not a text results file (byte {e.start} is not UTF-8)") from None
    nul = text.find("\0")
    if nul >= 0:
        raise RecordError(f"{source}: not a text results file (character {nul} is NUL)")
    # Only "\n" ends a record: str.splitlines would also split at characters a JSON string may hold.
    lines = text.split("\n")
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            _check_types(obj)
            records.append(Record.from_dict(obj))
        except (ValueError, TypeError, RecursionError) as e:
            # A last line with no newline that is not even JSON: a record cut off mid-write.
            cut = lineno == len(lines) and isinstance(e, json.JSONDecodeError)
            cut = ("; it is the last line and cut short (a sweep stopped while writing it): a sweep with "
                   "--resume or --append on this file sets it aside") if cut else ""
            raise RecordError(f"{source}:{lineno}: malformed record: {e}{cut}") from None
    return records


_FIELD_TYPES = typing.get_type_hints(Record)
_JSON_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number", dict: "an object",
               list: "an array", type(None): "null"}


def _json_type(value) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _allowed(hint) -> tuple:
    return typing.get_args(hint) or (hint,)  # int | None -> (int, NoneType)


def _fits(value, hint) -> bool:
    allowed = _allowed(hint)
    # JSON true/false are Python bools, which are ints too: an integer field takes neither.
    return isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)


def _check_types(d: dict) -> None:
    """Each field of the schema holds its declared JSON type, and the nested values that every
    reader relies on (the median time, the GPU's identity) theirs: a wrong one is named here,
    with its file and line, rather than failing a report later."""
    for name, value in d.items():
        hint = _FIELD_TYPES.get(name)
        if hint is not None and not _fits(value, hint):
            expected = " or ".join(_JSON_NAMES[t] for t in _allowed(hint))
            raise ValueError(f"field {name!r} is {_json_type(value)}, not {expected}")
    time_s = d.get("time_s")
    if time_s is not None and type(time_s.get("p50")) not in (int, float):  # NaN allowed: re-checked on use
        raise ValueError(f"time_s.p50 is {_json_type(time_s.get('p50'))}, not a number")
    gpu = d.get("env", {}).get("gpu")
    if gpu is not None and not isinstance(gpu, dict):
        raise ValueError(f"env.gpu is {_json_type(gpu)}, not an object")
    if gpu and not isinstance(gpu.get("uuid"), (str, type(None))):
        raise ValueError(f"env.gpu.uuid is {_json_type(gpu['uuid'])}, not a string or null")


def load_many(paths: Iterable[str | Path]) -> list[Record]:
    out: list[Record] = []
    for p in paths:
        out.extend(load(p))
    return out


def recorded_at(stamp) -> datetime.datetime | None:
    """A record's timestamp (ISO 8601, as the suite writes it; a trailing Z or no zone reads as
    UTC) as an aware datetime; None where it is not one."""
    try:
        when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def run_started(run_id: str):
    """When a sweep started, from its run id (which begins with the UTC start time, to the second,
    as YYYYmmddTHHMMSSZ); None for a run id of another form."""
    try:
        return datetime.datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
