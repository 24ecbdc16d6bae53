"""Which limit sets a case's time: the compute roof, the memory roof, or the host's launches.

A roofline has two roofs, both on the device; a call also waits for its kernels to be
launched. For a measured case, three times it cannot beat on its GPU:

    t_compute = FLOPs / the measured compute ceiling of its dtype
    t_memory  = bytes it really moves / the measured memory roof it sits under
                (the L2 plateau or the HBM ceiling: GpuAnalysis.memory_roof)
    t_host    = the measured launch floor x the kernels one call launches (record.launches)

The launch floor is the cheapest launch the overhead records (view "overhead": a kernel
that does nothing, launched back to back and replayed in a CUDA graph) measured on the
same GPU, per launch: the non-vendor (Triton) floor for non-vendor implementations, the
vendor (torch) floor for vendor ones. A time taken as back-to-back launches is set
against the eager floor (the host's time per launch), a graph replay against the graph
floor (the device's cost of a launch).

The class is the largest of the three limits. Each is a time the call cannot beat, and a
call's time is at least the largest of them (the host launches while the device runs
earlier work, as compute and memory traffic overlap on the device), so the largest limit
is the one closest to the measured time from below and the one that sets it: lowering
any other leaves the call's time where it is. A limit above the measured time (a floor
measured a little high) is still the largest and still names the class. A measured time
far above every limit is time none of them counts (a launcher's own Python work beyond
the bare launch, in an eager call): the overhead share below shows it. The class needs
all three limits; where one is unknown (no GEMM ceiling for the dtype, no memory ceiling,
launches not known, no overhead records for the GPU) it is not given, and `unknown` says
which is missing.

Eager and graph times come from the record's timing: the sweep estimates every
implementation both ways and times the case by one method; the method's side is the
record's median, the other side its estimate. The overhead share 1 - graph / eager is
the part of a call's back-to-back time that a graph replay removes: time the device
spent waiting for the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from analysis import roofline as rl
from analysis.records import Record
from analysis.tables import Col

KINDS = ("compute", "memory", "overhead")
GRAPH, EAGER = "cuda-graph", "cuda-events"  # the timing methods the sweep records (record.timing["method"])
# An eager call is launch-bound where at least this share of its back-to-back time is time the
# device waits for the host: well above the few percent a graph replay also saves on the gaps
# between kernels that the device runs back to back, and above the estimates' noise.
LAUNCH_BOUND_SHARE = 0.10
OVERHEAD_VIEW = "overhead"

RULE = ("Class: of the three times a case cannot beat (FLOPs / the measured compute ceiling, bytes really "
        "moved / the measured memory roof, and the measured launch floor x the kernels it launches), the "
        "largest, which is the one closest to the measured time; the floor is the cheapest launch the overhead "
        "records measured on this GPU, Triton's for Triton implementations and torch's for vendor ones, eager "
        "for times taken as back-to-back launches, graph for graph replays. Eager class: the same for the "
        "eager time against the eager floor. Eager and graph: the time per call as back-to-back launches and "
        "as a CUDA graph replay (Timed by says which one is the record's median; the other is the sweep's "
        "estimate); overhead share = 1 - graph / eager, negative where the replay ran slower.")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def eager_graph(r: Record) -> tuple[float | None, float | None]:
    """(eager, graph) seconds per call: the median for the method the record was timed by, the
    sweep's estimate for the other; None where there is neither (not capturable, no timing)."""
    t = r.timing or {}
    eager, graph = t.get("eager_estimate_s"), t.get("graph_estimate_s")
    if t.get("method") == GRAPH:
        graph = r.seconds
    elif t.get("method") == EAGER:
        eager = r.seconds
    return (eager if _number(eager) else None), (graph if _number(graph) else None)


def overhead_share(eager: float | None, graph: float | None) -> float | None:
    """1 - graph / eager: the share of the back-to-back time a graph replay removes."""
    return 1.0 - graph / eager if eager and graph else None


@dataclass(frozen=True)
class Floor:
    """The cheapest launch measured on one GPU for one side (Triton or vendor), per launch."""
    eager_s: float | None
    graph_s: float | None
    eager_record: Record | None = None
    graph_record: Record | None = None


def launch_floors(records) -> dict[bool, Floor]:
    """{vendor: Floor} from the meaningful overhead records among `records` (one GPU's)."""
    out = {}
    for vendor in (False, True):
        per_launch: dict[str, list] = {"eager": [], "graph": []}
        for r in records:
            if r.view != OVERHEAD_VIEW or r.vendor != vendor or not r.meaningful:
                continue
            if not (isinstance(r.launches, int) and r.launches >= 1):
                continue
            for side, t in zip(("eager", "graph"), eager_graph(r)):
                if t is not None:
                    per_launch[side].append((t / r.launches, r))
        eager = min(per_launch["eager"], key=lambda x: x[0], default=(None, None))
        graph = min(per_launch["graph"], key=lambda x: x[0], default=(None, None))
        out[vendor] = Floor(eager[0], graph[0], eager[1], graph[1])
    return out


@dataclass(frozen=True)
class Bound:
    kind: str | None  # "compute" | "memory" | "overhead" for the measured time; None: see `unknown`
    t_compute: float | None  # seconds at the measured compute ceiling
    t_memory: float | None  # seconds at the measured memory roof (L2 or HBM)
    t_host: float | None  # the launch floor of the record's timing method x its launches
    eager_s: float | None
    graph_s: float | None
    overhead_share: float | None  # 1 - graph / eager
    eager_kind: str | None = None  # the same class for the eager time (against the eager floor)
    t_host_eager: float | None = None  # the eager floor x the launches
    method: str | None = None  # the record's timing method
    unknown: str = ""  # why `kind` is not given
    eager_unknown: str = ""  # why `eager_kind` is not given

    @property
    def launch_bound(self) -> bool | None:
        """Whether the eager call spends LAUNCH_BOUND_SHARE or more of its time waiting on the host."""
        return None if self.overhead_share is None else self.overhead_share >= LAUNCH_BOUND_SHARE


def _largest(limits: dict[str, float]) -> str:
    return max(KINDS, key=lambda k: limits[k])  # ties go to the device's roofs, compute first


def classify(analysis: rl.GpuAnalysis, record: Record, floors: dict[bool, Floor] | None = None) -> Bound:
    """The three limits of `record` on its GPU and the class they give (see the module docstring).
    `floors`: launch_floors(analysis.records), when a caller classes many records."""
    r = record
    floors = launch_floors(analysis.records) if floors is None else floors
    eager, graph = eager_graph(r)
    method = (r.timing or {}).get("method")
    missing = []
    compute = analysis.compute.get(r.dtype)
    t_compute = 0.0 if not r.flops else (r.flops / compute.value if compute else None)
    if t_compute is None:
        missing.append(f"no {r.dtype} compute ceiling")
    where, roof = analysis.memory_roof(r)
    nbytes = rl.counted_bytes(r)
    t_memory = 0.0 if not nbytes else (nbytes / roof if roof else None)
    if t_memory is None:
        missing.append(f"no {where} ceiling")
    launches = r.launches if isinstance(r.launches, int) and not isinstance(r.launches, bool) \
        and r.launches >= 0 else None
    if launches is None:
        missing.append("launches not known")
    floor = floors.get(bool(r.vendor)) or Floor(None, None)
    side = "torch" if r.vendor else "Triton"
    t_host_eager = launches * floor.eager_s if launches is not None and floor.eager_s is not None else None
    t_host_graph = launches * floor.graph_s if launches is not None and floor.graph_s is not None else None
    t_host = {GRAPH: t_host_graph, EAGER: t_host_eager}.get(method)

    def why(t_host_of, floor_name):
        """Why no class can be given against this floor ("" where one can)."""
        if not r.meaningful:
            return "not a meaningful timing"
        if missing:
            return "; ".join(missing)
        if t_host_of is None:
            return f"no {side} {floor_name} launch floor measured on this GPU"
        return ""

    unknown = why(t_host, "graph" if method == GRAPH else "eager") if method in (GRAPH, EAGER) else \
        (why(0.0, "") or f"timed by {method!r}: no launch floor applies")
    eager_unknown = why(t_host_eager, "eager") if eager is not None else "no eager time"
    limits = {"compute": t_compute, "memory": t_memory}
    return Bound(kind=None if unknown else _largest({**limits, "overhead": t_host}),
                 t_compute=t_compute, t_memory=t_memory, t_host=t_host, eager_s=eager, graph_s=graph,
                 overhead_share=overhead_share(eager, graph),
                 eager_kind=None if eager_unknown else _largest({**limits, "overhead": t_host_eager}),
                 t_host_eager=t_host_eager, method=method, unknown=unknown, eager_unknown=eager_unknown)


def class_text(kind: str | None, unknown: str) -> str:
    """'memory-bound', or 'unknown (why)'."""
    return f"{kind}-bound" if kind else f"unknown ({unknown})"


# The columns a table of cases adds for its bounds, and their cells (report's placement table).
COLS = [Col("class", "Class"), Col("eager_class", "Eager class"), Col("eager", "Eager", "seconds"),
        Col("graph", "Graph", "seconds"), Col("overhead_share", "Overhead share", "pct"),
        Col("timed_by", "Timed by"),
        Col("t_compute", "At compute roof", "seconds", csv_only=True),
        Col("t_memory", "At memory roof", "seconds", csv_only=True),
        Col("t_host", "Launch floor x launches", "seconds", csv_only=True)]


def cells(b: Bound) -> list:
    return [class_text(b.kind, b.unknown), class_text(b.eager_kind, b.eager_unknown), b.eager_s, b.graph_s,
            b.overhead_share, b.method, b.t_compute, b.t_memory, b.t_host]
