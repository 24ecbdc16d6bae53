"""GEMM: C = A @ B in fp32 (IEEE, CUDA cores), tf32, fp16, bf16 and fp8 e4m3 (`matmul`,
`matmul_fp8`), and y = x @ w.T (`linear`).

One kernel per job (the SGEMM in `kernels.sgemm`, the skinny kernel in `kernels.skinny`; how
they are tuned and recorded in `kernels.gemm_tuning`):

- `_gemm_tma_kernel` (Hopper and newer, tensor cores): persistent, one program per SM walking the
  output tiles; the tiles past the last full wave are split along K (`_tail_split`) so that wave
  does not leave most SMs idle. Operands arrive through tensor-memory-accelerator descriptors
  built on the device (`tl.make_tensor_descriptor`) straight into the swizzled shared-memory
  layout the warp-group MMA reads; the result leaves through a descriptor too. Autotuning also
  tries Triton's Hopper warp specialization (a producer warp group issues the loads, two consumer
  groups do the MMA).
- `kernels.sgemm` (Ampere and newer, CUDA cores): IEEE fp32, written in Gluon as a classic
  SGEMM.
- `_gemm_kernel`: the portable tiled kernel with plain pointer loads (pipelined by the compiler).
  It runs on every GPU Triton supports and in the interpreter, takes any strides, and is the
  IEEE fp32 fallback where the Gluon kernel cannot run (`precision="ieee"`: tl.dot then lowers
  to FMAs, never tf32).
- `kernels.skinny`: y = x @ w.T for up to 256 rows of x, streaming the weight once.
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

import torch
import triton
import triton.language as tl

from kernels import device as gpu
from kernels import sgemm, skinny
from kernels.gemm_tuning import (autotune_bench, chosen_config, fixed, pruner, record, record_key,  # noqa: F401
                                 split_workspace)
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
    SM, which leaves it at about a third of cuBLAS; where it can, `matmul` uses `kernels.sgemm`
    instead."""
    return [triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8}, num_warps=w, num_stages=s)
            for bm, bn, bk, w, s in ((128, 128, 16, 8, 3), (128, 128, 32, 8, 2), (64, 128, 16, 4, 3),
                                     (128, 64, 16, 4, 3))]


def _prune_tma(configs, named_args, **kwargs):
    """The persistent kernel's candidates for this operand size and problem, each with the
    problem's tail split."""
    return [_with_tail_split(c, named_args["M"], named_args["N"], named_args["K"], kwargs["NUM_SMS"])
            for c in pruner(128)(configs, named_args, **kwargs)]


_TMA_CONFIGS = _tma_configs()
_LARGEST_TMA_TILE = max(c.kwargs["BM"] * c.kwargs["BN"] for c in _TMA_CONFIGS)  # outputs of one tile
_gemm_tma_tuned = triton.autotune(
    _TMA_CONFIGS, key=["M", "N", "K", "B_KMAJOR", "PRECISION"],
    prune_configs_by={"early_config_prune": _prune_tma}, do_bench=autotune_bench)(_gemm_tma_kernel)
_gemm_pointer_tuned = triton.autotune(
    _pointer_configs(), key=["M", "N", "K", "stride_ak", "stride_bk", "PRECISION"],
    prune_configs_by={"early_config_prune": pruner(64)}, do_bench=autotune_bench)(_gemm_kernel)
_gemm_fma_tuned = triton.autotune(
    _fma_configs(), key=["M", "N", "K", "stride_ak", "stride_bk"],
    prune_configs_by={"early_config_prune": pruner(None)}, do_bench=autotune_bench)(_gemm_kernel)

# Without a GPU (Triton's interpreter) there is nothing to tune: small fixed configs, planned for
# `device.num_sms`'s notional 8 SMs, so the persistent loop and split-K take their multi-tile paths.
_INTERPRET_CONFIG = triton.Config({"BM": 32, "BN": 16, "BK": 16, "GROUP_M": 2}, num_warps=4, num_stages=2)
_INTERPRET_TMA_CONFIG = triton.Config({"BM": 32, "BN": 32, "BK": 16, "GROUP_M": 2, "EPILOGUE_SPLIT": 2,
                                       "WARP_SPECIALIZE": False}, num_warps=4, num_stages=2)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------

def _b_kmajor(b: torch.Tensor) -> bool:
    return b.stride(0) == 1 and b.stride(1) != 1


def _launch_tma(key, a, b, out, precision, scale_a, scale_b):
    M, K = a.shape
    N = b.shape[1]
    kmajor = _b_kmajor(b)
    on_gpu = a.is_cuda
    num_sms = gpu.num_sms(a.device)
    tuner = _gemm_tma_tuned if on_gpu else None
    if on_gpu:
        triton.set_allocator(gpu.scratch_alloc)
    grids, splits = [], []

    def grid(meta):
        tiles = triton.cdiv(M, meta["BM"]) * triton.cdiv(N, meta["BN"])
        splits.append(_problem_tail_split(meta, M, N, K, num_sms) if meta.get("TAIL") else 1)
        # Past the full waves, tiles % num_sms tiles in shares: as many programs as tiles or shares.
        grids.append((min(num_sms, max(tiles, tiles % num_sms * splits[-1])),))
        return grids[-1]

    # Workspace for the tail's partial sums: at most one share per program, of the largest tile.
    largest = _LARGEST_TMA_TILE if on_gpu else _INTERPRET_TMA_CONFIG.kwargs["BM"] * _INTERPRET_TMA_CONFIG.kwargs["BN"]
    partials, arrivals = split_workspace(a.device, num_sms * largest, num_sms)
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
        run = fixed(config)
    record(key, "gemm_tma_persistent", run, grids[-1], b_kmajor=kmajor, tail_split=splits[-1])
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
        run = fixed(_INTERPRET_CONFIG)
    record(key, "gemm_fma" if fma else "gemm_pointer", run, grids[-1])
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
    key = record_key(op, M, N, K, a.dtype, precision)
    # tl.dot's input precision matters only for fp32 operands; one value for the rest keeps a
    # single compiled variant.
    dot_precision = precision if a.dtype == torch.float32 else "tf32"
    if a.dtype == torch.float32 and precision == "ieee":
        if sgemm.runs_here(a, b):
            return sgemm.launch(key, _transposed(a), b, out)
        return _launch_pointer(key, a, b, out, "ieee", None, None, fma=True)
    kmajor = _b_kmajor(b)
    if (gpu.has_tma(a.device) and gpu.tma_describable(a, 1) and gpu.tma_describable(b, 0 if kmajor else 1)
            and gpu.tma_describable(out, 1)):
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
    path's split-K workspace is shared; see `split_workspace`)."""
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
    cc = gpu.capability(a.device)
    if cc is not None and cc < (9, 0):
        raise Unsupported(f"fp8 GEMM needs Hopper (compute capability 9.0) or newer; this GPU is {cc[0]}.{cc[1]}")
    for name, s in (("scale_a", scale_a), ("scale_b", scale_b)):
        if s.numel() != 1 or s.dtype != torch.float32 or s.device != a.device:
            raise ValueError(f"{name} must be a one-element float32 tensor on {a.device}")
    if a.stride(1) != 1 or not _b_kmajor(b):
        raise ValueError("matmul_fp8: a must be row-major and b column-major (b = w.t()), as torch._scaled_mm")
    out = _check_out(out, a.shape[0], b.shape[1], torch.bfloat16, a.device)
    return _gemm("matmul_fp8", a, b, out, "tf32", scale_a, scale_b)


def linear(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ w.T for x [M, K] and w [N, K] (nn.Linear's layout), float16 or bfloat16, fp32
    accumulation. Up to skinny.SKINNY_MAX_M rows the weight is streamed once by the skinny kernel
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
    if M <= skinny.SKINNY_MAX_M:
        return skinny.linear(x, w, out)
    return _gemm("linear", x, w.t(), out, "tf32")
