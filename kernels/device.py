"""What the launchers read about the GPU they launch on (SM count, L2 size, TMA).

Launchers ask on every call, so the driver is queried once per device; a device
named without an index ("cuda") is resolved to the current one first, so two
GPUs never share an answer.
"""
from __future__ import annotations

import functools

import torch
import triton.language as tl


@functools.lru_cache(maxsize=None)
def _properties(index: int):
    return torch.cuda.get_device_properties(index)


def cuda_properties(device: torch.device):
    """torch.cuda.get_device_properties of a CUDA `device`, cached."""
    return _properties(device.index if device.index is not None else torch.cuda.current_device())


# Without a GPU (Triton's interpreter) launchers plan for a notional 8 "SMs", so that persistent
# loops and split-K take their multi-tile paths on tiny shapes.
INTERPRET_SMS = 8


def num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return INTERPRET_SMS
    return cuda_properties(device).multi_processor_count


def capability(device: torch.device) -> tuple[int, int] | None:
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def has_tma(device: torch.device) -> bool:
    cc = capability(device)
    return cc is not None and cc >= (9, 0) and hasattr(tl, "make_tensor_descriptor")


def scratch_alloc(size: int, alignment: int, stream):
    """Global memory for the TMA descriptors kernels build on the device (Triton asks per
    launch; `triton.set_allocator(scratch_alloc)`)."""
    return torch.empty(size, device="cuda", dtype=torch.int8)


def tma_describable(t: torch.Tensor, contiguous_dim: int) -> bool:
    """A TMA descriptor needs a 16-byte aligned base, unit stride along the contiguous dim and
    16-byte aligned strides otherwise."""
    other = 1 - contiguous_dim
    return (t.stride(contiguous_dim) == 1 and (t.stride(other) * t.element_size()) % 16 == 0
            and t.data_ptr() % 16 == 0)
