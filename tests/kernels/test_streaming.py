"""kernels/streaming.py against float64 references, on ragged sizes."""
import math

import pytest
import torch
import triton
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import streaming as ks

ELEMENTWISE = ("copy", "scale", "add", "triad", "fill")


def _rand(n, dtype, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return (torch.rand(n, generator=g, device=device) + 0.5).to(dtype)


def _expected(kernel, a, b, s):
    a64 = a.double() if a is not None else None
    b64 = b.double() if b is not None else None
    return {"copy": lambda: a64, "scale": lambda: s * a64, "add": lambda: a64 + b64,
            "triad": lambda: a64 + s * b64, "read": lambda: a64.sum().reshape(1)}[kernel]()


def _run(kernel, n, dtype, device, seed=0):
    a, b, s = _rand(n, dtype, device, seed), _rand(n, dtype, device, seed + 1), 1.25
    if kernel == "read":
        out = torch.full((1,), math.nan, device=device)
        ks.stream("read", a, None, out)
        return out, _expected("read", a, None, s)
    out = torch.full((n,), math.nan, dtype=dtype, device=device)  # poisoned: unwritten shows as NaN
    ks.stream(kernel, a, b, out, s)
    if kernel == "fill":
        return out, torch.full((n,), s, dtype=torch.float64, device=device)
    return out, _expected(kernel, a, b, s)


def _rel(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("kernel", ELEMENTWISE + ("read",))
@pytest.mark.parametrize("n", [1, 1000, 4097, 3 * 2048 + 5])
def test_fp32_matches_reference(kernel, n, device):
    out, ref = _run(kernel, n, torch.float32, device)
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    assert _rel(out, ref) < 1e-6


@pytest.mark.parametrize("kernel", ELEMENTWISE + ("read",))
# bf16 runs in the interpreter here because the kernels compute in fp32 (the
# interpreter only mis-computes arithmetic done in bf16 itself).
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_round_once(kernel, dtype, device):
    n = 2 * 4096 + 77
    out, ref = _run(kernel, n, dtype, device)
    assert torch.isfinite(out).all()
    # One rounding to the output type: below 2^-8 (bf16) / 2^-11 (fp16) relative per element.
    # `read` accumulates in fp32 and returns fp32, so it is held to fp32 accumulation.
    bound = 1e-6 if kernel == "read" else (2 ** -8 if dtype == torch.bfloat16 else 2 ** -11)
    assert _rel(out, ref) < bound


@settings(max_examples=8, deadline=None)
@given(n=st.integers(min_value=1, max_value=20000), kernel=st.sampled_from(ELEMENTWISE + ("read",)))
def test_any_size(n, kernel):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out, ref = _run(kernel, n, torch.float32, device, seed=n)
    assert torch.isfinite(out).all()
    assert _rel(out, ref) < 1e-6


@pytest.mark.parametrize("kernel", ELEMENTWISE)
def test_verification_fails_a_kernel_that_skips_its_last_partial_block(kernel, device):
    """The sweep's own check (the workload's reference, every element, finiteness) against the real
    kernel told to stop at the last whole block (the bug of a floor where a ceiling belongs): the 3
    elements of the partial last block stay poisoned."""
    from suite import verify
    from suite.workloads import all_workloads

    w = all_workloads()[f"stream-{kernel}"]
    params = {"array_bytes": 4 * (4096 + 3)}
    inp = w.make_inputs(params, "fp32", device, torch.Generator(device=device).manual_seed(4))
    ref = w.reference(inp, params, "fp32")
    verify.poison(inp)
    a, b = (inp[k] if inp[k] is not None else inp["out"] for k in ("a", "b"))
    n = inp["out"].numel()
    whole_blocks = n // 1024 * 1024
    op = ks.KERNELS[kernel].op
    ks._elementwise_kernel[(n // 1024,)](a, b, inp["out"], inp["s"], whole_blocks, OP=op, BLOCK=1024)
    short = verify.check_output(w, inp["out"], ref, params, "fp32")
    assert "NaN" in verify.problem(short)
    ks._elementwise_kernel[(triton.cdiv(n, 1024),)](a, b, inp["out"], inp["s"], n, OP=op, BLOCK=1024)
    assert verify.problem(verify.check_output(w, inp["out"], ref, params, "fp32")) is None


def test_every_autotune_candidate_becomes_kernel_arguments():
    import inspect
    params = inspect.signature(ks._elementwise_kernel.fn).parameters
    out = torch.empty(10)
    pruned = ks._with_block(ks._elementwise_configs(), {"out_ptr": out})
    assert len(pruned) == len(ks._elementwise_configs())
    for cfg in pruned:
        assert set(cfg.kwargs) <= set(params), cfg.kwargs
        vectors = cfg.kwargs["BLOCK"] * 4 / (cfg.num_warps * 32 * 16)
        assert vectors in (1, 2)  # 16-byte accesses per thread and array


def test_traffic_model():
    assert ks.stream_bytes("copy", 1000, 4) == 8000
    assert ks.stream_bytes("triad", 1000, 2) == 6000
    assert ks.stream_bytes("read", 1000, 4) == 4004  # plus the fp32 result
    assert ks.stream_bytes("fill", 1000, 4) == 4000
    assert ks.stream_flops("triad", 1000) == 2000
    assert ks.stream_flops("copy", 1000) == 0


def test_rejects_bad_arguments(device):
    a = torch.ones(10, device=device)
    with pytest.raises(ValueError, match="unknown streaming kernel"):
        ks.stream("nope", a, None, a)
    with pytest.raises(ValueError, match="size mismatch"):
        ks.stream("copy", torch.ones(11, device=device), None, a)
    with pytest.raises(ValueError, match="1-element float32"):
        ks.stream("read", a, None, torch.empty(2, device=device))


@pytest.mark.parametrize("programs", [1, 3, 100])
@pytest.mark.parametrize("kernel", ELEMENTWISE)
def test_persistent_grid_covers_every_block(kernel, programs, device):
    """Fewer programs than blocks (the persistent candidates) still write every element once."""
    import triton
    n = 5 * 1024 + 17
    a, b = _rand(n, torch.float32, device, 1), _rand(n, torch.float32, device, 2)
    out = torch.full((n,), math.nan, device=device)
    assert triton.cdiv(n, 1024) == 6
    # Passed as the autotuner passes a config: every config key is a kernel argument.
    ks._elementwise_kernel[(min(programs, 6),)](a, b, out, 1.25, n, OP=ks.KERNELS[kernel].op, BLOCK=1024,
                                                PROGRAMS_PER_SM=programs)
    ref = torch.full((n,), 1.25, dtype=torch.float64, device=device) if kernel == "fill" else \
        _expected(kernel, a, b, 1.25)
    assert torch.isfinite(out).all() and _rel(out, ref) < 1e-6
