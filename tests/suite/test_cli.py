"""The CLI's contract: one clear line and exit status 2 for every user error."""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import interpreted_here
from suite import cli, interpreter
from suite.cli import main


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_sweep_without_gpu_is_one_line_and_exit_2():
    p = subprocess.run([sys.executable, "-m", "suite", "sweep"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--interpret" in lines[0]
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "--only", "nosuch"], "choose from: "),
    (["sweep", "--dtype", "fp9"], "choose from: fp32, tf32, fp16, bf16, fp8"),
    (["sweep", "--only", "stream-copy", "--size", "3 GiB", "--quick", "--dry-run"], "unknown size '3 GiB'"),
    (["sweep", "--resume", "--interpret"], "--resume needs --out"),
    (["compare", "a.jsonl"], "needs a second results file"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("error: ") and needle in line


def test_unknown_workload_lists_families_too(capsys):
    assert main(["sweep", "--skip", "nosuch"]) == 2
    assert "streaming" in _err_line(capsys)


def test_malformed_results_file_names_the_line(tmp_path, capsys):
    f = tmp_path / "bad.jsonl"
    good = {"workload": "w", "family": "f", "impl": "i", "vendor": False, "dtype": "fp32", "params": {},
            "case": "", "label": "", "status": "ok"}
    f.write_text(json.dumps(good) + "\n{not json\n")
    assert main(["report", str(f)]) == 2
    line = _err_line(capsys)
    assert f"{f}:2: malformed record" in line


def test_missing_results_file(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in _err_line(capsys)


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for needle in ("--quick", "--resume", "--interpret", "examples:", "float64 reference", "--only"):
        assert needle in out


def test_list_and_dry_run(capsys):
    assert main(["sweep", "--list"]) == 0
    assert "stream-triad" in capsys.readouterr().out
    assert main(["sweep", "--only", "streaming", "--quick", "--dtype", "fp32", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stream-copy" in out and "2048 MiB" in out and "(quick sweep)" in out


@interpreted_here
def test_interpret_sweep_end_to_end(tmp_path, capsys, working_interpreter):
    out = tmp_path / "r.jsonl"
    rc = main(["sweep", "--interpret", "--only", "stream-copy", "--dtype", "fp32", "--out", str(out),
               "--no-progress", "--no-report"])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * 3  # two implementations x three interpreter sizes
    rec = json.loads(lines[0])
    assert rec["status"] == "ok" and rec["timing"]["meaningful"] is False
    assert rec["env"]["command"].startswith("python -m suite sweep --interpret")
    assert rec["env"]["budget_s"] == 0.2  # every record states the budget its case was timed with


def test_a_quick_map_times_half_the_full_budget_unless_told():
    from suite import cli

    assert cli.sweep_budget(None, "full") == 0.2 and cli.sweep_budget(None, "quick") == 0.1
    assert cli.sweep_budget(None, "interpret") == 0.2 and cli.sweep_budget(0.5, "quick") == 0.5


def test_compare_picks_gpus_of_one_file(tmp_path, capsys):
    def rec(uuid, index, p50):
        return {"workload": "stream-copy", "family": "streaming", "impl": "triton", "vendor": False,
                "dtype": "fp32", "params": {"array_bytes": 1 << 31}, "case": "array_bytes=2147483648",
                "label": "2048 MiB", "status": "ok", "flops": 0, "bytes": 1 << 32,
                "time_s": {"p50": p50}, "timing": {"meaningful": True}, "verify": {"rel_err": 0.0, "tolerance": 1e-5},
                "env": {"host": "h", "gpu": {"uuid": uuid, "index": index, "name": "NVIDIA H200",
                                              "l2_bytes": 60 << 20, "mem_bytes": 150_000_000_000}}}
    f = tmp_path / "x2.jsonl"
    f.write_text(json.dumps(rec("GPU-a", 0, 1e-3)) + "\n" + json.dumps(rec("GPU-b", 1, 2e-3)) + "\n")
    assert main(["compare", str(f), "--gpu-a", "0", "--gpu-b", "1", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    # B takes twice as long: its HBM ceiling and its case are both measured at 0.5x A.
    assert "HBM bandwidth,4294967296000.0,2147483648000.0,1.0,0.5," in out
    assert "stream-copy,2048 MiB,fp32,triton,0.001,0.002,1.0,0.5," in out
    assert main(["compare", str(f), "--gpu-a", "0", "--gpu-b", "7"]) == 2
    assert "matches no GPU" in _err_line(capsys)


@interpreted_here
def test_interpreter_probe_passes_on_this_triton():
    # CI's Triton (the newest) runs the probe's computed-bound loop and sums right.
    assert interpreter.interpreter_problem() is None


def test_unusable_interpreter_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(interpreter, "interpreter_problem", lambda: "Triton 3.6.0's interpreter cannot run a kernel loop")
    out = tmp_path / "r.jsonl"
    assert main(["sweep", "--interpret", "--only", "stream-copy", "--out", str(out), "--no-progress"]) == 2
    assert _err_line(capsys) == "error: Triton 3.6.0's interpreter cannot run a kernel loop"
    assert not out.exists()


def test_interpret_after_triton_was_imported_is_one_line_and_exit_2(tmp_path):
    """Embedded use: Triton imported first (as pytest on a GPU machine does) keeps its compiled
    library kernels, and --interpret says so instead of failing every record."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r.jsonl"
    code = ("import triton\nfrom suite.cli import main\n"
            f"raise SystemExit(main(['sweep', '--interpret', '--only', 'stream-copy', '--out', {str(out)!r}]))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    p = subprocess.run([sys.executable, "-c", code], cwd=root, env={**env, "PYTHONPATH": str(root)},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "imported before --interpret could choose its interpreter" in lines[0], lines
    assert not out.exists()


# ---------------------------------------------------------------- bad input: one line, exit 2, no traceback

@pytest.mark.parametrize("argv, needle", [
    (["sweep", "--budget", "-1"], "argument --budget: must be more than 0 seconds, got -1"),
    (["sweep", "--budget", "0"], "argument --budget: must be more than 0 seconds, got 0"),
    (["sweep", "--budget", "fast"], "argument --budget: expected a number of seconds, got 'fast'"),
    (["sweep", "--settle", "-0.5"], "argument --settle: must be at least 0 seconds, got -0.5"),
    (["sweep", "--settle", "nan"], "argument --settle: must be at least 0 seconds, got nan"),
    (["collectives", "--budget", "-2"], "argument --budget: must be more than 0 seconds, got -2"),
    (["sweep", "--dtype", ""], "argument --dtype: expected a comma-separated list of names, got ''"),
    (["sweep", "--dtype", " , "], "argument --dtype: expected a comma-separated list of names, got ' , '"),
    (["sweep", "--only", ","], "argument --only: expected a comma-separated list"),
    (["sweep", "--interpret", "--quick"], "--quick does not apply to --interpret"),
    (["sweep", "--interpret", "--full"], "--full does not apply to --interpret"),
    (["sweep", "--quick", "--full"], "not allowed with argument"),
    (["sweep", "--bogus"], "unrecognized arguments: --bogus"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("error: ") and needle in line, line


def test_a_bad_argument_is_one_line_from_the_command_line_too():
    p = subprocess.run([sys.executable, "-m", "suite", "sweep", "--budget", "-1"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "error: argument --budget: must be more than 0 seconds, got -1 (see 'python -m suite sweep --help')"]


GOOD = {"workload": "stream-copy", "family": "streaming", "impl": "triton", "vendor": False, "dtype": "fp32",
        "params": {"array_bytes": 1 << 31}, "case": "array_bytes=2147483648", "label": "2048 MiB", "status": "ok",
        "flops": 0, "bytes": 1 << 32, "time_s": {"p50": 1e-3}, "timing": {"meaningful": True},
        "verify": {"rel_err": 0.0, "tolerance": 1e-5},
        "env": {"host": "h", "gpu": {"uuid": "GPU-a", "index": 0, "name": "NVIDIA H200", "l2_bytes": 60 << 20,
                                      "mem_bytes": 150_000_000_000}}}


@pytest.fixture
def good(tmp_path) -> Path:
    f = tmp_path / "good.jsonl"
    f.write_text(json.dumps(GOOD) + "\n")
    return f


def _bad_file(tmp_path, kind: str) -> tuple[Path, str]:
    line = (json.dumps(GOOD) + "\n").encode()
    f = tmp_path / f"bad-{kind}"
    if kind == "gzip":
        f.write_bytes(gzip.compress(line))
        return f, f"{f}: gzip-compressed, not a JSONL results file; decompress it first"
    if kind == "latin-1":
        f.write_bytes(line + '{"workload": "café"}\n'.encode("latin-1"))
        return f, f"{f}: not a text results file (byte {len(line) + 17} is not UTF-8)"
    if kind == "binary":
        f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        return f, f"{f}: not a text results file (byte 0 is not UTF-8)"
    if kind == "nul":
        f.write_bytes(line + b"\0" * 16)
        return f, f"{f}: not a text results file (character {len(line)} is NUL)"
    if kind == "wrong-type":
        f.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "bytes": "4 GiB"}) + "\n")
        return f, f"{f}:2: malformed record: field 'bytes' is a string, not an integer"
    if kind == "wrong-nested-type":
        f.write_text(json.dumps({**GOOD, "time_s": {"p50": "1 ms"}}) + "\n")
        return f, f"{f}:1: malformed record: time_s.p50 is a string, not a number"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["gzip", "latin-1", "binary", "nul", "wrong-type", "wrong-nested-type"])
@pytest.mark.parametrize("command", ["report", "compare A", "compare B"])
def test_an_unreadable_results_file_is_one_line_and_exit_2(tmp_path, good, capsys, kind, command):
    bad, expected = _bad_file(tmp_path, kind)
    argv = {"report": ["report", str(bad)], "compare A": ["compare", str(bad), str(good)],
            "compare B": ["compare", str(good), str(bad)]}[command]
    assert main(argv) == 2
    assert _err_line(capsys).startswith("error: " + expected)


def _under_a_file(tmp_path) -> Path:
    (tmp_path / "f.txt").write_text("x")
    return tmp_path / "f.txt" / "roof.png"


def _full_disk(tmp_path) -> Path:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "full.png").symlink_to("/dev/full")  # every write: ENOSPC
    return tmp_path / "full.png"


def _unwritable(tmp_path) -> Path:
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        return tmp_path / "ro" / "roof.png"
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no unwritable directory for root here")
    return Path("/sys/roof.png")  # sysfs refuses root new files


def _a_directory(tmp_path) -> Path:
    (tmp_path / "d.png").mkdir()
    return tmp_path / "d.png"


@pytest.mark.parametrize("make, reason", [
    (_a_directory, "Is a directory"),
    (_under_a_file, "{tmp}/f.txt is a file, not a directory"),
    (_unwritable, "Permission denied"),
    (_full_disk, "No space left on device"),
])
def test_a_plot_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, good, capsys, make, reason):
    plot = make(tmp_path)
    assert main(["report", str(good), "--plot", str(plot)]) == 2
    assert _err_line(capsys) == f"error: cannot write --plot {plot}: " + reason.format(tmp=tmp_path)


def test_a_closed_stdout_ends_the_report_quietly(good):
    """`python -m suite report r.jsonl | head`: the reader goes away; no traceback, no message."""
    read, write = os.pipe()
    os.close(read)  # nobody will read: the report's first write meets a closed pipe
    try:
        p = subprocess.run([sys.executable, "-m", "suite", "report", str(good)], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert p.returncode == cli.EXIT_BROKEN_PIPE
    assert p.stderr == ""


def test_ctrl_c_while_torch_imports_is_one_line_and_exit_130(tmp_path):
    # A stand-in torch that is interrupted as it imports, as a Ctrl-C during the real one's seconds would be.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n")
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "suite", "env"], cwd=root, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])})
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines() == ["interrupted"]


def test_ctrl_c_during_a_report_is_one_line_and_exit_130(good, capsys, monkeypatch):
    from analysis import report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(report, "render", interrupted)
    assert main(["report", str(good)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]


# ---------------------------------------------------------------- the test suite itself

def test_suite_is_the_package_not_its_test_directory():
    # tests/suite/ has no __init__.py: found first on sys.path, it is imported as a namespace
    # package `suite` (no __file__) that shadows the package it tests.
    import analysis
    import kernels
    import suite
    root = Path(__file__).resolve().parents[2]
    for package in (suite, kernels, analysis):
        assert package.__file__ is not None, package.__path__
        assert Path(package.__file__).resolve() == root / package.__name__ / "__init__.py"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P (no checkout on sys.path) is Python 3.11+")
@pytest.mark.parametrize("ini, passes", [([], True), (["-o", "pythonpath="], False)])
def test_plain_pytest_imports_the_package(ini, passes):
    """`pytest` as a console script has no checkout on sys.path (`python -P` neither); the
    project's pytest configuration puts it there. Without that configuration it fails."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", *ini,
                        "tests/suite/test_cli.py::test_suite_is_the_package_not_its_test_directory"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert (p.returncode == 0) == passes, p.stdout[-3000:]
