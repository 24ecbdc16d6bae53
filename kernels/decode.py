"""Decode step: attention of one new token per sequence over a KV cache, and a
whole transformer layer around it.

Decode attention (`decode_attention`)
-------------------------------------
Layout (all contiguous in the last dimension):

    q        [batch, q_heads, head_dim]            any batch / head strides (a view of a fused QKV output works)
    k_cache  [batch, kv_heads, capacity, head_dim]  contiguous; token t of sequence b at [b, :, t, :]
    v_cache  [batch, kv_heads, capacity, head_dim]  contiguous
    lengths  [batch] int32                          tokens in the cache per sequence, 1 <= len <= capacity
    out      [batch, q_heads, head_dim]             contiguous

Query head h attends with KV head h // group (group = q_heads / kv_heads), the
grouping torch SDPA's `enable_gqa` uses. The cache already holds every token
attended to, the new one included.

Flash-decoding in two kernels:
1. `_split_kernel`, grid (splits, kv_heads, batch): each program streams one
   chunk of `split_len` tokens of one KV head of one sequence, BLOCK_N tokens a
   step, and keeps an online softmax in fp32. All `group` query heads of that
   KV head are processed together, as the M dimension of `tl.dot` (padded to
   16 rows), so each KV head is read from memory once for its whole group.
   For plain multi-head attention (group 1) the autotuner may instead pick a
   dot-free variant that gives every row of the K/V tile its own running
   softmax and merges the rows once at the end (no cross-warp reduction in the
   loop). Each program writes its chunk's normalized output and log-sum-exp
   (base 2) as fp32 partials; programs whose chunk starts past the sequence's
   length find an empty loop and store nothing.
2. `_merge_kernel`, one program per (sequence, query head): combines the
   `ceil(len / split_len)` partials of that sequence with weights
   2^(lse_i - max lse), i.e. the exact softmax over the whole sequence.
The split count comes from the longest sequence (`max_len`) and the SM count
(`plan_splits`), so one long sequence still spreads over the whole GPU. When a
single split suffices the first kernel writes the output directly.

Traffic model of one call (`attention_bytes`, the minimum):
    K and V read once over the real lengths   2 * sum(len) * kv_heads * head_dim * esize
    q read, out written                       2 * batch * q_heads * head_dim * esize
    lengths                                   4 * batch
plus, when the sequence is split, the fp32 partials written and read back once
(`split_bytes`). FLOPs: q.k and p.v, 2 * 2 * head_dim per (token, query head):
4 * sum(len) * q_heads * head_dim (`attention_flops`; the softmax is not counted).

Decode layer (`layer_step`)
---------------------------
One decoding step of a Llama-style layer for a batch of B new tokens at context
length L (the new token is the L-th): RMSNorm, fused QKV projection, append of
the new k/v at cache position L-1, decode attention over L tokens, output
projection, residual, RMSNorm, fused gate/up projection, SiLU(gate) * up, down
projection, residual. No rotary embedding (elementwise on q and k; it moves no
memory worth counting). The projections use the GEMM family's
`kernels.gemm.linear`; the norms, the SiLU product and the append are small
Triton kernels here. `layer_flops` / `layer_bytes` give its exact model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import triton
import triton.language as tl

from kernels import streaming
from kernels.device import cuda_properties
from kernels.launch import launch
from kernels.tuning import chosen, device_time_ms, launch_autotuned, record_choice

LOG2E = 1.4426950408889634

# ---------------------------------------------------------------------------
# Decode attention
# ---------------------------------------------------------------------------

# Split plan: chunks are whole multiples of the largest BLOCK_N, so no config
# wastes a partial block at a chunk's end; enough chunks that batch * kv_heads *
# splits gives each SM about PROGRAMS_PER_SM programs (several resident at once
# keep enough loads in flight, and short programs keep the tail short); at most
# MAX_SPLITS chunks, so the partials stay a few percent of the cache traffic.
SPLIT_ALIGN = 128
PROGRAMS_PER_SM = 16
MAX_SPLITS = 256


def plan_splits(batch: int, kv_heads: int, max_len: int, num_sms: int) -> tuple[int, int]:
    """(num_splits, split_len) for a batch whose longest sequence has `max_len` tokens."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    want = max(1, triton.cdiv(PROGRAMS_PER_SM * num_sms, batch * kv_heads))
    splits = min(want, triton.cdiv(max_len, SPLIT_ALIGN), MAX_SPLITS)
    split_len = triton.cdiv(triton.cdiv(max_len, splits), SPLIT_ALIGN) * SPLIT_ALIGN
    return triton.cdiv(max_len, split_len), split_len


def attention_flops(lengths: Sequence[int], q_heads: int, head_dim: int) -> int:
    return 4 * sum(lengths) * q_heads * head_dim


def attention_bytes(lengths: Sequence[int], q_heads: int, kv_heads: int, head_dim: int, esize: int) -> int:
    kv = 2 * sum(lengths) * kv_heads * head_dim * esize
    q_and_out = 2 * len(lengths) * q_heads * head_dim * esize
    return kv + q_and_out + 4 * len(lengths)


def split_bytes(batch: int, q_heads: int, head_dim: int, num_splits: int) -> int:
    """fp32 partial outputs and log-sum-exps, written once and read once (0 without a split)."""
    return 0 if num_splits == 1 else 2 * batch * q_heads * num_splits * (head_dim + 1) * 4


# Candidate configurations of the split kernel. USE_DOT=False (per-row softmax,
# no tensor cores) exists for group 1 only; the autotuner times the rest.
SPLIT_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "USE_DOT": True}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_N": 64, "USE_DOT": True}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_N": 64, "USE_DOT": True}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_N": 128, "USE_DOT": True}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 64, "USE_DOT": False}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_N": 32, "USE_DOT": False}, num_warps=4, num_stages=2),
]


def split_configs(group: int, configs=SPLIT_CONFIGS) -> list[triton.Config]:
    """The split-kernel configurations valid for `group` query heads per KV head."""
    return [c for c in configs if c.kwargs["USE_DOT"] or group == 1]


def _prune(configs, named_args, **kwargs):
    return split_configs(kwargs["GROUP"] if "GROUP" in kwargs else named_args["GROUP"], configs)




@triton.jit
def _chunk_dot(q_rows_ptr, row_ok, k_base, v_base, start, end, qk_scale,
               ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr):
    """Online softmax of ROWS query heads over tokens [start, end): (out [ROWS, D], lse2 [ROWS])."""
    d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_rows_ptr + d[None, :], mask=row_ok[:, None], other=0.0)
    # A finite floor instead of -inf: a row that has seen no valid token yet
    # then rescales by exp2(0) = 1 instead of exp2(-inf + inf) = NaN.
    m = tl.full([ROWS], -1.0e30, tl.float32)
    l = tl.zeros([ROWS], tl.float32)
    acc = tl.zeros([ROWS, HEAD_DIM], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        valid = n < end
        offs = n[:, None] * HEAD_DIM + d[None, :]
        k = tl.load(k_base + offs, mask=valid[:, None], other=0.0)
        v = tl.load(v_base + offs, mask=valid[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # [ROWS, BLOCK_N], log2 domain
        s = tl.where(valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(s - m_new[:, None])
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m = m_new
    l = tl.maximum(l, 1.0)  # >= 1 once a token is seen; an empty chunk (stored nowhere) gives 0, not 0/0
    return acc / l[:, None], m + tl.log2(l)


@triton.jit
def _chunk_rows(q_ptr, k_base, v_base, start, end, qk_scale,
                HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr):
    """One query head over tokens [start, end) without tensor cores: (out [1, D], lse2 [1]).

    Row r of the K/V tile keeps its own running max, sum and output for the
    tokens r, r + BLOCK_N, ...; the rows are merged once after the loop, so
    the loop body has no reduction across warps.
    """
    d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + d).to(tl.float32) * qk_scale
    m = tl.full([BLOCK_N], -1.0e30, tl.float32)
    l = tl.zeros([BLOCK_N], tl.float32)
    acc = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        valid = n < end
        offs = n[:, None] * HEAD_DIM + d[None, :]
        k = tl.load(k_base + offs, mask=valid[:, None], other=0.0).to(tl.float32)
        v = tl.load(v_base + offs, mask=valid[:, None], other=0.0).to(tl.float32)
        s = tl.where(valid, tl.sum(k * q[None, :], 1), float("-inf"))
        m_new = tl.maximum(m, s)
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(s - m_new)
        l = l * alpha + p
        acc = acc * alpha[:, None] + p[:, None] * v
        m = m_new
    m_all = tl.max(m, 0)
    w = tl.exp2(m - m_all)
    l_all = tl.maximum(tl.sum(l * w, 0), 1.0)  # as in _chunk_dot
    out = tl.sum(acc * w[:, None], 0) / l_all
    lse = tl.zeros([1], tl.float32) + (m_all + tl.log2(l_all))
    return out[None, :], lse


@triton.jit
def _split_kernel(q_ptr, k_ptr, v_ptr, len_ptr, out_ptr, part_o_ptr, part_lse_ptr,
                  qk_scale, stride_qb, stride_qh, capacity, split_len, num_splits, batch_size,
                  GROUP: tl.constexpr, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr,
                  DIRECT: tl.constexpr, BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr):
    # batch_size is only part of the tuning key (the batch is the grid's third axis).
    split = tl.program_id(0)
    kv_head = tl.program_id(1)
    batch = tl.program_id(2)
    kv_heads = tl.num_programs(1)
    q_heads = kv_heads * GROUP

    length = tl.load(len_ptr + batch)
    start = split * split_len
    end = tl.minimum(start + split_len, length)  # start >= end: past this sequence, empty loop
    kv_off = (batch * kv_heads + kv_head).to(tl.int64) * capacity * HEAD_DIM
    q_base = q_ptr + batch.to(tl.int64) * stride_qb

    if USE_DOT:
        rows = tl.arange(0, ROWS)
        head = kv_head * GROUP + rows
        out, lse = _chunk_dot(q_base + head[:, None] * stride_qh, rows < GROUP, k_ptr + kv_off, v_ptr + kv_off,
                              start, end, qk_scale, ROWS, HEAD_DIM, BLOCK_N)
    else:
        rows = tl.arange(0, 1)
        head = kv_head + rows
        out, lse = _chunk_rows(q_base + kv_head * stride_qh, k_ptr + kv_off, v_ptr + kv_off,
                               start, end, qk_scale, HEAD_DIM, BLOCK_N)

    d = tl.arange(0, HEAD_DIM)
    # Rows to store: the group's heads, none when the chunk starts past the
    # sequence (one comparison; the interpreter mis-types bool vector & scalar).
    keep = rows < tl.where(start < length, GROUP, 0)
    row = batch.to(tl.int64) * q_heads + head  # [batch, q_heads] row index
    if DIRECT:
        tl.store(out_ptr + row[:, None] * HEAD_DIM + d[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=keep[:, None])
    else:
        part = row * num_splits + split
        tl.store(part_o_ptr + part[:, None] * HEAD_DIM + d[None, :], out, mask=keep[:, None])
        tl.store(part_lse_ptr + part, lse, mask=keep)


# Tuned per exact problem: the group, head dim, split plan, batch and cache capacity (how many
# programs run and how long each streams decide which tile keeps HBM busiest).
_split_tuned = triton.autotune(configs=SPLIT_CONFIGS,
                               key=["GROUP", "HEAD_DIM", "split_len", "num_splits", "batch_size", "capacity"],
                               prune_configs_by={"early_config_prune": _prune}, do_bench=device_time_ms)(_split_kernel)


@triton.jit
def _merge_kernel(part_o_ptr, part_lse_ptr, len_ptr, out_ptr, q_heads, split_len, num_splits,
                  HEAD_DIM: tl.constexpr, SPLITS: tl.constexpr, BLOCK_D: tl.constexpr):
    # One program per (sequence, query head, BLOCK_D columns): all of the row's
    # chunks are loaded at once, one memory latency instead of one per chunk.
    row = tl.program_id(0).to(tl.int64)  # batch * q_heads + head
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    length = tl.load(len_ptr + row // q_heads)
    n_valid = tl.minimum(tl.cdiv(length, split_len), num_splits)  # chunks holding this sequence's tokens
    s = tl.arange(0, SPLITS)
    part = row * num_splits + s
    lse = tl.load(part_lse_ptr + part, mask=s < n_valid, other=float("-inf"))
    w = tl.exp2(lse - tl.max(lse, 0))
    o = tl.load(part_o_ptr + part[:, None] * HEAD_DIM + d[None, :], mask=(s < n_valid)[:, None], other=0.0)
    tl.store(out_ptr + row * HEAD_DIM + d, (tl.sum(w[:, None] * o, 0) / tl.sum(w, 0)).to(out_ptr.dtype.element_ty))


MERGE_TILE = 8192  # elements of the [splits, BLOCK_D] fp32 tile a merge program holds
MERGE_WARPS = 4


def num_sms(device: torch.device) -> int:
    """SMs a split plan fills on `device` (1 for the interpreter on the CPU)."""
    if device.type != "cuda":
        return 1
    return cuda_properties(device).multi_processor_count


def last_config() -> dict | None:
    """Split plan and kernel configuration of the latest `decode_attention` call (for records)."""
    return chosen("decode_attention")


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor, *,
                     max_len: int | None = None, split_len: int | None = None, sm_scale: float | None = None,
                     out: torch.Tensor | None = None, config: triton.Config | None = None) -> torch.Tensor:
    """Attention of one query token per sequence over its first lengths[b] cached tokens.

    lengths: int32 [batch], each in [1, capacity] (not checked: that would sync).
    max_len: an upper bound of `lengths` known on the host (no device sync); it
        sets the split count. Defaults to the cache capacity.
    split_len: tokens per split; default from `plan_splits`.
    config: run this split-kernel configuration instead of autotuning (tests).
    Returns out [batch, q_heads, head_dim] in q's dtype.
    """
    if q.dim() != 3 or k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError(f"expected q [B,Hq,D] and k/v [B,Hkv,S,D]; got {tuple(q.shape)}, "
                         f"{tuple(k_cache.shape)}, {tuple(v_cache.shape)}")
    batch, q_heads, head_dim = q.shape
    cache_batch, kv_heads, capacity, cache_dim = k_cache.shape
    if cache_batch != batch or cache_dim != head_dim or q_heads % kv_heads:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, cache {tuple(k_cache.shape)}")
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"head_dim must be a power of two >= 16, got {head_dim}")
    if q.stride(2) != 1 or not (k_cache.is_contiguous() and v_cache.is_contiguous()):
        raise ValueError("q must be contiguous in head_dim and the caches contiguous")
    if q.dtype != k_cache.dtype or v_cache.dtype != k_cache.dtype:
        raise ValueError(f"dtype mismatch: q {q.dtype}, k {k_cache.dtype}, v {v_cache.dtype}")
    if lengths.shape != (batch,) or lengths.dtype != torch.int32:
        raise ValueError(f"lengths must be int32 [batch]; got {lengths.dtype} {tuple(lengths.shape)}")
    max_len = capacity if max_len is None else max_len
    if not 1 <= max_len <= capacity:
        raise ValueError(f"max_len {max_len} outside [1, capacity {capacity}]")
    if out is None:
        out = torch.empty((batch, q_heads, head_dim), device=q.device, dtype=q.dtype)
    elif out.shape != (batch, q_heads, head_dim) or not out.is_contiguous() or out.dtype != q.dtype:
        raise ValueError("out must be a contiguous [B,Hq,D] tensor of q's dtype")

    if split_len is None:
        num_splits, split_len = plan_splits(batch, kv_heads, max_len, num_sms(q.device))
    else:
        num_splits = triton.cdiv(max_len, split_len)
    scale = (1.0 / math.sqrt(head_dim) if sm_scale is None else sm_scale) * LOG2E
    if num_splits == 1:
        config, source = split_pass(q, k_cache, v_cache, lengths, scale, split_len, 1, out=out, config=config)
    else:
        part_o, part_lse, (config, source) = split_pass(q, k_cache, v_cache, lengths, scale, split_len,
                                                        num_splits, config=config)
        merge_pass(part_o, part_lse, lengths, split_len, out)
    record_choice("decode_attention", (batch, q_heads, kv_heads, head_dim, capacity, max_len, str(q.dtype)),
                  {"num_splits": num_splits, "split_len": split_len, **config.kwargs, "num_warps": config.num_warps,
                   "num_stages": config.num_stages, "tuning": source,
                   "tuned_at": {"batch": batch, "capacity": capacity, "max_len": max_len, "dtype": str(q.dtype)}})
    return out


def split_pass(q, k_cache, v_cache, lengths, qk_scale: float, split_len: int, num_splits: int, *,
               out=None, config=None):
    """First kernel alone (arguments checked by `decode_attention`; qk_scale includes log2 e).

    With `out` (num_splits 1): the output is written there; returns (config used, its tuning
    source: "tuned", "cache" or "fixed"). Without: returns (part_o [B,Hq,splits,D],
    part_lse [B,Hq,splits], (config, source)), the fp32 chunk outputs and base-2 log-sum-exps
    that `merge_pass` combines (kept between calls of one shape: no allocation per call).
    """
    batch, q_heads, head_dim = q.shape
    kv_heads, capacity = k_cache.shape[1], k_cache.shape[2]
    group = q_heads // kv_heads
    if out is None:
        part_o, part_lse = _partials(q.device, batch, q_heads, num_splits, head_dim)
    else:
        part_o = part_lse = out  # unused by the kernel when it writes out directly
    if config is None and q.device.type != "cuda":
        config = split_configs(group)[0]  # the interpreter cannot time configurations
    grid = (num_splits, kv_heads, batch)
    args = (q, k_cache, v_cache, lengths, part_o if out is None else out, part_o, part_lse, qk_scale,
            q.stride(0), q.stride(1), capacity, split_len, num_splits, batch)
    meta = dict(GROUP=group, ROWS=max(16, triton.next_power_of_2(group)), HEAD_DIM=head_dim, DIRECT=out is not None)
    if config is None:
        run = launch_autotuned("decode_split", _split_tuned, grid, *args, **meta,
                               problem=(group, head_dim, split_len, num_splits, batch, capacity, str(q.dtype),
                                        out is not None))
        chosen_config = (run["config"], run["source"])
    else:
        if not (config.kwargs["USE_DOT"] or group == 1):
            raise ValueError("the dot-free split kernel handles one query head per KV head only")
        launch(_split_kernel, grid, *args, **meta, **config.all_kwargs())
        chosen_config = (config, "fixed")
    return chosen_config if out is not None else (part_o, part_lse, chosen_config)


_PARTIALS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _partials(device, batch: int, q_heads: int, num_splits: int, head_dim: int):
    """The fp32 chunk outputs and log-sum-exps of one shape, allocated once: a call's merge has
    read them before the next call's split pass writes them (one stream)."""
    key = (str(device), batch, q_heads, num_splits, head_dim)
    if key not in _PARTIALS:
        _PARTIALS[key] = (torch.empty((batch, q_heads, num_splits, head_dim), device=device, dtype=torch.float32),
                          torch.empty((batch, q_heads, num_splits), device=device, dtype=torch.float32))
    return _PARTIALS[key]


def merge_pass(part_o, part_lse, lengths, split_len: int, out) -> None:
    """Second kernel alone: out = softmax-weighted combination of each sequence's chunks."""
    batch, q_heads, num_splits, head_dim = part_o.shape
    splits = triton.next_power_of_2(num_splits)
    block_d = max(16, min(head_dim, MERGE_TILE // splits))
    launch(_merge_kernel, (batch * q_heads, head_dim // block_d),
           part_o, part_lse, lengths, out, q_heads, split_len, num_splits,
           HEAD_DIM=head_dim, SPLITS=splits, BLOCK_D=block_d, num_warps=MERGE_WARPS)


# ---------------------------------------------------------------------------
# Decode layer
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerShape:
    """One transformer layer's sizes (gpt-fast's ModelArgs, the part a decode step needs): a typo
    in a field name fails where the preset is defined, not deep inside a step."""
    hidden: int
    heads: int  # query heads
    kv_heads: int  # key/value heads (grouped-query attention when fewer than heads)
    head_dim: int
    mlp: int  # the MLP's inner width
    norm_eps: float


# Named shapes. "tiny" is for the interpreter tests.
PRESETS: dict[str, LayerShape] = {
    "llama-3-8b": LayerShape(hidden=4096, heads=32, kv_heads=8, head_dim=128, mlp=14336, norm_eps=1e-5),
    "tiny": LayerShape(hidden=64, heads=4, kv_heads=2, head_dim=16, mlp=96, norm_eps=1e-5),
}


def layer_weight_shapes(cfg: LayerShape) -> dict[str, tuple[int, ...]]:
    """Weights of one layer; projections are [out_features, in_features] (y = x @ w.T)."""
    h, d, hq, hkv, mlp = cfg.hidden, cfg.head_dim, cfg.heads, cfg.kv_heads, cfg.mlp
    return {
        "attn_norm": (h,),
        "wqkv": ((hq + 2 * hkv) * d, h),  # rows: q heads, then k heads, then v heads
        "wo": (h, hq * d),
        "mlp_norm": (h,),
        "w13": (2 * mlp, h),  # rows: gate, then up
        "w2": (h, mlp),
    }


def layer_flops(cfg: LayerShape, batch: int, context: int) -> int:
    """The four projections (2 FLOPs per multiply-add) and attention over `context` tokens.

    Norms, SiLU and residual adds (about 10 FLOPs per hidden or MLP element,
    under 0.01% of the total) are not counted.
    """
    matmul = sum(math.prod(s) for s in layer_weight_shapes(cfg).values() if len(s) == 2)
    return 2 * batch * matmul + attention_flops([context] * batch, cfg.heads, cfg.head_dim)


def layer_bytes(cfg: LayerShape, batch: int, context: int, esize: int) -> int:
    """Minimum traffic: every weight read once, the context-1 cached tokens' k/v read
    once, the new token's k/v written once, the layer's input read and output written.
    Intermediate activations (a few hidden-sized rows per token) could stay on chip."""
    weights = sum(math.prod(s) for s in layer_weight_shapes(cfg).values())
    kv_token = 2 * batch * cfg.kv_heads * cfg.head_dim  # k and v of one position, all sequences
    return (weights + kv_token * (context - 1) + kv_token + 2 * batch * cfg.hidden) * esize


@triton.jit
def _rms_norm_kernel(x_ptr, res_ptr, w_ptr, sum_ptr, y_ptr, n_cols, eps,
                     ADD_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * n_cols
    cols = tl.arange(0, BLOCK)
    ok = cols < n_cols
    x = tl.load(x_ptr + row + cols, mask=ok, other=0.0).to(tl.float32)
    if ADD_RESIDUAL:
        # The residual stream is stored rounded; normalize what was stored,
        # as the unfused add-then-norm does.
        h = (x + tl.load(res_ptr + row + cols, mask=ok, other=0.0).to(tl.float32)).to(sum_ptr.dtype.element_ty)
        tl.store(sum_ptr + row + cols, h, mask=ok)
        x = h.to(tl.float32)
    inv_rms = 1.0 / tl.sqrt(tl.sum(x * x, 0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + row + cols, (x * inv_rms * w).to(y_ptr.dtype.element_ty), mask=ok)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None):
    """y = x / rms(x) * weight over the last dim of x [rows, n].

    With `residual`: h = x + residual is formed first and (h, norm(h)) returned.
    """
    rows, n = x.shape
    if (not x.is_contiguous() or weight.shape != (n,)
            or (residual is not None and (residual.shape != x.shape or not residual.is_contiguous()))):
        raise ValueError("rms_norm: x contiguous [rows, n], weight [n], residual like x")
    y = torch.empty_like(x)
    h = torch.empty_like(x) if residual is not None else y
    block = triton.next_power_of_2(n)
    launch(_rms_norm_kernel, (rows,), x, residual if residual is not None else x, weight, h, y, n, eps,
           ADD_RESIDUAL=residual is not None, BLOCK=block, num_warps=8 if block >= 2048 else 4)
    return (h, y) if residual is not None else y


@triton.jit
def _silu_mul_kernel(gu_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < n_cols
    gate = tl.load(gu_ptr + row * 2 * n_cols + cols, mask=ok).to(tl.float32)
    up = tl.load(gu_ptr + row * 2 * n_cols + n_cols + cols, mask=ok).to(tl.float32)
    tl.store(out_ptr + row * n_cols + cols, (gate * tl.sigmoid(gate) * up).to(out_ptr.dtype.element_ty), mask=ok)


SILU_BLOCK = 1024


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate_up [rows, 2n] holding gate in columns [0, n), up in [n, 2n)."""
    rows, two_n = gate_up.shape
    if two_n % 2 or not gate_up.is_contiguous():
        raise ValueError("silu_mul: gate_up must be contiguous [rows, 2n]")
    out = torch.empty((rows, two_n // 2), device=gate_up.device, dtype=gate_up.dtype)
    launch(_silu_mul_kernel, (rows, triton.cdiv(two_n // 2, SILU_BLOCK)), gate_up, out, two_n // 2, BLOCK=SILU_BLOCK)
    return out


@triton.jit
def _append_kv_kernel(qkv_ptr, k_ptr, v_ptr, pos, qkv_row, k_col0, capacity, HEAD_DIM: tl.constexpr):
    batch = tl.program_id(0)
    head = tl.program_id(1)
    kv_heads = tl.num_programs(1)
    d = tl.arange(0, HEAD_DIM)
    src = qkv_ptr + batch.to(tl.int64) * qkv_row + k_col0 + head * HEAD_DIM + d
    dst = ((batch * kv_heads + head).to(tl.int64) * capacity + pos) * HEAD_DIM + d
    tl.store(k_ptr + dst, tl.load(src))
    tl.store(v_ptr + dst, tl.load(src + kv_heads * HEAD_DIM))


def layer_step(x: torch.Tensor, weights: dict[str, torch.Tensor], k_cache: torch.Tensor, v_cache: torch.Tensor,
               lengths: torch.Tensor, context: int, cfg: LayerShape, out: torch.Tensor | None = None) -> torch.Tensor:
    """One decode step of a layer for x [B, hidden] (one new token per sequence).

    The caches [B, kv_heads, capacity, head_dim] hold context-1 earlier tokens;
    this step writes the new token's k/v at position context-1 and attends over
    `context` tokens. `lengths` is an int32 [B] tensor filled with `context`.
    """
    # Imported here so decode attention does not depend on the GEMM family's module.
    from kernels.gemm import linear

    batch = x.shape[0]
    hq, hkv, d, eps = cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.norm_eps
    if not 1 <= context <= k_cache.shape[2]:
        raise ValueError(f"context {context} outside [1, cache capacity {k_cache.shape[2]}]")
    h = rms_norm(x, weights["attn_norm"], eps)
    qkv = linear(h, weights["wqkv"])
    launch(_append_kv_kernel, (batch, hkv), qkv, k_cache, v_cache, context - 1, qkv.stride(0), hq * d,
           k_cache.shape[2], HEAD_DIM=d)
    q = qkv[:, :hq * d].view(batch, hq, d)
    attn = decode_attention(q, k_cache, v_cache, lengths, max_len=context)
    x1, h2 = rms_norm(linear(attn.view(batch, hq * d), weights["wo"]), weights["mlp_norm"], eps, residual=x)
    y = linear(silu_mul(linear(h2, weights["w13"])), weights["w2"])
    if out is None:
        out = torch.empty_like(x)
    return streaming.stream("add", x1, y, out)
