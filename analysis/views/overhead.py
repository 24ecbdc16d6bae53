"""The "overhead" view: what a launch costs, from Python and replayed in a CUDA graph, and a
launch-plus-synchronise round trip, with the host they were measured on."""
from __future__ import annotations

from analysis import bounds
from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, natural


def _per_launch(t: float | None, launches) -> float | None:
    return t / launches if t is not None and isinstance(launches, int) and launches >= 1 else None


def sections(a: rl.GpuAnalysis, recs) -> list[Section]:
    shown = [r for r in recs if r.status == "ok" and r.verify_problem is None and r.time_s]
    cols = [Col("workload", "Workload"), Col("case", "Case"), Col("impl", "Impl"), Col("backend", "Backend"),
            Col("launches", "Launches", "int"), Col("eager", "Eager per launch", "seconds"),
            Col("graph", "Graph per launch", "seconds"), Col("overhead_share", "Overhead share", "pct"),
            Col("timed_by", "Timed by"), Col("cpu", "Host CPU"), Col("python", "Python"), Col("torch", "torch"),
            Col("triton", "triton"), Col("remark", "Remark")]
    rows = []
    for r in sorted(shown, key=lambda r: (r.workload, natural(r.case), r.vendor, r.impl)):
        method = (r.timing or {}).get("method")
        if r.meaningful:
            eager, graph = bounds.eager_graph(r)
            remark = (r.timing or {}).get("note", "") if graph is None else ""
        else:  # the interpreter calls the closure on the CPU: a wall-clock time, never a launch figure
            eager, graph, remark = r.seconds, None, vs.NOT_MEANINGFUL
        rows.append([r.workload, r.label, r.impl, r.backend or ("vendor" if r.vendor else "triton"), r.launches,
                     _per_launch(eager, r.launches), _per_launch(graph, r.launches),
                     bounds.overhead_share(eager, graph) if r.meaningful else None, method,
                     r.env.get("cpu") or "not recorded", r.env.get("python"), r.env.get("torch"),
                     r.env.get("triton"), remark])
    notes = [
        "Eager: calls launched back to back between two device events. A kernel that does nothing leaves the "
        "device waiting for the host, so this is the host's time per launch (the launcher's Python work and "
        "the driver call). Graph: the same calls replayed as a CUDA graph, the device's own cost of a launch. "
        "Timed by names the method of the record's median; the other figure is the sweep's estimate.",
        "A round trip (launch, then torch.cuda.synchronize) measures launch, wait and return; a synchronisation "
        "cannot be captured in a graph, so it has no graph figure.",
        "These figures depend on the host (its CPU, the Python, torch and triton versions) as much as on the GPU.",
    ]
    floors = bounds.launch_floors(a.records)
    described = [f"{side} eager {_us(f.eager_s)}, graph {_us(f.graph_s)} per launch"
                 for side, f in (("Triton", floors[False]), ("torch", floors[True]))
                 if f.eager_s is not None or f.graph_s is not None]
    if described:
        notes.append("Launch floors the case classes use (the cheapest launch above): " + "; ".join(described) + ".")
    if not any(r.meaningful for r in shown):
        notes.insert(0, "No meaningful launch measurement: the figures are the interpreter's wall clock.")
    return [Section(f"{a.label}: launch overhead", [Table(None, cols, rows)] if rows else [], notes)]


def _us(t: float | None) -> str:
    return f"{t * 1e6:.2f} us" if t is not None else "not measured"
