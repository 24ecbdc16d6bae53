"""Attention family: naive (scores in memory) and fused (flash) forward, against every SDPA backend.

One workload, "attention-fwd", swept over sequence length at the shape of the
common benchmarks (batch 4, 32 heads, head dim 128, plus head dim 64),
causal and not. The naive paths move B*H*S^2 scores through memory twice, so
they sit under the memory roof; the fused kernel keeps them on chip and sits
under the compute roof. `moved_bytes` records what each naive path really
moves; `bytes` is the minimum (Q, K, V read once, O written once).

Implementations:
    triton-fused    kernels.attention.flash_attention (config tuned on first call, recorded)
    triton-naive    kernels.attention.naive_attention: S, softmax, P V as three kernels
    sdpa-flash      torch SDPA restricted to one backend by sdpa_kernel(...): a
    sdpa-cudnn      backend that cannot take the case raises instead of falling
    sdpa-efficient  back to another, and that becomes a recorded skip
    torch-naive     matmul, masked_fill, softmax, matmul

Verification: a float64 softmax(Q K^T * scale) V with the causal mask for every
(batch, head) on query rows spread so that every 16-row block has one (every
row of short sequences), each element held to its own tolerance; the runner
also requires every element of the whole output to be finite (it was poisoned
with NaN), so a tile left unwritten fails even between the checked rows.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels import attention as ka
from suite import verify
from suite.dtypes import DTYPES, element_size
from suite.registry import Impl, Skip, Workload, register

# The two naive paths can be alive at once (the runner alternates
# implementations), next to the inputs: each may take this share of the GPU.
NAIVE_MEMORY_FRACTION = 0.3


def _case(S: int, D: int, causal: bool, B: int = 4, H: int = 32) -> dict:
    return {"B": B, "H": H, "S": S, "D": D, "causal": causal}


# Quick: the target shape (B=4, H=32, S=4096, D=128) both ways, a short and a
# long sequence (the naive paths skip at S=16384: 2 x 64 GiB of scores).
QUICK = [_case(1024, 128, False), _case(4096, 128, False), _case(4096, 128, True), _case(16384, 128, True)]
# Full: S = 512 .. 16384 at D=128 both ways, D=64 at the target length, and a
# sequence length that is not a multiple of any block.
FULL = ([_case(S, 128, c) for S in (512, 1024, 2048, 4096, 8192, 16384) for c in (False, True)]
        + [_case(4096, 64, c) for c in (False, True)]
        + [_case(3000, 128, True)])
# Interpreter: tiny and ragged (not multiples of the 16-wide interpreter tiles).
INTERPRET = [_case(37, 16, False, B=1, H=2), _case(37, 16, True, B=1, H=2),
             _case(50, 64, True, B=2, H=1), _case(23, 32, False, B=1, H=1)]


def _shape(p) -> tuple[int, int, int, int]:
    return p["B"], p["H"], p["S"], p["D"]


def _label(p) -> str:
    B, H, S, D = _shape(p)
    return f"B{B} H{H} S{S} D{D}" + (" causal" if p["causal"] else "")


def _make_inputs(p, dtype, device, gen):
    shape = _shape(p)
    tdt = DTYPES[dtype].torch_dtype

    def randn():
        return torch.randn(shape, device=device, generator=gen, dtype=torch.float32).to(tdt)

    q, k, v = randn(), randn(), randn()
    return {"q": q, "k": k, "v": v, "out": torch.empty_like(q), "causal": bool(p["causal"])}


# ---------------------------------------------------------------- verification

# Query rows the reference covers in every (batch, head): one in each block of this many rows (every
# kernel tile spans at least one block, so a tile left unwritten or written to the wrong place
# meets a checked row), plus the last row; every row where the sequence is this short or less.
ROW_BLOCK = 16
_REF_ELEMENTS = 1 << 25  # float64 scores held at a time by the reference


def checked_rows(S: int) -> list[int]:
    if S <= 4 * ROW_BLOCK:
        return list(range(S))
    rows = {b + (7 * (b // ROW_BLOCK)) % ROW_BLOCK for b in range(0, S, ROW_BLOCK)}
    return sorted(r for r in rows | {S - 1} if r < S)


def _reference(inp, p, dtype) -> verify.Expected:
    """softmax(Q K^T * scale) V in float64 for the checked rows of EVERY (batch, head), and
    sqrt(sum_k p^2 v^2) per element: the size of the error that rounding P to the input type
    before P V leaves (the scale of the elementwise check)."""
    B, H, S, D = _shape(p)
    rows = torch.tensor(checked_rows(S), device=inp["q"].device)
    q = inp["q"].reshape(B * H, S, D)[:, rows]
    k, v = inp["k"].reshape(B * H, S, D), inp["v"].reshape(B * H, S, D)
    scale = 1.0 / math.sqrt(D)
    out = torch.empty((B * H, len(rows), D), dtype=torch.float64, device=q.device)
    rss = torch.empty_like(out)
    heads = max(1, _REF_ELEMENTS // (len(rows) * S))
    keys = torch.arange(S, device=q.device)
    for h0 in range(0, B * H, heads):
        hs = slice(h0, h0 + heads)
        s = torch.matmul(q[hs].double(), k[hs].double().transpose(-2, -1)) * scale
        if p["causal"]:
            s.masked_fill_(keys[None, :] > rows[:, None], float("-inf"))
        probs = torch.softmax(s, dim=-1)
        del s
        vd = v[hs].double()
        out[hs] = torch.matmul(probs, vd)
        rss[hs] = torch.matmul(probs * probs, vd * vd).sqrt_()
        del probs, vd
    return verify.Expected(out, rss, f"every (batch, head), query rows {ROW_BLOCK} apart and the last "
                                     f"({len(rows)} of {S}), against float64")


def _check_view(output: torch.Tensor, p) -> torch.Tensor:
    B, H, S, D = _shape(p)
    rows = torch.tensor(checked_rows(S), device=output.device)
    return output.reshape(B * H, S, D)[:, rows]


# ---------------------------------------------------------------- implementations

def _skip_bf16_in_interpreter(q):
    if not q.is_cuda and q.dtype == torch.bfloat16:
        raise Skip("Triton's interpreter mis-computes bf16 dot products (triton#11584); bf16 runs on the GPU")


def _naive_memory_skip(q):
    """Skip a naive path whose B*H*S*S scores and probabilities would not fit."""
    if not q.is_cuda:
        return
    B, H, S, _ = q.shape
    need = ka.naive_workspace_bytes(B, H, S, q.element_size())
    total = torch.cuda.get_device_properties(q.device).total_memory
    if need > NAIVE_MEMORY_FRACTION * total:
        raise Skip(f"S and P need {need / 2**30:.1f} GiB, over {NAIVE_MEMORY_FRACTION:.0%} of the GPU's "
                   f"{total / 2**30:.0f} GiB (shared with the other naive path and the inputs)")


def _prepare_fused(inp):
    q, k, v, out, causal = inp["q"], inp["k"], inp["v"], inp["out"], inp["causal"]
    _skip_bf16_in_interpreter(q)
    return lambda: ka.flash_attention(q, k, v, causal, out=out)


def _prepare_triton_naive(inp):
    q, k, v, out, causal = inp["q"], inp["k"], inp["v"], inp["out"], inp["causal"]
    _skip_bf16_in_interpreter(q)
    _naive_memory_skip(q)
    B, H, S, _ = q.shape
    scores = torch.empty((B, H, S, S), dtype=q.dtype, device=q.device)
    probs = torch.empty_like(scores)
    return lambda: ka.naive_attention(q, k, v, causal, out=out, scores=scores, probs=probs)


def _prepare_torch_naive(inp):
    q, k, v, causal = inp["q"], inp["k"], inp["v"], inp["causal"]
    _naive_memory_skip(q)
    S, D = q.shape[-2:]
    scale = 1.0 / math.sqrt(D)
    upper = torch.ones(S, S, dtype=torch.bool, device=q.device).triu_(1) if causal else None

    def run():
        s = torch.matmul(q * scale, k.transpose(-2, -1))
        if upper is not None:
            s.masked_fill_(upper, float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1), v)

    return run


def _prepare_sdpa(backend: SDPBackend):
    def prepare(inp):
        q, k, v, causal = inp["q"], inp["k"], inp["v"], inp["causal"]

        def run():
            # Only this backend is allowed: SDPA raises rather than falling back to another.
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        # A trial call: a backend that refuses the shape, dtype or GPU says why in warnings.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                run()
            except RuntimeError as e:
                why = "; ".join(dict.fromkeys(str(w.message).strip() for w in caught)) or str(e)
                raise Skip(f"SDPA {backend.name} cannot run this case: {why}") from None
        return run

    return prepare


def _torch_naive_moved_bytes(p, esize: int) -> int:
    """torch-naive's traffic: q*scale written and read back, S written by the first
    matmul, read and written again by masked_fill_ (causal), read by softmax,
    which writes P, which the second matmul reads; all in the input dtype."""
    B, H, S, D = _shape(p)
    square = B * H * S * S * esize
    return (ka.attention_min_bytes(B, H, S, D, esize) + 2 * B * H * S * D * esize
            + square * (4 + (2 if p["causal"] else 0)))


def _moved_bytes(p, dtype, impl):
    B, H, S, D = _shape(p)
    if impl == "triton-naive":
        return ka.naive_moved_bytes(B, H, S, D, element_size(dtype))
    if impl == "torch-naive":
        return _torch_naive_moved_bytes(p, element_size(dtype))
    return None  # fused kernels move about the minimum


register(Workload(
    name="attention-fwd",
    family="attention",
    description="softmax(Q K^T / sqrt(D)) V forward, [B, H, S, D], causal or not",
    dtypes=("bf16", "fp16"),
    quick_dtypes=("bf16",),
    cases={"quick": QUICK, "full": FULL, "interpret": INTERPRET},
    make_inputs=_make_inputs,
    impls=(
        Impl("triton-fused", vendor=False, prepare=_prepare_fused, launches=1,
             config=lambda inp: ka.flash_attention_config(inp["q"], inp["causal"])),
        Impl("triton-naive", vendor=False, prepare=_prepare_triton_naive, role="naive", launches=3,
             config=lambda inp: ka.naive_config(ka.capability_of(inp["q"]))),
        Impl("sdpa-flash", vendor=True, prepare=_prepare_sdpa(SDPBackend.FLASH_ATTENTION), backend="FlashAttention-2",
             launches=1),
        Impl("sdpa-cudnn", vendor=True, prepare=_prepare_sdpa(SDPBackend.CUDNN_ATTENTION), backend="cuDNN"),
        Impl("sdpa-efficient", vendor=True, prepare=_prepare_sdpa(SDPBackend.EFFICIENT_ATTENTION),
             backend="memory-efficient (xFormers)", launches=1),
        Impl("torch-naive", vendor=True, prepare=_prepare_torch_naive, role="naive", backend="torch"),
    ),
    reference=_reference,
    flops=lambda p, d: ka.attention_flops(*_shape(p), p["causal"]),
    bytes=lambda p, d: ka.attention_min_bytes(*_shape(p), element_size(d)),
    moved_bytes=_moved_bytes,
    check_view=_check_view,
    label=_label,
))
