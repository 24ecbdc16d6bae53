"""Fused attention forward for Hopper (sm_90), written in Gluon: the key loop scheduled by hand.

In Triton's warp-specialized kernels (`kernels.attention`) each consumer warpgroup runs its two
MMAs one after the other: QK^T, wait, softmax, PV, wait; the tensor cores idle while it computes
its softmax. Here each consumer warpgroup issues, for key block j, S_j = Q K_j^T and then
O += P_{j-1} V_{j-1}, both asynchronous; it waits for the first only and computes block j's
softmax while the second still runs (FlashAttention-3's intra-warpgroup overlap). P stays in
registers as the PV MMA's A operand.

One program per (query block, batch*head), three partitions (`gl.warp_specialize`): two
consumer warpgroups of 64 query rows each, every one with its own key loop, and one loader warp
that issues every TMA load (Q; K and V into rings of STAGES buffers, refilled as soon as both
consumers release a buffer through its `empty` barrier). Q, K, V and O move through host
descriptors over all B*H*S rows, so S must be a multiple of the 128-row block (`unsupported`
says why not); the output leaves through each warpgroup's Q buffer. Causal tiles are square:
the blocks left of the diagonal run unmasked, only the diagonal block is masked, and tiles run
in `kernels.attention`'s longest-first order.
"""
from __future__ import annotations

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                              warpgroup_mma_wait)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

from kernels.attention_order import tile_of

# Newer Triton renames the TMA copies (async_load / async_store).
_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global

BLOCK = 128  # query rows (two warpgroups of 64) and keys per block
# Registers per thread of the worker consumer warpgroup; the default partition (the other consumer)
# takes what this and the loader warp's 24 leave of the SM's 64K. A consumer's key loop holds S,
# O and two P tiles: about 190 a thread.
CONSUMER_REGS = 224


@gluon.jit
def _softmax(s, m_i, l_i, qk_scale, m0, start_n, MASKED: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr,
             s_layout: gl.constexpr):
    """Online-softmax statistics of one score block: (P, alpha, l, m), scores in log2 units."""
    if MASKED:  # the diagonal block: key <= query
        rows = m0 + gl.arange(0, BM, layout=gl.SliceLayout(1, s_layout))
        cols = start_n + gl.arange(0, BN, layout=gl.SliceLayout(0, s_layout))
        s = gl.where(gl.expand_dims(cols, 0) <= gl.expand_dims(rows, 1), s, float("-inf"))
    m_new = gl.maximum(m_i, gl.max(s, 1) * qk_scale)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_new, 1))
    alpha = gl.exp2(m_i - m_new)
    return p, alpha, l_i * alpha + gl.sum(p, 1), m_new


@gluon.jit
def _step(j, q, k_smem, v_smem, k_ready, k_empty, v_ready, v_empty, p, acc, m_i, l_i, m0, qk_scale,
          MASKED: gl.constexpr, STAGES: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr,
          s_layout: gl.constexpr, o_layout: gl.constexpr, p_layout: gl.constexpr):
    """Key block j: S_j = Q K_j^T and O += P_{j-1} V_{j-1} in flight together, block j's softmax
    computed while the second runs; each buffer released to the loader once its MMA is done."""
    slot = j % STAGES
    mbarrier.wait(k_ready.index(slot), (j // STAGES) & 1)
    s = warpgroup_mma(q, k_smem.index(slot).permute((1, 0)), gl.zeros([BM, BN], gl.float32, s_layout),
                      use_acc=False, is_async=True)
    prev = (j - 1) % STAGES
    mbarrier.wait(v_ready.index(prev), ((j - 1) // STAGES) & 1)
    acc = warpgroup_mma(p, v_smem.index(prev), acc, is_async=True)
    s = warpgroup_mma_wait(1, deps=[s])  # S_j done; P_{j-1} V_{j-1} may still run
    mbarrier.arrive(k_empty.index(slot))
    p_new, alpha, l_i, m_i = _softmax(s, m_i, l_i, qk_scale, m0, j * BN, MASKED, BM, BN, s_layout)
    acc, p = warpgroup_mma_wait(0, deps=[acc, p])
    mbarrier.arrive(v_empty.index(prev))
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(1, o_layout)), 1)
    p = gl.convert_layout(p_new.to(v_smem.dtype), p_layout)
    return p, acc, m_i, l_i


@gluon.jit
def _consumer(o_desc, q_smem, k_smem, v_smem, q_bar, k_ready, k_empty, v_ready, v_empty, row0, m0, n_blocks,
              qk_scale, WG: gl.constexpr, CAUSAL: gl.constexpr, STAGES: gl.constexpr):
    """One warpgroup's 64 query rows of the tile: its own key loop, in step with nothing but the
    loader's buffers."""
    BM: gl.constexpr = o_desc.block_type.shape[0]
    D: gl.constexpr = o_desc.block_type.shape[1]
    BN: gl.constexpr = k_smem.shape[1]
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BN, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, D, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    q = q_smem.index(WG)
    m0 = m0 + WG * BM

    # Block 0: its scores alone (nothing to overlap with yet).
    mbarrier.wait(q_bar, 0)
    mbarrier.wait(k_ready.index(0), 0)
    s = warpgroup_mma(q, k_smem.index(0).permute((1, 0)), gl.zeros([BM, BN], gl.float32, s_layout),
                      use_acc=False, is_async=True)
    s = warpgroup_mma_wait(0, deps=[s])
    mbarrier.arrive(k_empty.index(0))
    m_i = gl.full([BM], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([BM], gl.float32, gl.SliceLayout(1, s_layout))
    if CAUSAL and n_blocks == 1:
        p0, alpha, l_i, m_i = _softmax(s, m_i, l_i, qk_scale, m0, 0, True, BM, BN, s_layout)
    else:
        p0, alpha, l_i, m_i = _softmax(s, m_i, l_i, qk_scale, m0, 0, False, BM, BN, s_layout)
    p = gl.convert_layout(p0.to(v_smem.dtype), p_layout)
    acc = gl.zeros([BM, D], gl.float32, o_layout)

    # Causal: every block but the last (the diagonal) unmasked.
    for j in range(1, n_blocks - CAUSAL):
        p, acc, m_i, l_i = _step(j, q, k_smem, v_smem, k_ready, k_empty, v_ready, v_empty, p, acc, m_i, l_i, m0,
                                 qk_scale, False, STAGES, BM, BN, s_layout, o_layout, p_layout)
    if CAUSAL and n_blocks > 1:  # the diagonal block
        p, acc, m_i, l_i = _step(n_blocks - 1, q, k_smem, v_smem, k_ready, k_empty, v_ready, v_empty, p, acc,
                                 m_i, l_i, m0, qk_scale, True, STAGES, BM, BN, s_layout, o_layout, p_layout)

    last = (n_blocks - 1) % STAGES
    mbarrier.wait(v_ready.index(last), ((n_blocks - 1) // STAGES) & 1)
    acc = warpgroup_mma(p, v_smem.index(last), acc, is_async=True)
    acc = warpgroup_mma_wait(0, deps=[acc, p])[0]
    out = acc / gl.expand_dims(gl.convert_layout(l_i, gl.SliceLayout(1, o_layout)), 1)
    q.store(out.to(v_smem.dtype))  # this warpgroup's Q buffer is free: its every QK^T is done
    fence_async_shared()
    _tma_store(o_desc, [row0 + m0, 0], q)
    tma.store_wait(0)


@gluon.jit
def _loader(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, k_empty, v_ready, v_empty, row0, m0,
            n_blocks, STAGES: gl.constexpr):
    """One warp issuing every TMA load: both halves of Q, then K_j and V_j into ring buffer
    j % STAGES as soon as both warpgroups have released it."""
    BM: gl.constexpr = q_desc.block_type.shape[0]
    BN: gl.constexpr = k_desc.block_type.shape[0]
    mbarrier.expect(q_bar, 2 * q_desc.block_type.nbytes)
    _tma_load(q_desc, [row0 + m0, 0], q_bar, q_smem.index(0))
    _tma_load(q_desc, [row0 + m0 + BM, 0], q_bar, q_smem.index(1))
    for j in range(n_blocks):
        slot = j % STAGES
        phase = (j // STAGES) & 1
        # A fresh barrier counts as released: its preceding phase reads as complete.
        mbarrier.wait(k_empty.index(slot), phase ^ 1)
        mbarrier.expect(k_ready.index(slot), k_desc.block_type.nbytes)
        _tma_load(k_desc, [row0 + j * BN, 0], k_ready.index(slot), k_smem.index(slot))
        mbarrier.wait(v_empty.index(slot), phase ^ 1)
        mbarrier.expect(v_ready.index(slot), v_desc.block_type.nbytes)
        _tma_load(v_desc, [row0 + j * BN, 0], v_ready.index(slot), v_smem.index(slot))


@gluon.jit
def _flash_fwd_gluon_kernel(q_desc, k_desc, v_desc, o_desc, seq_len, qk_scale, num_heads, head_group,
                            CAUSAL: gl.constexpr, STAGES: gl.constexpr, CONSUMER_REGS: gl.constexpr):
    BM: gl.constexpr = q_desc.block_type.shape[0]  # rows per warpgroup; the tile has two
    D: gl.constexpr = q_desc.block_type.shape[1]
    BN: gl.constexpr = k_desc.block_type.shape[0]
    dtype: gl.constexpr = q_desc.dtype
    num_m = gl.cdiv(seq_len, 2 * BM)
    pid_m, bh = tile_of(gl.program_id(0), num_m, num_heads, head_group, CAUSAL)
    row0 = bh * seq_len
    m0 = pid_m * 2 * BM
    if CAUSAL:
        n_blocks = pid_m + 1
    else:
        n_blocks = seq_len // BN

    q_smem = gl.allocate_shared_memory(dtype, [2, BM, D], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BN, D], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BN, D], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(k_empty.index(i), count=2)  # one release per consumer warpgroup
        mbarrier.init(v_empty.index(i), count=2)

    gl.warp_specialize([(_consumer, (o_desc, q_smem, k_smem, v_smem, q_bar, k_ready, k_empty, v_ready, v_empty, row0,
                                     m0, n_blocks, qk_scale, gl.constexpr(0), CAUSAL, STAGES)),
                        (_consumer, (o_desc, q_smem, k_smem, v_smem, q_bar, k_ready, k_empty, v_ready, v_empty, row0,
                                     m0, n_blocks, qk_scale, gl.constexpr(1), CAUSAL, STAGES)),
                        (_loader, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, k_empty, v_ready,
                                   v_empty, row0, m0, n_blocks, STAGES))],
                       [4, 1], [CONSUMER_REGS, 24])

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_ready.index(i))
        mbarrier.invalidate(v_ready.index(i))
        mbarrier.invalidate(k_empty.index(i))
        mbarrier.invalidate(v_empty.index(i))


def unsupported(shape) -> str | None:
    """Why this kernel cannot take [B, H, S, D] inputs (fp16 or bf16, as `kernels.attention`
    checks), or None if it can."""
    if shape[3] not in (64, 128):
        return f"head dim {shape[3]} (it takes 64 or 128)"
    if shape[2] % BLOCK:
        return f"sequence length {shape[2]}, not a multiple of {BLOCK} (its descriptors span all heads)"
    return None


def launch_spec(q, k, v, out, qk_scale: float, causal: bool, head_group: int, stages: int):
    """(kernel, grid, args, kwargs) of one launch over [B, H, S, D] contiguous q, k, v, out: host
    descriptors over all B*H*S rows (q and out in one warpgroup's rows, k and v in key blocks)."""
    B, H, S, D = q.shape
    gdtype = gl.bfloat16 if q.dtype == torch.bfloat16 else gl.float16
    rows = B * H * S
    descs = []
    for t, block in ((q, BLOCK // 2), (k, BLOCK), (v, BLOCK), (out, BLOCK // 2)):
        layout = gl.NVMMASharedLayout.get_default_for([block, D], gdtype)
        descs.append(TensorDescriptor(t.view(rows, D), [rows, D], [D, 1], [block, D], layout))
    grid = (triton.cdiv(S, BLOCK) * B * H,)
    return (_flash_fwd_gluon_kernel, grid, (*descs, S, qk_scale, B * H, head_group),
            dict(CAUSAL=causal, STAGES=stages, CONSUMER_REGS=CONSUMER_REGS, num_warps=4))
