"""Arithmetic-intensity family: one streaming kernel with k multiply-adds per element, k rising.

y = x after k steps of y = y * a + b per element (kernels.intensity), on 1 GiB arrays far beyond
any L2, swept from k = 0 (a copy: 0 FLOP/byte) to k = 1024 or 2048 (256-1024 FLOP/byte): the
points climb the memory slope, bend, and flatten at the CUDA cores' arithmetic plateau. One
workload per dtype, fp32, fp16 and bf16 (the 16-bit ones packed two to an FMA instruction), so
each dtype has cases of its own. Their records trace a roofline of their own (roof "traced"):
they set no ceiling and are not placed under the roofs; the "intensity" view reads them.

There is no vendor path: no library call does k multiply-adds per element it loads.

Verification: every step is exact (a = -1, b = 1 and x in [0.5, 1.5): see kernels.intensity),
so every element must equal the float64 reference exactly, and the tolerance is 0 (for the
normwise error and each element's own bound alike). The reference composes the same k steps in
float64, y_k = A_k * x + C_k with (A, C) <- (a * A, a * C + b), and applies that to the upcast
input. An unwritten element (poisoned NaN), a misplaced one, one rounding anywhere or a chain one
step short fails; two steps short restore the value, so the count of FMAs is held by the compile
test (tests/kernels/test_intensity.py) instead.
"""
from __future__ import annotations

import torch

from kernels import intensity as ki
from suite.dtypes import DTYPES, element_size
from suite.registry import Impl, Skip, Workload, register
from suite.verify import Expected

GiB = 1 << 30
ARRAY_BYTES = GiB  # x, and y as much again: 2 GiB a call, beyond any L2 many times over
A, B = -1.0, 1.0  # the step y = A * y + B: exact for inputs in [0.5, 2] (see the module docstring)

# Quick: a handful of k spanning the fp32 curve, and for the 16-bit steps one point on each side of
# their ridge (k = 0 moves the same bytes whatever the dtype). Full: 0, 1, then powers of two and
# their midpoints to 2048.
QUICK_K = {"fp32": (0, 4, 16, 64, 256, 1024), "fp16": (64, 1024), "bf16": (64, 1024)}
FULL_K = tuple(sorted({0, 1, 2048} | {m << e for e in range(10) for m in (2, 3)}))
# Interpreter: tiny arrays, not multiples of the block; the last k runs the loop and its remainder.
INTERPRET = ({"k": 0, "array_bytes": 4 * 1031}, {"k": 5, "array_bytes": 4 * 2053},
             {"k": 2 * ki.UNROLL + 7, "array_bytes": 4 * 700})


def _label(p) -> str:
    size = p["array_bytes"]
    return f"k={p['k']}, " + (f"{size / GiB:g} GiB" if size >= GiB else f"{size} B")


def _inputs(params, dtype, device, gen):
    n = params["array_bytes"] // element_size(dtype)
    # Uniform in [0.5, 1.5): never zero, and inside [0.5, 2] where 1 - x is exact.
    x = (torch.rand(n, device=device, generator=gen, dtype=torch.float32) + 0.5).to(DTYPES[dtype].torch_dtype)
    return {"x": x, "out": torch.empty_like(x), "k": params["k"], "a": A, "b": B}


def affine_power(k: int, a: float, b: float) -> tuple[float, float]:
    """(A_k, C_k) in float64 such that k steps of y = a * y + b take x to A_k * x + C_k."""
    scale, shift = 1.0, 0.0
    for _ in range(k):
        scale, shift = a * scale, a * shift + b
    return scale, shift


def _reference(inp, params, dtype):
    scale, shift = affine_power(inp["k"], inp["a"], inp["b"])
    return Expected(inp["x"].double().mul_(scale).add_(shift),
                    method=f"every element against the {inp['k']} steps composed in float64")


def _triton(inp):
    x, out, k, a, b = inp["x"], inp["out"], inp["k"], inp["a"], inp["b"]
    if x.device.type == "cpu" and x.dtype == torch.bfloat16:
        raise Skip("Triton's interpreter mis-computes bf16 arithmetic (triton#11584); bf16 runs on the GPU")
    return lambda: ki.fma_chain(x, out, k, a, b)


def _flops(p, dtype):
    return ki.fma_flops(p["k"], p["array_bytes"] // element_size(dtype))


def _bytes(p, dtype):
    return ki.fma_bytes(p["array_bytes"] // element_size(dtype), element_size(dtype))


for _dtype, _quick in QUICK_K.items():
    register(Workload(
        name=f"intensity-{_dtype}",
        family="intensity",
        view="intensity",
        roof="traced",
        description=f"y = x after k multiply-adds per element in {_dtype}, k rising: the CUDA cores' roofline",
        dtypes=(_dtype,),
        cases={
            "quick": [{"k": k, "array_bytes": ARRAY_BYTES} for k in _quick],
            "full": [{"k": k, "array_bytes": ARRAY_BYTES} for k in FULL_K],
            "interpret": [dict(p) for p in INTERPRET],
        },
        make_inputs=_inputs,
        impls=(Impl("triton", vendor=False, prepare=_triton, config=lambda inp: ki.config(inp["x"].element_size()),
                    role="fused", backend="triton", launches=1),),
        reference=_reference,
        flops=_flops,
        bytes=_bytes,
        label=_label,
        # Exact: every step's result is representable (see the module docstring), so any error at
        # all is a wrong element, not rounding.
        tolerance={_dtype: 0.0},
    ))
