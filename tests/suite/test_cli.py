"""The CLI's contract: one clear line and exit status 2 for every user error."""
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
