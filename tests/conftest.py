"""Shared test set-up: the same kernel tests run on a GPU when there is one and
through Triton's interpreter on the CPU otherwise.

TRITON_INTERPRET is read when a @triton.jit function is decorated, so it is set
here, before any test module imports `kernels`.
"""
import os

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
