"""What the launchers read about the GPU they launch on (SM count, L2 size).

Launchers ask on every call, so the driver is queried once per device; a device
named without an index ("cuda") is resolved to the current one first, so two
GPUs never share an answer.
"""
from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=None)
def _properties(index: int):
    return torch.cuda.get_device_properties(index)


def cuda_properties(device: torch.device):
    """torch.cuda.get_device_properties of a CUDA `device`, cached."""
    return _properties(device.index if device.index is not None else torch.cuda.current_device())
