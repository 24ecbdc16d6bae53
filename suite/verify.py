"""Checking an output against its float64 reference, and poisoning outputs first.

Three checks, all of which must pass (`check`):
- every element of the whole output is finite (outputs are poisoned with NaN
  first, so an element nobody wrote fails here even where no reference covers it);
- each checked element against its own tolerance,
      |out - ref| <= ELEMENT_FACTOR * tolerance * (|ref| + scale),
  where `scale` is the magnitude the element's rounding errors grow with (a
  GEMM's root-sum-square of its products, an attention row's sum of p*v, ...),
  so a wrong tile or a wrong row fails even where the whole output's norm hides it;
- the normwise relative error ||out - ref|| / ||ref|| over the checked elements,
  within the dtype's tolerance.
Workloads choose which elements the reference covers (every element where it
is affordable; otherwise elements that touch every output row, head or
sequence) and say so in `Expected.method`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Chunk size for the error computations: bounds the float64 temporaries of a
# multi-GiB output to 2^24 elements (128 MiB) at a time.
_CHUNK = 1 << 24
# An element may be this many normwise tolerances of its magnitude off. The normwise tolerances are a
# few roundings of the output type, so the factor keeps a clear margin over the largest rounding error
# among 2^28 elements, while any element that is zero, swapped or stale where its reference is not
# (an error of the size of the element itself) exceeds it by an order of magnitude for every dtype.
ELEMENT_FACTOR = 4.0


@dataclass
class Expected:
    """A reference: float64 values of the checked elements (in the order `Workload.check_view`
    selects them from the output), the magnitude each one's rounding errors scale with (a
    tensor broadcastable to `values`, a number, or None for |values| alone), and what it covers."""
    values: torch.Tensor
    scale: torch.Tensor | float | None = None
    method: str = "every element against a float64 reference"


def as_expected(ref) -> Expected:
    return ref if isinstance(ref, Expected) else Expected(ref)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Normwise relative error ||out - ref|| / ||ref|| in float64; inf if out holds NaN/inf.

    Shapes must match exactly: a transposed or broadcast result is an error, not a pass.
    """
    if tuple(out.shape) != tuple(ref.shape):
        raise ValueError(f"output shape {tuple(out.shape)} != reference shape {tuple(ref.shape)}")
    o, r = out.reshape(-1), ref.reshape(-1)
    if r.device != o.device:
        r = r.to(o.device)
    num = torch.zeros((), dtype=torch.float64, device=o.device)
    den = torch.zeros((), dtype=torch.float64, device=o.device)
    for i in range(0, o.numel(), _CHUNK):
        oc, rc = o[i:i + _CHUNK].double(), r[i:i + _CHUNK].double()
        d = oc - rc
        num += torch.dot(d, d)
        den += torch.dot(rc, rc)
    num_f, den_f = num.item(), den.item()  # one sync for the whole check
    if not math.isfinite(num_f):
        return math.inf
    return math.sqrt(num_f / den_f) if den_f > 0 else math.sqrt(num_f)


def all_finite(out) -> bool:
    """Whether every element of `out` (a tensor or a tuple of them) is finite."""
    tensors = out if isinstance(out, (tuple, list)) else (out,)
    ok = True
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            flat = t.reshape(-1)
            for i in range(0, flat.numel(), _CHUNK):
                ok = ok and bool(torch.isfinite(flat[i:i + _CHUNK]).all())
    return ok


def _compare(out: torch.Tensor, expected: Expected, tolerance: float) -> tuple[float, float, bool]:
    """One pass over the checked elements: (normwise relative error, the largest
    |out - ref| / (ELEMENT_FACTOR * tolerance * (|ref| + scale)), all of them finite)."""
    ref = expected.values
    if tuple(out.shape) != tuple(ref.shape):
        raise ValueError(f"output shape {tuple(out.shape)} != reference shape {tuple(ref.shape)}")
    scale = expected.scale
    if isinstance(scale, torch.Tensor):
        scale = torch.broadcast_to(scale.to(ref.device), ref.shape)
    if ref.dim() == 0:
        out, ref = out.reshape(1), ref.reshape(1)
        scale = scale.reshape(1) if isinstance(scale, torch.Tensor) else scale
    out = out.to(ref.device) if out.device != ref.device else out
    # Chunks run along the leading dimension, so a broadcast scale stays aligned with its elements.
    rows = ref.shape[0]
    step = max(1, _CHUNK // max(1, ref.numel() // max(rows, 1)))
    bound = ELEMENT_FACTOR * tolerance
    num = torch.zeros((), dtype=torch.float64, device=ref.device)
    den = torch.zeros((), dtype=torch.float64, device=ref.device)
    worst = torch.zeros((), dtype=torch.float64, device=ref.device)
    finite = torch.ones((), dtype=torch.bool, device=ref.device)
    for i in range(0, rows, step):
        r = ref[i:i + step].to(torch.float64, copy=True)
        d = out[i:i + step].to(torch.float64, copy=True).sub_(r)
        num += torch.sum(d * d)
        den += torch.sum(r * r)
        err = d.abs_()
        finite &= torch.isfinite(err).all()  # ref is finite: err is not exactly where out is not
        mag = r.abs_()
        if isinstance(scale, torch.Tensor):
            mag.add_(scale[i:i + step])
        elif scale is not None:
            mag.add_(float(scale))
        ratio = err.div(mag.mul_(bound))
        ratio.masked_fill_(err == 0, 0.0)  # 0/0: an exact zero where the reference is zero passes
        torch.nan_to_num_(ratio, nan=math.inf)  # a NaN fails
        worst = torch.maximum(worst, ratio.max())
    num_f, den_f = num.item(), den.item()  # one sync for the whole comparison
    if not math.isfinite(num_f):
        err_f = math.inf
    else:
        err_f = math.sqrt(num_f / den_f) if den_f > 0 else math.sqrt(num_f)
    return err_f, float(worst.item()), bool(finite.item())


def max_excess(out: torch.Tensor, expected: Expected, tolerance: float) -> float:
    """The largest |out - ref| / (ELEMENT_FACTOR * tolerance * (|ref| + scale)) over the checked
    elements: <= 1 passes; inf for a NaN or an element whose reference and tolerance are 0."""
    return _compare(out, as_expected(expected), tolerance)[1]


def check(out_full, selected: torch.Tensor, expected, tolerance: float) -> dict:
    """The record's `verify` field for an output: finiteness of the whole output `out_full`,
    the elementwise excess and the normwise error of `selected` (the checked elements) against
    `expected`. `problem(...)` of the result says why it fails, if it does."""
    expected = as_expected(expected)
    err, excess, selected_finite = _compare(selected, expected, tolerance)
    # Where the checked elements are the whole output, their pass already saw every element.
    finite = selected_finite if out_full is selected else (selected_finite and all_finite(out_full))
    elements = sum(t.numel() for t in (out_full if isinstance(out_full, (tuple, list)) else (out_full,))
                   if isinstance(t, torch.Tensor))
    return {"rel_err": err, "tolerance": tolerance, "max_excess": excess, "element_factor": ELEMENT_FACTOR,
            "checked": int(expected.values.numel()), "elements": int(elements), "finite": finite,
            "method": expected.method}


def check_output(workload, out, expected, params, dtype: str) -> dict:
    """`check` of an implementation's output for a workload's case: the elements its
    `check_view` selects (all by default) against `expected`, at the dtype's tolerance (or the
    workload's own for that dtype)."""
    from suite.dtypes import DTYPES

    tolerance = workload.tolerance.get(dtype, DTYPES[dtype].tolerance)
    selected = workload.check_view(out, params) if workload.check_view else out
    return check(out, selected, expected, tolerance)


def problem(check_: dict) -> str | None:
    """Why a `check` result fails, in one line; None when it passes."""
    if not check_["finite"]:
        return "the output holds NaN or inf (an element left unwritten or a computation gone wrong)"
    if not check_["max_excess"] <= 1:
        return (f"an element is {check_['max_excess']:.3g}x its tolerance "
                f"({check_['element_factor']:g} x {check_['tolerance']:.3g} x its magnitude)")
    if not check_["rel_err"] <= check_["tolerance"]:
        return f"rel_err {check_['rel_err']:.3g} > tolerance {check_['tolerance']:.3g}"
    return None


def poison(inputs: dict) -> None:
    """Fill the inputs' output buffer(s) under "out" with NaN so unwritten elements fail, and
    the buffers under "scratch" too: what a call must write before it reads (an intermediate
    kept between calls, the cache slot a decode step appends to), so that a call which skips
    writing one computes from NaN, not from an earlier call's correct values."""
    for key in ("out", "scratch"):
        found = inputs.get(key)
        for t in found if isinstance(found, (tuple, list)) else (found,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                t.fill_(math.nan)


def poison_allocator(nbytes: int, device) -> None:
    """Leave NaN bytes (0xFF..) in the caching allocator's free blocks.

    Implementations that allocate their own output (torch.matmul, SDPA) get a
    recycled block; filling one of that size with 0xFF first means an
    implementation that writes nothing returns NaN, not a stale correct result
    from an earlier call.
    """
    if nbytes > 0 and torch.device(device).type == "cuda":
        junk = torch.empty(nbytes, dtype=torch.uint8, device=device)
        junk.fill_(0xFF)
        del junk
