"""Results files are never mixed or corrupted: the rules of suite.results, one by one, then
through the CLI (a re-run, a resume elsewhere, a kill mid-write, Ctrl-C, a full disk)."""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.records import SCHEMA_VERSION, Record, RecordError, dump, load
from conftest import interpreted_here
from suite import interpreter, results
from suite.cli import main
from suite.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
HERE = ("h", "GPU-a")


def _rec(i=0, host="h", uuid="GPU-a", name="NVIDIA H200", **kw):
    return Record(workload="stream-copy", family="streaming", impl="triton", vendor=False, dtype="fp32",
                  params={"array_bytes": i}, case=f"array_bytes={i}", label=f"{i} B", status="ok",
                  env={"host": host, "gpu": {"uuid": uuid, "name": name, "index": 0}}, **kw)


def _write(path: Path, *records, tail: bytes = b"") -> bytes:
    data = "".join(dump(r) + "\n" for r in records).encode() + tail
    path.write_bytes(data)
    return data


def _prepare(path, resume=False, append=False, machine=(HERE,), parts=()):
    return results.prepare_output(path, resume=resume, append=append, machine=set(machine), parts=parts)


# ---------------------------------------------------------------- append only when told

def test_a_file_with_records_is_refused_unless_resumed_or_appended(tmp_path):
    f = tmp_path / "r.jsonl"
    data = _write(f, _rec(0), _rec(1))
    with pytest.raises(UsageError, match=r"already holds 2 records: add --resume .* --append"):
        _prepare(f)
    assert _prepare(f, append=True) == set()
    assert _prepare(f, resume=True) == {_rec(0).key, _rec(1).key}
    assert f.read_bytes() == data  # checking never changes the file


def test_a_new_or_empty_file_needs_no_flag(tmp_path):
    assert _prepare(tmp_path / "new" / "r.jsonl") == set()
    assert not (tmp_path / "new" / "r.jsonl").exists()  # probed, not created
    (tmp_path / "empty.jsonl").write_text("\n")
    assert _prepare(tmp_path / "empty.jsonl") == set()


def test_resume_needs_an_existing_file(tmp_path):
    with pytest.raises(UsageError, match="--resume needs --out naming an existing results file"):
        _prepare(tmp_path / "r.jsonl", resume=True)


def test_part_files_of_an_interrupted_run_are_refused_unless_resumed(tmp_path):
    out = tmp_path / "r.jsonl"
    part = tmp_path / "r.jsonl.rank1.part"
    _write(part, _rec(0))
    with pytest.raises(UsageError, match=rf"part files of an interrupted --all-gpus sweep: {part} \(1 record\)"):
        _prepare(out, parts=[part])
    assert _prepare(out, resume=True, parts=[part]) == {_rec(0).key}


# ---------------------------------------------------------------- --resume: the same machine only

@pytest.mark.parametrize("record, needle", [
    (_rec(uuid="GPU-b"), "measured on GPU GPU-b (NVIDIA H200), and this sweep runs on GPU GPU-a"),
    (_rec(host="elsewhere"), "measured on host 'elsewhere', and this is h"),
    (_rec(schema=1), f"of schema 1, and this suite writes schema {SCHEMA_VERSION}"),
])
def test_resume_refuses_another_gpu_host_or_schema(tmp_path, record, needle):
    f = tmp_path / "r.jsonl"
    _write(f, _rec(0), record)
    with pytest.raises(UsageError) as e:
        _prepare(f, resume=True)
    assert str(e.value).startswith(f"--resume: {f} holds 1 record ") and needle in str(e.value)
    assert _prepare(f, append=True) == set()  # a new run beside them is the user's call


def test_resume_refuses_to_count_a_cpu_among_the_gpus(tmp_path):
    f = tmp_path / "h200.jsonl"
    _write(f, _rec(0))
    with pytest.raises(UsageError, match=r"GPU GPU-a \(NVIDIA H200\), and this sweep runs on the CPU \(--interpret\)"):
        _prepare(f, resume=True, machine=[("h", None)])


def test_resume_of_several_gpus_accepts_each_of_them(tmp_path):
    f = tmp_path / "x2.jsonl"
    _write(f, _rec(0, uuid="GPU-a"), _rec(0, uuid="GPU-b"))
    assert len(_prepare(f, resume=True, machine=[("h", "GPU-a"), ("h", "GPU-b")])) == 2
    with pytest.raises(UsageError, match="GPU GPU-b"):
        _prepare(f, resume=True, machine=[("h", "GPU-a"), ("h", "GPU-c")])


# ---------------------------------------------------------------- a cut last line

def test_a_cut_last_line_is_set_aside_before_anything_is_appended(tmp_path, capsys):
    f = tmp_path / "r.jsonl"
    cut = dump(_rec(2)).encode()[:50]
    _write(f, _rec(0), _rec(1), tail=cut)
    with pytest.raises(RecordError, match="cut short"):
        load(f)  # as every report of it would
    assert _prepare(f, resume=True) == {_rec(0).key, _rec(1).key}
    [side] = tmp_path.glob("r.jsonl.partial-*")
    assert side.read_bytes() == cut
    assert [r.params for r in load(f)] == [{"array_bytes": 0}, {"array_bytes": 1}]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {f} ended in a line cut short (50 bytes") \
        and str(side) in err[0]


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    f = tmp_path / "r.jsonl"
    _write(f, _rec(0), tail=dump(_rec(1)).encode())
    assert results.set_aside_cut_line(f) is None
    assert len(load(f)) == 2 and f.read_bytes().endswith(b"}\n")
    assert not list(tmp_path.glob("*.partial-*"))


def test_a_file_that_is_not_records_is_left_untouched(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"my notes\nno newline at the end")
    with pytest.raises(RecordError, match=f"{f}:1: malformed record"):
        results.set_aside_cut_line(f)
    assert f.read_bytes() == b"my notes\nno newline at the end"


def test_the_writer_never_glues_a_record_onto_a_cut_line(tmp_path):
    f = tmp_path / "r.jsonl.rank0.part"
    _write(f, _rec(0), tail=b'{"workload": "stream-co')
    w = results.RecordWriter(f)
    w(_rec(1))
    w.close()
    assert [r.params["array_bytes"] for r in load(f)] == [0, 1]
    assert next(tmp_path.glob("*.partial-*")).read_bytes() == b'{"workload": "stream-co'


def test_a_failed_write_names_the_file(tmp_path, monkeypatch):
    f = tmp_path / "r.jsonl"
    w = results.RecordWriter(f)

    def full(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(results, "_write_all", full)
    with pytest.raises(OSError) as e:
        w(_rec(0))
    assert e.value.filename == str(f) and w.count == 0


# ---------------------------------------------------------------- --out that cannot take records

def _under_a_file(tmp_path) -> Path:
    (tmp_path / "f.txt").write_text("x")
    return tmp_path / "f.txt" / "r.jsonl"


def _unwritable_dir(tmp_path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir(mode=0o500)
        return d
    # root writes through permission bits; sysfs refuses it new files
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no unwritable directory for root here")
    return Path("/sys")


@pytest.mark.parametrize("make, needle", [
    (lambda t: t, "is a directory: name a results file"),
    (lambda t: _under_a_file(t), "f.txt is a file, not a directory"),
    (lambda t: Path(os.devnull), "is not a regular file"),
    (lambda t: _unwritable_dir(t) / "r.jsonl", "Permission denied"),
])
def test_an_unusable_out_is_refused(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(UsageError) as e:
        _prepare(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_continue_command_is_the_whole_command():
    argv = ["sweep", "--only", "stream-copy", "--size", "2048 MiB"]
    assert results.continue_command(argv, Path("r.jsonl"), out_given=False, resumed=False) == \
        "python -m suite sweep --only stream-copy --size '2048 MiB' --out r.jsonl --resume"
    assert results.continue_command(argv + ["--out", "x.jsonl", "--resume"], Path("x.jsonl"), out_given=True,
                                    resumed=True) == \
        "python -m suite sweep --only stream-copy --size '2048 MiB' --out x.jsonl --resume"


# ---------------------------------------------------------------- through the CLI

SWEEP = ["sweep", "--interpret", "--only", "stream-copy", "--dtype", "fp32", "--no-progress", "--no-report"]


@pytest.fixture
def no_probe(monkeypatch):
    """`sweep --interpret` in this process without its interpreter probe (for what is refused before
    any kernel runs); TRITON_INTERPRET, which the sweep sets, is restored afterwards."""
    monkeypatch.setenv("TRITON_INTERPRET", os.environ.get("TRITON_INTERPRET", "0"))
    monkeypatch.setattr(interpreter, "interpreter_problem", lambda: None)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_a_rerun_without_resume_is_refused_and_the_file_unchanged(tmp_path, capsys, no_probe):
    f = tmp_path / "r.jsonl"
    data = _write(f, _rec(0))
    assert main(SWEEP + ["--out", str(f)]) == 2
    assert "already holds 1 record: add --resume" in _one_error_line(capsys)
    assert f.read_bytes() == data


def test_resume_on_another_gpus_file_is_refused(tmp_path, capsys, no_probe):
    f = tmp_path / "h200.jsonl"
    data = _write(f, _rec(0, host=socket.gethostname(), uuid="GPU-4d2c"))
    assert main(SWEEP + ["--out", str(f), "--resume"]) == 2
    line = _one_error_line(capsys)
    assert "GPU GPU-4d2c (NVIDIA H200), and this sweep runs on the CPU (--interpret)" in line
    assert f.read_bytes() == data


@pytest.mark.parametrize("make, needle", [
    (lambda t: t, "is a directory"),
    (lambda t: _under_a_file(t), "is a file, not a directory"),
    (lambda t: _unwritable_dir(t) / "r.jsonl", "Permission denied"),
])
def test_an_unusable_out_is_one_line_and_exit_2(tmp_path, capsys, no_probe, make, needle):
    out = make(tmp_path)
    assert main(SWEEP + ["--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(out) in line and needle in line


@interpreted_here
def test_a_full_disk_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, working_interpreter):
    out = tmp_path / "r.jsonl"

    def full(f, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(results, "_write_all", full)
    assert main(SWEEP + ["--out", str(out), "--size", "4124 B"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: cannot write --out {out}: No space left on device", err
    assert "Traceback" not in "\n".join(err)


@interpreted_here
def test_ctrl_c_prints_the_whole_command_that_finishes_the_sweep(tmp_path, capsys, monkeypatch,
                                                                 working_interpreter):
    out = tmp_path / "r.jsonl"
    write = results.RecordWriter.__call__

    def interrupted_at_the_third(self, record):
        if self.count == 2:
            raise KeyboardInterrupt
        write(self, record)
    monkeypatch.setattr(results.RecordWriter, "__call__", interrupted_at_the_third)
    assert main(SWEEP + ["--out", str(out)]) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: the records measured so far are in {out}; continue with: ")
    command = last.split("continue with: ", 1)[1]
    assert shlex.split(command) == ["python", "-m", "suite", *SWEEP, "--out", str(out), "--resume"]
    assert len(load(out)) == 2

    monkeypatch.setattr(results.RecordWriter, "__call__", write)
    assert main(shlex.split(command)[3:]) == 0
    recs = load(out)
    assert len(recs) == 6 and len({r.key for r in recs}) == 6  # nothing measured twice


# A sweep killed while a record is half written: the first half reaches the disk, then SIGKILL.
KILL_MID_WRITE = """
import os, signal, sys
from suite import cli, results

def half_then_kill(self, record):
    if self.count == 2:
        line = (results.dump(record) + "\\n").encode()
        results._write_all(self._f, line[: len(line) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    results._write_all(self._f, (results.dump(record) + "\\n").encode())
    self.count += 1

results.RecordWriter.__call__ = half_then_kill
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_kill_mid_write_is_set_aside_and_resume_completes_the_file(tmp_path, working_interpreter):
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, *SWEEP, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    cut = out.read_bytes().split(b"\n")[-1]
    assert cut and not cut.endswith(b"}")  # half a record, no newline
    with pytest.raises(RecordError, match=f"{out}:3: malformed record.*cut short"):
        load(out)

    p = subprocess.run([sys.executable, "-m", "suite", *SWEEP, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "already holds 2 records" in p.stderr  # not without being told

    p = subprocess.run([sys.executable, "-m", "suite", *SWEEP, "--out", str(out), "--resume"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    [side] = tmp_path.glob("r.jsonl.partial-*")
    assert side.read_bytes() == cut
    warning = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warning) == 1 and str(side) in warning[0], p.stderr
    recs = load(out)
    assert len(recs) == 6 and len({r.key for r in recs}) == 6
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_a_device_index_the_machine_lacks_is_one_line_naming_what_it_has():
    from suite.errors import check_device

    check_device(1, 2)
    with pytest.raises(UsageError, match=r"^--device 2 does not exist: this machine has 2 CUDA device\(s\), 0\.\.1$"):
        check_device(2, 2)
    with pytest.raises(UsageError, match=r"^--device -1 does not exist"):
        check_device(-1, 2)
    with pytest.raises(UsageError, match=r"has 0 CUDA device\(s\)$"):
        check_device(0, 0)


def test_an_out_that_cannot_be_opened_is_one_line(tmp_path):
    from suite.results import open_writer

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match=r"^cannot write --out .*file/r\.jsonl: "):
        open_writer(blocker / "r.jsonl")
