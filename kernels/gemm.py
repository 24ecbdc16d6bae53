"""GEMM kernels: C = A @ B in fp32 (IEEE, CUDA cores), tf32, fp16, bf16 and fp8 e4m3, and the
decode-shaped skinny y = x @ w.T.

One kernel per job:

- `_gemm_tma_kernel` (Hopper and newer, tensor cores): persistent, one program per SM walking the
  output tiles; the tiles past the last full wave are split along K (`_tail_split`) so that wave
  does not leave most SMs idle. Operands arrive through tensor-memory-accelerator descriptors
  built on the device (`tl.make_tensor_descriptor`) straight into the swizzled shared-memory
  layout the warp-group MMA reads; the result leaves through a descriptor too. Autotuning also
  tries Triton's Hopper warp specialization (a producer warp group issues the loads, two consumer
  groups do the MMA).
- `_sgemm_kernel` (Ampere and newer, CUDA cores): IEEE fp32, written in Gluon (Triton's
  explicit-layout dialect) as a classic SGEMM: cp.async pipeline, A staged transposed, 8x8
  outputs per thread fed by conflict-free 128-bit shared loads.
- `_gemm_kernel`: the portable tiled kernel with plain pointer loads (pipelined by the compiler).
  It runs on every GPU Triton supports and in the interpreter, takes any strides, and is the
  IEEE fp32 fallback where the Gluon kernel cannot run (`precision="ieee"`: tl.dot then lowers
  to FMAs, never tf32).
- `_skinny_kernel`: y = x @ w.T for up to 256 rows of x (decode, and prefill-sized batches where
  the tiled kernel's tiles would be too few). Memory-bound or near it: each program streams a
  band of weight rows once; the weight band is the 64/128/256-row side of the MMA and x^T the
  other; from 128 rows of x on, x arrives by TMA too; K is split over more programs when the
  bands alone would leave SMs idle.
- `_transpose_kernel`: tf32 tensor cores read B only K-major, so a row-major B is either
  transposed tile by tile inside the GEMM (through registers) or once up front by this kernel;
  the launcher measures which is faster per shape.

All accumulate in fp32 and round once on store. Output tiles are visited GROUP_M row-blocks at a
time down a column band ("grouped" order), so programs running together share A rows and B
columns in L2 instead of fetching them from HBM again.

Traffic model (minimum bytes: inputs read once, output written once):

    gemm_flops(M, N, K) = 2*M*N*K
    gemm_bytes(M, N, K, esize_in, esize_out) = (M*K + K*N)*esize_in + M*N*esize_out

fp8 reads 1-byte operands and writes bf16 (its two fp32 scales are 8 bytes more). What each call
ran with is kept for the records: `chosen_config(op, M, N, K, dtype, precision)`.
"""
from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy

from kernels.device import cuda_properties
from kernels.launch import launch
from kernels.tuning import chosen, device_time_ms, launch_autotuned, record_choice, remembered


class Unsupported(RuntimeError):
    """This device / Triton build cannot run the requested GEMM (fp8 before Hopper, ...)."""


def gemm_flops(M: int, N: int, K: int) -> int:
    return 2 * M * N * K


def gemm_bytes(M: int, N: int, K: int, esize_in: int, esize_out: int) -> int:
    return (M * K + K * N) * esize_in + M * N * esize_out


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------

@triton.jit
def _tile_coords(tile, num_m, num_n, GROUP_M: tl.constexpr):
    # Grouped order: consecutive tiles go down GROUP_M row-blocks of one column band, then move
    # right; programs running together share B columns and A rows in L2.
    tiles_per_group = GROUP_M * num_n
    first_m = (tile // tiles_per_group) * GROUP_M
    rows = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (tile % tiles_per_group) % rows
    pid_n = (tile % tiles_per_group) // rows
    return pid_m, pid_n


# The persistent kernel's tail split: at most this many shares of K per tile, each of at least
# this many K blocks (shorter shares gain less than their partial sums cost).
_TAIL_MAX_SPLIT = tl.constexpr(4)
_TAIL_MIN_K_TILES = tl.constexpr(4)


def _tail_split(tiles: int, num_sms: int, k_tiles: int, warp_specialized: bool) -> int:
    """Into how many shares of K `_gemm_tma_kernel` splits each tile past its last full wave
    (1: none): as many as fill the SMs the last wave leaves idle. Not with warp specialization,
    which takes one tile loop only. The kernel computes the same (a test holds them together)."""
    rest = tiles % num_sms
    if warp_specialized or rest == 0:
        return 1
    return max(1, min(num_sms // rest, k_tiles // _TAIL_MIN_K_TILES.value, _TAIL_MAX_SPLIT.value))


def _problem_tail_split(meta: dict, M: int, N: int, K: int, num_sms: int) -> int:
    return _tail_split(triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]), num_sms, triton.cdiv(K, meta["BK"]),
                       meta.get("WARP_SPECIALIZE", False))


def _with_tail_split(config: triton.Config, M: int, N: int, K: int, num_sms: int) -> triton.Config:
    """`config` with TAIL set where this problem splits its tail: a compile-time switch, so a
    shape without a tail compiles no tail loop, and one variant with it serves every shape."""
    k = config.kwargs
    return triton.Config({**k, "TAIL": _problem_tail_split(k, M, N, K, num_sms) > 1},
                         num_warps=config.num_warps, num_stages=config.num_stages,
                         num_ctas=getattr(config, "num_ctas", 1), maxnreg=getattr(config, "maxnreg", None),
                         pre_hook=getattr(config, "pre_hook", None))


@triton.jit
def _tma_tile_acc(a_desc, b_desc, pid_m, pid_n, k_lo, k_hi, BM: tl.constexpr, BN: tl.constexpr,
                  BK: tl.constexpr, B_KMAJOR: tl.constexpr, PRECISION: tl.constexpr):
    acc = tl.zeros((BM, BN), tl.float32)
    for k in range(k_lo, k_hi, BK):
        a = a_desc.load([pid_m * BM, k])
        if B_KMAJOR:
            b = b_desc.load([pid_n * BN, k]).T
        else:
            b = b_desc.load([k, pid_n * BN])
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _tma_store_tile(c_desc, acc, pid_m, pid_n, scale, BM: tl.constexpr, BN: tl.constexpr,
                    EPILOGUE_SPLIT: tl.constexpr, HAS_SCALES: tl.constexpr, OUT: tl.constexpr):
    if HAS_SCALES:
        acc = acc * scale
    if EPILOGUE_SPLIT == 2:
        left, right = tl.split(tl.reshape(acc, (BM, 2, BN // 2)).permute(0, 2, 1))
        c_desc.store([pid_m * BM, pid_n * BN], left.to(OUT))
        c_desc.store([pid_m * BM, pid_n * BN + BN // 2], right.to(OUT))
    else:
        c_desc.store([pid_m * BM, pid_n * BN], acc.to(OUT))


@triton.jit
def _gemm_tma_kernel(a_ptr, b_ptr, c_ptr, scale_a_ptr, scale_b_ptr, partial_ptr, arrivals_ptr,
                     M, N, K, lda, ldb, ldc,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                     EPILOGUE_SPLIT: tl.constexpr, WARP_SPECIALIZE: tl.constexpr,
                     B_KMAJOR: tl.constexpr, PRECISION: tl.constexpr, HAS_SCALES: tl.constexpr,
                     NUM_SMS: tl.constexpr, TAIL: tl.constexpr = False):
    # Descriptors carry shape and strides: the hardware zero-fills reads past M, N, K and clips
    # writes, so there are no masks.
    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[lda, 1], block_shape=[BM, BK])
    if B_KMAJOR:  # b is [K, N] column-major (fp8's layout, w.T in linear): read it as [N, K]
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[N, K], strides=[ldb, 1], block_shape=[BN, BK])
    else:
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[ldb, 1], block_shape=[BK, BN])
    # The epilogue may store the tile in column slices: a smaller staging buffer leaves shared
    # memory for a deeper operand pipeline.
    c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[ldc, 1],
                                       block_shape=[BM, BN // EPILOGUE_SPLIT])
    scale = 1.0
    if HAS_SCALES:
        scale = tl.load(scale_a_ptr) * tl.load(scale_b_ptr)

    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    num_tiles = num_m * num_n
    # With TAIL the tiles past the last full wave are split along K into `_tail_split` shares
    # (computed here as there: a run-time count, so one compiled variant serves every shape),
    # so the last wave keeps more SMs busy; the loop below walks the full waves.
    whole = num_tiles
    tail_split = 1
    if TAIL:
        rest = num_tiles % NUM_SMS
        if rest > 0:
            tail_split = tl.maximum(1, tl.minimum(tl.minimum(NUM_SMS // rest, tl.cdiv(K, BK) // _TAIL_MIN_K_TILES),
                                                  _TAIL_MAX_SPLIT))
        if tail_split > 1:
            whole = num_tiles - rest
    # The epilogue finds its tile from a counter of its own: a value used both by this tile's
    # stores and the next tile's loads defeats the pipeliner when the tile loop is flattened.
    tile_c = tl.program_id(0) - NUM_SMS
    # Flattening the two loops lets the pipeliner fetch the next tile's operands during this
    # tile's epilogue; Hopper warp specialization needs the nest unflattened.
    for tile in tl.range(tl.program_id(0), whole, NUM_SMS, flatten=not WARP_SPECIALIZE,
                         warp_specialize=WARP_SPECIALIZE):
        pid_m, pid_n = _tile_coords(tile, num_m, num_n, GROUP_M)
        acc = _tma_tile_acc(a_desc, b_desc, pid_m, pid_n, 0, K, BM, BN, BK, B_KMAJOR, PRECISION)
        tile_c += NUM_SMS
        pid_m, pid_n = _tile_coords(tile_c, num_m, num_n, GROUP_M)
        _tma_store_tile(c_desc, acc, pid_m, pid_n, scale, BM, BN, EPILOGUE_SPLIT, HAS_SCALES,
                        c_ptr.dtype.element_ty)

    if TAIL:
        # The tail: unit u is share u % tail_split of K of tile whole + u // tail_split, at most
        # one unit per program. Each share stores its fp32 partial; the last share of a tile to
        # arrive adds all of them in share order (deterministic), stores the tile and re-arms
        # the tile's counter.
        k_share = tl.cdiv(tl.cdiv(K, BK), tail_split) * BK
        offs = tl.arange(0, BM)[:, None] * BN + tl.arange(0, BN)[None, :]
        for unit in range(tl.program_id(0), (num_tiles - whole) * tail_split, NUM_SMS):
            t = unit // tail_split
            pid_m, pid_n = _tile_coords(whole + t, num_m, num_n, GROUP_M)
            share = unit % tail_split
            acc = _tma_tile_acc(a_desc, b_desc, pid_m, pid_n, share * k_share,
                                tl.minimum(share * k_share + k_share, K), BM, BN, BK, B_KMAJOR, PRECISION)
            tl.store(partial_ptr + unit * (BM * BN) + offs, acc)
            tl.debug_barrier()  # all threads' partials are written before the release below
            if tl.atomic_add(arrivals_ptr + t, 1, sem="acq_rel") == tail_split - 1:
                acc = tl.zeros((BM, BN), tl.float32)
                for j in range(0, tail_split):
                    acc += tl.load(partial_ptr + (t * tail_split + j) * (BM * BN) + offs,
                                   cache_modifier=".cg")
                _tma_store_tile(c_desc, acc, pid_m, pid_n, scale, BM, BN, EPILOGUE_SPLIT, HAS_SCALES,
                                c_ptr.dtype.element_ty)
                tl.atomic_xchg(arrivals_ptr + t, 0)


@triton.jit
def _gemm_kernel(a_ptr, b_ptr, c_ptr, scale_a_ptr, scale_b_ptr, M, N, K,
                 stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                 PRECISION: tl.constexpr, HAS_SCALES: tl.constexpr):
    pid_m, pid_n = _tile_coords(tl.program_id(0), tl.cdiv(M, BM), tl.cdiv(N, BN), GROUP_M)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    # Rows/columns past the edge re-read row/column 0 instead of being masked (their results are
    # never stored); only the K tail is masked, where zeros keep the sums right.
    rows = tl.where(offs_m < M, offs_m, 0).to(tl.int64)
    cols = tl.where(offs_n < N, offs_n, 0).to(tl.int64)
    a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + cols[None, :] * stride_bn
    acc = tl.zeros((BM, BN), tl.float32)
    for k in range(0, K, BK):
        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += BK * stride_ak
        b_ptrs += BK * stride_bk
    if HAS_SCALES:
        acc = acc * (tl.load(scale_a_ptr) * tl.load(scale_b_ptr))
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


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


@triton.jit
def _transpose_kernel(src_ptr, dst_ptr, R, C, stride_src, stride_dst, BLOCK: tl.constexpr):
    # dst[c, r] = src[r, c]. The tile is re-laid out through shared memory, so both the reads
    # and the writes are coalesced.
    offs_r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    offs_c = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = (offs_r[:, None] < R) & (offs_c[None, :] < C)
    tile = tl.load(src_ptr + offs_r[:, None].to(tl.int64) * stride_src + offs_c[None, :], mask=mask)
    tl.store(dst_ptr + offs_c[:, None].to(tl.int64) * stride_dst + offs_r[None, :], tl.trans(tile),
             mask=tl.trans(mask))


# M only bounds masks: not specializing it on divisibility (or M == 1) keeps one compiled variant
# per configuration across the decode batch sizes.
@triton.jit(do_not_specialize=["M"])
def _skinny_kernel(x_ptr, w_ptr, y_ptr, partial_ptr, arrivals_ptr, M, N, K,
                   stride_xm, stride_wn, stride_ym,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, USE_TMA: tl.constexpr,
                   X_TMA: tl.constexpr = False):
    # Program (n, s) computes y[:, n*BN:(n+1)*BN] over the s-th share of K, as (w_band @ x^T):
    # the weight band is the 64/128/256-row side of the MMA, the few rows of x (padded to BM >= 16;
    # the padding is masked, never loaded) the narrow side. With X_TMA x arrives by TMA too (rows
    # past M read as zeros): for BM >= 128 every band re-reads as many bytes of x as of w, and
    # pointer loads of that much cost issue slots the MMAs need.
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    num_splits = tl.num_programs(1)
    k_per_split = tl.cdiv(tl.cdiv(K, BK), num_splits) * BK
    k_lo = split * k_per_split
    k_hi = tl.minimum(k_lo + k_per_split, K)

    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_m = tl.arange(0, BM)
    offs_k = tl.arange(0, BK)
    if USE_TMA:
        w_desc = tl.make_tensor_descriptor(w_ptr, shape=[N, K], strides=[stride_wn, 1], block_shape=[BN, BK])
    if X_TMA:
        x_desc = tl.make_tensor_descriptor(x_ptr, shape=[M, K], strides=[stride_xm, 1], block_shape=[BM, BK])
    w_rows = tl.where(offs_n < N, offs_n, 0).to(tl.int64)
    acc = tl.zeros((BN, BM), tl.float32)
    for k in range(k_lo, k_hi, BK):
        if USE_TMA:
            w = w_desc.load([pid_n * BN, k])
        else:
            w = tl.load(w_ptr + w_rows[:, None] * stride_wn + (k + offs_k)[None, :],
                        mask=(k + offs_k)[None, :] < K, other=0.0)
        if X_TMA:
            x = x_desc.load([0, k])
        else:
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + (k + offs_k)[None, :],
                        mask=(offs_m[:, None] < M) & ((k + offs_k)[None, :] < K), other=0.0)
        acc = tl.dot(w, tl.trans(x), acc)

    y_offs = offs_m[None, :] * stride_ym + offs_n[:, None]
    y_mask = (offs_m[None, :] < M) & (offs_n[:, None] < N)
    if num_splits == 1:
        tl.store(y_ptr + y_offs, acc.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        # Split K, deterministically: each split stores its fp32 partial; the last split of this
        # band to arrive adds all partials in split order, writes y and re-arms the counter.
        p_offs = offs_m[None, :] * N + offs_n[:, None]
        tl.store(partial_ptr + split * M * N + p_offs, acc, mask=y_mask)
        tl.debug_barrier()  # all threads' partials are written before the release below
        arrived = tl.atomic_add(arrivals_ptr + pid_n, 1, sem="acq_rel")
        if arrived == num_splits - 1:
            total = tl.zeros((BN, BM), tl.float32)
            for s in range(0, num_splits):
                total += tl.load(partial_ptr + s * M * N + p_offs, mask=y_mask, other=0.0,
                                 cache_modifier=".cg")
            tl.store(y_ptr + y_offs, total.to(y_ptr.dtype.element_ty), mask=y_mask)
            tl.atomic_xchg(arrivals_ptr + pid_n, 0)


# ----------------------------------------------------------------------------------------------
# Autotuning: small generated candidate sets, pruned per call
# ----------------------------------------------------------------------------------------------

_SMEM_BYTES = 227 * 1024  # dynamic shared memory one Hopper CTA may use


# Hopper tensor-core tiles: (BM, BN, warp specialized, stage counts to try). 128x256 is the proven
# large-GEMM tile, 128x128 serves sizes with too few 128x256 tiles to fill the SMs. Plain tiles run
# two warp groups; Triton 3.6 warp-specializes a num_warps=4 kernel itself into a producer and two
# consumer warp groups (12 warps), and rejects a split epilogue there.
# (BM, BN, warp-specialized, stage counts). The 64x128 tile (one warpgroup) is for problems of
# about a thousand: 1024^2 outputs make 64 tiles of 128x128, half the H200's 132 SMs.
_TMA_TILES = ((128, 256, False, (3, 4)), (128, 256, True, (3,)), (128, 128, False, (4,)), (128, 128, True, (4,)),
              (64, 128, False, (4,)))


def _tma_configs() -> list[triton.Config]:
    """Candidates per operand size. BK spans one 128-byte swizzle row of K (64 for 16-bit, 128 for
    fp8, 32 for tf32). The plain 128x256 tile stores its epilogue in two halves, which frees shared
    memory for a fourth stage; stage counts are cut to what fits beside the epilogue buffer."""
    configs = []
    for esize, out_esize in ((1, 2), (2, 2), (4, 4)):
        bk = 128 // esize
        for bm, bn, ws, stage_options in _TMA_TILES:
            split = 2 if bn == 256 and not ws else 1
            fit = (_SMEM_BYTES - bm * (bn // split) * out_esize) // ((bm + bn) * bk * esize)
            for stages in sorted({min(s, fit) for s in stage_options}):
                configs.append(triton.Config(
                    {"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8, "EPILOGUE_SPLIT": split, "WARP_SPECIALIZE": ws},
                    num_warps=4 if ws or bm == 64 else 8, num_stages=stages))
    return configs


def _pointer_configs() -> list[triton.Config]:
    """Portable tensor-core tiles (pre-Hopper GPUs, or operands a TMA descriptor cannot
    describe); BK spans 64 bytes of K."""
    return [triton.Config({"BM": bm, "BN": bn, "BK": 64 // esize, "GROUP_M": 8}, num_warps=w, num_stages=s)
            for esize in (1, 2, 4)
            for bm, bn, w, s in ((128, 256, 8, 3), (128, 128, 4, 4), (64, 128, 4, 4))]


def _fma_configs() -> list[triton.Config]:
    """IEEE fp32 through tl.dot (the portable CUDA-core path: pre-Ampere GPUs, strided operands,
    the interpreter). tl.dot lowers to FFMAs on operands read from shared memory; BK=16 is the
    smallest K slice it takes. At ~230-250 registers a thread only one block of 4-8 warps fits an
    SM, which leaves it at about a third of cuBLAS; where it can, `matmul` uses `_sgemm_kernel`
    instead."""
    return [triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8}, num_warps=w, num_stages=s)
            for bm, bn, bk, w, s in ((128, 128, 16, 8, 3), (128, 128, 32, 8, 2), (64, 128, 16, 4, 3),
                                     (128, 64, 16, 4, 3))]


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
    small = triton.cdiv(M, 64) * triton.cdiv(N, 64) < _num_sms(named_args["c_ptr"].device)
    group = [c for c in configs if (c.kwargs["BM"] * c.kwargs["BN"] <= 64 * 64) == small
             or c.kwargs["BM"] * c.kwargs["BN"] == 64 * 64]
    return _pruner(None)(group, named_args, **kwargs)


def _skinny_configs() -> list[triton.Config]:
    """Per bucket of x rows (BM = 16, 64, 128, 256), each tile with as many stages as shared
    memory holds (bytes in flight keep HBM busy).

    Up to 64 rows: a 64-row weight band with long K steps or a 128-row band with shorter ones,
    the weight read by TMA or by cp.async (no descriptor to build per program), and a shallow
    64-row band that lets two programs share an SM; x arrives by pointer loads.

    128 and 256 rows: x is as large as the weight band or larger, and every band re-reads it
    from L2, so both arrive by TMA, in 64-wide K steps (longer ones fit too few stages beside
    x): a 64-row band (the most programs, no split needed at 8192 rows), a 128-row band, and
    for 128 rows of x a 256-row band (x re-read least; 8 warps hold its 256x128 accumulator).
    Without TMA these buckets fall back to one pointer-loaded 128-row band."""
    configs = []
    budget = 200 * 1024
    for bm in (16, 64):
        for bn, bk, room, loads in ((64, 256, budget, (True, False)), (128, 128, budget, (True, False)),
                                    (64, 128, 100 * 1024, (True,))):
            stages = min(6, room // ((bn + bm) * bk * 2))
            configs += [triton.Config({"BM": bm, "BN": bn, "BK": bk, "USE_TMA": tma}, num_warps=4, num_stages=stages)
                        for tma in loads]
    for bm, tiles in ((128, ((64, 4), (128, 8), (256, 8))), (256, ((64, 4), (128, 8)))):
        for bn, warps in tiles:
            configs.append(triton.Config({"BM": bm, "BN": bn, "BK": 64, "USE_TMA": True, "X_TMA": True},
                                         num_warps=warps, num_stages=min(6, budget // ((bn + bm) * 64 * 2))))
        configs.append(triton.Config({"BM": bm, "BN": 128, "BK": 64, "USE_TMA": False, "X_TMA": False},
                                     num_warps=8, num_stages=min(6, budget // ((128 + bm) * 64 * 2))))
    return configs


def _fits(config, M, N) -> bool:
    # A tile much larger than the problem only computes padding.
    return config.kwargs["BM"] <= max(64, M) and config.kwargs["BN"] <= max(64, 2 * N)


def _pruner(k_slice_bytes: int | None):
    """Early pruning: keep the candidates made for this operand size (a fixed K-slice width in
    bytes; None: the set serves one size) that fit the problem, else the smallest."""
    def prune(configs, named_args, **kwargs):
        mine = configs
        if k_slice_bytes is not None:
            esize = named_args["a_ptr"].element_size()
            mine = [c for c in configs if c.kwargs["BK"] * esize == k_slice_bytes]
            if esize == 4 and not kwargs.get("B_KMAJOR", True):
                # Triton 3.6 cannot warp-specialize a tf32 MMA whose B must be transposed on the way.
                mine = [c for c in mine if not c.kwargs.get("WARP_SPECIALIZE")]
        fitting = [c for c in mine if _fits(c, named_args["M"], named_args["N"])]
        return fitting or mine[-1:]
    return prune


def _prune_tma(configs, named_args, **kwargs):
    """The persistent kernel's candidates for this operand size and problem, each with the
    problem's tail split."""
    return [_with_tail_split(c, named_args["M"], named_args["N"], named_args["K"], kwargs["NUM_SMS"])
            for c in _pruner(128)(configs, named_args, **kwargs)]


def _prune_skinny(configs, named_args, **kwargs):
    """The bucket's tiles this GPU and these operands can load: TMA needs Hopper and describable
    rows (of w; of x too where x comes by TMA). The wide buckets keep their pointer-loaded
    fallback only where their TMA tiles cannot run."""
    bm = _skinny_bm(named_args["M"])
    w, x = named_args["w_ptr"], named_args["x_ptr"]
    tma = _has_tma(w.device) and _tma_describable(w, 1)
    x_tma = tma and _tma_describable(x, 1)
    mine = [c for c in configs if c.kwargs["BM"] == bm]
    runnable = [c for c in mine if (tma or not c.kwargs["USE_TMA"]) and (x_tma or not c.kwargs.get("X_TMA"))]
    if any(c.kwargs.get("X_TMA") for c in runnable):
        runnable = [c for c in runnable if c.kwargs.get("X_TMA")]
    return runnable


def _autotune_bench(kernel_call, quantiles):
    """Short timing per candidate (the sweep times the winner properly). A candidate this GPU or
    Triton build fails to compile ranks last instead of aborting the run; if all fail, the final
    launch raises the real error."""
    try:
        return device_time_ms(kernel_call, quantiles)  # device time, not launch time (kernels.tuning)
    except Exception:  # noqa: BLE001 - a compiler rejection of one candidate
        return [float("inf")] * len(quantiles)


_TMA_CONFIGS = _tma_configs()
_LARGEST_TMA_TILE = max(c.kwargs["BM"] * c.kwargs["BN"] for c in _TMA_CONFIGS)  # outputs of one tile
_gemm_tma_tuned = triton.autotune(
    _TMA_CONFIGS, key=["M", "N", "K", "B_KMAJOR", "PRECISION"],
    prune_configs_by={"early_config_prune": _prune_tma}, do_bench=_autotune_bench)(_gemm_tma_kernel)
_gemm_pointer_tuned = triton.autotune(
    _pointer_configs(), key=["M", "N", "K", "stride_ak", "stride_bk", "PRECISION"],
    prune_configs_by={"early_config_prune": _pruner(64)}, do_bench=_autotune_bench)(_gemm_kernel)
_gemm_fma_tuned = triton.autotune(
    _fma_configs(), key=["M", "N", "K", "stride_ak", "stride_bk"],
    prune_configs_by={"early_config_prune": _pruner(None)}, do_bench=_autotune_bench)(_gemm_kernel)
_sgemm_tuned = triton.autotune(
    _sgemm_configs(), key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _prune_sgemm}, do_bench=_autotune_bench)(_sgemm_kernel)
_SKINNY_CONFIGS = _skinny_configs()
_skinny_tuned = triton.autotune(
    _SKINNY_CONFIGS, key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _prune_skinny}, do_bench=_autotune_bench)(_skinny_kernel)

# Without a GPU (Triton's interpreter) there is nothing to tune: small fixed configs, and a
# notional 8 "SMs" so the persistent loop and split-K take their multi-tile paths on tiny shapes.
_INTERPRET_CONFIG = triton.Config({"BM": 32, "BN": 16, "BK": 16, "GROUP_M": 2}, num_warps=4, num_stages=2)
_INTERPRET_TMA_CONFIG = triton.Config({"BM": 32, "BN": 32, "BK": 16, "GROUP_M": 2, "EPILOGUE_SPLIT": 2,
                                       "WARP_SPECIALIZE": False}, num_warps=4, num_stages=2)
_INTERPRET_SKINNY_CONFIG = triton.Config({"BN": 16, "BK": 16, "USE_TMA": False}, num_warps=4, num_stages=2)
_INTERPRET_SMS = 8


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------

def chosen_config(op: str, M: int, N: int, K: int, dtype: torch.dtype, precision: str | None = None) -> dict | None:
    """What the last launch of `op` ("matmul", "matmul_fp8", "linear") on this shape and input
    dtype ran, as a JSON-ready dict: kernel, tile sizes, warps, stages, grid, whether the
    configuration was tuned in this process or taken from the tuning store, and, when it was
    tuned here, each candidate's time in ms. `precision` ("ieee"/"tf32") matters only for float32
    inputs."""
    return chosen("gemm", _record_key(op, M, N, K, dtype, precision))


def _record_key(op, M, N, K, dtype, precision):
    return (op, M, N, K, str(dtype), precision if dtype == torch.float32 else None)


def _record(key, kernel_name, run, grid, **extra):
    """Keep what a launch ran: `run` is kernels.tuning.launch_autotuned's answer (or a fixed
    configuration's stand-in)."""
    if not run.get("fresh", True):
        return  # recorded when this problem's configuration was decided
    config = run["config"]
    entry = {"kernel": kernel_name, **config.kwargs, "num_warps": config.num_warps,
             "num_stages": config.num_stages, "grid": list(grid), "tuning": run["source"],
             "tuned_at": {"M": key[1], "N": key[2], "K": key[3], "dtype": key[4]}, **extra}
    if getattr(config, "maxnreg", None):
        entry["maxnreg"] = config.maxnreg
    if run.get("timings"):
        # None marks a candidate that did not compile here (JSON has no infinity).
        entry["autotune_ms"] = {_config_label(c): (float(t[0]) if math.isfinite(t[0]) else None)
                                for c, t in run["timings"].items()}
    record_choice("gemm", key, entry)


def _fixed(config: triton.Config) -> dict:
    return {"config": config, "source": "fixed", "timings": None}


def _config_label(c: triton.Config) -> str:
    k = c.kwargs
    label = f"{k['BM']}x{k['BN']}x{k['BK']} w{c.num_warps} s{c.num_stages}"
    if k.get("WARP_SPECIALIZE"):
        label += " ws"
    if k.get("EPILOGUE_SPLIT", 1) > 1:
        label += f" epi/{k['EPILOGUE_SPLIT']}"
    if k.get("TAIL"):
        label += " tail"
    if c.maxnreg:
        label += f" r{c.maxnreg}"
    if "USE_TMA" in k:
        label += (" tma+x" if k.get("X_TMA") else " tma") if k["USE_TMA"] else " cp.async"
    return label


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return _INTERPRET_SMS
    return cuda_properties(device).multi_processor_count


def _capability(device: torch.device) -> tuple[int, int] | None:
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def _has_tma(device: torch.device) -> bool:
    cc = _capability(device)
    return cc is not None and cc >= (9, 0) and hasattr(tl, "make_tensor_descriptor")


def _scratch_alloc(size: int, alignment: int, stream):
    # Global memory for the TMA descriptors the kernels build on the device (Triton asks per launch).
    return torch.empty(size, device="cuda", dtype=torch.int8)


def _tma_describable(t: torch.Tensor, contiguous_dim: int) -> bool:
    """A TMA descriptor needs a 16-byte aligned base, unit stride along the contiguous dim and
    16-byte aligned strides otherwise."""
    other = 1 - contiguous_dim
    return (t.stride(contiguous_dim) == 1 and (t.stride(other) * t.element_size()) % 16 == 0
            and t.data_ptr() % 16 == 0)


def _b_kmajor(b: torch.Tensor) -> bool:
    return b.stride(0) == 1 and b.stride(1) != 1


def _launch_tma(key, a, b, out, precision, scale_a, scale_b):
    M, K = a.shape
    N = b.shape[1]
    kmajor = _b_kmajor(b)
    on_gpu = a.is_cuda
    num_sms = _num_sms(a.device)
    tuner = _gemm_tma_tuned if on_gpu else None
    if on_gpu:
        triton.set_allocator(_scratch_alloc)
    grids, splits = [], []

    def grid(meta):
        tiles = triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"])
        splits.append(_problem_tail_split(meta, M, N, K, num_sms) if meta.get("TAIL") else 1)
        # Past the full waves, tiles % num_sms tiles in shares: as many programs as tiles or shares.
        grids.append((min(num_sms, max(tiles, tiles % num_sms * splits[-1])),))
        return grids[-1]

    # Workspace for the tail's partial sums: at most one share per program, of the largest tile.
    largest = _LARGEST_TMA_TILE if on_gpu else _INTERPRET_TMA_CONFIG.kwargs["BM"] * _INTERPRET_TMA_CONFIG.kwargs["BN"]
    partials, arrivals = _split_workspace(a.device, num_sms * largest, num_sms)
    args = (a, b, out, scale_a if scale_a is not None else out, scale_b if scale_b is not None else out,
            partials, arrivals, M, N, K, a.stride(0), b.stride(1) if kmajor else b.stride(0), out.stride(0))
    meta = dict(B_KMAJOR=kmajor, PRECISION=precision, HAS_SCALES=scale_a is not None, NUM_SMS=num_sms)
    if on_gpu:
        run = launch_autotuned("gemm_tma", tuner, grid, *args, **meta,
                               problem=(M, N, K, kmajor, precision, str(a.dtype), str(out.dtype),
                                        scale_a is not None))
    else:
        config = _with_tail_split(_INTERPRET_TMA_CONFIG, M, N, K, num_sms)
        _gemm_tma_kernel[grid](*args, **meta, **config.all_kwargs())
        run = _fixed(config)
    _record(key, "gemm_tma_persistent", run, grids[-1], b_kmajor=kmajor, tail_split=splits[-1])
    return out


def _launch_pointer(key, a, b, out, precision, scale_a, scale_b, fma: bool):
    M, K = a.shape
    N = b.shape[1]
    on_gpu = a.is_cuda
    tuner = (_gemm_fma_tuned if fma else _gemm_pointer_tuned) if on_gpu else None
    grids = []

    def grid(meta):
        grids.append((triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]),))
        return grids[-1]

    args = (a, b, out, scale_a if scale_a is not None else out, scale_b if scale_b is not None else out,
            M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1))
    meta = dict(PRECISION=precision, HAS_SCALES=scale_a is not None)
    if on_gpu:
        run = launch_autotuned("gemm_fma" if fma else "gemm_pointer", tuner, grid, *args, **meta,
                               problem=(M, N, K, a.stride(1), b.stride(0), precision, str(a.dtype),
                                        str(out.dtype), scale_a is not None))
    else:
        _gemm_kernel[grid](*args, **meta, **_INTERPRET_CONFIG.all_kwargs())
        run = _fixed(_INTERPRET_CONFIG)
    _record(key, "gemm_fma" if fma else "gemm_pointer", run, grids[-1])
    return out


def _sgemm_runs_here(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The Gluon SGEMM needs cp.async (Ampere and newer), a GPU (Gluon has no interpreter), a
    row-major A to transpose and unit stride along B's rows."""
    cc = _capability(a.device)
    return cc is not None and cc >= (8, 0) and a.stride(1) == 1 and b.stride(1) == 1


def _launch_sgemm(key, a, b, out):
    """IEEE fp32 on CUDA cores: A is transposed once (2*M*K*4 bytes of traffic, ~0.5% of the
    time of an 8192^3 GEMM), then the tuned Gluon kernel. Both are inside the timed call."""
    M, K = a.shape
    N = b.shape[1]
    at = _transposed(a)
    grids = []

    def grid(meta):
        grids.append((triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"]),))
        return grids[-1]

    run = launch_autotuned("sgemm", _sgemm_tuned, grid, at, b, out, M, N, K, at.stride(0), b.stride(0),
                           out.stride(0), problem=(M, N, K))
    _record(key, "sgemm_gluon", run, grids[-1], a_transposed_first=True)
    return out


def _transposed(t: torch.Tensor) -> torch.Tensor:
    """A row-major copy of t.T (t row-major [R, C] -> [C, R])."""
    R, C = t.shape
    dst = torch.empty((C, R), device=t.device, dtype=t.dtype)
    block = 64
    _transpose_kernel[(triton.cdiv(R, block), triton.cdiv(C, block))](t, dst, R, C, t.stride(0), dst.stride(0),
                                                                      BLOCK=block, num_warps=8)
    return dst


def _launch_tma_tf32_rowmajor_b(key, a, b, out):
    """tf32 MMA reads B only K-major. A row-major B is either transposed tile by tile inside the
    GEMM (a register round trip per K step, two pipeline stages for B, no warp specialization)
    or once up front (2*K*N*4 more bytes of traffic, then the K-major kernel at full depth).
    The first call on a shape times both and keeps the faster (a choice the tuning store keeps)."""
    def direct():
        return _launch_tma(key, a, b, out, "tf32", None, None)

    def transpose_first():
        return _launch_tma(key, a, _transposed(b).t(), out, "tf32", None, None)

    def measure() -> dict:
        if not a.is_cuda:
            return {"transpose_first": True}
        tuning = {}
        for name, launch in (("direct", direct), ("transpose_first", transpose_first)):
            launch()  # tunes this variant
            tuning[name] = (chosen("gemm", key) or {}).get("autotune_ms")
        ms = {"direct": device_time_ms(direct), "transpose_first": device_time_ms(transpose_first)}
        return {"transpose_first": ms["transpose_first"] < ms["direct"], "b_layout_ms": ms, "autotune_ms": tuning}

    choice, source = remembered("tf32_b_layout", key, measure, __file__)
    first = choice["transpose_first"]
    (transpose_first if first else direct)()
    record_choice("gemm", key, {"b_transposed_first": first, "b_layout_tuning": source,
                                **({k: choice[k] for k in ("b_layout_ms",) if k in choice})})
    return out


def _gemm(op: str, a, b, out, precision: str, scale_a=None, scale_b=None):
    """C = A @ B (times scale_a*scale_b when given) on the best path for the device: persistent
    TMA on Hopper+ tensor cores when the operands are describable, CUDA-core FMAs for IEEE fp32,
    the portable pointer kernel otherwise."""
    M, K = a.shape
    N = b.shape[1]
    if 0 in (M, N, K):  # nothing to launch (and no descriptor of an empty tensor)
        return out.zero_()
    key = _record_key(op, M, N, K, a.dtype, precision)
    # tl.dot's input precision matters only for fp32 operands; one value for the rest keeps a
    # single compiled variant.
    dot_precision = precision if a.dtype == torch.float32 else "tf32"
    if a.dtype == torch.float32 and precision == "ieee":
        if _sgemm_runs_here(a, b):
            return _launch_sgemm(key, a, b, out)
        return _launch_pointer(key, a, b, out, "ieee", None, None, fma=True)
    kmajor = _b_kmajor(b)
    if (_has_tma(a.device) and _tma_describable(a, 1) and _tma_describable(b, 0 if kmajor else 1)
            and _tma_describable(out, 1)):
        if a.dtype == torch.float32 and not kmajor:
            return _launch_tma_tf32_rowmajor_b(key, a, b, out)
        return _launch_tma(key, a, b, out, dot_precision, scale_a, scale_b)
    return _launch_pointer(key, a, b, out, dot_precision, scale_a, scale_b, fma=False)


def _check_out(out, M, N, dtype, device) -> torch.Tensor:
    if out is None:
        return torch.empty((M, N), device=device, dtype=dtype)
    if out.shape != (M, N) or out.dtype != dtype or out.device != device or out.stride(1) != 1:
        raise ValueError(f"out must be a row-major {M}x{N} {dtype} tensor on {device}; "
                         f"got {tuple(out.shape)} {out.dtype} strides {out.stride()} on {out.device}")
    return out


def _check_operands(a, b, b_k_dim: int, dtypes: tuple, what: str):
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"{what}: operands must be 2-D, got {a.dim()}-D and {b.dim()}-D")
    if a.shape[1] != b.shape[b_k_dim]:
        raise ValueError(f"{what}: inner dimensions differ: {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype or a.dtype not in dtypes:
        raise ValueError(f"{what}: operands must share one dtype of {[str(d) for d in dtypes]}, "
                         f"got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{what}: operands on different devices ({a.device}, {b.device})")


def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None, *,
           precision: str = "ieee") -> torch.Tensor:
    """C = a @ b for a [M, K] and b [K, N] of one dtype (float32, float16, bfloat16); C has that
    dtype, accumulated in fp32. For float32, `precision` picks IEEE fp32 on CUDA cores ("ieee")
    or tf32 tensor cores ("tf32"). Any strides work; a row-major a, a row- or column-major b and
    16-byte aligned rows take the TMA path on Hopper and newer. One stream at a time (the TMA
    path's split-K workspace is shared; see `_split_workspace`)."""
    _check_operands(a, b, 0, (torch.float32, torch.float16, torch.bfloat16), "matmul")
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"precision must be 'ieee' or 'tf32', got {precision!r}")
    out = _check_out(out, a.shape[0], b.shape[1], a.dtype, a.device)
    return _gemm("matmul", a, b, out, precision)


def matmul_fp8(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """bf16 C = (a @ b) * scale_a * scale_b, as torch._scaled_mm(a, b, scale_a, scale_b,
    out_dtype=torch.bfloat16): a [M, K] row-major float8_e4m3fn, b [K, N] column-major
    (b = w.t() for a row-major w [N, K]), per-tensor fp32 scales (one-element tensors). The
    tensor cores accumulate fp8 products in their own fp32 accumulator without periodic
    promotion (torch's use_fast_accum=True). Needs Hopper or newer; raises Unsupported on
    older GPUs."""
    _check_operands(a, b, 0, (torch.float8_e4m3fn,), "matmul_fp8")
    cc = _capability(a.device)
    if cc is not None and cc < (9, 0):
        raise Unsupported(f"fp8 GEMM needs Hopper (compute capability 9.0) or newer; this GPU is {cc[0]}.{cc[1]}")
    for name, s in (("scale_a", scale_a), ("scale_b", scale_b)):
        if s.numel() != 1 or s.dtype != torch.float32 or s.device != a.device:
            raise ValueError(f"{name} must be a one-element float32 tensor on {a.device}")
    if a.stride(1) != 1 or not _b_kmajor(b):
        raise ValueError("matmul_fp8: a must be row-major and b column-major (b = w.t()), as torch._scaled_mm")
    out = _check_out(out, a.shape[0], b.shape[1], torch.bfloat16, a.device)
    return _gemm("matmul_fp8", a, b, out, "tf32", scale_a, scale_b)


# Rows of x up to which `linear` streams the weight with the skinny kernel. Beyond, the GEMM is
# compute-bound enough for the tiled kernels: an H200 does ~790 TFLOP/s over ~4.3 TB/s, ~180
# FLOP per byte, and x @ w.T does M FLOP per byte of a 16-bit weight. At 256 rows (~250 FLOP
# per byte, both limits near) the skinny kernel still wins on an 8192-row weight: the tiled
# kernel's 128x256 tiles there are 64, half the SMs, and its 128x128 tiles read both operands
# twice as often.
SKINNY_MAX_M = 256
_MAX_SPLIT = 16


def _skinny_bm(M: int) -> int:
    return 16 if M <= 16 else 64 if M <= 64 else 128 if M <= 128 else 256


def _skinny_splits(N: int, K: int, BN: int, BK: int, num_sms: int) -> int:
    """Split K only when the weight bands alone would leave SMs idle: about one program per SM,
    each split keeping at least two K blocks."""
    bands = triton.cdiv(N, BN)
    if bands >= num_sms:
        return 1
    return max(1, min(_MAX_SPLIT, round(num_sms / bands), triton.cdiv(K, BK) // 2))


_WORKSPACE: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
_OUTGROWN: list[torch.Tensor] = []  # replaced workspaces, kept: captured CUDA graphs may still use them


def _split_workspace(device: torch.device, partials: int, bands: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 partial sums and arrival counters for split-K (the skinny kernel's bands, the
    persistent kernel's tail tiles), grown on demand and kept: the counters start at zero and
    the last split of each band or tile re-arms its own, so there is no memset per call. One
    stream at a time: `linear` and `matmul` calls running concurrently on several streams would
    share the counters."""
    p, c = _WORKSPACE.get(device, (None, None))
    if p is None or p.numel() < partials:
        _OUTGROWN.extend([p] if p is not None else [])
        p = torch.empty(max(partials, 1), device=device, dtype=torch.float32)
    if c is None or c.numel() < bands:
        _OUTGROWN.extend([c] if c is not None else [])
        c = torch.zeros(max(bands, 1), device=device, dtype=torch.int32)
    _WORKSPACE[device] = (p, c)
    return p, c


@functools.lru_cache(maxsize=None)
def _skinny_plan(M: int, N: int, K: int, on_gpu: bool, num_sms: int) -> tuple[int, int, int]:
    """(BM, partial sums and arrival counters the split-K workspace needs for any candidate): a
    pure function of the shape, worked out once per shape instead of on every call."""
    bm = _skinny_bm(M)
    candidates = [c for c in _SKINNY_CONFIGS if c.kwargs["BM"] == bm] if on_gpu else [_INTERPRET_SKINNY_CONFIG]
    max_split = max(_skinny_splits(N, K, c.kwargs["BN"], c.kwargs["BK"], num_sms) for c in candidates)
    return bm, max_split * M * N if max_split > 1 else 0, triton.cdiv(N, min(c.kwargs["BN"] for c in candidates))


def _linear_skinny(x, w, out):
    M, K = x.shape
    N = w.shape[0]
    on_gpu = x.is_cuda
    num_sms = _num_sms(x.device)
    bm, partial_count, bands = _skinny_plan(M, N, K, on_gpu, num_sms)
    partials, arrivals = _split_workspace(x.device, partial_count, bands)
    if _has_tma(x.device):
        triton.set_allocator(_scratch_alloc)
    tuner = _skinny_tuned if on_gpu else None
    grids = []

    def grid(meta):
        grids.append((triton.cdiv(N, meta["BN"]), _skinny_splits(N, K, meta["BN"], meta["BK"], num_sms)))
        return grids[-1]

    args = (x, w, out, partials, arrivals, M, N, K, x.stride(0), w.stride(0), out.stride(0))
    if tuner is not None:
        run = launch_autotuned("skinny", tuner, grid, *args, problem=(M, N, K, str(x.dtype)))
    else:
        fixed = triton.Config({**_INTERPRET_SKINNY_CONFIG.kwargs, "BM": bm},
                              num_warps=_INTERPRET_SKINNY_CONFIG.num_warps,
                              num_stages=_INTERPRET_SKINNY_CONFIG.num_stages)
        launch(_skinny_kernel, grid, *args, **fixed.all_kwargs())
        run = _fixed(fixed)
    _record(_record_key("linear", M, N, K, x.dtype, None), "skinny", run, grids[-1], split_k=grids[-1][1])
    return out


def linear(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ w.T for x [M, K] and w [N, K] (nn.Linear's layout), float16 or bfloat16, fp32
    accumulation. Up to SKINNY_MAX_M rows the weight is streamed once by the skinny kernel
    (decode-shaped, memory-bound); more rows go to the tiled GEMM with w.T as a column-major B.
    One stream at a time, as `matmul`."""
    _check_operands(x, w, 1, (torch.float16, torch.bfloat16), "linear")
    if x.stride(1) != 1 or w.stride(1) != 1:
        raise ValueError("linear: x and w must have unit stride along K")
    M, K = x.shape
    N = w.shape[0]
    out = _check_out(out, M, N, x.dtype, x.device)
    if 0 in (M, N, K):
        return out.zero_()
    if M <= SKINNY_MAX_M:
        return _linear_skinny(x, w, out)
    return _gemm("linear", x, w.t(), out, "tf32")
