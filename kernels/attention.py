"""Attention forward, softmax(Q K^T * scale) V, written two ways.

Naive: three kernels with the scores in memory, the composition a user writes
first. `_scores_kernel` writes S = Q K^T * scale, `_softmax_kernel` reads S
and writes the row softmax P (the causal mask is applied here), `_pv_kernel`
reads P and writes O = P V. S and P are stored in the input dtype (fp16 or
bf16), B*H*S*S elements each. Nothing is skipped for causal: the naive path
computes and moves the full square, which is what makes it naive.

Fused (flash attention forward): one kernel, one program per BLOCK_M query
rows of one (batch, head). It streams K and V in BLOCK_N-row blocks and keeps
the softmax online (running row max m, running row sum l, fp32 accumulator
rescaled by exp2(m_old - m_new)), so the scores never leave the chip.
log2(e) is folded into the scale so the exponentials are exp2. Causal runs
the blocks left of the diagonal without any mask and only the diagonal block
with one; a sequence length that is not a multiple of the block gets one
masked tail block. On Hopper and newer the K/V/Q/O tiles move by TMA through
tensor descriptors made per (batch, head), whose bounds zero-fill reads past
the sequence end and clip writes; when the sequence length is a multiple of
the blocks, the split form instead takes Q, K and V descriptors made once on
the host over all B*H*S rows (no descriptor writes per program). Elsewhere
(and in Triton's interpreter) the same kernel uses masked pointer loads. A
warp-specialized form (Triton splits the key loop into a TMA producer
warpgroup and two consumer warpgroups whose softmax and MMAs overlap) runs
one loop over every key block, the only shape Triton 3.6's Hopper pass
accepts; for causal, each block's score accumulator starts from a bias tile
that is the causal mask on the diagonal block and zero elsewhere. A
persistent kernel (`_flash_fwd_persistent_kernel`) runs one warp-specialized
program per SM that walks the tiles, its producer loading ahead across them.
Causal tiles run longest first, the heads taken in groups whose K and V fit
in L2 (`causal_head_group`). On sm_90 a Gluon kernel (`kernels.flash_gluon`)
is a candidate too: its consumers compute the softmax while their PV MMA runs.
Which form and tile run is chosen by timing a few candidates on the first call
for a shape (`flash_candidates`, reported by `flash_attention_config`).

Layout: q, k, v, out are [B, H, S, D] contiguous; D in {16, 32, 64, 128}.

FLOP and byte model of one call (esize = bytes per element):

    FLOPs      4*B*H*S^2*D: two matmuls of 2*S*S*D each per (b, h); softmax
               arithmetic is not counted (the convention of FlashAttention
               and cuDNN benchmarks). Causal counts exactly half: 2*B*H*S^2*D.
               The unmasked scores are S*(S+1)/2 per head, 0.5 + 0.5/S of the
               square; the 0.5 factor follows FlashAttention's benchmark
               (they differ by 1/S: 0.02% at S=4096). Counting the
               full 4*B*H*S^2*D for causal is the published mistake that
               doubles causal TFLOP/s.
    min bytes  4*B*H*S*D*esize: Q, K, V read once, O written once.
    naive      min bytes + 4*B*H*S^2*esize: S written, S read, P written,
               P read, all in the input dtype.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from kernels import device as gpu
from kernels import flash_gluon
from kernels.attention_order import causal_head_group, tile_of
from kernels.device import cuda_properties
from kernels.tuning import compile_all, interleaved_times_ms, remembered

LOG2E = 1.4426950408889634
HEAD_DIMS = (16, 32, 64, 128)


# ---------------------------------------------------------------- FLOP / byte model

def attention_flops(batch: int, heads: int, seq: int, head_dim: int, causal: bool) -> int:
    full = 4 * batch * heads * seq * seq * head_dim
    return full // 2 if causal else full  # causal: exactly 0.5x (see the module docstring)


def attention_min_bytes(batch: int, heads: int, seq: int, head_dim: int, esize: int) -> int:
    return 4 * batch * heads * seq * head_dim * esize


def naive_workspace_bytes(batch: int, heads: int, seq: int, esize: int) -> int:
    """Memory of the naive path's S and P buffers."""
    return 2 * batch * heads * seq * seq * esize


def naive_moved_bytes(batch: int, heads: int, seq: int, head_dim: int, esize: int) -> int:
    """Bytes the three naive kernels move: the minimum plus the S and P round trips."""
    return attention_min_bytes(batch, heads, seq, head_dim, esize) + 2 * naive_workspace_bytes(batch, heads, seq, esize)


def _check_qkv(q, k, v, out):
    if q.dim() != 4:
        raise ValueError(f"q must be [B, H, S, D]; got shape {tuple(q.shape)}")
    for name, t in (("k", k), ("v", v), ("out", out)):
        if t is not None and (t.shape != q.shape or t.dtype != q.dtype or t.device != q.device):
            raise ValueError(f"{name} must match q in shape, dtype and device")
    for name, t in (("q", q), ("k", k), ("v", v), ("out", out)):
        if t is not None and not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous [B, H, S, D]")
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float16 or bfloat16; got {q.dtype}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"head dim must be one of {HEAD_DIMS}; got {q.shape[-1]}")


def capability_of(t: torch.Tensor) -> tuple[int, int] | None:
    """The GPU's compute capability, or None on the CPU (Triton's interpreter)."""
    return torch.cuda.get_device_capability(t.device) if t.is_cuda else None


# ---------------------------------------------------------------- naive: three kernels

@triton.jit
def _scores_kernel(Q, K, S_out, seq_len, scale,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    bh = tl.program_id(2).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    head = bh * seq_len * HEAD_DIM
    q = tl.load(Q + head + rows[:, None] * HEAD_DIM + dims[None, :], mask=rows[:, None] < seq_len, other=0.0)
    k = tl.load(K + head + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < seq_len, other=0.0)
    s = tl.dot(q, tl.trans(k)) * scale
    out = S_out + bh * seq_len * seq_len + rows[:, None] * seq_len + cols[None, :]
    tl.store(out, s.to(S_out.dtype.element_ty), mask=(rows[:, None] < seq_len) & (cols[None, :] < seq_len))


@triton.jit
def _softmax_kernel(S_in, P_out, seq_len, CAUSAL: tl.constexpr, BLOCK: tl.constexpr):
    # One program per row of one head; the whole row is read (causal masks by
    # index, it does not skip the upper triangle) and written once.
    row = tl.program_id(0).to(tl.int64)  # in [0, B*H*S)
    query = row % seq_len
    cols = tl.arange(0, BLOCK)
    in_row = cols < seq_len
    x = tl.load(S_in + row * seq_len + cols, mask=in_row, other=0.0).to(tl.float32)
    if CAUSAL:
        x = tl.where(in_row & (cols <= query), x, float("-inf"))
    else:
        x = tl.where(in_row, x, float("-inf"))
    e = tl.math.exp2((x - tl.max(x, axis=0)) * 1.4426950408889634)
    p = e / tl.sum(e, axis=0)
    tl.store(P_out + row * seq_len + cols, p.to(P_out.dtype.element_ty), mask=in_row)


@triton.jit
def _pv_kernel(P, V, O, seq_len,
               HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    p_rows = P + bh * seq_len * seq_len + rows[:, None] * seq_len
    head = bh * seq_len * HEAD_DIM
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    for start_k in range(0, seq_len, BLOCK_K):
        keys = start_k + tl.arange(0, BLOCK_K)
        p = tl.load(p_rows + keys[None, :], mask=(rows[:, None] < seq_len) & (keys[None, :] < seq_len), other=0.0)
        v = tl.load(V + head + keys[:, None] * HEAD_DIM + dims[None, :], mask=keys[:, None] < seq_len, other=0.0)
        acc = tl.dot(p, v, acc)
    tl.store(O + head + rows[:, None] * HEAD_DIM + dims[None, :], acc.to(O.dtype.element_ty),
             mask=rows[:, None] < seq_len)


def naive_config(capability: tuple[int, int] | None) -> dict:
    """Fixed launch configuration of the three naive kernels (recorded with each measurement).

    Not tuned: the naive path is bound by its S and P traffic, not by tiles.
    The interpreter gets 16-wide tiles so tiny ragged shapes span several blocks.
    """
    if capability is None:
        return {"scores": {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4},
                "pv": {"BLOCK_M": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1}}
    return {"scores": {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8},
            "pv": {"BLOCK_M": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3}}


def _softmax_warps(block: int) -> int:
    # About 16 fp32 values per thread for long rows; 4 warps minimum.
    return max(4, min(16, block // (32 * 16)))


def naive_attention(q, k, v, causal: bool = False, out=None, scores=None, probs=None,
                    scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) v through S and P in memory; returns `out`.

    `scores` and `probs` are [B, H, S, S] buffers of q's dtype (allocated when None).
    """
    _check_qkv(q, k, v, out)
    B, H, S, D = q.shape
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    out = torch.empty_like(q) if out is None else out
    for name, buf in (("scores", scores), ("probs", probs)):
        if buf is not None and (buf.shape != (B, H, S, S) or buf.dtype != q.dtype or not buf.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous [B, H, S, S] tensor of {q.dtype}")
    scores = torch.empty((B, H, S, S), dtype=q.dtype, device=q.device) if scores is None else scores
    probs = torch.empty_like(scores) if probs is None else probs
    cfg = naive_config(capability_of(q))
    sc, pv = cfg["scores"], cfg["pv"]
    grid = (triton.cdiv(S, sc["BLOCK_N"]), triton.cdiv(S, sc["BLOCK_M"]), B * H)
    _scores_kernel[grid](q, k, scores, S, scale, HEAD_DIM=D, BLOCK_M=sc["BLOCK_M"], BLOCK_N=sc["BLOCK_N"],
                         num_warps=sc["num_warps"])
    block = triton.next_power_of_2(S)
    _softmax_kernel[(B * H * S,)](scores, probs, S, CAUSAL=causal, BLOCK=block, num_warps=_softmax_warps(block))
    _pv_kernel[(triton.cdiv(S, pv["BLOCK_M"]), B * H)](probs, v, out, S, HEAD_DIM=D, BLOCK_M=pv["BLOCK_M"],
                                                       BLOCK_K=pv["BLOCK_K"], num_warps=pv["num_warps"],
                                                       num_stages=pv["num_stages"])
    return out


# ---------------------------------------------------------------- fused (flash) forward

@triton.jit
def _load_tile(src, row0, seq_len, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr,
               USE_TMA: tl.constexpr, CHECK_ROWS: tl.constexpr):
    # `src` is a tensor descriptor (TMA: rows past seq_len read as zeros) or
    # the head's base pointer (masked only where the block may run past seq_len).
    if USE_TMA:
        return src.load([row0, 0])
    else:
        rows = row0 + tl.arange(0, ROWS)
        ptrs = src + rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
        if CHECK_ROWS:
            return tl.load(ptrs, mask=rows[:, None] < seq_len, other=0.0)
        else:
            return tl.load(ptrs)


@triton.jit
def _attend_block(acc, l_i, m_i, q, k_src, v_src, row0, start_n, m0, seq_len, qk_scale,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                  MASK: tl.constexpr,  # 0: none, 1: causal (key <= query), 2: key < seq_len,
                                       # 3: causal with BLOCK_M == BLOCK_N, a bias on the diagonal block
                  CHECK_ROWS: tl.constexpr, USE_TMA: tl.constexpr):
    """Online-softmax update of (acc, l_i, m_i) with the key block at start_n; scores in log2 units.

    row0 is the head's first row in the source (non-zero only for host descriptors over all heads)."""
    k = _load_tile(k_src, row0 + start_n, row0 + seq_len, BLOCK_N, HEAD_DIM, USE_TMA, CHECK_ROWS)
    if MASK == 3:
        # For the warp-specialized loop, which visits every block of a causal
        # row and may not branch: with square blocks the only masked block is
        # the one at start_n == m0, and its mask is the same tile for every
        # program: -1e30 above the diagonal. The tensor cores add it as the
        # accumulator's start value, times 0 or 1: about a fifth of the
        # instructions a compare and select on every score adds to the
        # consumer's loop. -1e30 leaves every masked score below -1e29, whose
        # exp2 after scaling is 0; the diagonal keeps each row one finite score.
        diag = tl.where(tl.arange(0, BLOCK_N)[None, :] > tl.arange(0, BLOCK_M)[:, None], -1e30, 0.0)
        qk = tl.dot(q, tl.trans(k), diag * (start_n == m0).to(tl.float32))
    else:
        qk = tl.dot(q, tl.trans(k))
    if MASK == 1 or MASK == 2:
        # The mask is built here from scalars: a [BLOCK_M] row index tensor
        # carried into a warp-specialized loop gave wrong causal results on
        # triton 3.6 (its consumer warpgroups each own half of the rows).
        offs_n = tl.arange(0, BLOCK_N)
        if MASK == 1:  # key <= query, i.e. n - m <= m0 - start_n
            # The row bound is a [BLOCK_M] vector, the compare the only op on
            # the 2-D tile besides the select.
            keep = offs_n[None, :] <= (m0 - start_n + tl.arange(0, BLOCK_M))[:, None]
        else:
            keep = (start_n + offs_n)[None, :] < seq_len
        # Masked before scaling, so the scale and the shift below stay one FMA
        # per score. Every row has a valid key in each block it sees, so m_ij
        # is finite and exp2(-inf) = 0 removes the masked scores.
        qk = tl.where(keep, qk, float("-inf"))
    # The max before scaling (qk_scale > 0): scale and shift fuse into one FMA.
    m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    qk = qk * qk_scale - m_ij[:, None]
    p = tl.math.exp2(qk)
    alpha = tl.math.exp2(m_i - m_ij)
    l_ij = tl.sum(p, 1)
    acc = acc * alpha[:, None]
    v = _load_tile(v_src, row0 + start_n, row0 + seq_len, BLOCK_N, HEAD_DIM, USE_TMA, CHECK_ROWS)
    acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i * alpha + l_ij, m_ij


@triton.jit
def _attend(acc, l_i, m_i, q, k_src, v_src, row0, lo, hi, m0, seq_len, qk_scale,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
            MASK: tl.constexpr, CHECK_ROWS: tl.constexpr, USE_TMA: tl.constexpr, WARP_SPEC: tl.constexpr):
    """`_attend_block` over the key blocks [lo, hi)."""
    for start_n in tl.range(lo, hi, BLOCK_N, warp_specialize=WARP_SPEC):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        acc, l_i, m_i = _attend_block(acc, l_i, m_i, q, k_src, v_src, row0, start_n, m0, seq_len, qk_scale,
                                      BLOCK_M, BLOCK_N, HEAD_DIM, MASK, CHECK_ROWS, USE_TMA)
    return acc, l_i, m_i


@triton.jit
def _flash_fwd_kernel(Q, K, V, O, seq_len, qk_scale, num_heads, head_group,
                      HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      CAUSAL: tl.constexpr, EVEN: tl.constexpr,  # EVEN: seq_len a multiple of both blocks
                      USE_TMA: tl.constexpr, WARP_SPEC: tl.constexpr, HOST_DESC: tl.constexpr):
    # One program per (query block, batch*head) on a 1-D grid; num_heads is B*H.
    pid_m, bh = tile_of(tl.program_id(0), tl.cdiv(seq_len, BLOCK_M), num_heads, head_group, CAUSAL)
    head = bh.to(tl.int64) * seq_len * HEAD_DIM
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    row0 = 0
    if HOST_DESC:
        # Q, K, V are descriptors made on the host over all B*H*S rows; this
        # head's rows start at row0. Only for EVEN shapes: a block never
        # crosses into the next head. Saves each program writing and fencing
        # descriptors in global memory before its first load. O stays a
        # pointer: triton 3.6's warp specialization splits the output tile
        # between its consumer groups and then rejects a store through a
        # host descriptor of the whole tile.
        row0 = bh * seq_len
        q_src = Q
        k_src = K
        v_src = V
        o_dst = O + head
    elif USE_TMA:
        # One descriptor per (batch, head): its bounds are this head's rows.
        q_src = tl.make_tensor_descriptor(Q + head, shape=[seq_len, HEAD_DIM], strides=[HEAD_DIM, 1],
                                          block_shape=[BLOCK_M, HEAD_DIM])
        k_src = tl.make_tensor_descriptor(K + head, shape=[seq_len, HEAD_DIM], strides=[HEAD_DIM, 1],
                                          block_shape=[BLOCK_N, HEAD_DIM])
        v_src = tl.make_tensor_descriptor(V + head, shape=[seq_len, HEAD_DIM], strides=[HEAD_DIM, 1],
                                          block_shape=[BLOCK_N, HEAD_DIM])
        o_dst = tl.make_tensor_descriptor(O + head, shape=[seq_len, HEAD_DIM], strides=[HEAD_DIM, 1],
                                          block_shape=[BLOCK_M, HEAD_DIM])
    else:
        q_src = Q + head
        k_src = K + head
        v_src = V + head
        o_dst = O + head
    q = _load_tile(q_src, row0 + m0, row0 + seq_len, BLOCK_M, HEAD_DIM, USE_TMA, not EVEN)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    # Split form: the key blocks every row sees in full run unmasked, then the
    # diagonal block (causal) or the partial last block (ragged) with a mask.
    # Warp-specialized form: one loop over every block, the only loop shape
    # Triton's Hopper warp specialization accepts (it fails on a second loop);
    # each block is masked (ragged, or causal with BLOCK_M != BLOCK_N) or, for
    # causal square blocks, its scores start from the diagonal's bias tile.
    if CAUSAL:
        if EVEN:
            diag_end = m0 + BLOCK_M
        else:
            diag_end = tl.minimum(m0 + BLOCK_M, seq_len)
        if WARP_SPEC:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, 0, diag_end, m0, seq_len, qk_scale,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, 3 if BLOCK_M == BLOCK_N else 1, not EVEN,
                                    USE_TMA, True)
        else:
            # m0 is a multiple of BLOCK_N; key <= query also drops keys past seq_len for real rows.
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, 0, m0, m0, seq_len, qk_scale,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, 0, False, USE_TMA, False)
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, m0, diag_end, m0, seq_len, qk_scale,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, 1, not EVEN, USE_TMA, False)
    elif EVEN:
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, 0, seq_len, m0, seq_len, qk_scale,
                                BLOCK_M, BLOCK_N, HEAD_DIM, 0, False, USE_TMA, WARP_SPEC)
    elif WARP_SPEC:
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, 0, seq_len, m0, seq_len, qk_scale,
                                BLOCK_M, BLOCK_N, HEAD_DIM, 2, True, USE_TMA, True)
    else:
        end = (seq_len // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, 0, end, m0, seq_len, qk_scale,
                                BLOCK_M, BLOCK_N, HEAD_DIM, 0, False, USE_TMA, False)
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, row0, end, seq_len, m0, seq_len, qk_scale,
                                BLOCK_M, BLOCK_N, HEAD_DIM, 2, True, USE_TMA, False)
    out = (acc / l_i[:, None]).to(q.dtype)  # out has q's dtype (checked on the host)
    if USE_TMA and not HOST_DESC:
        o_dst.store([m0, 0], out)
    else:
        tl.store(o_dst + offs_m[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :], out,
                 mask=offs_m[:, None] < seq_len)


@triton.jit
def _flash_fwd_persistent_kernel(Q, K, V, O, seq_len, qk_scale, num_heads, head_group,
                                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                 CAUSAL: tl.constexpr, EVEN: tl.constexpr):
    # A few programs per SM, each walking the tiles (query block, batch*head) p, p + P, ...
    # in `tile_of`'s order. Triton warp-specializes the tile loop: a TMA producer warpgroup
    # runs ahead across tiles, so the next tile's Q, K and V are in flight while two consumer
    # warpgroups (64 rows each) finish this one; per-tile programs instead pay the pipeline's
    # fill and their launch on every tile, which is most of a short sequence's time. The
    # descriptors cover all B*H*S rows and are made once per program (host descriptors with
    # warp specialization do not return on Triton 3.6).
    # One key loop per tile: causal tiles are square and see their diagonal block through the
    # bias tile (MASK 3); a ragged non-causal length masks keys past the end (MASK 2). A ragged
    # block's rows past seq_len belong to the next head (or read as zeros past the last): their
    # keys are masked, their rows not stored.
    num_m = tl.cdiv(seq_len, BLOCK_M)
    rows = num_heads * seq_len
    Q = tl.make_tensor_descriptor(Q, shape=[rows, HEAD_DIM], strides=[HEAD_DIM, 1], block_shape=[BLOCK_M, HEAD_DIM])
    K = tl.make_tensor_descriptor(K, shape=[rows, HEAD_DIM], strides=[HEAD_DIM, 1], block_shape=[BLOCK_N, HEAD_DIM])
    V = tl.make_tensor_descriptor(V, shape=[rows, HEAD_DIM], strides=[HEAD_DIM, 1], block_shape=[BLOCK_N, HEAD_DIM])
    for tile in tl.range(tl.program_id(0), num_m * num_heads, tl.num_programs(0), warp_specialize=True):
        pid_m, bh = tile_of(tile, num_m, num_heads, head_group, CAUSAL)
        row0 = bh * seq_len
        m0 = pid_m * BLOCK_M
        q = Q.load([row0 + m0, 0])
        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
        if CAUSAL:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, K, V, row0, 0, m0 + BLOCK_M, m0, seq_len, qk_scale,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, 3, False, True, False)
        else:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, K, V, row0, 0, seq_len, m0, seq_len, qk_scale,
                                    BLOCK_M, BLOCK_N, HEAD_DIM, 0 if EVEN else 2, False, True, False)
        out = (acc / l_i[:, None]).to(q.dtype)
        offs_m = m0 + tl.arange(0, BLOCK_M)
        tl.store(O + bh.to(tl.int64) * seq_len * HEAD_DIM + offs_m[:, None] * HEAD_DIM
                 + tl.arange(0, HEAD_DIM)[None, :], out, mask=offs_m[:, None] < seq_len)


@dataclass(frozen=True)
class FlashConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    tma: bool = False  # tensor descriptors (TMA) instead of pointer loads; sm_90+
    # One masked key loop, warp-specialized by Triton (a producer warpgroup
    # issuing TMA loads, consumer warpgroups computing); needs tma.
    warp_specialize: bool = False
    # With tma, no warp specialization and a sequence length that is a
    # multiple of both blocks: the Q, K and V descriptors are made once on the
    # host over all B*H*S rows instead of per program on the device (other
    # cases always use the latter).
    host_descriptors: bool = True
    # Programs per SM of the warp-specialized persistent kernel (`_flash_fwd_persistent_kernel`:
    # needs tma and warp_specialize, square tiles for causal); 0: one program per tile.
    persistent: int = 0
    # The hand-scheduled Gluon kernel (`kernels.flash_gluon`; sm_90 only, 128x128 tiles, 4 warps
    # per consumer warpgroup, num_stages K and V buffers); the other fields above do not apply.
    gluon: bool = False

    @property
    def name(self) -> str:
        if self.gluon:
            return f"{self.block_m}x{self.block_n}-s{self.num_stages}-gluon"
        return (f"{self.block_m}x{self.block_n}-w{self.num_warps}-s{self.num_stages}"
                + ("-tma" if self.tma else "") + ("-ws" if self.warp_specialize else "")
                + ("-devdesc" if self.tma and not self.warp_specialize and not self.host_descriptors else "")
                + (f"-p{self.persistent}" if self.persistent else ""))

    def as_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


def flash_candidates(head_dim: int, capability: tuple[int, int] | None) -> list[FlashConfig]:
    """The configurations the fused kernel is tuned over; the first is the trusted baseline.

    Hopper and newer, all through TMA:
    - split form, 128 query rows on two warpgroups (8 warps) and 128-key
      blocks: the tile of the Triton tutorial's and FlashAttention-3's Hopper
      kernels. 8 warps only with 128x128 tiles (the tutorial prunes smaller
      ones: slower, or compile failures). At D=128, 3 stages take 224 of
      the 227 KiB of shared memory a block may use.
    - warp-specialized (4 warps per consumer group; Triton adds a TMA
      producer warpgroup and splits the 128 rows across two 64-row consumer
      warpgroups whose softmax and MMAs overlap), 128x128 with 2 stages.
      Triton 3.6 computes the 128x64 variant wrongly, so it is not offered;
      a causal mask built from a row-index tensor made outside the loop is
      wrong there too, so the mask is built inside the loop. Its one loop
      visits every key block: Triton 3.6's warp specialization rejects a
      second loop and any dot outside the loop, and a branch in the loop
      fails its pipeliner; for causal, the diagonal's bias tile (MASK 3)
      keeps the masking cheap. With host descriptors this kernel does not
      return on Triton 3.6, so it always makes its descriptors on the device.
    - the warp-specialized form as a persistent kernel (one program per SM,
      128x128, 2 stages): the producer warpgroup runs on into the next tile's
      Q, K and V while the consumers finish this one, so the pipeline fills
      once per program instead of once per tile, and no tile waits for a
      program to launch. It wins from the shortest sequences to a few
      thousand keys (on an H200 at S <= 2048, by 15-30% over the per-tile
      form and 12-19% over 64x64 tiles on one warpgroup, which are therefore
      not offered); on long ones each tile is long enough for the per-tile
      form, which runs its longest-first order over the whole grid.
    - on sm_90 with D of 64 or 128, the Gluon kernel (`kernels.flash_gluon`): each
      consumer warpgroup overlaps its softmax with its own PV MMA, which Triton's
      pipeline does not schedule. On an H200 it is the fastest at D=128 from S=2048
      on (10-15% ahead of the persistent form from S=4096); at S <= 1024 the
      persistent form is. It takes no ragged lengths: the tuner drops it there,
      with the reason.
    Before Hopper: the pointer path with Ampere-sized tiles.
    """
    if capability is None:
        # Interpreter: small tiles keep CPU runs fast and exercise the multi-block paths.
        return [FlashConfig(16, 16, 4, 1)]
    if capability < (9, 0):
        return [FlashConfig(128, 64, 4, 3), FlashConfig(128, 32, 4, 4), FlashConfig(64, 64, 4, 3)]
    split = ([FlashConfig(128, 128, 8, 2, tma=True), FlashConfig(128, 128, 8, 3, tma=True)] if head_dim >= 128
             else [FlashConfig(128, 128, 8, 3, tma=True), FlashConfig(128, 64, 4, 4, tma=True)])
    gluon = [FlashConfig(128, 128, 4, 2, tma=True, gluon=True)] if capability[0] == 9 and head_dim in (64, 128) else []
    return split + [FlashConfig(128, 128, 4, 2, tma=True, warp_specialize=True),
                    FlashConfig(128, 128, 4, 2, tma=True, warp_specialize=True, persistent=1)] + gluon


def _l2_bytes(device) -> int:
    if device.type == "cuda":
        return cuda_properties(device).L2_cache_size
    return 1 << 20  # the interpreter: any size exercises the same index arithmetic


def _launch_flash(q, k, v, out, causal: bool, scale: float, cfg: FlashConfig, head_group: int | None = None):
    kernel, grid, args, kwargs = _flash_launch(q, k, v, out, causal, scale, cfg, head_group)
    kernel[grid](*args, **kwargs)


def _flash_launch(q, k, v, out, causal: bool, scale: float, cfg: FlashConfig, head_group: int | None = None):
    """(kernel, grid, args, kwargs) of the launch for `cfg`."""
    B, H, S, D = q.shape
    if head_group is None:
        head_group = causal_head_group(S, D, q.element_size(), B * H, _l2_bytes(q.device)) if causal else 1
    if cfg.gluon:
        why = flash_gluon.unsupported(q.shape)
        if why is not None:
            raise ValueError(f"the Gluon kernel does not take {why}")
        return flash_gluon.launch_spec(q, k, v, out, scale * LOG2E, causal, head_group, cfg.num_stages)
    if causal and cfg.block_m % cfg.block_n:
        raise ValueError(f"causal needs BLOCK_M a multiple of BLOCK_N; got {cfg.name}")
    if cfg.warp_specialize and not cfg.tma:
        raise ValueError(f"warp specialization needs the TMA path; got {cfg.name}")
    if cfg.persistent and (not cfg.warp_specialize or (causal and cfg.block_m != cfg.block_n)):
        raise ValueError(f"the persistent kernel is warp-specialized and, for causal, needs square tiles; "
                         f"got {cfg.name}")
    even = S % cfg.block_m == 0 and S % cfg.block_n == 0
    # Not with warp specialization: with host descriptors that kernel does not
    # return on Triton 3.6.
    host_desc = cfg.tma and cfg.host_descriptors and even and not cfg.warp_specialize
    args = (q, k, v, out)
    if host_desc:
        rows = B * H * S
        args = tuple(TensorDescriptor(t.view(rows, D), shape=[rows, D], strides=[D, 1], block_shape=[block, D])
                     for t, block in ((q, cfg.block_m), (k, cfg.block_n), (v, cfg.block_n))) + (out,)
    elif cfg.tma and q.is_cuda:
        triton.set_allocator(gpu.scratch_alloc)
    tiles = triton.cdiv(S, cfg.block_m) * B * H
    args = (*args, S, scale * LOG2E, B * H, head_group)
    common = dict(HEAD_DIM=D, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal, EVEN=even,
                  num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    if cfg.persistent:
        return _flash_fwd_persistent_kernel, (min(tiles, cfg.persistent * gpu.num_sms(q.device)),), args, common
    return _flash_fwd_kernel, (tiles,), args, dict(common, USE_TMA=cfg.tma, WARP_SPEC=cfg.warp_specialize,
                                                   HOST_DESC=host_desc)


def _tuning_key(q, causal: bool) -> tuple:
    return (str(q.dtype), tuple(q.shape), bool(causal))


def _tune(q, k, v, out, causal: bool, scale: float, candidates: list[FlashConfig]) -> tuple[FlashConfig, dict]:
    """Time each candidate on these inputs; keep the fastest that agrees with the baseline.

    The candidates are timed in rotating rounds (`kernels.tuning.interleaved_times_ms`).

    A candidate that fails to compile (shared memory, a schedule the compiler
    rejects) or whose output differs from the first working candidate's is
    dropped with its reason, so an aggressive configuration can cost time but
    never a wrong or missing result.
    """
    runnable, rejected, baseline, built = {}, [], None, {}

    def reject(cfg, e):
        rejected.append({"config": cfg.name, "reason": f"{type(e).__name__}: {str(e)[:300]}"})

    for cfg in candidates:
        try:
            built[cfg.name] = _flash_launch(q, k, v, out, causal, scale, cfg)
        except Exception as e:  # noqa: BLE001 -- a tile the kernel cannot run only removes this candidate
            reject(cfg, e)
    for kernel in (_flash_fwd_kernel, _flash_fwd_persistent_kernel, flash_gluon._flash_fwd_gluon_kernel):
        compile_all(kernel, [b[1:] for b in built.values() if b[0] is kernel])
    for cfg in (c for c in candidates if c.name in built):
        try:
            kernel, grid, args, kwargs = built[cfg.name]
            kernel[grid](*args, **kwargs)
            torch.cuda.synchronize(q.device)
        except Exception as e:  # noqa: BLE001 -- any compile/launch failure only removes this candidate
            reject(cfg, e)
            continue
        if baseline is None:
            baseline = (cfg, out.float())
        else:
            diff = float((out.float() - baseline[1]).norm() / baseline[1].norm())
            if not diff <= 1e-2:  # also catches NaN
                rejected.append({"config": cfg.name,
                                 "reason": f"output differs from {baseline[0].name}: rel diff {diff:.3g}"})
                continue
        runnable[cfg.name] = lambda b=built[cfg.name]: b[0][b[1]](*b[2], **b[3])
    timings = interleaved_times_ms(runnable)
    if not timings:
        raise RuntimeError("no flash-attention configuration ran: "
                           + "; ".join(f"{r['config']}: {r['reason']}" for r in rejected))
    best = next(c for c in candidates if c.name == min(timings, key=timings.get))
    return best, {"tuning_ms": timings, "rejected": rejected}


_SELECTED: dict[tuple, dict] = {}  # (device, tuning key) -> the choice, as recorded


def _select(q, k, v, out, causal: bool, scale: float) -> FlashConfig:
    key = _tuning_key(q, causal)
    known = _SELECTED.get((str(q.device), key))
    if known is not None and known.get("final", True):
        return known["_config"]
    candidates = flash_candidates(q.shape[-1], capability_of(q))
    capturing = q.is_cuda and torch.cuda.is_current_stream_capturing()
    if len(candidates) == 1 or capturing:
        # Nothing to choose, or timing would need a synchronization: the baseline (the next
        # eager call tunes).
        choice = {**candidates[0].as_dict(), "tuning": "fixed"}
    else:
        def tune() -> dict:
            best, report = _tune(q, k, v, out, causal, scale, candidates)
            return {"config": asdict(best), **report}

        value, source = remembered("flash_attention", key, tune, (__file__, flash_gluon.__file__))
        cfg = FlashConfig(**value["config"])
        choice = {**cfg.as_dict(), **{k: v for k, v in value.items() if k != "config"}, "tuning": source,
                  "tuned_at": {"shape": list(q.shape), "dtype": str(q.dtype), "causal": bool(causal)}}
    cfg = FlashConfig(**{f: choice[f] for f in FlashConfig.__dataclass_fields__})
    # A choice made while capturing is provisional: the next eager call tunes.
    _SELECTED[(str(q.device), key)] = {**choice, "_config": cfg, "final": not (capturing and len(candidates) > 1)}
    return cfg


def flash_attention(q, k, v, causal: bool = False, out=None, scale: float | None = None,
                    config: FlashConfig | None = None) -> torch.Tensor:
    """Fused attention forward; returns `out` ([B, H, S, D], q's dtype).

    Without `config`, the first call for a (device, dtype, shape, causal)
    tunes over `flash_candidates` (or takes the tuning store's choice; see
    `flash_attention_config`); later calls reuse the choice and are
    graph-capturable.
    """
    _check_qkv(q, k, v, out)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    out = torch.empty_like(q) if out is None else out
    cfg = config if config is not None else _select(q, k, v, out, causal, scale)
    _launch_flash(q, k, v, out, causal, scale, cfg)
    return out


def flash_attention_config(q, causal: bool) -> dict:
    """The configuration `flash_attention` uses for inputs like q (after its first call): the chosen
    config, whether it was tuned in this process or taken from the tuning store, and when tuned
    here each candidate's median time (ms) and the candidates dropped, with their reasons."""
    chosen = _SELECTED.get((str(q.device), _tuning_key(q, causal)))
    if chosen is not None:
        return {k: v for k, v in chosen.items() if k not in ("_config", "final")}
    return {**flash_candidates(q.shape[-1], capability_of(q))[0].as_dict(), "tuning": "fixed"}
