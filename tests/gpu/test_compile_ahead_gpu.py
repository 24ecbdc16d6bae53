"""Compiling ahead on a real GPU: after the workers, the sweep's own process compiles nothing more.

Each side runs in a fresh process with its own Triton cache, so no kernel compiled earlier in this
test process can make the check pass."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
CASE = ("gemm-square", {"M": 1024, "N": 1024, "K": 1024}, "bf16")

SCRIPT = """
import sys
from pathlib import Path
from suite import compile_ahead, env, runner, timing
from suite.workloads import all_workloads

name, params, dtype = {case!r}
task = runner.Task(all_workloads()[name], params, dtype)
cache = Path(sys.argv[2])
if sys.argv[1] == "ahead":
    summary = compile_ahead.run([task], "cuda:0", 2, progress=False)
    assert summary["attempted"] == 1 and summary["failed"] == 0 and not summary["stopped"], summary
else:
    ctx = runner.Context(device="cuda:0", env=env.collect(0, command="test"), interpret=False,
                         policy=timing.TimingPolicy(budget_s=0.1), run_id="test")
    before = sum(1 for p in cache.rglob("*") if p.is_file())
    prepared = runner.prepare_case(task, ctx)
    assert "triton" in prepared.verified, prepared.rejected
    after = sum(1 for p in cache.rglob("*") if p.is_file())
    print("new files", after - before)
"""


def _run(step: str, cache: Path) -> str:
    env = {**os.environ, "TRITON_CACHE_DIR": str(cache), "PYTHONPATH": f"{ROOT}{os.pathsep}"
           + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(case=CASE), step, str(cache)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_after_compiling_ahead_the_sweep_compiles_nothing(tmp_path):
    cache = tmp_path / "ahead"
    _run("ahead", cache)
    assert sum(1 for p in cache.rglob("*") if p.is_file()) > 0
    assert "new files 0" in _run("main", cache)


def test_without_compiling_ahead_the_same_check_sees_compiles(tmp_path):
    out = _run("main", tmp_path / "cold")
    assert "new files" in out and "new files 0" not in out, out
