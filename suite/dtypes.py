"""The data types the suite knows, in one table.

A dtype name is what the CLI takes and what records store. `tf32` is float32
storage with the tensor cores' tf32 arithmetic; `fp8` is float8 e4m3 (fn).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DType:
    name: str
    torch_dtype: torch.dtype  # storage type of the tensors
    min_cc: tuple[int, int]  # lowest compute capability that runs it natively
    tolerance: float  # normwise relative error ||out-ref||/||ref|| accepted


# Tolerances are normwise relative errors against a float64 reference on
# upcast inputs. Each is a few times the rounding of the output type (fp32
# 6e-8, tf32 ~5e-4 from the 10-bit mantissa of its operands, fp16 4.9e-4,
# bf16 3.9e-3, fp8 results are stored in bf16), so a kernel that drops or
# doubles a term fails by orders of magnitude.
DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("fp32", torch.float32, (0, 0), 1e-5),
        DType("tf32", torch.float32, (8, 0), 5e-3),
        DType("fp16", torch.float16, (0, 0), 5e-3),
        DType("bf16", torch.bfloat16, (8, 0), 1.5e-2),
        DType("fp8", torch.float8_e4m3fn, (8, 9), 2e-2),
    )
}


def element_size(name: str) -> int:
    return torch.empty((), dtype=DTYPES[name].torch_dtype).element_size()


def unsupported_reason(name: str, capability: tuple[int, int] | None) -> str | None:
    """Why this GPU cannot run `name`, or None. `capability` None means CPU/interpreter."""
    need = DTYPES[name].min_cc
    if capability is None:
        return None
    if tuple(capability) < need:
        return (f"{name} needs compute capability {need[0]}.{need[1]} or newer; "
                f"this GPU is {capability[0]}.{capability[1]}")
    return None
