"""Memory-streaming kernels (BabelStream's set plus read-only and write-only).

One elementwise kernel serves copy, scale, add, triad and fill through a
constexpr `OP`; the read-only kernel is a sum. Arithmetic is done in float32
and rounded once on store: that is what a careful kernel does anyway, it costs
no bandwidth, and Triton's interpreter mis-computes bf16 arithmetic done in
bf16 (it operates on bit patterns), so the CPU tests stay meaningful.

Traffic model (minimum bytes of one call, n elements of `esize` bytes):

    kernel  reads  writes  FLOPs        formula
    copy      1      1      0           out = a
    scale     1      1      n           out = s * a
    add       2      1      n           out = a + b
    triad     2      1      2n          out = a + s * c
    read      1      0      n           out = sum(a)   (one fp32 scalar written)
    fill      0      1      0           out = s
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# (arrays read, arrays written, FLOPs per element): the one table the byte and
# FLOP counts below are derived from.
TRAFFIC = {
    "copy": (1, 1, 0),
    "scale": (1, 1, 1),
    "add": (2, 1, 1),
    "triad": (2, 1, 2),
    "read": (1, 0, 1),
    "fill": (0, 1, 0),
}
_OP_CODE = {"copy": 0, "scale": 1, "add": 2, "triad": 3, "fill": 4}


def stream_bytes(kernel: str, n: int, esize: int) -> int:
    reads, writes, _ = TRAFFIC[kernel]
    extra = 4 if kernel == "read" else 0  # the fp32 result
    return (reads + writes) * n * esize + extra


def stream_flops(kernel: str, n: int) -> int:
    return TRAFFIC[kernel][2] * n


def _block(esize: int, num_warps: int) -> int:
    # Four 16-byte vectors per thread in flight: enough outstanding loads per
    # SM to cover HBM latency without spilling registers.
    return num_warps * 32 * 4 * (16 // esize)


@triton.jit
def _elementwise_kernel(a_ptr, b_ptr, out_ptr, s, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    # 64-bit offsets: arrays of 2^31 elements and more are part of the sweep.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if OP == 0:  # copy: no arithmetic, no conversion
        v = tl.load(a_ptr + offs, mask=mask)
    elif OP == 1:  # scale
        v = s * tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    elif OP == 2:  # add
        v = tl.load(a_ptr + offs, mask=mask).to(tl.float32) + tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    elif OP == 3:  # triad
        v = tl.load(a_ptr + offs, mask=mask).to(tl.float32) + s * tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    else:  # fill
        v = tl.full((BLOCK,), s, tl.float32)
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _sum_kernel(a_ptr, out_ptr, n, BLOCK: tl.constexpr, CHUNKS: tl.constexpr):
    # Each program sums CHUNKS consecutive blocks (loads issued back to back),
    # then adds its partial to the fp32 result: one atomic per BLOCK*CHUNKS
    # elements keeps contention on the single address negligible.
    base = tl.program_id(0).to(tl.int64) * (BLOCK * CHUNKS)
    acc = tl.zeros((BLOCK,), tl.float32)
    for i in tl.static_range(CHUNKS):
        offs = base + i * BLOCK + tl.arange(0, BLOCK)
        acc += tl.load(a_ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
    tl.atomic_add(out_ptr, tl.sum(acc, axis=0))


NUM_WARPS = 8
SUM_CHUNKS = 8


def config(kernel: str, esize: int) -> dict:
    """The launch configuration `stream` uses (recorded with each measurement)."""
    cfg = {"BLOCK": _block(esize, NUM_WARPS), "num_warps": NUM_WARPS}
    if kernel == "read":
        cfg["CHUNKS"] = SUM_CHUNKS
    return cfg


def stream(kernel: str, a: torch.Tensor | None, b: torch.Tensor | None, out: torch.Tensor,
           s: float = 1.0) -> torch.Tensor:
    """Run one streaming kernel; returns `out` (for `read`, a 1-element fp32 tensor).

    copy: out=a; scale: out=s*a; add: out=a+b; triad: out=a+s*b; read: out=sum(a); fill: out=s.
    """
    if kernel not in TRAFFIC:
        raise ValueError(f"unknown streaming kernel {kernel!r}; choose from {', '.join(TRAFFIC)}")
    for t in (a, b):
        if t is not None and (not t.is_contiguous() or t.device != out.device):
            raise ValueError("inputs must be contiguous and on the output's device")
    if kernel == "read":
        if out.numel() != 1 or out.dtype != torch.float32:
            raise ValueError("read: out must be a 1-element float32 tensor")
        n = a.numel()
        cfg = config(kernel, a.element_size())
        out.zero_()
        grid = (triton.cdiv(n, cfg["BLOCK"] * cfg["CHUNKS"]),)
        _sum_kernel[grid](a, out, n, BLOCK=cfg["BLOCK"], CHUNKS=cfg["CHUNKS"], num_warps=cfg["num_warps"])
        return out
    n = out.numel()
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    for t in (a, b):
        if t is not None and t.numel() != n:
            raise ValueError(f"size mismatch: {t.numel()} vs out {n}")
    cfg = config(kernel, out.element_size())
    grid = (triton.cdiv(n, cfg["BLOCK"]),)
    # Unused pointer arguments get `out`, so the kernel signature stays one.
    _elementwise_kernel[grid](a if a is not None else out, b if b is not None else out, out, s, n,
                              OP=_OP_CODE[kernel], BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"])
    return out
