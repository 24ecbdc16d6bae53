"""Several ranks on the CPU (gloo): `sweep --all-gpus`, `collectives`, and ranks that fail.

The end-to-end tests start the real command, which re-runs itself under
torchrun with one worker per rank (--nproc). Faults are injected through
crashing_suite.py, a stand-in for `python -m suite` that makes one rank
fail. The verification logic of the collectives is also checked in-process
against simulated collectives, where a broken one must fail.
"""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.collectives import bus_factor, busbw
from analysis.records import dump, load
from suite import collectives as coll
from suite import distributed
from suite.cli import UsageError, main
from suite.dtypes import DTYPES

ROOT = Path(__file__).resolve().parents[2]
CRASHING = Path(__file__).with_name("crashing_suite.py")
SWEEP = ["sweep", "--all-gpus", "--interpret", "--only", "stream-copy", "--dtype", "fp32", "--no-report",
         "--no-progress"]


def _run(argv, *, script=None, env=None, timeout=240):
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "suite"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd + argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


# ---------------------------------------------------------------- sweep --all-gpus

def _check_gathered(out: Path, world: int, cases: int, runs: int = 1) -> None:
    recs = load(out)
    assert len(recs) == world * cases * 2  # two implementations per case
    by_rank = {r: [x for x in recs if x.env["rank"] == r] for r in range(world)}
    assert all(len(v) == cases * 2 for v in by_rank.values())
    assert {x.env["world_size"] for x in recs} == {world}
    assert len({x.run_id for x in recs}) == runs  # rank 0's run id, shared by all ranks
    assert len({x.gpu_key for x in recs}) == world  # each rank is told apart
    assert all(x.status == "ok" and not x.meaningful for x in recs)  # interpreter timings
    assert distributed.part_files(out) == []  # merged, then removed


def test_sweep_all_gpus_gathers_every_rank_into_one_file(tmp_path, working_interpreter):
    out = tmp_path / "r.jsonl"
    p = _run(SWEEP + ["--nproc", "2", "--out", str(out)])
    assert p.returncode == 0, p.stderr
    _check_gathered(out, world=2, cases=3)
    assert f"wrote 12 records from 2 ranks to {out}" in p.stderr


def test_sweep_all_gpus_at_world_size_8(tmp_path, working_interpreter):
    out = tmp_path / "r8.jsonl"
    p = _run(SWEEP + ["--nproc", "8", "--size", "4124 B", "--out", str(out)])
    assert p.returncode == 0, p.stderr
    _check_gathered(out, world=8, cases=1)
    assert sorted({r.env["local_rank"] for r in load(out)}) == list(range(8))


def _check_killed_rank(p: subprocess.CompletedProcess, out: Path) -> str:
    """What `sweep --all-gpus` shows when rank 1 is SIGKILLed after its first case, whichever way
    the race between torchrun's SIGTERM and rank 0's own sweep goes: rank 0, still measuring, is
    stopped by torchrun (its whole records so far kept); or, done already and waiting to gather,
    it sees its peer's connection close first ("lost contact"), all its records in its part file.
    Either way: one line from rank 0, the launcher's last line names rank 1, both part files and
    the command to continue; nothing gathered, no traceback. Returns that command."""
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    errors = _error_lines(p.stderr)
    rank0 = [ln for ln in errors if ln.startswith("error: rank 0 of 2")]
    assert len(rank0) == 1, p.stderr
    stopped = "stopped by torchrun because another rank failed or was killed" in rank0[0]
    assert stopped or "lost contact with another rank" in rank0[0], rank0[0]
    parts = distributed.part_files(out)
    assert [x.name for x in parts] == [f"{out.name}.rank0.part", f"{out.name}.rank1.part"]
    assert str(parts[0]) in rank0[0]
    last = errors[-1]
    assert last.startswith("error: the sweep did not finish: rank 1 was killed by SIGKILL"), last
    assert all(f"{x} ({len(load(x))} records)" in last for x in parts), last
    assert len(load(parts[1])) == 2  # what rank 1 wrote before it died
    if not stopped:
        assert len(load(parts[0])) == 6  # rank 0 had finished its sweep: everything kept
    assert not out.exists()
    command = last.split("; continue with: ", 1)[1]
    assert command.startswith("python -m suite ")
    return command


def test_killed_rank_stops_the_others_and_its_records_survive(tmp_path, working_interpreter):
    """torchrun stops the survivors; each says so in one line; the command it prints finishes the file."""
    out = tmp_path / "k.jsonl"
    argv = SWEEP + ["--nproc", "2", "--out", str(out)]
    p = _run(argv, script=CRASHING, env={"CRASH_RANK": "1", "CRASH_HOW": "kill"})
    command = _check_killed_rank(p, out)
    assert shlex.split(command)[3:] == argv + ["--resume"]

    p = _run(shlex.split(command)[3:])
    assert p.returncode == 0, p.stderr
    _check_gathered(out, world=2, cases=3, runs=2)  # the interrupted run's records kept, not redone


def _fake_kill_outcome(tmp_path, rank0_line: str, rank0_records: int, last: str | None = None, extra: str = ""):
    out = tmp_path / "k.jsonl"
    parts = [distributed.part_path(out, r) for r in (0, 1)]
    for part, n in zip(parts, (rank0_records, 2)):
        part.write_text("".join(dump(_record(i)) + "\n" for i in range(n)))
    rank0_line = rank0_line.format(part0=parts[0])
    last = last or (f"error: the sweep did not finish: rank 1 was killed by SIGKILL; the other ranks were stopped; "
                    f"records measured so far: {parts[0]} ({rank0_records} records), {parts[1]} (2 records); "
                    f"continue with: python -m suite sweep --out {out} --resume")
    stderr = f"sweep: 2 process(es)\n{extra}{rank0_line}\n{last}\n"
    return subprocess.CompletedProcess([], 1, "", stderr), out


def _record(i: int):
    from analysis.records import Record
    return Record(workload="stream-copy", family="streaming", impl="triton", vendor=False, dtype="fp32",
                  params={"array_bytes": i}, case=f"array_bytes={i}", label=str(i), status="ok")


STOPPED = ("error: rank 0 of 2 (h): stopped by torchrun because another rank failed or was killed; this rank's "
           "records so far are in {part0}")
LOST = ("error: rank 0 of 2 (h): lost contact with another rank (it failed, was killed or hangs): RuntimeError: "
        "[Rank 0]: Ranks 1 failed to pass monitoredBarrier; the records could not be gathered; this rank's are "
        "in {part0}")


@pytest.mark.parametrize("line, n", [(STOPPED, 4), (STOPPED, 6), (LOST, 6)])
def test_each_legitimate_outcome_of_the_kill_race_passes(tmp_path, line, n):
    _check_killed_rank(*_fake_kill_outcome(tmp_path, line, n))


@pytest.mark.parametrize("line, n, last, extra", [
    (LOST, 4, None, ""),  # lost contact at the gather, yet its sweep unfinished: records lost
    ("error: rank 0 of 2 (h): failed: OSError: disk full; this rank's records so far are in {part0}", 4, None, ""),
    ("sweep: rank 0 said nothing", 4, None, ""),
    (STOPPED, 4, "error: the sweep did not finish: rank 0 exited with status 1 (its message is above)", ""),
    (STOPPED, 4, None, "Traceback (most recent call last):\n"),
])
def test_a_wrong_outcome_of_the_kill_race_fails(tmp_path, line, n, last, extra):
    with pytest.raises(AssertionError):
        _check_killed_rank(*_fake_kill_outcome(tmp_path, line, n, last, extra))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_ranks(world: int, argv: list[str], crash_rank: int, how: str) -> list[subprocess.CompletedProcess]:
    """Ranks started without torchrun's agent (as on several nodes): nobody stops the survivors."""
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "CRASH_RANK": str(crash_rank), "CRASH_HOW": how, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(CRASHING)] + argv, cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=240), *p.communicate()) for p in procs]


def test_sigterm_while_a_rank_leaves_does_not_raise_again(monkeypatch):
    """torchrun's SIGTERM can arrive while a rank is already leaving on another error (its peer's
    connection closed): the rank still ends with its one line, not a Terminated traceback."""
    said = []

    def leave(code, line=None):
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun stops the workers just now
        said.append((code, line))
        raise SystemExit(code)

    monkeypatch.setattr(distributed, "leave", leave)
    previous = signal.getsignal(signal.SIGTERM)
    distributed.install_sigterm()
    try:
        with pytest.raises(SystemExit):
            distributed.leave_on(RuntimeError("Connection closed by peer [127.0.0.1]:1"), distributed.RankInfo(0, 2, 0, "h"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert said == [(distributed.EXIT_PEER_LOST, said[0][1])] and "lost contact" in said[0][1]


def test_rank_that_raises_without_torchrun_agent_fails_the_gather_in_one_line(tmp_path, working_interpreter):
    out = tmp_path / "x.jsonl"
    argv = [a for a in SWEEP if a != "--all-gpus"] + ["--out", str(out)]
    survivor, victim = _start_ranks(2, argv, crash_rank=1, how="raise")
    assert victim.returncode == 1 and "No space left on device (injected)" in _error_lines(victim.stderr)[-1]
    assert survivor.returncode == distributed.EXIT_PEER_LOST
    lines = _error_lines(survivor.stderr)
    assert len(lines) == 1, survivor.stderr
    assert lines[0].startswith("error: rank 0 of 2") and "lost contact with another rank" in lines[0]
    assert str(distributed.part_path(out, 0)) in lines[0]
    assert "Traceback" not in survivor.stderr
    assert len(load(distributed.part_path(out, 0))) == 6  # rank 0 finished its sweep: all kept
    assert len(load(distributed.part_path(out, 1))) == 2
    assert not out.exists()


# ---------------------------------------------------------------- collectives, end to end

def _check_collective_records(out: Path, world: int, sizes: list[int]) -> None:
    recs = load(out)
    assert [(r.params["op"], r.params["message_bytes"]) for r in recs] == \
        [(op, s) for op in coll.OPS for s in sizes]
    for r in recs:
        assert r.status == "ok", r.reason
        assert r.family == "collective" and r.workload == f"gloo-{r.params['op']}" and r.vendor
        assert r.params["world_size"] == world and r.params["nodes"] == 1 and r.params["dtype"] == "bf16"
        assert r.verify["rel_err"] <= r.verify["tolerance"] == DTYPES["bf16"].tolerance
        assert len(r.verify["per_rank_rel_err"]) == world
        assert r.timing["meaningful"] is False and not r.meaningful
        assert r.time_s["p50"] == max(r.timing["per_rank_p50_s"])  # the slowest rank's median
        assert [g["rank"] for g in r.env["ranks"]] == list(range(world))
        assert r.env["nccl_env"] == distributed.MULTICAST_OFF
        _check_message_bytes(r, world)
        # The bus bandwidth follows from what the record carries.
        assert busbw(r.params["op"], r.bytes, r.seconds, world) == \
            pytest.approx(r.bytes / r.time_s["p50"] * bus_factor(r.params["op"], world))


def _check_message_bytes(r, n: int) -> None:
    """record.bytes is nccl-tests' S, in terms of each rank's buffers."""
    op, send, recv = r.params["op"], r.config["send_bytes"], r.config["recv_bytes"]
    assert r.bytes == r.params["message_bytes"]
    expected = {"all-reduce": send, "broadcast": send, "send-recv": send, "all-to-all": send,
                "all-gather": n * send, "reduce-scatter": n * recv}[op]
    assert r.bytes == expected and recv == {"all-gather": n * send, "reduce-scatter": send // n}.get(op, send)


def test_collectives_on_gloo_verified_and_recorded(tmp_path):
    out = tmp_path / "c.jsonl"
    p = _run(["collectives", "--all-gpus", "--cpu", "--nproc", "2", "--max-bytes", "4KiB", "--out", str(out),
              "--no-progress"])
    assert p.returncode == 0, p.stderr
    _check_collective_records(out, world=2, sizes=[1024, 4096])
    assert "busbw GB/s" in p.stdout and "all-to-all" in p.stdout


def test_collectives_at_world_size_8(tmp_path):
    out = tmp_path / "c8.jsonl"
    p = _run(["collectives", "--all-gpus", "--cpu", "--nproc", "8", "--max-bytes", "1KiB", "--out", str(out),
              "--no-progress", "--no-report"])
    assert p.returncode == 0, p.stderr
    _check_collective_records(out, world=8, sizes=[1024])


def test_collectives_rank_killed_others_stop_and_records_survive(tmp_path):
    out = tmp_path / "c.jsonl"
    p = _run(["collectives", "--all-gpus", "--cpu", "--nproc", "2", "--max-bytes", "4KiB", "--out", str(out),
              "--no-progress"], script=CRASHING, env={"CRASH_RANK": "1", "CRASH_HOW": "kill"})
    assert p.returncode == 1
    errors = _error_lines(p.stderr)
    assert "rank 1 was killed by SIGKILL" in errors[-1] and str(out) in errors[-1]
    assert any(ln.startswith("error: rank 0 of 2") for ln in errors[:-1]), p.stderr
    recs = load(out)
    assert 1 <= len(recs) <= 2 and all(r.status == "ok" for r in recs)


def test_wrong_collective_output_is_a_failed_record_not_a_figure(tmp_path):
    out = tmp_path / "w.jsonl"
    p = _run(["collectives", "--all-gpus", "--cpu", "--nproc", "2", "--ops", "all-reduce,all-gather",
              "--max-bytes", "1KiB", "--out", str(out), "--no-progress"], script=CRASHING,
             env={"CRASH_RANK": "1", "CRASH_HOW": "wrong"})
    assert p.returncode == 0, p.stderr
    recs = load(out)
    assert [r.params["op"] for r in recs] == ["all-reduce", "all-gather"]
    for r in recs:
        assert r.status == "failed" and r.time_s is None and r.bytes_per_s is None
        assert r.reason.startswith("verification failed on rank(s) 1: rel_err")
        assert r.verify["per_rank_rel_err"][0] <= r.verify["tolerance"] < r.verify["per_rank_rel_err"][1]


# ---------------------------------------------------------------- --out and part files: the results-file rules

LAUNCH = SWEEP + ["--nproc", "2"]


@pytest.fixture
def launcher(monkeypatch):
    """`sweep --all-gpus` in this process up to torchrun: the launcher's checks run, no worker
    starts. Returns the argv lists torchrun would have been given."""
    from suite import interpreter
    monkeypatch.setenv("TRITON_INTERPRET", os.environ.get("TRITON_INTERPRET", "0"))
    monkeypatch.setattr(interpreter, "interpreter_problem", lambda: None)
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda argv, nproc: launched.append(argv))
    return launched


def _records(path: Path, n: int, host: str = socket.gethostname()) -> None:
    recs = [_record(i) for i in range(n)]
    for r in recs:
        r.env = {"host": host, "gpu": {"uuid": None, "index": 0}}
    path.write_text("".join(dump(r) + "\n" for r in recs))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_all_gpus_refuses_an_out_with_records_unless_told(tmp_path, capsys, launcher):
    out = tmp_path / "r.jsonl"
    _records(out, 3)
    assert main(LAUNCH + ["--out", str(out)]) == 2
    assert "already holds 3 records: add --resume" in _one_error(capsys)
    assert main(LAUNCH + ["--out", str(out), "--append"]) == 0
    assert main(LAUNCH + ["--out", str(out), "--resume"]) == 0
    assert len(launcher) == 2


def test_all_gpus_refuses_the_part_files_of_an_interrupted_run_unless_resumed(tmp_path, capsys, launcher):
    out = tmp_path / "r.jsonl"
    part = distributed.part_path(out, 1)
    _records(part, 2)
    assert main(LAUNCH + ["--out", str(out)]) == 2
    line = _one_error(capsys)
    assert f"part files of an interrupted --all-gpus sweep: {part} (2 records); add --resume" in line
    assert launcher == []


def test_all_gpus_resume_refuses_part_files_from_another_host(tmp_path, capsys, launcher):
    out = tmp_path / "r.jsonl"
    _records(distributed.part_path(out, 0), 2, host="another-node")
    assert main(LAUNCH + ["--out", str(out), "--resume"]) == 2
    assert "measured on host 'another-node'" in _one_error(capsys)
    assert launcher == []


def test_all_gpus_sets_a_cut_part_line_aside_before_the_ranks_append(tmp_path, capsys, launcher):
    out = tmp_path / "r.jsonl"
    part = distributed.part_path(out, 0)
    _records(part, 2)
    whole = part.read_bytes()
    with open(part, "ab") as f:
        f.write(b'{"workload": "stream-copy", "fam')
    assert main(LAUNCH + ["--out", str(out), "--resume"]) == 0
    assert part.read_bytes() == whole
    [side] = tmp_path.glob(f"{part.name}.partial-*")
    assert side.read_bytes() == b'{"workload": "stream-copy", "fam'
    assert str(side) in capsys.readouterr().err


@pytest.mark.parametrize("resumed", [False, True])
def test_all_gpus_interrupt_prints_the_whole_command(tmp_path, capsys, monkeypatch, launcher, resumed):
    out = tmp_path / "r.jsonl"
    _records(out, 1)

    def interrupted(argv, nproc):
        raise distributed.Interrupted()
    monkeypatch.setattr(distributed, "launch", interrupted)
    argv = LAUNCH + ["--out", str(out), "--resume" if resumed else "--append"]
    assert main(argv) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    command = last.split("; continue with: ", 1)[1]
    assert shlex.split(command) == ["python", "-m", "suite", *argv] + ([] if resumed else ["--resume"])


# ---------------------------------------------------------------- arguments

@pytest.mark.parametrize("argv, needle", [
    (["collectives", "--cpu"], "add --all-gpus"),
    (["collectives", "--all-gpus", "--cpu", "--ops", "all-reduce,gossip"], "choose from: all-reduce, all-gather"),
    (["collectives", "--all-gpus", "--cpu", "--min-bytes", "3 parsecs"], "cannot read the size '3 parsecs'"),
    (["collectives", "--all-gpus", "--cpu", "--min-bytes", "1MiB", "--max-bytes", "1KiB"], "no more than"),
    (["collectives", "--all-gpus", "--cpu", "--dtype", "fp8"], "choose from: bf16, fp16, fp32"),
    (["collectives", "--all-gpus", "--cpu", "--nproc", "1"], "at least 2 processes"),
    (["sweep", "--interpret", "--nproc", "2"], "--nproc needs --all-gpus"),
])
def test_bad_arguments_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_collectives_without_gpu_says_so(capsys):
    assert main(["collectives", "--all-gpus"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--cpu" in err


def test_op_names_accept_other_spellings():
    from types import SimpleNamespace
    args = SimpleNamespace(ops=["allreduce", "all_gather", "AllToAll"], dtype="fp32", min_bytes="1K",
                           max_bytes="64K", cpu=True, budget=0.1)
    plan = coll.plan_from_args(args)
    assert plan.ops == ("all-reduce", "all-gather", "all-to-all")
    assert plan.sizes == (1 << 10, 4 << 10, 16 << 10, 64 << 10)


def test_parse_bytes():
    assert [coll.parse_bytes(s) for s in ("1KiB", "64 MiB", "4GiB", "4096", "2k", "0.5 GiB")] == \
        [1024, 64 << 20, 4 << 30, 4096, 2048, 512 << 20]
    with pytest.raises(UsageError):
        coll.parse_bytes("4 GB/s")


def test_multicast_is_forced_off():
    env = {"NCCL_NVLS_ENABLE": "1"}
    distributed.disable_multicast(env)
    assert env == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


# ---------------------------------------------------------------- verification, in process

def _simulate(op: str, inputs: list[torch.Tensor], lay) -> list[torch.Tensor]:
    """What each rank's output must hold, computed from all ranks' inputs."""
    n, c = lay.world_size, lay.chunk
    f = [x.float() for x in inputs]
    if op == "all-reduce":
        return [sum(f)] * n
    if op == "all-gather":
        return [torch.cat(f)] * n
    if op == "reduce-scatter":
        return [sum(f)[q * c:(q + 1) * c] for q in range(n)]
    if op == "all-to-all":
        return [torch.cat([f[j][q * c:(q + 1) * c] for j in range(n)]) for q in range(n)]
    if op == "broadcast":
        return [f[0]] * n
    return [f[(q - 1) % n] for q in range(n)]  # send-recv: from the previous rank


@pytest.mark.parametrize("op", coll.OPS)
@pytest.mark.parametrize("world", [2, 3, 8])
def test_verification_accepts_the_right_answer_and_rejects_wrong_ones(op, world, monkeypatch):
    monkeypatch.setattr(coll, "CHUNK", 7)  # check piece by piece across segment boundaries
    dtype = torch.bfloat16
    lay = coll.layout(op, 1000, world, 2)
    inputs = [coll.pattern(r, 0, lay.send, dtype, "cpu") for r in range(world)]
    outs = [o.to(dtype) for o in _simulate(op, inputs, lay)]
    tol = DTYPES["bf16"].tolerance
    for rank in range(world):
        assert coll.rel_error(outs[rank], lay, rank) <= tol
    out = outs[world - 1]
    unwritten = out.clone()
    unwritten[-1] = float("nan")
    assert not coll.rel_error(unwritten, lay, world - 1) <= tol
    own = coll.pattern(world - 1, 0, lay.recv, dtype, "cpu")  # the rank's own data, not its peers'
    assert not coll.rel_error(own, lay, world - 1) <= tol
    if lay.recv >= 2 * lay.chunk:  # chunks from two ranks swapped
        c = lay.chunk
        swapped = torch.cat([out[c:2 * c], out[:c], out[2 * c:]])
        assert not coll.rel_error(swapped, lay, world - 1) <= tol


def test_buffers_start_poisoned_and_inputs_are_rank_dependent_and_nonzero():
    lay = coll.layout("all-gather", 4096, 4, 4)
    send1, recv1 = coll.make_buffers(lay, 1, torch.float32, "cpu")
    send2, _ = coll.make_buffers(lay, 2, torch.float32, "cpu")
    assert torch.isnan(recv1).all() and (send1 != 0).all() and not torch.equal(send1, send2)
    b_lay = coll.layout("broadcast", 64, 2, 4)
    root, _ = coll.make_buffers(b_lay, 0, torch.float32, "cpu")
    leaf, _ = coll.make_buffers(b_lay, 1, torch.float32, "cpu")
    assert not torch.isnan(root).any() and torch.isnan(leaf).all()


@pytest.mark.parametrize("world", [2, 3, 8])
def test_layouts_follow_nccl_tests_sizes(world):
    elem = 2
    for op in coll.OPS:
        lay = coll.layout(op, 1 << 20, world, elem)
        assert lay.message * elem <= 1 << 20 and (1 << 20) - lay.message * elem < world * elem
        assert lay.message == {"all-gather": lay.recv, "reduce-scatter": lay.send}.get(op, lay.send)
    assert coll.layout("all-gather", 2, 8, 2) is None  # less than one element per rank


def test_records_round_trip_through_json(tmp_path):
    """A collective record is an ordinary record: the analysis side reads it back."""
    from types import SimpleNamespace

    world = coll._World(me=distributed.RankInfo(0, 2, 0, "h"), group=None, device="cpu", backend="gloo",
                        dtype=torch.bfloat16, elem=2, wait_s=1.0)
    lay = coll.layout("reduce-scatter", 4096, 2, 2)
    m = {"status": "ok", "lay": lay, "verify": {"rel_err": 0.0, "tolerance": 0.015}, "samples": [1e-3, 2e-3],
         "inner": 1, "window": [0.0, 1.0], "telemetry": None,
         "reduction": {"per_rank_p50_s": [1.5e-3, 1e-3], "slowest_rank": 0}}
    rec = coll._record(m, "reduce-scatter", SimpleNamespace(dtype="bf16"), world, {"host": "h", "gpu": {}},
                       "run", 1)
    line = json.dumps(rec.to_dict())
    f = tmp_path / "one.jsonl"
    f.write_text(line + "\n")
    back = load(f)[0]
    assert back.bytes == 4096 and back.case == "dtype=bf16,message_bytes=4096,nodes=1,op=reduce-scatter,world_size=2"
    assert back.bytes_per_s == pytest.approx(4096 / 1.5e-3)  # algbw: S / t
