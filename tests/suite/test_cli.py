"""The CLI's contract: one clear line and exit status 2 for every user error."""
import json
import subprocess
import sys

import pytest
import torch

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


def test_interpret_sweep_end_to_end(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    rc = main(["sweep", "--interpret", "--only", "stream-copy", "--dtype", "fp32", "--out", str(out),
               "--no-progress", "--no-report"])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * 3  # two implementations x three interpreter sizes
    rec = json.loads(lines[0])
    assert rec["status"] == "ok" and rec["timing"]["meaningful"] is False
    assert rec["env"]["command"].startswith("python -m suite sweep --interpret")
