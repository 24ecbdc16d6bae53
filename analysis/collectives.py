"""Collective bandwidths as nccl-tests define them (NVIDIA/nccl-tests, doc/PERFORMANCE.md).

Algorithm bandwidth is the size of the operation over its time:

    algbw = S / t

Bus bandwidth rescales it so that it can be set against the hardware's link
bandwidth whatever the number of ranks n:

    busbw = algbw * factor(op, n)

    op              factor        S, the bytes of one call as nccl-tests count them
    all-reduce      2(n-1)/n      the buffer each rank reduces (input = output size)
    all-gather      (n-1)/n       the TOTAL OUTPUT: per-rank input bytes * n
    reduce-scatter  (n-1)/n       the TOTAL INPUT of a rank: per-rank output bytes * n
    all-to-all      (n-1)/n       the whole send buffer of a rank (n chunks, one per peer)
    broadcast       1             the buffer sent from the root
    reduce          1             the buffer reduced onto the root
    send/recv       1             the message one rank sends to its peer

Why the factors: an all-reduce needs 2(n-1) transfers of each of the S/n
slices (n-1 reduce steps, n-1 copy steps) through n links of bandwidth B, so
t >= S*2(n-1)/(n*B); all-gather and reduce-scatter are one half of that; a
broadcast has all S bytes leave the root's one link. nccl-tests notes that
the figure is a unidirectional bandwidth: busbw compares with the bytes per
second one GPU can send (and, at the same time, receive), i.e. half of a
"bidirectional" link figure such as NVLink 4's 900 GB/s per GPU.

Records of the collective family carry `bytes` = S as defined above
(params["message_bytes"]), `params["world_size"]` = n, and time per call.
"""
from __future__ import annotations

from analysis.errors import AnalysisError
from analysis.tables import group

# Canonical op name -> factor(n). Canonical names are what records carry in params["op"].
_FACTORS = {
    "all-reduce": lambda n: 2.0 * (n - 1) / n,
    "all-gather": lambda n: (n - 1) / n,
    "reduce-scatter": lambda n: (n - 1) / n,
    "all-to-all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "send-recv": lambda n: 1.0,
}
OPS = tuple(_FACTORS)
# Spellings seen in the wild (NCCL's C names, torch.distributed's function names).
_ALIASES = {
    "allreduce": "all-reduce", "allgather": "all-gather", "allgatherintotensor": "all-gather",
    "reducescatter": "reduce-scatter", "reducescattertensor": "reduce-scatter",
    "alltoall": "all-to-all", "alltoallsingle": "all-to-all", "broadcast": "broadcast",
    "reduce": "reduce", "sendrecv": "send-recv", "p2p": "send-recv",
}


def canonical_op(op: str) -> str:
    """'all_reduce', 'AllReduce', 'allreduce' -> 'all-reduce'; unknown ops raise AnalysisError."""
    squashed = "".join(ch for ch in str(op).lower() if ch.isalnum())
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    raise AnalysisError(f"unknown collective {op!r}; valid: {', '.join(OPS)}")


def bus_factor(op: str, world_size: int) -> float:
    """nccl-tests' busbw/algbw factor for `op` over `world_size` ranks."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise AnalysisError(f"world_size must be a positive integer, got {world_size!r}")
    return _FACTORS[canonical_op(op)](world_size)


def algbw(op: str, message_bytes: float, seconds: float) -> float:
    """Algorithm bandwidth S/t in bytes/s; S = message bytes as nccl-tests count them for `op`."""
    canonical_op(op)
    if not seconds or seconds <= 0:
        raise AnalysisError(f"time per call must be positive, got {seconds!r}")
    if message_bytes is None or message_bytes < 0:
        raise AnalysisError(f"message bytes must be non-negative, got {message_bytes!r}")
    return message_bytes / seconds


def busbw(op: str, message_bytes: float, seconds: float, world_size: int) -> float:
    """Bus bandwidth in bytes/s: algbw * bus_factor(op, world_size)."""
    return algbw(op, message_bytes, seconds) * bus_factor(op, world_size)


def collective_rows(records):
    """Rows (op, ranks, nodes, dtype, S, time, algbw, busbw, records) and the peak busbw per (op, ranks, nodes)."""

    def key(r):
        op = canonical_op(r.params.get("op") or r.workload.split("-", 1)[-1])
        n = r.params.get("world_size") or r.env.get("world_size")
        return op, n, r.params.get("nodes", 1), r.params.get("message_bytes", r.bytes), r.dtype

    rows, peaks = [], {}
    groups = group([r for r in records if r.meaningful], key)
    for (op, n, nodes, size, dtype), rs in sorted(groups.items(), key=lambda kv: (
            OPS.index(kv[0][0]), kv[0][1] or 0, kv[0][2] or 0, kv[0][3], kv[0][4])):
        t = sum(r.seconds for r in rs) / len(rs)
        bus = busbw(op, size, t, n) if isinstance(n, int) else None
        rows.append([op, n, nodes, dtype, size, t, algbw(op, size, t), bus, len(rs)])
        if bus is not None and bus > peaks.get((op, n, nodes), (0, None))[0]:
            peaks[(op, n, nodes)] = (bus, size)
    return rows, peaks

