"""Several GPUs, one process each, through torchrun and torch.distributed.

`python -m suite sweep --all-gpus` (and `collectives --all-gpus`) starts no
processes of its own making: it runs the same command again under torchrun
(`torch.distributed.run`, called in this process) with one worker per local
GPU. Across nodes the user starts torchrun on each node; the suite sees
RANK, WORLD_SIZE and LOCAL_RANK and behaves the same way. Rank r works on GPU
LOCAL_RANK (modulo the GPU count, so --nproc can oversubscribe).

The sweep needs no GPU-to-GPU traffic: each rank measures its own GPU and
appends its records, flushed one by one, to its own part file next to --out
(`OUT.rank<r>.part`), so a crash keeps them. At the end rank 0 gathers the
part files' lines over gloo (`gather_object`) into --out and the parts are
removed. `--resume` skips what --out and this rank's part file already hold.

When a rank fails or is killed:
- under torchrun on one node, torchrun stops the other workers (SIGTERM);
  each ends with one line naming its part file, and the launching process
  ends with one line naming the rank that failed and the part files left;
- where nobody stops them (ranks on other nodes), the others finish their
  sweep and then fail to gather: gloo sees the dead peer's closed connection
  at once (a rank that hangs instead is waited for as long as the waiting
  rank's own sweep took, at least END_WAIT_MIN_S), and each ends with one
  line.
The part files already written stay, and `--resume` continues from them.

NVLink multicast (NVLS) stays off in every process the suite starts and in
this one before any process group is made: a program that uses it can put a
shared host's GPUs out of service. The suite never calls cuMulticastCreate nor
uses multimem operations.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shlex
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from suite.errors import UsageError
from suite.interpreter import check_interpreter
from suite.results import (RecordWriter, continue_command, default_out, new_run_id, prepare_output,
                           recorded_keys)

MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}

# Each collective or object exchange on a process group may take this long
# before it is declared failed: minutes, so a slow large message never trips
# it, while a dead peer is seen long before (its connection closes).
PG_TIMEOUT = _dt.timedelta(minutes=5)
# Ranks end their sweeps at different times; a rank waits for the others at
# least this long, or as long as its own sweep took if that is longer.
END_WAIT_MIN_S = 600.0

# What torchrun runs on each worker: this package's CLI. (Tests point it at a
# stand-in script that injects failures.)
ENTRY: tuple[str, ...] = ("-m", "suite")

# Exit statuses of a rank. A rank that ends because ANOTHER one did (stopped
# by torchrun, or lost its connection) says so with its status, so that the
# launcher names the rank where the trouble began.
EXIT_FAILED = 1
EXIT_PEER_LOST = 3
EXIT_TERMINATED = 128 + signal.SIGTERM
_COLLATERAL = (EXIT_PEER_LOST, EXIT_TERMINATED, -signal.SIGTERM)


def disable_multicast(environ=os.environ) -> None:
    """Turn NVLink multicast off in `environ` (forced, whatever was set before)."""
    environ.update(MULTICAST_OFF)


def under_torchrun() -> bool:
    """True in a worker started by torchrun (or anything that sets its variables)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    host: str

    @property
    def name(self) -> str:
        return f"rank {self.rank} of {self.world_size} ({self.host})"


def rank_info() -> RankInfo:
    return RankInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]),
                    socket.gethostname())


def init(backend: str, device_index: int | None = None):
    """Join the process group (rendezvous from torchrun's variables) with
    multicast off. With NCCL, also make a gloo group for the small host-side
    exchanges (verdicts, estimates, records); with gloo that is the default
    group. Returns that control group."""
    import torch.distributed as dist

    disable_multicast()
    if backend == "nccl":
        import torch

        dist.init_process_group("nccl", timeout=PG_TIMEOUT, device_id=torch.device("cuda", device_index))
        return dist.new_group(backend="gloo", timeout=PG_TIMEOUT)
    dist.init_process_group(backend, timeout=PG_TIMEOUT)
    return dist.group.WORLD


class Terminated(BaseException):
    """SIGTERM arrived (torchrun stopping this worker because another ended)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def install_sigterm() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)


def leave(code: int, line: str | None = None) -> None:
    """End this rank now, after one line on stderr if given. Its records are
    already on disk; tearing down torch and the process groups would cost
    seconds per rank, and can hang on a peer that is gone."""
    if line:
        print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_PEER_LOST = ("closed by peer", "reset by peer", "broken pipe", "connection refused", "timed out", "timeout",
              "monitoredbarrier")


def peer_lost(e: BaseException) -> bool:
    """Whether `e` says that another rank went away (as opposed to a fault of this one)."""
    return isinstance(e, TimeoutError) or any(s in str(e).lower() for s in _PEER_LOST)


def first_line(e: BaseException) -> str:
    """An exception in one line: its type and first sentence, without the
    '[source.cpp:123]' tag that errors from torch's C++ side begin with."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = re.sub(r"^\[[^\]]*:\d+\]\s*", "", lines[0]) if lines else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(e).__name__}: {text}"[:300]


# ------------------------------------------------------------------ launcher

def _loopback_interface() -> str | None:
    try:
        return next((name for _, name in socket.if_nameindex() if name.startswith("lo")), None)
    except OSError:
        return None


def _quiet_elastic_logs() -> None:
    # torchrun's agent logs each worker it stops and the one that failed;
    # the suite says the same in one line after it returns.
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


class Interrupted(Exception):
    """The user interrupted the launch (Ctrl-C)."""


def launch(argv: list[str], nproc: int) -> str | None:
    """Run `python ENTRY argv` on `nproc` local workers under torchrun and wait.

    Returns None when every worker succeeded, else one phrase naming the
    first rank that failed and how. Raises Interrupted on Ctrl-C."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    disable_multicast()  # inherited by the workers
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, without its banner
    # One node: the workers meet, and gloo talks, over loopback, whatever
    # the host's name resolves to.
    lo = _loopback_interface()
    if lo:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", lo)
    targs = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--local-addr=127.0.0.1",
                                          *ENTRY])
    # Set apart from torchrun's parser, which would take the suite's own
    # options (--nproc) for abbreviations of its own.
    targs.training_script_args = list(argv)
    _quiet_elastic_logs()
    try:
        run(targs)
    except ChildFailedError as e:
        causes = sorted((r, f) for r, f in e.failures.items() if f.exitcode not in _COLLATERAL)
        rank, failure = causes[0] if causes else e.get_first_failure()
        if failure.exitcode < 0:
            return f"rank {rank} was killed by {failure.signal_name()}"
        return f"rank {rank} exited with status {failure.exitcode} (its message is above)"
    except (SignalException, KeyboardInterrupt):
        raise Interrupted() from None
    except Exception as e:  # the rendezvous itself failed
        return f"torchrun could not run the workers: {first_line(e)}"
    return None


# ------------------------------------------------------------------ sweep

def part_path(out: Path, rank: int) -> Path:
    return out.with_name(f"{out.name}.rank{rank}.part")


def part_files(out: Path) -> list[Path]:
    """This host's part files of `out`, by rank."""
    found = []
    for p in out.parent.glob(f"{out.name}.rank*.part"):
        tail = p.name[len(out.name) + len(".rank"):-len(".part")]
        if tail.isdigit():
            found.append((int(tail), p))
    return [p for _, p in sorted(found)]


def _count_lines(p: Path) -> int:
    try:
        return sum(1 for line in p.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def sweep(args, tasks, mode: str) -> int:
    """`sweep --all-gpus`: launch the workers, or be one of them."""
    if under_torchrun():
        return _sweep_rank(args, tasks, mode)
    return _launch_sweep(args, mode)


def _launch_sweep(args, mode: str) -> int:
    import torch


    gpus = torch.cuda.device_count()
    nproc = args.nproc if args.nproc is not None else (gpus or 1)
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    name = "cpu" if args.interpret else torch.cuda.get_device_name(0)
    out = args.out or default_out(f"{name} x{nproc}", mode)
    check_interpreter(args)
    # --out and the part files an interrupted run left follow one file's rules (suite.results).
    prepare_output(out, resume=args.resume, append=args.append, machine=_machine(nproc, args.interpret, gpus),
                   parts=part_files(out))
    argv = list(args.argv) + ([] if args.out else ["--out", str(out)])
    again = continue_command(args.argv, out, out_given=args.out is not None, resumed=args.resume)
    print(f"sweep: {nproc} process(es) through torchrun, one per GPU, gathered into {out}", file=sys.stderr)
    try:
        failure = launch(argv, nproc)
    except Interrupted:
        print(f"\ninterrupted: the records measured so far are in {_describe_parts(out)}; continue with: "
              f"{again}", file=sys.stderr)
        return 130
    if failure is None:
        return 0
    print(f"error: the sweep did not finish: {failure}; the other ranks were stopped; records measured so "
          f"far: {_describe_parts(out)}; continue with: {again}", file=sys.stderr)
    return EXIT_FAILED


def _machine(nproc: int, interpret: bool, gpus: int) -> set[tuple]:
    """The (host, GPU UUID) of every rank this launch starts (ranks share GPUs beyond the count)."""
    host = socket.gethostname()
    if interpret:
        return {(host, None)}
    from suite.env import gpu_info
    return {(host, gpu_info(i)["uuid"]) for i in range(min(nproc, gpus))}


def _describe_parts(out: Path) -> str:
    parts = part_files(out)
    if not parts:
        return f"{out}" if out.exists() else "(none)"
    return ", ".join(f"{p} ({_count_lines(p)} records)" for p in parts)


def _sweep_rank(args, tasks, mode: str) -> int:
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    from suite import env as env_mod
    from suite import runner, timing
    from suite.telemetry import nvml_handle

    me = rank_info()
    install_sigterm()
    started = time.monotonic()
    writer = part = None
    try:
        group = init("gloo")  # the sweep's only traffic is its records, once, at the end
        interpret = args.interpret
        if interpret:
            index, device = None, "cpu"
        else:
            index = me.local_rank % torch.cuda.device_count()
            device = f"cuda:{index}"
            torch.cuda.set_device(index)
        env = env_mod.collect(index, interpret=interpret, command="python -m suite " + shlex.join(args.argv))
        if interpret:
            # Each CPU rank stands for one GPU: per-GPU tables and --resume tell them apart.
            env["gpu"]["index"] = me.local_rank
        env["settle_s"] = 0.0 if interpret else args.settle

        # One run id and one results file for all ranks: rank 0's.
        default = default_out(f"{env['gpu']['name']} x{me.world_size}", mode)
        shared = [new_run_id(), str(args.out or default)]
        dist.broadcast_object_list(shared, src=0, group=group)
        run_id, out = shared[0], Path(shared[1])
        part = part_path(out, me.rank)
        done = (recorded_keys(out) | recorded_keys(part)) if args.resume else set()
        ctx = runner.Context(device=device, env=env, interpret=interpret,
                             policy=timing.TimingPolicy(budget_s=args.budget), run_id=run_id, seed=args.seed,
                             nvml=None if interpret else nvml_handle(index))
        runner.configure_tuning(ctx, retune=getattr(args, "retune", False))
        if me.rank == 0:
            print(f"sweep: {len(tasks)} cases ({mode}) on each of {me.world_size} ranks -> {out} "
                  f"(progress of rank 0)", file=sys.stderr)
        if not interpret:
            runner.settle(args.settle, device)
        writer = RecordWriter(part)
        bar = tqdm(tasks, desc="sweep", unit="case", file=sys.stderr, dynamic_ncols=True,
                   disable=args.no_progress or me.rank != 0)
        for task in bar:
            bar.set_postfix_str(f"{task.workload.name} {task.workload.case_label(task.params)} {task.dtype}",
                                refresh=False)
            runner.run_task(task, ctx, writer, done)
        writer.close()
    except BaseException as e:
        _close(writer)
        leave_on(e, me, f"this rank's records so far are in {part}" if part else "")

    try:
        wait = max(END_WAIT_MIN_S, time.monotonic() - started)
        dist.monitored_barrier(group=group, timeout=_dt.timedelta(seconds=wait), wait_all_ranks=True)
        lines = [ln for ln in part.read_text().splitlines() if ln.strip()] if part.exists() else []
        gathered = [None] * me.world_size if me.rank == 0 else None
        dist.gather_object(lines, gathered, dst=0, group=group)
        if me.rank == 0:
            total = _append_lines(out, gathered)
        dist.barrier(group=group)  # --out is complete before any part file goes
    except BaseException as e:
        leave_on(e, me, f"the records could not be gathered; this rank's are in {part}")
    part.unlink(missing_ok=True)
    if me.rank == 0:
        print(f"sweep: wrote {total} records from {me.world_size} ranks to {out}", file=sys.stderr)
        if not args.no_report:
            _print_report(out)
    leave(0)


def leave_on(e: BaseException, me: RankInfo, where: str = "") -> None:
    """End this rank after `e` with one line saying why (and `where` its records are)."""
    # Leaving already: torchrun's SIGTERM (another rank ended) must not raise again while this rank
    # says why and exits, or the one line becomes a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tail = f"; {where}" if where else ""
    if isinstance(e, Terminated):
        leave(EXIT_TERMINATED, f"error: {me.name}: stopped by torchrun because another rank failed or was "
                               f"killed{tail}")
    if isinstance(e, KeyboardInterrupt):
        leave(130, f"interrupted: {me.name}{tail}")
    if peer_lost(e):
        leave(EXIT_PEER_LOST, f"error: {me.name}: lost contact with another rank (it failed, was killed or "
                              f"hangs): {first_line(e)}{tail}")
    traceback.print_exc()
    leave(EXIT_FAILED, f"error: {me.name} failed: {first_line(e)}{tail}")


def _close(writer) -> None:
    if writer is not None:
        writer.close()


def _append_lines(out: Path, per_rank: list[list[str]]) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with open(out, "a", encoding="utf-8") as f:
        for lines in per_rank:
            for line in lines:
                f.write(line + "\n")
                total += 1
        f.flush()
        os.fsync(f.fileno())
    return total


def _print_report(out: Path) -> None:
    # The records are safely in --out by now: a report that cannot be drawn
    # must not turn a finished sweep into a failed one.
    try:
        from analysis.records import load
        from analysis.report import render

        print(render(load(out), fmt="plain"))
    except Exception as e:
        print(f"warning: the report could not be drawn ({first_line(e)}); "
              f"try: python -m suite report {out}", file=sys.stderr)
