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
    triad     2      1      2n          out = a + s * b
    read      1      0      n           out = sum(a)   (one fp32 scalar written)
    fill      0      1      0           out = s

(`KERNELS` below is that table as data; the counts, the declarations and their
descriptions all derive from it.)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from dataclasses import dataclass

from kernels.device import cuda_properties
from kernels.launch import launch
from kernels.tuning import chosen, device_time_ms, launch_autotuned, record_choice


@dataclass(frozen=True)
class StreamKernel:
    """One row of the traffic table: what a kernel reads, writes and computes per element."""
    name: str
    reads: int  # arrays read
    writes: int  # arrays written
    flops: int  # FLOPs per element
    formula: str
    op: int | None  # the elementwise kernel's OP code; None for the sum


KERNELS = {k.name: k for k in (
    StreamKernel("copy", 1, 1, 0, "out = a", 0),
    StreamKernel("scale", 1, 1, 1, "out = s*a", 1),
    StreamKernel("add", 2, 1, 1, "out = a + b", 2),
    StreamKernel("triad", 2, 1, 2, "out = a + s*b", 3),
    StreamKernel("read", 1, 0, 1, "sum(a), read-only", None),
    StreamKernel("fill", 0, 1, 0, "out = s, write-only", 4),
)}


def stream_bytes(kernel: str, n: int, esize: int) -> int:
    k = KERNELS[kernel]
    extra = 4 if kernel == "read" else 0  # the fp32 result
    return (k.reads + k.writes) * n * esize + extra


def stream_flops(kernel: str, n: int) -> int:
    return KERNELS[kernel].flops * n


@triton.jit
def _elementwise_kernel(a_ptr, b_ptr, out_ptr, s, n, OP: tl.constexpr, BLOCK: tl.constexpr,
                        PROGRAMS_PER_SM: tl.constexpr = 0):
    # PROGRAMS_PER_SM only sizes the grid (see `stream`). Each program walks
    # blocks pid, pid + programs, ...: one block each when the grid covers
    # the array, several when the grid is capped at a few programs per SM (a
    # persistent grid; the autotuner chooses).
    n_blocks = tl.cdiv(n, BLOCK)
    # A 64-bit start makes the loop index 64-bit: arrays of 2^31 elements and
    # more are part of the sweep.
    for blk in range(tl.program_id(0).to(tl.int64), n_blocks, tl.num_programs(0)):
        offs = blk * BLOCK + tl.arange(0, BLOCK)
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
# The sum's block: four 16-byte vectors per thread in flight, enough outstanding
# loads per SM to cover HBM latency without spilling registers.
SUM_VECTORS = 4


def _elementwise_configs():
    """One or two 16-byte accesses per thread and array (what torch's elementwise kernels issue,
    and what holds HBM at its peak), 4 or 8 warps, one program per block or a persistent grid of 8
    per SM. BLOCK is set per element size by the pruner."""
    return [triton.Config({"VECTORS": v, "PROGRAMS_PER_SM": p}, num_warps=w)
            for v in (1, 2) for w in (4, 8) for p in (0, 8)]


def _block(vectors: int, num_warps: int, esize: int) -> int:
    return vectors * num_warps * 32 * (16 // esize)


def _with_block(configs, named_args, **kwargs):
    # The candidates are written in 16-byte vectors per thread; the kernel takes elements.
    esize = named_args["out_ptr"].element_size()
    return [triton.Config({"BLOCK": _block(c.kwargs["VECTORS"], c.num_warps, esize),
                           "PROGRAMS_PER_SM": c.kwargs["PROGRAMS_PER_SM"]}, num_warps=c.num_warps)
            for c in configs]


# Tuned per (kernel, exact size, dtype) on the GPU it runs on: how many bytes each thread should
# keep in flight differs between working sets that live in L2 and those that stream from HBM.
_elementwise_tuned = triton.autotune(_elementwise_configs(), key=["n", "OP"],
                                     prune_configs_by={"early_config_prune": _with_block},
                                     do_bench=device_time_ms)(_elementwise_kernel)


def _choice_key(kernel: str, n: int, dtype: torch.dtype) -> tuple:
    return (kernel, n, str(dtype))


def config(kernel: str, n: int, dtype: torch.dtype) -> dict | None:
    """What `stream` ran for this kernel, size and dtype (recorded with each measurement)."""
    return chosen("stream", _choice_key(kernel, n, dtype))


def stream(kernel: str, a: torch.Tensor | None, b: torch.Tensor | None, out: torch.Tensor,
           s: float = 1.0) -> torch.Tensor:
    """Run one streaming kernel; returns `out` (for `read`, a 1-element fp32 tensor).

    copy: out=a; scale: out=s*a; add: out=a+b; triad: out=a+s*b; read: out=sum(a); fill: out=s.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown streaming kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    for t in (a, b):
        if t is not None and (not t.is_contiguous() or t.device != out.device):
            raise ValueError("inputs must be contiguous and on the output's device")
    if kernel == "read":
        if out.numel() != 1 or out.dtype != torch.float32:
            raise ValueError("read: out must be a 1-element float32 tensor")
        n = a.numel()
        block = _block(SUM_VECTORS, NUM_WARPS, a.element_size())
        out.zero_()
        grid = (triton.cdiv(n, block * SUM_CHUNKS),)
        launch(_sum_kernel, grid, a, out, n, BLOCK=block, CHUNKS=SUM_CHUNKS, num_warps=NUM_WARPS)
        record_choice("stream", _choice_key(kernel, n, a.dtype),
                      {"kernel": "sum", "BLOCK": block, "CHUNKS": SUM_CHUNKS, "num_warps": NUM_WARPS,
                       "grid": list(grid), "tuning": "fixed"})
        return out
    n = out.numel()
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    for t in (a, b):
        if t is not None and t.numel() != n:
            raise ValueError(f"size mismatch: {t.numel()} vs out {n}")
    # Unused pointer arguments get `out`, so the kernel signature stays one.
    args = (a if a is not None else out, b if b is not None else out, out, s, n)
    op = KERNELS[kernel].op
    if out.is_cuda:
        sms = cuda_properties(out.device).multi_processor_count

        def grid(meta):
            blocks = triton.cdiv(n, meta["BLOCK"])
            return (min(blocks, sms * meta["PROGRAMS_PER_SM"]) if meta["PROGRAMS_PER_SM"] else blocks,)

        run = launch_autotuned("stream", _elementwise_tuned, grid, *args, OP=op, problem=(n, op, str(out.dtype)))
        if not run["fresh"]:
            return out  # the choice for this problem is recorded already
        c = run["config"]
        entry = {"kernel": "elementwise", **c.kwargs, "num_warps": c.num_warps, "tuning": run["source"],
                 "tuned_at": {"n": n, "dtype": str(out.dtype)}}
        if run["timings"]:
            entry["autotune_ms"] = {f"BLOCK{k.kwargs['BLOCK']} w{k.num_warps} p{k.kwargs['PROGRAMS_PER_SM']}":
                                    float(t[0] if isinstance(t, (list, tuple)) else t)
                                    for k, t in run["timings"].items()}
    else:  # Triton's interpreter: nothing to tune
        block = _block(1, NUM_WARPS, out.element_size())
        launch(_elementwise_kernel, (triton.cdiv(n, block),), *args, OP=op, BLOCK=block, num_warps=NUM_WARPS)
        entry = {"kernel": "elementwise", "BLOCK": block, "PROGRAMS_PER_SM": 0, "num_warps": NUM_WARPS,
                 "tuning": "fixed"}
    record_choice("stream", _choice_key(kernel, n, out.dtype), entry)
    return out
