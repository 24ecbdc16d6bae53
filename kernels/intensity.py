"""The arithmetic-intensity kernel: a chosen number of fused multiply-adds per element streamed.

`fma_chain` reads x, applies k multiply-adds to each element, y = y * a + b (k a compile-time
constant, so every k is its own kernel), and writes y. Swept over k, this one kernel traces the
empirical roofline of the CUDA cores: the memory-bound slope at small k, the bend, and the
arithmetic plateau (the method of the Empirical Roofline Toolkit and mixbench).

Per call on n elements of `esize` bytes:

    FLOPs = 2 * k * n               (a multiply-add is 2 FLOPs; the kernel does no other arithmetic)
    bytes = n * esize + n * esize   (x read once, y written once)
    intensity = k / esize FLOP per byte

What the compiler makes of it for sm_90 (held by tests/kernels/test_intensity.py, offline):
- fp32: one FFMA per element and step.
- fp16: every step in fp16, packed two-wide: one HFMA2 per two elements and step.
- bf16: every step in bf16, packed two-wide: one HFMA2.BF16_V2 per two elements and step.
Each element is one dependent chain of k steps; a thread holds ELEMENTS_PER_THREAD elements, so
each step issues eight independent FMA instructions and no chain's latency stalls the pipeline.
The steps run as a loop over UNROLL-step bodies, so the code stays small at any k: fully
unrolled, k = 1024 would be 8192 FMA instructions (128 KiB) for the instruction caches to stream.
LLVM may still unroll a loop of a few bodies completely (up to about 2048 FMA instructions, 32 KiB).

a and b are run-time scalars, so nothing can be folded at compile time. The default a = -1,
b = 1 keeps every step exact in every dtype: for x in [0.5, 2], 1 - x is representable whenever x
is (Sterbenz), so the chain alternates x, 1 - x, x, ... without a single rounding and the result
is x for even k and 1 - x for odd k, while the operands still change from element to element
and from step to step. (A contracting a, |a| < 1, would round at every step and drive every
element to the same fixed point within a few dozen 16-bit steps: after that the output no longer
depends on x and every FMA sees the same operands.)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

NUM_WARPS = 4
# Elements per thread, by element size: two 16-byte vectors either way, and eight independent FMA
# instructions per step (16-bit elements go two to an instruction).
ELEMENTS_PER_THREAD = {4: 8, 2: 16}
# Steps per loop body: 64 steps x 8 FMAs = 512 FMA instructions (8 KiB) against 3 that run the loop.
UNROLL = 64
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fma_flops(k: int, n: int) -> int:
    return 2 * k * n


def fma_bytes(n: int, esize: int) -> int:
    return 2 * n * esize


def block(esize: int) -> int:
    return ELEMENTS_PER_THREAD[esize] * 32 * NUM_WARPS


@triton.jit
def _fma_chain_kernel(x_ptr, y_ptr, n, a, b, K: tl.constexpr, UNROLL: tl.constexpr, BLOCK: tl.constexpr):
    # A 64-bit start: the launcher takes arrays of 2^31 elements and more.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(x_ptr + offs, mask=mask)
    # The steps run in the storage type: fp16 and bf16 steps are 16-bit FMAs.
    a = tl.cast(a, y.dtype)
    b = tl.cast(b, y.dtype)
    # tl.fma, not y * a + b: one fused instruction whatever the compiler's contraction setting.
    for _ in range(K // UNROLL):
        for _ in tl.static_range(UNROLL):
            y = tl.fma(y, a, b)
    for _ in tl.static_range(K % UNROLL):
        y = tl.fma(y, a, b)
    tl.store(y_ptr + offs, y, mask=mask)


def config(esize: int) -> dict:
    """The launch configuration of `fma_chain` for an element size (recorded with each measurement)."""
    return {"BLOCK": block(esize), "UNROLL": UNROLL, "num_warps": NUM_WARPS}


def fma_chain(x: torch.Tensor, out: torch.Tensor, k: int, a: float = -1.0, b: float = 1.0) -> torch.Tensor:
    """out = x after k steps of y = y * a + b, each one fused multiply-add in x's dtype; returns `out`."""
    if x.dtype not in DTYPES:
        raise ValueError(f"fma_chain runs float32, float16 and bfloat16, not {x.dtype}")
    if out.dtype != x.dtype or out.shape != x.shape or out.device != x.device:
        raise ValueError("out must match x in dtype, shape and device")
    if not (x.is_contiguous() and out.is_contiguous()):
        raise ValueError("x and out must be contiguous")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, not {k!r}")
    n = x.numel()
    cfg = config(x.element_size())
    _fma_chain_kernel[(triton.cdiv(n, cfg["BLOCK"]),)](x, out, n, float(a), float(b), K=k, UNROLL=cfg["UNROLL"],
                                                       BLOCK=cfg["BLOCK"], num_warps=cfg["num_warps"])
    return out
