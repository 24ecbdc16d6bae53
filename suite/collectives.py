"""Collective bandwidth through torch.distributed: NCCL between GPUs, gloo on CPUs.

Each rank runs the same list of (collective, message size) points, in step:

1. Buffers. Every rank's input is a known pattern, non-zero and depending on
   the rank and the position (`pattern`), so a result that mixes up ranks or
   chunks, or leaves elements unwritten, cannot pass. Outputs are poisoned
   with NaN. A rank that cannot allocate tells the others, and the point is a
   failed record on all of them (no rank enters a collective alone).
2. Verification: one call, then every rank compares its whole output with the
   answer computed from the patterns (`expected_pieces`), normwise, within the
   dtype's tolerance (suite.dtypes; bf16 sums round at each step). A wrong
   output on any rank is a failed record, never a figure.
3. Timing: warm-up calls, a per-call estimate (the largest over ranks, so all
   ranks make the same number of calls), a barrier, then samples of `inner`
   back-to-back calls between two CUDA events on each rank. The time per call
   is the LARGEST OVER RANKS OF EACH RANK'S MEDIAN: a collective is as slow as
   its slowest participant. Calls are eager torch.distributed calls, so for
   small messages the time includes PyTorch's host cost per call whenever it
   exceeds the GPU's, as a PyTorch program sees it (nccl-tests, looping in C,
   reports lower latencies there).

Bandwidths, as nccl-tests define them (NVIDIA/nccl-tests, doc/PERFORMANCE.md;
computed in analysis.collectives from what records carry):

    algbw = S / t
    busbw = algbw * factor(op, n)

    op              S (record.bytes = params["message_bytes"])     factor(op, n)
    all-reduce      the buffer each rank reduces                    2(n-1)/n
    all-gather      the whole output: n * each rank's input         (n-1)/n
    reduce-scatter  the whole input of a rank: n * its output       (n-1)/n
    all-to-all      a rank's whole send buffer (n chunks)           (n-1)/n
    broadcast       the buffer sent from rank 0                     1
    send-recv       the message each rank sends (to rank r+1, while 1
                    receiving one from rank r-1)

Why these factors: in a ring all-reduce each of the n slices of S/n crosses
every GPU's link 2(n-1) times (n-1 reduce steps, n-1 copy steps), so each
link carries 2(n-1)/n * S; all-gather and reduce-scatter are one half of
that ring, all-to-all sends all but the own chunk; broadcast and send/recv
move S once through a link. busbw is therefore the figure to set beside one
GPU's unidirectional link bandwidth (half a "bidirectional" spec such as
NVLink 4's 900 GB/s per GPU). In send/recv every rank sends and receives at
once, so both directions of each link are loaded.

One record per (collective, size), written by rank 0 as it goes: family
"collective", workload "<backend>-<op>" ("nccl-all-reduce"), impl the backend,
params {"op", "message_bytes", "world_size", "nodes", "dtype"}, rank 0's env
plus env["ranks"] (every rank's host and GPU), env["nccl_env"] (the multicast
switches) and env["nccl_version"].
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from analysis.records import Record, load
from suite import distributed, runner, timing
from suite import env as env_mod
from suite.dtypes import DTYPES as DTYPE_TABLE
from suite.errors import UsageError
from suite.registry import case_id
from suite.results import RecordWriter, default_out, new_run_id
from suite.telemetry import Sampler, nvml_handle

OPS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "broadcast", "send-recv")
DTYPES = ("bf16", "fp16", "fp32")
STEP = 4  # message sizes go up by this factor
GPU_MAX_BYTES = 4 << 30
CPU_MAX_BYTES = 64 << 10
CHUNK = 1 << 26  # elements per piece when filling and checking (bounds the temporaries)
# One sample (inner calls between two events) lasts about this long, so the
# ranks' skew at its start and the first call's launch are amortized.
TARGET_SAMPLE_S = 5e-3
MAX_INNER = 500


@dataclass(frozen=True)
class Effort:
    """Calls spent on each point besides the verification call."""
    warmup: int
    estimate: int  # calls timed together for the per-call estimate
    min_samples: int
    max_samples: int


GPU_EFFORT = Effort(warmup=3, estimate=5, min_samples=10, max_samples=50)
# On CPUs (gloo) timings mean nothing: a few calls prove the path, quickly.
CPU_EFFORT = Effort(warmup=1, estimate=1, min_samples=3, max_samples=5)
# A rank waits this long for its GPU to finish a collective before declaring
# it hung (the longest timed sample lasts well under a second).
WAIT_S = 120.0

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
          "gib": 1 << 30}


# ------------------------------------------------------------------ sizes and layouts

def parse_bytes(text: str) -> int:
    """'1KiB', '64 MiB', '4GiB', '4096' -> bytes (binary units; K/M/G mean KiB/MiB/GiB)."""

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise UsageError(f"cannot read the size {text!r}: write e.g. 1KiB, 64MiB, 4GiB or a number of bytes")
    return int(float(m.group(1)) * _UNITS[unit])


def message_sizes(min_bytes: int, max_bytes: int) -> list[int]:
    sizes, s = [], min_bytes
    while s <= max_bytes:
        sizes.append(s)
        s *= STEP
    return sizes


def size_label(b: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale:
            return f"{b / scale:g} {unit}"
    return f"{b} B"


@dataclass(frozen=True)
class Layout:
    """Elements of each rank's buffers for one call, and S (nccl-tests' size)."""
    op: str
    world_size: int
    chunk: int  # elements per rank-chunk (the per-peer unit)
    send: int  # elements of each rank's input buffer
    recv: int  # elements of each rank's output buffer
    message: int  # S in elements
    in_place: bool


def layout(op: str, message_bytes: int, world_size: int, elem: int) -> Layout | None:
    """The buffers of `op` for a message of about `message_bytes` (rounded down
    to whole per-rank chunks); None when that leaves nothing to send."""
    n = world_size
    if op in ("all-reduce", "broadcast", "send-recv"):
        c = message_bytes // elem
        lay = Layout(op, n, c, c, c, c, in_place=op != "send-recv")
    elif op == "all-gather":
        c = message_bytes // (elem * n)
        lay = Layout(op, n, c, c, c * n, c * n, in_place=False)
    elif op in ("reduce-scatter", "all-to-all"):
        c = message_bytes // (elem * n)
        lay = Layout(op, n, c, c * n, c if op == "reduce-scatter" else c * n, c * n, in_place=False)
    else:
        raise ValueError(f"unknown collective {op!r}")
    return lay if lay.chunk > 0 else None


# ------------------------------------------------------------------ known answers

def pattern(rank: int, start: int, count: int, dtype, device):
    """Rank `rank`'s input elements start..start+count: 1 + rank + ((7i + 3 rank) mod 31) / 31.
    Never zero; differs between ranks and, with period 31 (prime: no power-of-2
    chunk shift maps it onto itself), between positions."""
    i = torch.arange(start, start + count, device=device, dtype=torch.int64)
    frac = ((i % 31) * 7 + 3 * rank) % 31
    return (frac.to(torch.float32) / 31 + (1 + rank)).to(dtype)


def expected_pieces(lay: Layout, rank: int) -> list[tuple[tuple[int, ...], int, int, int]]:
    """What `rank`'s output holds, as pieces (source ranks summed, offset in
    their inputs, offset in this output, length)."""
    n, c, everyone = lay.world_size, lay.chunk, tuple(range(lay.world_size))
    if lay.op == "all-reduce":
        return [(everyone, 0, 0, c)]
    if lay.op == "all-gather":
        return [((j,), 0, j * c, c) for j in range(n)]
    if lay.op == "reduce-scatter":
        return [(everyone, rank * c, 0, c)]
    if lay.op == "all-to-all":
        return [((j,), rank * c, j * c, c) for j in range(n)]
    if lay.op == "broadcast":
        return [((0,), 0, 0, c)]
    if lay.op == "send-recv":
        return [(((rank - 1) % n,), 0, 0, c)]
    raise ValueError(lay.op)


def _segments(length: int):
    for a in range(0, length, CHUNK):
        yield a, min(length, a + CHUNK)


def make_buffers(lay: Layout, rank: int, dtype, device):
    """(input, output) of `rank`; one tensor twice where the call is in place.
    Outputs (and broadcast's receivers) hold NaN until the collective writes them."""
    send = torch.empty(lay.send, dtype=dtype, device=device)
    if lay.op == "broadcast" and rank != 0:
        send.fill_(float("nan"))
    else:
        for a, b in _segments(lay.send):
            send[a:b] = pattern(rank, a, b - a, dtype, device)
    if lay.in_place:
        return send, send
    return send, torch.full((lay.recv,), float("nan"), dtype=dtype, device=device)


def rel_error(out, lay: Layout, rank: int) -> float:
    """||out - expected|| / ||expected|| over `rank`'s whole output (NaN if any
    element is NaN, i.e. unwritten). Inputs are summed in float32 after
    rounding each to the payload type, as the collective sees them."""
    err2 = ref2 = 0.0
    for sources, src_off, dst_off, length in expected_pieces(lay, rank):
        for a, b in _segments(length):
            want = torch.zeros(b - a, dtype=torch.float32, device=out.device)
            for r in sources:
                want += pattern(r, src_off + a, b - a, out.dtype, out.device).float()
            got = out[dst_off + a:dst_off + b].float()
            err2 += float(torch.sum((got - want).double() ** 2))
            ref2 += float(torch.sum(want.double() ** 2))
    return math.sqrt(err2 / ref2) if ref2 else float("nan")


def make_call(lay: Layout, send, recv, rank: int) -> Callable[[], None]:
    """A zero-argument closure running the collective once (all ranks call it)."""
    all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    if lay.op == "all-reduce":
        return lambda: dist.all_reduce(send)
    if lay.op == "all-gather":
        return lambda: all_gather(recv, send)
    if lay.op == "reduce-scatter":
        return lambda: reduce_scatter(recv, send)
    if lay.op == "all-to-all":
        return lambda: dist.all_to_all_single(recv, send)
    if lay.op == "broadcast":
        return lambda: dist.broadcast(send, src=0)
    if lay.op == "send-recv":
        n = lay.world_size
        ops = [dist.P2POp(dist.isend, send, (rank + 1) % n), dist.P2POp(dist.irecv, recv, (rank - 1) % n)]

        def send_recv():
            for work in dist.batch_isend_irecv(ops):
                work.wait()
        return send_recv
    raise ValueError(lay.op)


# ------------------------------------------------------------------ command

@dataclass(frozen=True)
class Plan:
    ops: tuple[str, ...]
    sizes: tuple[int, ...]
    dtype: str


def plan_from_args(args) -> Plan:
    """Check the arguments (UsageError, one line) and list what to measure."""
    from analysis.collectives import canonical_op
    from analysis.errors import AnalysisError

    ops = []
    for name in args.ops or OPS:
        try:
            op = canonical_op(name)
        except AnalysisError:
            op = None
        if op not in OPS:
            raise UsageError(f"unknown collective {name!r}; choose from: {', '.join(OPS)}")
        ops.append(op)
    if args.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {args.dtype!r} for collectives; choose from: {', '.join(DTYPES)}")
    lo = parse_bytes(args.min_bytes)
    hi = parse_bytes(args.max_bytes) if args.max_bytes else (CPU_MAX_BYTES if args.cpu else GPU_MAX_BYTES)
    if lo < 1 or hi < lo:
        raise UsageError(f"--min-bytes ({lo}) must be at least 1 and no more than --max-bytes ({hi})")
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    return Plan(tuple(dict.fromkeys(ops)), tuple(message_sizes(lo, hi)), args.dtype)


def _default_out(name: str, world_size: int) -> Path:
    return default_out(f"{name} x{world_size}", "collectives")


def main(args) -> int:
    """`collectives`: launch one worker per GPU, or be one of them."""

    plan = plan_from_args(args)
    if distributed.under_torchrun():
        return _rank_main(args, plan)
    if not args.all_gpus:
        raise UsageError("collectives run one process per GPU: add --all-gpus (this machine's GPUs), "
                         "or start the command under torchrun (several nodes)")
    return _launch(args)


def _launch(args) -> int:

    gpus = torch.cuda.device_count()
    if not args.cpu and not gpus:
        raise UsageError("no CUDA GPU is visible (torch.cuda.is_available() is False): run on a machine "
                         "with NVIDIA GPUs, or add --cpu to run the collectives over gloo on the CPU")
    nproc = args.nproc if args.nproc is not None else (2 if args.cpu else gpus)
    if nproc < 2:
        raise UsageError(f"collectives need at least 2 processes; this would start {nproc} "
                         f"({gpus} GPU(s) visible; --nproc N with --cpu for more)")
    if not args.cpu and nproc > gpus:
        raise UsageError(f"--nproc {nproc} is more than the {gpus} GPUs visible: NCCL needs one GPU per "
                         f"process (--cpu runs any number over gloo)")
    name = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    out = args.out or _default_out(name, nproc)
    argv = list(args.argv) + ([] if args.out else ["--out", str(out)])
    print(f"collectives: {nproc} processes through torchrun -> {out}", file=sys.stderr)
    try:
        failure = distributed.launch(argv, nproc)
    except distributed.Interrupted:
        print(f"\ninterrupted: the records measured so far are in {out}", file=sys.stderr)
        return 130
    if failure is None:
        return 0
    print(f"error: the collective sweep did not finish: {failure}; the other ranks were stopped; the "
          f"records measured so far are in {out}", file=sys.stderr)
    return distributed.EXIT_FAILED


@dataclass
class _World:
    """What every rank knows about the run."""
    me: distributed.RankInfo
    group: object  # control process group (gloo)
    device: str
    backend: str
    dtype: object  # torch dtype
    elem: int  # bytes per element
    wait_s: float  # how long a rank waits on the GPU before declaring the collective hung

    def all_gather(self, obj) -> list:
        got = [None] * self.me.world_size
        dist.all_gather_object(got, obj, group=self.group)
        return got


def _rank_main(args, plan: Plan) -> int:
    me = distributed.rank_info()
    distributed.install_sigterm()
    if me.world_size < 2:
        raise UsageError("collectives need at least 2 ranks; WORLD_SIZE is 1")
    if args.cpu:
        index, device, backend = None, "cpu", "gloo"
    else:
        index = me.local_rank
        device, backend = f"cuda:{index}", "nccl"
        torch.cuda.set_device(index)
    try:
        group = distributed.init(backend, index)
        torch_dtype = DTYPE_TABLE[plan.dtype].torch_dtype
        world = _World(me, group, device, backend, torch_dtype, torch.empty((), dtype=torch_dtype).element_size(),
                       WAIT_S)
        out = _run(args, plan, world)
    except BaseException as e:
        distributed.leave_on(e, me, "the records so far are in --out" if me.rank == 0 else "")
    if me.rank == 0 and not args.no_report:
        try:  # the records are on disk: a table that cannot be drawn must not fail the run
            _print_table(out)
        except Exception as e:
            print(f"warning: the table could not be drawn ({distributed.first_line(e)}); "
                  f"try: python -m suite report {out}", file=sys.stderr)
    distributed.leave(0)


def _run(args, plan: Plan, world: _World) -> Path | None:
    """Every point in turn; rank 0 appends a record per point to --out and
    returns its path."""
    from tqdm import tqdm

    me = world.me
    index = None if world.device == "cpu" else int(world.device.split(":")[1])
    env = _env(env_mod.collect(index, interpret=index is None, command="python -m suite " + shlex.join(args.argv)),
               world)
    shared = [new_run_id(), str(args.out or _default_out(env["gpu"]["name"], me.world_size))]
    dist.broadcast_object_list(shared, src=0, group=world.group)
    run_id, out = shared[0], Path(shared[1])
    writer = RecordWriter(out) if me.rank == 0 else None
    nvml = nvml_handle(index) if me.rank == 0 and index is not None else None
    nodes = len({r["host"] for r in env["ranks"]})
    points = [(op, size) for op in plan.ops for size in plan.sizes]
    if me.rank == 0:
        print(f"collectives: {len(plan.ops)} collectives x {len(plan.sizes)} sizes on {me.world_size} ranks "
              f"({world.backend}, {plan.dtype}) -> {out}", file=sys.stderr)
    bar = tqdm(points, desc="collectives", unit="point", file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or me.rank != 0)
    try:
        for op, size in bar:
            bar.set_postfix_str(f"{op} {size_label(size)}", refresh=False)
            record = _point(op, size, plan, world, args.budget, nvml)
            if writer is not None:
                writer(_record(record, op, plan, world, env, run_id, nodes))
    finally:
        if writer is not None:
            writer.close()
    _sync(world)
    dist.barrier(group=world.group)
    return out if me.rank == 0 else None


def _env(env: dict, world: _World) -> dict:
    """Rank 0's env, plus every rank's host and GPU, the backend and its settings."""
    me = world.me
    mine = {"rank": me.rank, "local_rank": me.local_rank, "host": me.host, "gpu_index": env["gpu"]["index"],
            "gpu_uuid": env["gpu"]["uuid"], "gpu_name": env["gpu"]["name"]}
    env["ranks"] = world.all_gather(mine)
    env["backend"] = world.backend
    env["nccl_env"] = {k: os.environ.get(k) for k in distributed.MULTICAST_OFF}
    if world.backend == "nccl":
        v = torch.cuda.nccl.version()  # (2, 27, 3) in recent torch, an int in old ones
        env["nccl_version"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    else:
        env["gpu"]["name"] = "cpu (gloo)"
    return env


def _sync(world: _World) -> None:
    """Wait until this rank's GPU work so far is done (nothing to wait for on a CPU)."""
    if world.device != "cpu":
        done = torch.cuda.Event()
        done.record()
        _wait_event(done, world)


def _wait_event(event, world: _World) -> None:
    """Wait for a recorded CUDA event by polling, so that SIGTERM from torchrun
    is handled even while a peer is stuck; a collective still unfinished after
    `world.wait_s` is declared hung."""
    deadline = time.monotonic() + world.wait_s
    while not event.query():
        if time.monotonic() > deadline:
            raise TimeoutError(f"a collective did not complete within {world.wait_s:.0f} s: "
                               "another rank is probably dead or stuck")
        time.sleep(50e-6)


def _point(op: str, size: int, plan: Plan, world: _World, budget_s: float, nvml) -> dict:
    """Measure one (collective, size) on every rank; returns what rank 0 records."""
    me = world.me
    lay = layout(op, size, me.world_size, world.elem)
    if lay is None:
        return {"status": "skipped", "size": size,
                "reason": f"{size} bytes leave no element per rank at {me.world_size} ranks"}

    try:
        send, recv = make_buffers(lay, me.rank, world.dtype, world.device)
        problem = None
    except Exception as e:
        send = recv = None
        problem = runner.describe_error(e)
    problems = world.all_gather(problem)
    if any(problems):
        r = next(i for i, p in enumerate(problems) if p)
        _free(world)
        return {"status": "failed", "lay": lay, "reason": f"building buffers on rank {r}: {problems[r]}"}

    call = make_call(lay, send, recv, me.rank)
    call()
    _sync(world)
    try:
        check = (rel_error(recv, lay, me.rank), None)
    except Exception as e:  # e.g. no memory left for the check's temporaries
        check = (float("nan"), runner.describe_error(e))
    checks = world.all_gather(check)
    errors = [err for err, _ in checks]
    tolerance = DTYPE_TABLE[plan.dtype].tolerance
    verify = {"rel_err": _worst(errors), "tolerance": tolerance, "per_rank_rel_err": errors}
    bad = [r for r, e in enumerate(errors) if not e <= tolerance]
    if bad:
        del send, recv, call
        _free(world)
        problem = next((p for _, p in checks if p), None)
        reason = (f"checking the output: {problem}" if problem else
                  f"verification failed on rank(s) {', '.join(map(str, bad))}: rel_err "
                  f"{_worst([errors[r] for r in bad]):.3g} > tolerance {tolerance:.3g}")
        return {"status": "failed", "lay": lay, "verify": verify, "reason": reason}

    samples, inner, window, telemetry = _measure(call, world, budget_s, nvml)
    per_rank = world.all_gather(samples)
    del send, recv, call
    _free(world)
    medians = [statistics.median(s) for s in per_rank]
    slowest = max(range(len(medians)), key=medians.__getitem__)
    return {"status": "ok", "lay": lay, "verify": verify, "samples": per_rank[slowest], "inner": inner,
            "window": window, "telemetry": telemetry,
            "reduction": {"per_rank_p50_s": medians, "slowest_rank": slowest}}


def _worst(errors: list[float]) -> float:
    return float("nan") if any(e != e for e in errors) else max(errors)


def _free(world: _World) -> None:
    """Return the freed buffers to the GPU, so the next size's start from a clean heap."""
    if world.device != "cpu":
        torch.cuda.empty_cache()


def _measure(call, world: _World, budget_s: float, nvml):
    """This rank's samples (seconds per call), the calls per sample, the
    host-time window, and rank 0's NVML readings over it."""
    effort = CPU_EFFORT if world.device == "cpu" else GPU_EFFORT
    for _ in range(effort.warmup):
        call()
    estimate = _samples(call, effort.estimate, 1, world)[0]
    per_call = max(world.all_gather(estimate))  # every rank must make the same number of calls
    inner = min(MAX_INNER, max(1, math.ceil(TARGET_SAMPLE_S / per_call)))
    n = min(effort.max_samples, max(effort.min_samples, int(budget_s / (inner * per_call))))
    dist.barrier(group=world.group)
    with Sampler(nvml) as sampler:
        t0 = time.time()
        samples = _samples(call, inner, n, world)
        window = [t0, time.time()]
    return samples, inner, window, sampler.summary([window])


def _samples(call, inner: int, n: int, world: _World) -> list[float]:
    """n samples of `inner` back-to-back calls, in seconds per call: between
    two CUDA events on a GPU (waiting after each sample, so no more than
    `inner` calls are ever queued), by the host clock on a CPU."""
    out = []
    for _ in range(n):
        if world.device == "cpu":
            t = time.perf_counter()
            for _ in range(inner):
                call()
            out.append((time.perf_counter() - t) / inner)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            call()
        end.record()
        _wait_event(end, world)
        out.append(start.elapsed_time(end) / 1e3 / inner)
    return out


def _record(m: dict, op: str, plan: Plan, world: _World, env: dict, run_id: str, nodes: int) -> Record:
    lay, elem = m.get("lay"), world.elem
    message_bytes = lay.message * elem if lay else m["size"]
    params = {"op": op, "message_bytes": message_bytes, "world_size": world.me.world_size, "nodes": nodes,
              "dtype": plan.dtype}
    config = None
    if lay is not None:
        config = {"send_bytes": lay.send * elem, "recv_bytes": lay.recv * elem, "in_place": lay.in_place,
                  "pattern": "sends to rank r+1, receives from rank r-1" if op == "send-recv" else
                  ("root rank 0" if op == "broadcast" else "all ranks")}
    fields = {}
    if m["status"] == "ok":
        fields = dict(time_s=timing.summarize(m["samples"]), telemetry=m["telemetry"],
                      timing={"method": "cuda-events" if world.device != "cpu" else "wallclock",
                              "inner": m["inner"], "rounds": 1, "window": m["window"],
                              "meaningful": world.device != "cpu",
                              "reduction": "max over ranks of each rank's median; samples are the slowest "
                                           "rank's", **m["reduction"]})
    return Record(workload=f"{world.backend}-{op}", family="collective", impl=world.backend, vendor=True,
                  dtype=plan.dtype, params=params, case=case_id(params),
                  label=f"{op} {size_label(message_bytes)}", status=m["status"], reason=m.get("reason", ""),
                  flops=0, bytes=message_bytes, config=config, verify=m.get("verify"), env=env, run_id=run_id,
                  timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                  suite_version=env.get("suite_version", ""), **fields)


def _print_table(out: Path) -> None:
    """Time, algbw and busbw per collective and size of this run's file."""
    from tabulate import tabulate

    from analysis.collectives import algbw, busbw

    records = [r for r in load(out) if r.family == "collective"]
    run = records[-1].run_id if records else None
    rows = []
    for r in records:
        if r.run_id != run:
            continue
        op, n = r.params["op"], r.params["world_size"]
        if r.status != "ok":
            rows.append((op, size_label(r.bytes), r.status, "", "", r.reason[:60]))
            continue
        t = r.seconds
        rows.append((op, size_label(r.bytes), f"{t * 1e6:.1f}", f"{algbw(op, r.bytes, t) / 1e9:.2f}",
                     f"{busbw(op, r.bytes, t, n) / 1e9:.2f}", ""))
    print(tabulate(rows, headers=("collective", "size", "time us", "algbw GB/s", "busbw GB/s", "note"),
                   tablefmt="simple"))
