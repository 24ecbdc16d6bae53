"""IEEE fp32 GEMM on CUDA cores (Ampere and newer), written in Gluon (Triton's explicit-layout
dialect) as a classic SGEMM: cp.async pipeline, A staged transposed, 8x8 outputs per thread fed by
conflict-free 128-bit shared loads. `kernels.gemm.matmul(precision="ieee")` runs it where it can
(`runs_here`), after transposing A once; the portable tl.dot kernel is the fallback elsewhere.
"""
from __future__ import annotations

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy

from kernels import device as gpu
from kernels.gemm_tuning import autotune_bench, pruner, record
from kernels.tuning import launch_autotuned


# Triton 3.7 renamed two Gluon builtins; the GPU image has 3.6, the CI machines the newest.
_async_load = getattr(async_copy, "async_load", None) or async_copy.async_copy_global_to_shared
_cta_barrier = getattr(gl, "barrier", None) or gl.thread_barrier


@gluon.jit
def _sgemm_kernel(at_ptr, b_ptr, c_ptr, M, N, K, ld_at, ld_b, ld_c,
                  BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, GROUP_M: gl.constexpr,
                  STAGES: gl.constexpr, WARPS_M: gl.constexpr, WARPS_N: gl.constexpr):
    # IEEE fp32 C = A @ B on CUDA cores, written in Gluon because tl.dot's FMA lowering leaves
    # the register tiling and the shared-memory reads to the compiler, which keeps it far from
    # cuBLAS.
    # The classic SGEMM: A arrives transposed (at = A^T, [K, M] row-major), so the k-th row of
    # both staged tiles is contiguous; per k every thread reads 8 values of A and 8 of B from
    # shared memory as four 128-bit loads and does 64 independent FFMAs into its 8x8 block
    # (8x4 in the 64x64 tile). Its rows (and columns) come in runs of 4, a layout's width
    # apart: the 8 lanes along N read 8 consecutive 16-byte pieces of B (all 32 banks once),
    # the 4 along M 4 consecutive pieces of A, and lanes sharing a piece get it by broadcast.
    gl.static_assert(BM % (16 * WARPS_M) == 0 and BN % (32 * WARPS_N) == 0)
    gl.static_assert(BM <= 128 and BN <= 128)
    acc_layout: gl.constexpr = gl.BlockedLayout([4, 4], [4, 8], [WARPS_M, WARPS_N], [1, 0])
    # Global -> shared: 16-byte cp.async pieces, 32 of them per warp contiguous along the rows.
    a_copy: gl.constexpr = gl.BlockedLayout([1, 4], [32 // (BM // 4), BM // 4], [WARPS_M * WARPS_N, 1], [1, 0])
    b_copy: gl.constexpr = gl.BlockedLayout([1, 4], [32 // (BN // 4), BN // 4], [WARPS_M * WARPS_N, 1], [1, 0])
    plain: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])

    pid = gl.program_id(0)
    num_m = gl.cdiv(M, BM)
    tiles_per_group = GROUP_M * gl.cdiv(N, BN)
    first_m = (pid // tiles_per_group) * GROUP_M
    rows = gl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % tiles_per_group) % rows
    pid_n = (pid % tiles_per_group) // rows

    a_smem = gl.allocate_shared_memory(gl.float32, [STAGES, BK, BM], plain)
    b_smem = gl.allocate_shared_memory(gl.float32, [STAGES, BK, BN], plain)
    ka = gl.arange(0, BK, layout=gl.SliceLayout(1, a_copy))
    kb = gl.arange(0, BK, layout=gl.SliceLayout(1, b_copy))
    offs_m = pid_m * BM + gl.arange(0, BM, layout=gl.SliceLayout(0, a_copy))
    offs_n = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, b_copy))
    a_ptrs = at_ptr + ka[:, None] * ld_at + offs_m[None, :]
    b_ptrs = b_ptr + kb[:, None] * ld_b + offs_n[None, :]
    # Masked-off pieces are zero-filled: the K tail adds nothing; rows/columns past M, N are
    # computed but never stored.
    m_ok = offs_m[None, :] < M
    n_ok = offs_n[None, :] < N

    # cp.async pipeline: STAGES-1 K slices in flight while one is computed.
    for s in gl.static_range(STAGES - 1):
        _async_load(a_smem.index(s), a_ptrs, mask=(ka[:, None] < K - s * BK) & m_ok)
        _async_load(b_smem.index(s), b_ptrs, mask=(kb[:, None] < K - s * BK) & n_ok)
        async_copy.commit_group()
        a_ptrs += BK * ld_at
        b_ptrs += BK * ld_b

    acc = gl.zeros([BM, BN], gl.float32, acc_layout)
    for i in range(gl.cdiv(K, BK)):
        async_copy.wait_group(STAGES - 2)  # slice i has landed (this thread's copies) ...
        _cta_barrier()  # ... everyone's; and everyone is done with slice i-1, refilled next
        j = i + STAGES - 1
        _async_load(a_smem.index(j % STAGES), a_ptrs, mask=(ka[:, None] < K - j * BK) & m_ok)
        _async_load(b_smem.index(j % STAGES), b_ptrs, mask=(kb[:, None] < K - j * BK) & n_ok)
        async_copy.commit_group()
        a_ptrs += BK * ld_at
        b_ptrs += BK * ld_b
        a_tile = a_smem.index(i % STAGES)
        b_tile = b_smem.index(i % STAGES)
        for kk in gl.static_range(BK):
            # Rank-1 update: a column [BM, 1] and a row [1, BN], both in the accumulator's layout.
            a = a_tile.slice(kk, 1, dim=0).permute([1, 0]).load(acc_layout)
            b = b_tile.slice(kk, 1, dim=0).load(acc_layout)
            acc = gl.fma(a, b, acc)  # FFMA, one rounding, whatever Triton's fp-fusion default

    async_copy.wait_group(0)
    cm = pid_m * BM + gl.arange(0, BM, layout=gl.SliceLayout(1, acc_layout))
    cn = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, acc_layout))
    gl.store(c_ptr + cm[:, None].to(gl.int64) * ld_c + cn[None, :], acc,
             mask=(cm[:, None] < M) & (cn[None, :] < N))


def _sgemm_configs() -> list[triton.Config]:
    """Gluon SGEMM tiles (BM, BN, BK, stages, warps along M and N, register cap). A thread holds
    64 accumulators (32 in the 64x64 tile, 16 in the 32-row tiles). Capping 8-warp tiles at 128
    registers lets two blocks share an SM; 4-warp tiles fit two or more without a cap. At large
    sizes 64x128x16 (4 warps, 4 stages) and 128x128x16 (8 warps, capped) lead; 64x64 is for sizes
    with too few larger tiles to fill the SMs, and the 32-row tiles (two or four warps, K slices
    of 32) for those where even 64x64 tiles leave SMs idle: 512^2 outputs are 64 of them on 132
    SMs, 256 tiles of 32x32. `_prune_sgemm` offers each size one group. Stage counts stay powers
    of two: the slot index is i % STAGES, a mask then, a multiply-high otherwise."""
    return [triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8, "STAGES": st, "WARPS_M": wm, "WARPS_N": wn},
                          num_warps=wm * wn, num_stages=st, maxnreg=reg)
            for bm, bn, bk, st, wm, wn, reg in ((64, 128, 16, 4, 2, 2, None), (128, 128, 16, 4, 4, 2, 128),
                                                (128, 128, 8, 4, 4, 2, 128),
                                                (128, 64, 16, 4, 4, 1, None), (64, 64, 16, 4, 2, 2, None),
                                                (32, 64, 32, 4, 2, 2, None), (32, 32, 32, 4, 2, 1, None))]


def _prune_sgemm(configs, named_args, **kwargs):
    """Tiles smaller than 64x64 where 64x64 tiles leave SMs idle, the others elsewhere (64x64
    is in both groups)."""
    M, N = named_args["M"], named_args["N"]
    small = triton.cdiv(M, 64) * triton.cdiv(N, 64) < gpu.num_sms(named_args["c_ptr"].device)
    group = [c for c in configs if (c.kwargs["BM"] * c.kwargs["BN"] <= 64 * 64) == small
             or c.kwargs["BM"] * c.kwargs["BN"] == 64 * 64]
    return pruner(None)(group, named_args, **kwargs)


_sgemm_tuned = triton.autotune(
    _sgemm_configs(), key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _prune_sgemm}, do_bench=autotune_bench)(_sgemm_kernel)


def runs_here(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The Gluon SGEMM needs cp.async (Ampere and newer), a GPU (Gluon has no interpreter), a
    row-major A to transpose and unit stride along B's rows."""
    cc = gpu.capability(a.device)
    return cc is not None and cc >= (8, 0) and a.stride(1) == 1 and b.stride(1) == 1


def launch(key, at, b, out):
    """C = A @ B in IEEE fp32 from at = A^T (row-major [K, M]; the caller transposes A once, 2*M*K*4
    bytes of traffic, ~0.5% of the time of an 8192^3 GEMM, inside the timed call), by the tuned
    Gluon kernel."""
    K, M = at.shape
    N = b.shape[1]
    grids = []

    def grid(meta):
        grids.append((triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]),))
        return grids[-1]

    run = launch_autotuned("sgemm", _sgemm_tuned, grid, at, b, out, M, N, K, at.stride(0), b.stride(0),
                           out.stride(0), problem=(M, N, K))
    record(key, "sgemm_gluon", run, grids[-1], a_transposed_first=True)
    return out
