"""GEMM family: the compute ceilings of the roofline, and the decode-shaped skinny GEMM.

- gemm-square: M = N = K from 256 to 16384, every dtype (fp32 is IEEE on CUDA cores and stops at
  8192, tf32 the same storage on tensor cores, fp8 e4m3 with per-tensor scales and a bf16 result).
- gemm-k-sweep: M = N = 8192 with K rising, so the arithmetic intensity rises from the memory-bound
  side to the compute-bound side (bf16, fp8).
- gemm-shape-search: a bounded grid of M, N, K (multiples of the 128x256 tile; bf16 all 27 shapes,
  fp8 the K = 8192 plane); the best figure per dtype, Triton and vendor each, is the measured
  compute ceiling.
- gemm-skinny: y = x @ w.T for M = 1..1024 rows against 8192x8192 and 28672x8192 weights (an LLM's
  projections and MLP up-projection), bytes/s and FLOP/s both from the record, so the batch size
  where the GEMM stops being memory-bound shows (bf16; fp16 for M <= 64 on the first weight).

Vendor rows: torch.matmul (cuBLAS), with tf32 switched on only inside the tf32 rows' closure;
torch._scaled_mm for fp8, once with its default accumulation (cuBLAS promotes the fp8 partial sums
into full fp32 periodically) and once with use_fast_accum=True (the tensor cores' own fp32
accumulator all along, which is what the Triton kernel does); torch.nn.functional.linear for skinny.

Inputs are random magnitudes in [0.5, 1.5) with random signs: never zero, zero-mean (a sum of n
outputs stays about sqrt(n) outputs large), far inside fp8's range; the reference upcasts the
rounded inputs, so rounding them to the dtype costs no accuracy.

Verification: every element of the output against a float64 product of the upcast inputs, each
held to its own tolerance (scaled by the root-sum-square of its products), and every element
finite: a zeroed, stale or misplaced tile fails however small a part of the output it is.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from kernels import gemm as kg
from suite import verify
from suite.dtypes import DTYPES, element_size
from suite.registry import Impl, Skip, Workload, register

GEMM_DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")

# Interpreter cases: tiny, ragged (not multiples of any block), one with a single row.
_INTERPRET = [{"M": 37, "N": 29, "K": 45}, {"M": 1, "N": 19, "K": 40}, {"M": 70, "N": 48, "K": 33}]


def _mnk(p):
    return p["M"], p["N"], p["K"]


def _label(p) -> str:
    return "{}x{}x{}".format(*_mnk(p))


def _signed_uniform(shape, gen, device) -> torch.Tensor:
    magnitude = torch.rand(shape, generator=gen, device=device) + 0.5
    sign = torch.randint(0, 2, shape, generator=gen, device=device) * 2 - 1
    return magnitude * sign


def _gemm_inputs(params, dtype, device, gen):
    M, N, K = _mnk(params)
    a = _signed_uniform((M, K), gen, device)
    inputs = {"dtype": dtype, "scale_a": None, "scale_b": None}
    if dtype == "fp8":
        # torch._scaled_mm's layout: b column-major, i.e. b = w.t() for a row-major w [N, K].
        w = _signed_uniform((N, K), gen, device)
        scales = torch.rand(2, generator=gen, device=device) + 0.5
        inputs.update(a=a.to(torch.float8_e4m3fn), b=w.to(torch.float8_e4m3fn).t(),
                      scale_a=scales[0].clone(), scale_b=scales[1].clone(),
                      out=torch.empty((M, N), device=device, dtype=torch.bfloat16))
    else:
        tdt = DTYPES[dtype].torch_dtype
        inputs.update(a=a.to(tdt), b=_signed_uniform((K, N), gen, device).to(tdt),
                      out=torch.empty((M, N), device=device, dtype=tdt))
    return inputs


def _skinny_inputs(params, dtype, device, gen):
    M, N, K = _mnk(params)
    tdt = DTYPES[dtype].torch_dtype
    return {"dtype": dtype, "x": _signed_uniform((M, K), gen, device).to(tdt),
            "w": _signed_uniform((N, K), gen, device).to(tdt),
            "out": torch.empty((M, N), device=device, dtype=tdt)}


# --- verification ---------------------------------------------------------------------------

def _expected(A, B, scale: float = 1.0) -> verify.Expected:
    """float64 A @ B (times `scale`) for every element, and each element's root-sum-square of its
    products, sqrt(sum_k a_ik^2 b_kj^2): the size of the rounding error of inputs or partial sums
    (the scale of its elementwise check). Two float64 GEMMs, affordable on the GPU at every size
    the sweep runs."""
    A, B = A.double(), B.double()
    values = (A @ B).mul_(scale)
    A.square_()
    B.square_()
    rss = (A @ B).sqrt_().mul_(abs(scale))
    return verify.Expected(values, rss, "every element against a float64 product")


def _gemm_reference(inp, params, dtype):
    scale = float(inp["scale_a"] * inp["scale_b"]) if dtype == "fp8" else 1.0
    return _expected(inp["a"], inp["b"], scale)


def _skinny_reference(inp, params, dtype):
    return _expected(inp["x"], inp["w"].t())


# --- implementations ------------------------------------------------------------------------

def _triton_runs_here(inp, tensor):
    if tensor.device.type == "cpu" and inp["dtype"] == "bf16":
        raise Skip("Triton's interpreter mis-computes bf16 dot products (triton#11584); checked on the GPU")


def _triton_gemm(inp):
    a, b, out = inp["a"], inp["b"], inp["out"]
    _triton_runs_here(inp, a)
    if inp["dtype"] == "fp8":
        sa, sb = inp["scale_a"], inp["scale_b"]

        def run():
            try:
                return kg.matmul_fp8(a, b, sa, sb, out)
            except kg.Unsupported as e:
                raise Skip(str(e)) from e

        return run
    precision = "tf32" if inp["dtype"] == "tf32" else "ieee"
    return lambda: kg.matmul(a, b, out, precision=precision)


def _triton_gemm_config(inp):
    a, b = inp["a"], inp["b"]
    op = "matmul_fp8" if inp["dtype"] == "fp8" else "matmul"
    return kg.chosen_config(op, a.shape[0], b.shape[1], a.shape[1], a.dtype,
                            "tf32" if inp["dtype"] == "tf32" else "ieee")


def _torch_matmul(inp):
    a, b, out = inp["a"], inp["b"], inp["out"]
    if inp["dtype"] not in ("fp32", "tf32"):
        return lambda: torch.matmul(a, b, out=out)
    # cuBLAS reads its fp32 mode per call: set it for this call only and restore it, so no
    # other row (or workload) runs with tf32 by accident; host-side, so graph capture keeps it.
    mode = "tf32" if inp["dtype"] == "tf32" else "ieee"

    def run():
        backend = torch.backends.cuda.matmul
        previous = backend.fp32_precision
        backend.fp32_precision = mode
        try:
            return torch.matmul(a, b, out=out)
        finally:
            backend.fp32_precision = previous

    return run


def _scaled_mm(fast_accum: bool):
    def prepare(inp):
        a, b, out, sa, sb = inp["a"], inp["b"], inp["out"], inp["scale_a"], inp["scale_b"]
        return lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                        use_fast_accum=fast_accum, out=out)
    return prepare


_GEMM_IMPLS = (
    # IEEE fp32 transposes A first (two launches); tf32 may transpose B first (chosen per shape).
    Impl("triton", vendor=False, prepare=_triton_gemm, config=_triton_gemm_config,
         launches=lambda p, d: {"fp32": 2, "tf32": None}.get(d, 1)),
    Impl("torch.matmul", vendor=True, prepare=_torch_matmul, dtypes=("fp32", "tf32", "fp16", "bf16"),
         backend="cuBLAS"),
    Impl("torch._scaled_mm", vendor=True, prepare=_scaled_mm(False), dtypes=("fp8",), backend="cuBLASLt"),
    Impl("torch._scaled_mm(fast_accum)", vendor=True, prepare=_scaled_mm(True), dtypes=("fp8",),
         backend="cuBLASLt"),
)


def _gemm_flops(p, dtype):
    return kg.gemm_flops(*_mnk(p))


def _gemm_bytes(p, dtype):
    if dtype == "fp8":
        return kg.gemm_bytes(*_mnk(p), 1, 2) + 8  # + the two fp32 scales
    return kg.gemm_bytes(*_mnk(p), element_size(dtype), element_size(dtype))


def _cube(n):
    return {"M": n, "N": n, "K": n}


def _square_skip(p, dtype, *_):
    # IEEE fp32 runs on CUDA cores (~50 TFLOP/s): 16384^3 takes ~0.2 s a call, and its ceiling is
    # already reached at 8192.
    if dtype == "fp32" and p["M"] > 8192:
        return "fp32 (CUDA cores) stops at 8192^3: 16384^3 costs ~0.2 s a call for the same ceiling"
    return None


def _register_gemm(name: str, description: str, dtypes, cases, skip=None, view="gemm") -> None:
    """The square, K-sweep and shape-search workloads differ only in their cases (and the search in
    how it is reported: its best shape per side)."""
    register(Workload(name=name, family="gemm", description=description, dtypes=dtypes, cases=cases,
                      make_inputs=_gemm_inputs, impls=_GEMM_IMPLS, reference=_gemm_reference,
                      flops=_gemm_flops, bytes=_gemm_bytes, skip=skip, label=_label,
                      view=view, roof="compute"))


_register_gemm(
    "gemm-square", "C = A @ B, M = N = K", GEMM_DTYPES,
    {
        # 4096^3 and 8192^3: where every dtype's ceiling was reached in the full sweep.
        "quick": [_cube(n) for n in (4096, 8192)],
        "full": [_cube(1 << e) for e in range(8, 15)],
        "interpret": _INTERPRET,
    },
    skip=_square_skip,
)

K_SWEEP_MN = 8192

_register_gemm(
    "gemm-k-sweep", f"C = A @ B at M = N = {K_SWEEP_MN}, K rising (intensity rising)", ("bf16", "fp8"),
    {
        # The memory-bound end and the longest K (where fp8 reaches its ceiling).
        "quick": [{"M": K_SWEEP_MN, "N": K_SWEEP_MN, "K": k} for k in (512, 16384)],
        "full": [{"M": K_SWEEP_MN, "N": K_SWEEP_MN, "K": 1 << e} for e in range(7, 15)],
        "interpret": _INTERPRET,
    },
)

# The search grid, multiples of the 128x256 tile (6144 and 12288 give other wave counts over the
# SMs than the powers of two). bf16 runs the whole grid; fp8 its K = 8192 plane.
_SEARCH_M = (4096, 6144, 8192)
_SEARCH_N = (4096, 8192, 12288)
_SEARCH_K = (4096, 8192, 16384)
_SEARCH_FP8_K = 8192


def _search_skip(p, dtype, *_):
    if dtype == "fp8" and p["K"] in _SEARCH_K and p["K"] != _SEARCH_FP8_K:
        return f"fp8 searches the K={_SEARCH_FP8_K} plane only (time budget)"
    return None


_register_gemm(
    "gemm-shape-search", "C = A @ B over a grid of M, N, K; the best per dtype is the compute ceiling",
    ("bf16", "fp8"),
    {
        "quick": [{"M": 6144, "N": 12288, "K": 8192}, {"M": 8192, "N": 4096, "K": 4096},
                  {"M": 6144, "N": 4096, "K": 16384}],
        "full": [{"M": m, "N": n, "K": k} for m in _SEARCH_M for n in _SEARCH_N for k in _SEARCH_K],
        "interpret": _INTERPRET,
    },
    skip=_search_skip,
    view="gemm-search",
)


# --- skinny ---------------------------------------------------------------------------------

SKINNY_M = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Weights [N, K] in nn.Linear's layout: an 8192-wide model's square projection and its MLP
# up-projection (28672 = 3.5 x 8192).
SKINNY_WEIGHTS = ((8192, 8192), (28672, 8192))


def _skinny_label(p) -> str:
    return f"M={p['M']} w={p['N']}x{p['K']}"


def _triton_linear(inp):
    x, w, out = inp["x"], inp["w"], inp["out"]
    _triton_runs_here(inp, x)
    return lambda: kg.linear(x, w, out)


def _skinny_skip(p, dtype, *_):
    weight = (p["N"], p["K"])
    if dtype == "fp16" and weight in SKINNY_WEIGHTS and (weight != SKINNY_WEIGHTS[0] or p["M"] > 64):
        return "fp16 runs the memory-bound rows (M <= 64) of the first weight only (time budget)"
    return None


register(Workload(
    name="gemm-skinny",
    family="gemm",
    description="y = x @ w.T, few rows of x against a large weight (decode)",
    dtypes=("bf16", "fp16"),
    quick_dtypes=("bf16",),
    cases={
        "quick": [{"M": m, "N": 8192, "K": 8192} for m in (1, 16, 64, 256)],
        "full": [{"M": m, "N": n, "K": k} for n, k in SKINNY_WEIGHTS for m in SKINNY_M],
        "interpret": [{"M": 1, "N": 40, "K": 72}, {"M": 5, "N": 33, "K": 100}, {"M": 130, "N": 24, "K": 40}],
    },
    make_inputs=_skinny_inputs,
    impls=(
        Impl("triton", vendor=False, prepare=_triton_linear, launches=1,
             config=lambda inp: kg.chosen_config("linear", inp["x"].shape[0], inp["w"].shape[0],
                                                 inp["x"].shape[1], inp["x"].dtype)),
        Impl("torch.nn.functional.linear", vendor=True, prepare=lambda inp: (lambda: F.linear(inp["x"], inp["w"])),
             backend="cuBLAS"),
    ),
    reference=_skinny_reference,
    flops=_gemm_flops,
    bytes=lambda p, d: kg.gemm_bytes(*_mnk(p), element_size(d), element_size(d)),
    skip=_skinny_skip,
    label=_skinny_label,
    view="gemm-skinny",
    # The weight must come from HBM on every call, as in decoding; rotating input sets past the
    # L2 matters for weights small enough to stay resident.
    rotate_past_l2=2.0,
))
