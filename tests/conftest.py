"""Shared test set-up: the same kernel tests run on a GPU when there is one and
through Triton's interpreter on the CPU otherwise.

TRITON_INTERPRET is read when a @triton.jit function is decorated, so it is set
here, before any test module imports `kernels`.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"

# Triton's interpreter computes bf16 arithmetic (tl.dot included) on bit
# patterns and returns garbage (upstream triton issue 11584); bf16 paths are
# checked on the GPU instead.
interpreter_bf16_broken = pytest.mark.skipif(
    INTERPRETING, reason="Triton interpreter mis-computes bf16 arithmetic (triton#11584); checked on the GPU")


@pytest.fixture
def device() -> str:
    return "cuda" if HAS_CUDA else "cpu"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def working_interpreter():
    """Skips a test of `sweep --interpret` where Triton's interpreter cannot run the suite's
    kernels, with the reason the suite itself gives (`suite.interpreter.interpreter_problem`, asked in
    a fresh process so that this one's kernels stay as they are). Triton 3.6's interpreter fails
    with numpy >= 2.4; the newest Triton, which CI installs, runs."""
    root = Path(__file__).resolve().parents[1]
    code = ("import os; os.environ['TRITON_INTERPRET'] = '1'\n"
            "from suite.interpreter import interpreter_problem\n"
            "print(interpreter_problem() or '')")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert p.returncode == 0, p.stderr  # the probe itself must not crash
    if p.stdout.strip():
        pytest.skip(p.stdout.strip())


# `sweep --interpret` in this process: its kernels were decorated for the interpreter only where
# there is no GPU (above); on a GPU machine they run compiled and CPU tensors cannot reach them.
interpreted_here = pytest.mark.skipif(
    not INTERPRETING, reason="this pytest process compiled the kernels for the GPU; Triton chooses the "
                             "interpreter when a kernel is first decorated")
