"""The "collective" view: the interconnect's bus bandwidth per size, against the spec's link."""
from __future__ import annotations

from analysis import collectives
from analysis import roofline as rl
from analysis import versus as vs
from analysis.tables import Col, Section, Table, show


def sections(records, spec: str | None) -> list[Section]:
    s, how = rl.resolve_spec(rl.gpu_of(records[0]), spec)
    rows, peaks = collectives.collective_rows(records)
    cols = [Col("op", "Collective"), Col("world_size", "Ranks", "int"), Col("nodes", "Nodes", "int"),
            Col("dtype", "Dtype"), Col("message", "Message", "bytes"), Col("time", "Time", "seconds"),
            Col("algbw", "algbw", "bytes_per_s"), Col("busbw", "busbw", "bytes_per_s"),
            Col("records", "Records", "int")]
    link = s.link_per_direction if s else None
    peak_cols = [Col("op", "Collective"), Col("world_size", "Ranks", "int"), Col("nodes", "Nodes", "int"),
                 Col("peak", "Peak busbw", "bytes_per_s"), Col("at", "At message", "bytes"),
                 Col("spec", "Spec link per direction", "bytes_per_s"), Col("of_spec", "Peak/spec", "pct")]
    # Across nodes the network binds, and the spec database holds no network figure.
    peak_rows = [[op, n, nodes, bus, size, link if nodes in (1, None) else None,
                  vs.ratio(bus, link) if nodes in (1, None) else None]
                 for (op, n, nodes), (bus, size) in peaks.items()]
    notes = [
        "algbw = S / t and busbw = algbw x factor, as nccl-tests define them: all-reduce 2(n-1)/n; all-gather, "
        "reduce-scatter, all-to-all (n-1)/n; broadcast, reduce, send/recv 1. S is the message as nccl-tests count it "
        "(all-gather: the total output; reduce-scatter: the total input; all-to-all: a rank's whole send buffer).",
        "Time: each record's median time per call (the suite's collective sweep records the slowest rank's "
        "median, since a collective ends when its slowest rank does); several records of one case (repeated runs, "
        "or one per rank) are averaged. Only verified collectives are shown: a wrong result is a failure, not a "
        "figure. Across nodes the network binds; the spec database holds no network figure, so those rows have no "
        "spec column.",
        f"Spec: {how}. " + (f"Interconnect {s.link_name}: {show(s.link_bidir, 'bytes_per_s')} GB/s bidirectional, "
                            f"{show(link, 'bytes_per_s')} GB/s per direction. " if s and link else "")
        + "busbw is compared with the per-direction figure: nccl-tests' bus bandwidth is a unidirectional "
          "bandwidth (each GPU sends and receives at that rate at once), while the vendor's headline adds both "
          "directions; comparing with the headline would halve every ratio.",
    ]
    if not rows:
        notes.insert(0, "No meaningful collective measurement.")
    return [Section("Interconnect: collective bandwidth",
                    [Table("Bus bandwidth per size", cols, rows),
                     Table("Peak bus bandwidth against the spec", peak_cols, peak_rows)] if rows else [], notes)]
