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

from kernels.device import cuda_properties
from kernels.tuning import device_time_ms

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
def _elementwise_kernel(a_ptr, b_ptr, out_ptr, s, n, size_class, OP: tl.constexpr, BLOCK: tl.constexpr,
                        PROGRAMS_PER_SM: tl.constexpr = 0):
    # size_class is only an autotuning key (see _size_class), and
    # PROGRAMS_PER_SM only sizes the grid (see `stream`). Each program
    # walks blocks pid, pid + programs, ...: one block each when the grid
    # covers the array, several when the grid is capped at a few programs per
    # SM (a persistent grid; the autotuner chooses).
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


def _elementwise_configs():
    # PROGRAMS_PER_SM 0: one program per block; otherwise a persistent grid.
    # (Cache hints, evict-first loads and streaming stores, were candidates
    # too: on the H200 they never won, so they are gone.)
    return [triton.Config({"BLOCK": b, "PROGRAMS_PER_SM": p}, num_warps=w)
            for b in (512, 1024, 2048, 4096, 8192, 16384, 32768) for w in (4, 8) for p in (0, 8)]


def _vectors_per_thread(block: int, num_warps: int, esize: int) -> float:
    return block * esize / (num_warps * 32 * 16)


def _prune_elementwise(configs, named_args, **kwargs):
    # Between 1 and 16 16-byte accesses per thread per array. One is what
    # torch's elementwise kernels issue, and for copy and scale at 2 GiB on
    # the H200 (one array read, one written) it matched torch where 4-16 per
    # thread stayed at 0.95-0.97x (h200-followup.jsonl against
    # h200-session3.jsonl, where the tuner picked one for both).
    esize = named_args["out_ptr"].element_size()
    return [c for c in configs if 1 <= _vectors_per_thread(c.kwargs["BLOCK"], c.num_warps, esize) <= 16]


# Tuned once per (kernel, dtype, size class) on the GPU it runs on: how many
# bytes each thread should keep in flight differs between working sets that
# live in L2 and those that stream from HBM, and between GPUs.
_elementwise_tuned = triton.autotune(_elementwise_configs(), key=["size_class", "OP"],
                                     prune_configs_by={"early_config_prune": _prune_elementwise},
                                     # short per-candidate device timing; the sweep times the winner properly
                                     do_bench=device_time_ms)(_elementwise_kernel)


def _size_class(nbytes: int) -> int:
    """Working sets a factor of 16 apart share a class (1-16 MiB, 16-256 MiB, ...)."""
    return nbytes.bit_length() // 4


def config(kernel: str, esize: int, on_gpu: bool = True) -> dict:
    """The launch configuration `stream` used last for this kernel (recorded with each measurement)."""
    if kernel == "read":
        return {"BLOCK": _block(esize, NUM_WARPS), "CHUNKS": SUM_CHUNKS, "num_warps": NUM_WARPS}
    best = _elementwise_tuned.best_config if on_gpu else None
    if best is None:  # the interpreter (or no launch yet): the fixed configuration
        return {"BLOCK": _block(esize, NUM_WARPS), "PROGRAMS_PER_SM": 0, "num_warps": NUM_WARPS}
    return {**best.kwargs, "num_warps": best.num_warps, "autotuned": True}


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
    reads, writes, _ = TRAFFIC[kernel]
    size_class = _size_class((reads + writes) * n * out.element_size())
    # Unused pointer arguments get `out`, so the kernel signature stays one.
    args = (a if a is not None else out, b if b is not None else out, out, s, n, size_class)
    if out.is_cuda:
        sms = cuda_properties(out.device).multi_processor_count

        def grid(meta):
            blocks = triton.cdiv(n, meta["BLOCK"])
            return (min(blocks, sms * meta["PROGRAMS_PER_SM"]) if meta["PROGRAMS_PER_SM"] else blocks,)

        _elementwise_tuned[grid](*args, OP=_OP_CODE[kernel])
    else:  # Triton's interpreter: nothing to tune
        cfg = config(kernel, out.element_size(), on_gpu=False)
        _elementwise_kernel[(triton.cdiv(n, cfg["BLOCK"]),)](*args, OP=_OP_CODE[kernel], BLOCK=cfg["BLOCK"],
                                                            num_warps=cfg["num_warps"])
    return out
