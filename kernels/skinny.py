"""The decode-shaped GEMM y = x @ w.T for up to SKINNY_MAX_M rows of x (decode, and
prefill-sized batches where the tiled kernel's tiles would be too few). Memory-bound or near it:
each program streams a band of weight rows once; the weight band is the 64/128/256-row side of the
MMA and x^T the other; from 128 rows of x on, x arrives by TMA too; K is split over more programs
when the bands alone would leave SMs idle. `kernels.gemm.linear` is the entry point.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from kernels import device as gpu
from kernels.gemm_tuning import autotune_bench, fixed, record, record_key, split_workspace
from kernels.launch import launch
from kernels.tuning import launch_autotuned


# Rows of x up to which `kernels.gemm.linear` streams the weight with this kernel. Beyond, the
# GEMM is compute-bound enough for the tiled kernels: an H200 does ~790 TFLOP/s over ~4.3 TB/s, ~180
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
    # pointer loads of that much cost issue slots the MMAs need. The shares of K are the grid's
    # second dimension.
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


def _skinny_configs() -> list[triton.Config]:
    """Per bucket of x rows (BM = 16, 64, 128, 256), each tile with as many stages as shared
    memory holds (bytes in flight keep HBM busy).

    Up to 64 rows: a 64-row weight band with long K steps or a 128-row band with shorter ones,
    the weight read by TMA or by cp.async (no descriptor to build per program), and a shallow
    64-row band that lets two programs share an SM; x arrives by pointer loads.

    128 and 256 rows: x is as large as the weight band or larger, and every band re-reads it
    from L2, so both arrive by TMA, mostly in 64-wide K steps (longer ones fit too few stages
    beside x): a 64-row band (the most programs, no split needed at 8192 rows; for 128 rows of x
    also in 128-wide steps at four stages), a 128-row band, and for 128 rows of x a 256-row band
    (x re-read least; 8 warps hold its 256x128 accumulator). Splitting K across more programs
    does not pay in these buckets: on an H200, 64-row bands in two shares, 128-row in two and
    256-row in four all ran 15-50% slower than the best unsplit band, on both weights.
    Without TMA these buckets fall back to one pointer-loaded 128-row band."""
    configs = []
    budget = 200 * 1024
    for bm in (16, 64):
        for bn, bk, room, loads in ((64, 256, budget, (True, False)), (128, 128, budget, (True, False)),
                                    (64, 128, 100 * 1024, (True,))):
            stages = min(6, room // ((bn + bm) * bk * 2))
            configs += [triton.Config({"BM": bm, "BN": bn, "BK": bk, "USE_TMA": tma}, num_warps=4, num_stages=stages)
                        for tma in loads]
    # (BN, BK, warps) per bucket
    tiles = {128: ((64, 64, 4), (64, 128, 4), (128, 64, 8), (256, 64, 8)), 256: ((64, 64, 4), (128, 64, 8))}
    for bm, shapes in tiles.items():
        for bn, bk, warps in shapes:
            configs.append(triton.Config({"BM": bm, "BN": bn, "BK": bk, "USE_TMA": True, "X_TMA": True},
                                         num_warps=warps, num_stages=min(6, budget // ((bn + bm) * bk * 2))))
        configs.append(triton.Config({"BM": bm, "BN": 128, "BK": 64, "USE_TMA": False, "X_TMA": False},
                                     num_warps=8, num_stages=min(6, budget // ((128 + bm) * 64 * 2))))
    return configs


def _prune_skinny(configs, named_args, **kwargs):
    """The bucket's tiles this GPU and these operands can load: TMA needs Hopper and describable
    rows (of w; of x too where x comes by TMA). The wide buckets keep their pointer-loaded
    fallback only where their TMA tiles cannot run."""
    bm = _skinny_bm(named_args["M"])
    w, x = named_args["w_ptr"], named_args["x_ptr"]
    tma = gpu.has_tma(w.device) and gpu.tma_describable(w, 1)
    x_tma = tma and gpu.tma_describable(x, 1)
    mine = [c for c in configs if c.kwargs["BM"] == bm]
    runnable = [c for c in mine if (tma or not c.kwargs["USE_TMA"]) and (x_tma or not c.kwargs.get("X_TMA"))]
    if any(c.kwargs.get("X_TMA") for c in runnable):
        runnable = [c for c in runnable if c.kwargs.get("X_TMA")]
    return runnable


_SKINNY_CONFIGS = _skinny_configs()
_skinny_tuned = triton.autotune(
    _SKINNY_CONFIGS, key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _prune_skinny}, do_bench=autotune_bench)(_skinny_kernel)
# Without a GPU there is nothing to tune: one small fixed configuration.
_INTERPRET_SKINNY_CONFIG = triton.Config({"BN": 16, "BK": 16, "USE_TMA": False}, num_warps=4, num_stages=2)


@functools.lru_cache(maxsize=None)
def _skinny_plan(M: int, N: int, K: int, on_gpu: bool, num_sms: int) -> tuple[int, int, int]:
    """(BM, partial sums and arrival counters the split-K workspace needs for any candidate): a
    pure function of the shape, worked out once per shape instead of on every call."""
    bm = _skinny_bm(M)
    candidates = [c for c in _SKINNY_CONFIGS if c.kwargs["BM"] == bm] if on_gpu else [_INTERPRET_SKINNY_CONFIG]
    max_split = max(_skinny_splits(N, K, c.kwargs["BN"], c.kwargs["BK"], num_sms) for c in candidates)
    return bm, max_split * M * N if max_split > 1 else 0, triton.cdiv(N, min(c.kwargs["BN"] for c in candidates))


def linear(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """y = x @ w.T into `out` for x [M, K] (M <= SKINNY_MAX_M) and w [N, K], checked by the caller."""
    M, K = x.shape
    N = w.shape[0]
    on_gpu = x.is_cuda
    num_sms = gpu.num_sms(x.device)
    bm, partial_count, bands = _skinny_plan(M, N, K, on_gpu, num_sms)
    partials, arrivals = split_workspace(x.device, partial_count, bands)
    if gpu.has_tma(x.device):
        triton.set_allocator(gpu.scratch_alloc)
    tuner = _skinny_tuned if on_gpu else None
    grids = []

    def grid(meta):
        grids.append((triton.cdiv(N, meta["BN"]), _skinny_splits(N, K, meta["BN"], meta["BK"], num_sms)))
        return grids[-1]

    args = (x, w, out, partials, arrivals, M, N, K, x.stride(0), w.stride(0), out.stride(0))
    if tuner is not None:
        run = launch_autotuned("skinny", tuner, grid, *args, problem=(M, N, K, str(x.dtype)))
    else:
        config = triton.Config({**_INTERPRET_SKINNY_CONFIG.kwargs, "BM": bm},
                               num_warps=_INTERPRET_SKINNY_CONFIG.num_warps,
                               num_stages=_INTERPRET_SKINNY_CONFIG.num_stages)
        launch(_skinny_kernel, grid, *args, **config.all_kwargs())
        run = fixed(config)
    record(record_key("linear", M, N, K, x.dtype, None), "skinny", run, grids[-1], split_k=grids[-1][1])
    return out
