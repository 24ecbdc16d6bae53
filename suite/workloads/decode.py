"""Decode family: one autoregressive decoding step.

decode-attention: one query token per sequence against a KV cache
[batch, kv_heads, context, head_dim], multi-head (32/32) and grouped-query
(32/8), uniform and ragged batches. Bytes are the KV cache actually read (the
real lengths) plus q and out, so a kernel that streams padding or re-reads a KV
head per query head shows it as lower bytes/s. Vendor rows: torch SDPA forced
to each fused backend (flash, cuDNN, memory-efficient) on the same tensors,
GQA through `enable_gqa` (no expanded copy of the cache); ragged batches go
through an additive attention mask over the full cache, which those backends
read whole (their `moved_bytes`); flash takes no mask and is skipped there.

decode-layer: a whole layer's step (kernels.decode.layer_step) for a named
configuration at a batch size and context length; tokens/s is batch / time.
"triton" calls it as a user's loop would; "triton-prepared" replays the same
launches prepared once (kernels.launch), as a serving loop that keeps its
buffers would; "torch" is the step written with torch ops and SDPA.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels import decode as kd
from kernels import launch
from suite import verify
from suite.dtypes import DTYPES, element_size
from suite.registry import Impl, Skip, Workload, register

GiB = 1 << 30
# Share of the GPU's memory a case may plan to use (the caching allocator,
# the CUDA context and the runner's own buffers need the rest).
MEMORY_SHARE = 0.85


def context_lengths(batch: int, context: int, ragged: bool) -> list[int]:
    """Tokens in the cache per sequence: all `context`, or for a ragged batch a fixed
    scatter over [context/8, context] (multiplicative hash of the index), the first
    sequence at full `context` so the longest one fills the cache."""
    if not ragged:
        return [context] * batch
    low = max(1, context // 8)
    return [context - (i * 2654435761 % 2**32) * (context - low) // 2**32 for i in range(batch)]


# float64 elements of cache a reference chunk of sequences may hold at a time.
_REF_ELEMENTS = 1 << 28


def _gpu_memory(device) -> int | None:
    device = torch.device(device)
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


def _interpreter_bf16(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and t.dtype == torch.bfloat16:
        raise Skip("Triton's interpreter mis-computes bf16 arithmetic (triton#11584); bf16 runs on the GPU")


def _too_big(need: int, device) -> str | None:
    total = _gpu_memory(device)
    if total is not None and need > MEMORY_SHARE * total:
        return f"needs about {need / GiB:.0f} GiB; the GPU has {total / GiB:.0f} GiB"
    return None


# --- SDPA backends -----------------------------------------------------------

SDPA_BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                 "efficient": SDPBackend.EFFICIENT_ATTENTION}


def _sdpa_call(backend: str, q, k, v, mask, gqa: bool):
    def call():
        with sdpa_kernel(SDPA_BACKENDS[backend]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return call


def _try_sdpa(backend: str, call) -> None:
    """Run `call` once; a backend that rejects the case becomes a recorded Skip
    carrying torch's stated reason (its warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as e:
            why = "; ".join(str(w.message).strip() for w in caught) or str(e).splitlines()[0]
            raise Skip(f"SDPA {backend} backend does not run this case: {why}") from None


# --- decode-attention ----------------------------------------------------------

def _shape(p):
    return p["batch"], p["q_heads"], p["kv_heads"], p["context"], p["head_dim"]


def _lengths(p) -> list[int]:
    return context_lengths(p["batch"], p["context"], p["ragged"])


def _attn_inputs(params, dtype, device, gen):
    b, hq, hkv, s, d = _shape(params)
    tdt = DTYPES[dtype].torch_dtype
    lengths = _lengths(params)
    # q at twice the keys' scale: peaked attention as in trained models, so a
    # split merge that mis-weights chunks fails verification by a wide margin.
    return {
        "q": torch.randn((b, hq, d), generator=gen, device=device, dtype=tdt) * 2,
        "k_cache": torch.randn((b, hkv, s, d), generator=gen, device=device, dtype=tdt),
        "v_cache": torch.randn((b, hkv, s, d), generator=gen, device=device, dtype=tdt),
        "lengths": torch.tensor(lengths, dtype=torch.int32, device=device),
        "max_len": max(lengths),
        "out": torch.empty((b, hq, d), device=device, dtype=tdt),
    }


def _attn_reference(inp, params, dtype):
    """Every sequence's attention in float64 over its own length, and per element
    sqrt(sum_t p^2 v^2), the size of the error rounding P before P V leaves."""
    b, hq, hkv, s, d = _shape(params)
    lengths = _lengths(params)
    out = torch.empty((b, hq, d), dtype=torch.float64, device=inp["q"].device)
    rss = torch.empty_like(out)
    for i in range(b):
        q = inp["q"][i].double().view(hkv, hq // hkv, d)
        k = inp["k_cache"][i, :, :lengths[i]].double()
        v = inp["v_cache"][i, :, :lengths[i]].double()
        p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
        out[i] = (p @ v).reshape(hq, d)
        rss[i] = ((p * p) @ (v * v)).sqrt_().reshape(hq, d)
    return verify.Expected(out, rss, "every sequence against float64")


def _attn_triton(inp):
    _interpreter_bf16(inp["q"])
    q, k, v, lengths, out, max_len = (inp[n] for n in ("q", "k_cache", "v_cache", "lengths", "out", "max_len"))
    return lambda: kd.decode_attention(q, k, v, lengths, max_len=max_len, out=out)


def _attn_sdpa(backend: str):
    def prepare(inp):
        q, k, v, lengths = inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"]
        mask = None
        if bool((lengths != k.shape[2]).any()):
            if backend == "flash":
                raise Skip("SDPA flash takes no attention mask, so it cannot run a ragged batch")
            # Additive mask [B, 1, 1, S], built here so the timed call does not convert it.
            valid = torch.arange(k.shape[2], device=k.device)[None, :] < lengths[:, None]
            mask = torch.zeros(valid.shape, device=k.device, dtype=q.dtype).masked_fill_(~valid, float("-inf"))
            mask = mask[:, None, None, :]
        call = _sdpa_call(backend, q.unsqueeze(2), k, v, mask, q.shape[1] != k.shape[1])
        _try_sdpa(backend, call)
        return lambda: call().squeeze(2)
    return prepare


def _attn_bytes(p, dtype) -> int:
    b, hq, hkv, s, d = _shape(p)
    return kd.attention_bytes(_lengths(p), hq, hkv, d, element_size(dtype))


def _attn_moved_bytes(p, dtype, impl) -> int | None:
    b, hq, hkv, s, d = _shape(p)
    e = element_size(dtype)
    if impl == "triton" and torch.cuda.is_available():
        splits, _ = kd.plan_splits(b, hkv, max(_lengths(p)), kd.num_sms(torch.device("cuda")))
        return _attn_bytes(p, dtype) + kd.split_bytes(b, hq, d, splits)
    if impl.startswith("sdpa") and p["ragged"]:
        # The masked backends read the whole cache, padding included, plus the mask.
        return kd.attention_bytes([s] * b, hq, hkv, d, e) - 4 * b + b * s * e
    return None


def _attn_skip(p, dtype, device) -> str | None:
    b, hq, hkv, s, d = _shape(p)
    e = element_size(dtype)
    cache = 2 * b * hkv * s * d * e
    reference = 3 * hkv * s * d * 8  # float64 k, v and a copy, one checked sequence at a time
    return _too_big(cache + reference + b * s * e, device)


def _attn_label(p) -> str:
    b, hq, hkv, s, d = _shape(p)
    return f"B={b} H={hq}/{hkv} ctx={s}" + ("" if d == 128 else f" D={d}") + (" ragged" if p["ragged"] else "")


def _attn_case(batch, q_heads, kv_heads, context, ragged=False, head_dim=128):
    return {"batch": batch, "q_heads": q_heads, "kv_heads": kv_heads, "context": context,
            "head_dim": head_dim, "ragged": ragged}


MHA, GQA = (32, 32), (32, 8)
_ATTN_QUICK = [
    _attn_case(32, *MHA, 4096),  # a batch of mid-length sequences, and one long sequence
    _attn_case(1, *MHA, 32768),
    _attn_case(1, *GQA, 131072),  # grouped heads at the longest context
    _attn_case(16, *GQA, 16384, ragged=True),  # a ragged batch
]
_ATTN_FULL = (
    [_attn_case(b, *h, s) for h in (MHA, GQA) for b in (1, 8, 64, 256) for s in (512, 4096, 32768, 131072)]
    + [_attn_case(32, *h, 4096) for h in (MHA, GQA)]
    + [_attn_case(8, *h, 32768, ragged=True) for h in (MHA, GQA)]
    + [_attn_case(64, *h, 4096, ragged=True) for h in (MHA, GQA)]
    + [_attn_case(256, *GQA, 1024), _attn_case(64, *MHA, 2048, ragged=True)]
)
_ATTN_FULL += [c for c in _ATTN_QUICK if c not in _ATTN_FULL]  # the full sweep holds every quick case
# Interpreter: lengths not multiples of the block, GQA groups, one with two splits.
_ATTN_INTERPRET = [
    _attn_case(3, 4, 2, 37, ragged=True, head_dim=16),
    _attn_case(2, 2, 2, 50, head_dim=32),
    _attn_case(1, 8, 1, 200, head_dim=16),
]

register(Workload(
    name="decode-attention",
    family="decode",
    description="one query token per sequence over a KV cache (flash-decoding split + merge)",
    dtypes=("bf16", "fp16"),
    quick_dtypes=("bf16",),
    cases={"quick": _ATTN_QUICK, "full": _ATTN_FULL, "interpret": _ATTN_INTERPRET},
    make_inputs=_attn_inputs,
    impls=(
        Impl("triton", vendor=False, prepare=_attn_triton, config=lambda inp: kd.last_config()),
        *(Impl(f"sdpa-{name}", vendor=True, prepare=_attn_sdpa(name), backend=backend)
          for name, backend in (("flash", "FlashAttention-2"), ("cudnn", "cuDNN"),
                                ("efficient", "memory-efficient (xFormers)"))),
    ),
    reference=_attn_reference,
    flops=lambda p, d: kd.attention_flops(_lengths(p), p["q_heads"], p["head_dim"]),
    bytes=_attn_bytes,
    moved_bytes=_attn_moved_bytes,
    skip=_attn_skip,
    label=_attn_label,
    # Small caches (B=1, 512 tokens is 8 MiB) would otherwise be served from L2.
    rotate_past_l2=2.0,
))


# --- decode-layer --------------------------------------------------------------

def _layer_inputs(params, dtype, device, gen):
    cfg = kd.PRESETS[params["preset"]]
    b, ctx = params["batch"], params["context"]
    tdt = DTYPES[dtype].torch_dtype

    def randn(*shape, scale=1.0):
        return torch.randn(shape, generator=gen, device=device, dtype=tdt) * scale

    weights = {}
    for name, shape in kd.layer_weight_shapes(cfg).items():
        # Projections scaled by 1/sqrt(fan_in) keep activations O(1); norm
        # weights near 1 but not 1, so a kernel that ignores them fails.
        weights[name] = randn(*shape, scale=shape[1] ** -0.5) if len(shape) == 2 else 1 + randn(*shape, scale=0.1)
    cache_shape = (b, cfg.kv_heads, ctx, cfg.head_dim)
    k_cache, v_cache = randn(*cache_shape), randn(*cache_shape)
    return {
        "x": randn(b, cfg.hidden),
        "weights": weights,
        "k_cache": k_cache,
        "v_cache": v_cache,
        "lengths": torch.full((b,), ctx, dtype=torch.int32, device=device),
        "out": torch.empty((b, cfg.hidden), device=device, dtype=tdt),
        # Every implementation writes the new token's k/v at position ctx-1 before attending over
        # it: poisoned before the verified call, so a step that skips the append fails.
        "scratch": [cache[:, :, ctx - 1] for cache in (k_cache, v_cache)],
        "cfg": cfg,
        "context": ctx,
    }


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _layer_reference(inp, params, dtype):
    """The layer in float64 for every sequence (in chunks that bound the float64 cache), each
    element checked at the scale of its row's root-mean-square."""
    cfg = kd.PRESETS[params["preset"]]
    w = {k: t.double() for k, t in inp["weights"].items()}
    batch, per_row = params["batch"], 2 * cfg.kv_heads * params["context"] * cfg.head_dim
    step = max(1, _REF_ELEMENTS // per_row)
    out = torch.cat([_layer_rows(inp, w, cfg, params["context"], list(range(r, min(r + step, batch))))
                     for r in range(0, batch, step)])
    rms = out.pow(2).mean(-1, keepdim=True).sqrt()
    return verify.Expected(out, rms, "every sequence against float64")


def _layer_rows(inp, w, cfg, ctx, rows):
    hq, hkv, d, eps = cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.norm_eps
    x = inp["x"][rows].double()
    qkv = _rms(x, w["attn_norm"], eps) @ w["wqkv"].T
    q = qkv[:, :hq * d].view(-1, hkv, hq // hkv, d)
    k_new = qkv[:, hq * d:(hq + hkv) * d].view(-1, hkv, 1, d)
    v_new = qkv[:, (hq + hkv) * d:].view(-1, hkv, 1, d)
    # Positions before ctx-1 are the cache's; position ctx-1 is this step's token.
    k = torch.cat([inp["k_cache"][rows, :, :ctx - 1].double(), k_new], dim=2)
    v = torch.cat([inp["v_cache"][rows, :, :ctx - 1].double(), v_new], dim=2)
    p = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(d), dim=-1)
    x1 = x + (p @ v).reshape(len(rows), hq * d) @ w["wo"].T
    gate, up = (_rms(x1, w["mlp_norm"], eps) @ w["w13"].T).chunk(2, dim=-1)
    return x1 + (F.silu(gate) * up) @ w["w2"].T


def _layer_triton(inp):
    try:
        import kernels.gemm  # noqa: F401  (the GEMM family's skinny GEMM, used by layer_step)
    except ModuleNotFoundError:
        raise Skip("kernels.gemm (the GEMM family's linear) is not available") from None
    _interpreter_bf16(inp["x"])
    x, w, kc, vc, lengths, out, cfg, ctx = (
        inp[n] for n in ("x", "weights", "k_cache", "v_cache", "lengths", "out", "cfg", "context"))
    return lambda: kd.layer_step(x, w, kc, vc, lengths, ctx, cfg, out=out)


def _layer_triton_prepared(inp):
    """The same step with its launches prepared once (kernels.launch): replayed straight into the
    compiled kernels, without the launchers' Python work."""
    mine = [inp[n] for n in ("x", "k_cache", "v_cache", "lengths", "out")] + list(inp["weights"].values())
    # The step's own buffers join what the runner poisons before the verified (replayed) call.
    inp["prepared"] = launch.PrepareOnFirstCall(_layer_triton(inp), mine,
                                                then=lambda p: inp["scratch"].extend(p.scratch))
    return inp["prepared"]


def _prepared_config(inp) -> dict:
    prepared = inp["prepared"].prepared if "prepared" in inp else None
    return {"attention": kd.last_config(),
            "launch": f"prepared: {len(prepared.launches)} launches replayed" if prepared is not None else None}


def _layer_torch(inp):
    """The step as a user writes it in torch; SDPA on the best fused backend that
    runs it (cuDNN, then flash, then memory-efficient), recorded in the config."""
    x, w, kc, vc, out, cfg, ctx = (inp[n] for n in ("x", "weights", "k_cache", "v_cache", "out", "cfg", "context"))
    hidden, hq, hkv, d, eps = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.norm_eps
    b = x.shape[0]

    def step_with(backend):
        def step():
            qkv = F.linear(F.rms_norm(x, (hidden,), w["attn_norm"], eps), w["wqkv"])
            kc[:, :, ctx - 1].copy_(qkv[:, hq * d:(hq + hkv) * d].view(b, hkv, d))
            vc[:, :, ctx - 1].copy_(qkv[:, (hq + hkv) * d:].view(b, hkv, d))
            attn = _sdpa_call(backend, qkv[:, :hq * d].view(b, hq, 1, d), kc, vc, None, hq != hkv)()
            x1 = x + F.linear(attn.reshape(b, hq * d), w["wo"])
            gate, up = F.linear(F.rms_norm(x1, (hidden,), w["mlp_norm"], eps), w["w13"]).chunk(2, dim=-1)
            return torch.add(x1, F.linear(F.silu(gate) * up, w["w2"]), out=out)
        return step

    reasons = []
    for backend in SDPA_BACKENDS:
        step = step_with(backend)
        try:
            _try_sdpa(backend, step)
        except Skip as e:
            reasons.append(str(e))
            continue
        inp["sdpa_backend"] = backend
        return step
    raise Skip("no fused SDPA backend runs this case: " + " | ".join(reasons))


def _layer_skip(p, dtype, device) -> str | None:
    cfg = kd.PRESETS[p["preset"]]
    e = element_size(dtype)
    weights = sum(math.prod(s) for s in kd.layer_weight_shapes(cfg).values())
    cache = 2 * p["batch"] * cfg.kv_heads * p["context"] * cfg.head_dim
    checked = 3 * min(p["batch"] * 2 * cfg.kv_heads * p["context"] * cfg.head_dim, _REF_ELEMENTS)
    return _too_big((weights + cache) * e + (weights + checked) * 8, device)


def _layer_case(preset, batch, context):
    return {"preset": preset, "batch": batch, "context": context}


register(Workload(
    name="decode-layer",
    family="decode",
    description="one decode step of a transformer layer (norms, projections, attention, MLP); tokens/s = batch/time",
    dtypes=("bf16", "fp16"),
    quick_dtypes=("bf16",),
    cases={
        "quick": [_layer_case("llama-3-8b", b, 8192) for b in (1, 32, 256)],
        "full": [_layer_case("llama-3-8b", b, c) for b in (1, 4, 16, 32, 64, 256) for c in (1024, 8192, 32768)],
        "interpret": [_layer_case("tiny", 1, 5), _layer_case("tiny", 3, 33)],
    },
    make_inputs=_layer_inputs,
    impls=(
        Impl("triton", vendor=False, prepare=_layer_triton, config=lambda inp: {"attention": kd.last_config()}),
        Impl("triton-prepared", vendor=False, prepare=_layer_triton_prepared, config=_prepared_config),
        Impl("torch", vendor=True, prepare=_layer_torch, backend="torch",
             config=lambda inp: {"sdpa_backend": inp.get("sdpa_backend")}),
    ),
    reference=_layer_reference,
    flops=lambda p, d: kd.layer_flops(kd.PRESETS[p["preset"]], p["batch"], p["context"]),
    bytes=lambda p, d: kd.layer_bytes(kd.PRESETS[p["preset"]], p["batch"], p["context"], element_size(d)),
    skip=_layer_skip,
    label=lambda p: f"{p['preset']} B={p['batch']} ctx={p['context']}",
))
