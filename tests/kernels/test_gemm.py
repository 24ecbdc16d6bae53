"""GEMM kernels and the gemm workload declarations, on tiny ragged shapes.

Runs through Triton's interpreter without a GPU (and for real on one). Errors are normwise
relative errors against float64 products of the upcast inputs, held to suite.dtypes' tolerances;
a test below shows a result with one K block missing fails them.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import triton
from hypothesis import given, settings
from hypothesis import strategies as st
from triton.backends.compiler import GPUTarget

from conftest import INTERPRETING, interpreter_bf16_broken
from kernels import device as gpu
from kernels import gemm as kg
from kernels import gemm_tuning as gt
from kernels import sgemm as ksg
from kernels import skinny as ks
from kernels import tuning as kt
from suite import verify
from suite.dtypes import DTYPES
from suite.registry import Skip
from suite.workloads import all_workloads
from suite.workloads import gemm as wg

TORCH = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def signed(shape, seed, device, dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(seed)
    return wg._signed_uniform(shape, g, device).to(dtype)


def rel_err(out, ref) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def poisoned(M, N, dtype, device):
    return torch.full((M, N), float("nan"), device=device, dtype=dtype)


@pytest.mark.parametrize("dtype", ["fp32", "tf32", "fp16", pytest.param("bf16", marks=interpreter_bf16_broken)])
@pytest.mark.parametrize("M,N,K", [(37, 29, 45), (1, 33, 17), (70, 5, 100)])
def test_matmul_ragged(dtype, M, N, K, device):
    # Interpreter note: tf32 is computed there in full fp32 (no operand rounding), so this checks
    # the tf32 path's plumbing; the rounding itself is exercised on the GPU.
    a, b = signed((M, K), 1, device, TORCH[dtype]), signed((K, N), 2, device, TORCH[dtype])
    out = poisoned(M, N, TORCH[dtype], device)
    kg.matmul(a, b, out, precision="tf32" if dtype == "tf32" else "ieee")
    assert rel_err(out, a.double() @ b.double()) < DTYPES[dtype].tolerance


def test_matmul_allocates_output_and_takes_strided_views(device):
    a = signed((40, 24), 3, device, torch.float16)
    b_storage = signed((60, 24), 4, device, torch.float16)
    b = b_storage[3:53].t()[:, ::2]  # [24, 25], neither row- nor column-major
    out = kg.matmul(a, b)
    assert out.shape == (40, 25) and out.dtype == torch.float16
    assert rel_err(out, a.double() @ b.double()) < DTYPES["fp16"].tolerance


def test_missing_k_block_fails_tolerance(device):
    # A kernel that skipped one K block (or a reference that did) must fail every dtype's
    # tolerance by orders of magnitude.
    M, N, K = 37, 29, 64
    a, b = signed((M, K), 5, device), signed((K, N), 6, device)
    wrong = kg.matmul(a[:, 16:], b[16:])  # one 16-wide K block dropped
    err = rel_err(wrong, a.double() @ b.double())
    assert err > 10 * max(d.tolerance for d in DTYPES.values())


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
@pytest.mark.parametrize("kmajor", [False, True])
def test_tma_persistent_path(dtype, kmajor, device):
    # The Hopper kernel's logic (descriptors, persistent tile walk over more tiles than
    # programs, split epilogue, K-major B), run through the interpreter or a Hopper GPU.
    if device == "cuda" and not gpu.has_tma(torch.device(device)):
        pytest.skip("needs a Hopper-class GPU")
    M, N, K = 100, 72, 48  # aligned rows (TMA), ragged against the 32x32 tiles
    a = signed((M, K), 7, device, TORCH[dtype])
    b = signed((N, K), 8, device, TORCH[dtype]).t() if kmajor else signed((K, N), 8, device, TORCH[dtype])
    out = poisoned(M, N, TORCH[dtype], device)
    key = gt.record_key("test", M, N, K, a.dtype, "tf32")
    kg._launch_tma(key, a, b, out, "tf32", None, None)
    assert rel_err(out, a.double() @ b.double()) < DTYPES["tf32" if dtype == "fp32" else dtype].tolerance
    entry = kt.chosen("gemm", key)
    assert entry["kernel"] == "gemm_tma_persistent" and entry["b_kmajor"] == kmajor


@pytest.mark.parametrize("M, N, tail, split", [(96, 96, 1, 4), (64, 64, 4, 2)])
def test_tma_tail_tiles_split_along_k(M, N, tail, split, device):
    # On the interpreter's 8 notional SMs with 32x32 tiles: 9 tiles leave one past a full wave,
    # 4 tiles fill no wave at all; both tails are split into shares of K, summed by the last
    # share to arrive, whose counter is re-armed for the next call. The kernel counts its
    # shares itself: exactly the shares the launcher planned (and records) hold partial sums.
    if device == "cuda":
        pytest.skip("the shares depend on the SM count: the GPU's own shapes are in tests/gpu")
    K = 256
    a, b = signed((M, K), 40, device, torch.float16), signed((K, N), 41, device, torch.float16)
    key = gt.record_key("test", M, N, K, a.dtype, "tf32")
    for _ in range(2):
        out = poisoned(M, N, torch.float16, device)
        if a.device in gt._WORKSPACE:
            gt._WORKSPACE[a.device][0].fill_(math.nan)
        kg._launch_tma(key, a, b, out, "tf32", None, None)
        assert rel_err(out, a.double() @ b.double()) < DTYPES["fp16"].tolerance
    assert kt.chosen("gemm", key)["tail_split"] == split
    assert int(gt._WORKSPACE[a.device][0].isfinite().sum()) == tail * split * 32 * 32
    assert not gt._WORKSPACE[a.device][1].any()


def test_tail_split_fills_the_last_wave():
    assert kg._tail_split(448, 132, 128, False) == 2  # 3 full waves, 52 tiles left: two shares each
    assert kg._tail_split(64, 132, 128, False) == 2  # 64 tiles, no full wave
    assert kg._tail_split(2048, 132, 128, False) == 1  # 68 left: one share each already fills 132
    assert kg._tail_split(448, 132, 128, True) == 1  # warp specialization: one tile loop only
    assert kg._tail_split(20, 132, 8, False) == 2 and kg._tail_split(20, 132, 7, False) == 1  # K blocks
    assert kg._tail_split(10, 132, 1024, False) == 4  # at most four shares


def test_transpose_kernel(device):
    t = signed((37, 70), 9, device)
    assert torch.equal(kg._transposed(t), t.t())


def test_tf32_row_major_b_transposed_first(device):
    if device == "cuda" and not gpu.has_tma(torch.device(device)):
        pytest.skip("needs a Hopper-class GPU")
    M, N, K = 64, 40, 36
    a, b = signed((M, K), 10, device), signed((K, N), 11, device)
    out = poisoned(M, N, torch.float32, device)
    key = gt.record_key("matmul", M, N, K, torch.float32, "tf32")
    kg._launch_tma_tf32_rowmajor_b(key, a, b, out)
    assert rel_err(out, a.double() @ b.double()) < DTYPES["tf32"].tolerance
    assert "b_transposed_first" in kg.chosen_config("matmul", M, N, K, torch.float32, "tf32")


@pytest.mark.parametrize("path", ["portable", "tma"])
def test_matmul_fp8(path, device):
    if device == "cuda" and torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("fp8 needs Hopper")
    M, N, K = 70, 48, 64
    a = signed((M, K), 12, device).to(torch.float8_e4m3fn)
    w = signed((N, K), 13, device).to(torch.float8_e4m3fn)
    sa, sb = torch.tensor(0.75, device=device), torch.tensor(1.5, device=device)
    out = poisoned(M, N, torch.bfloat16, device)
    if path == "tma":
        if device == "cuda" and not gpu.has_tma(torch.device(device)):
            pytest.skip("needs a Hopper-class GPU")
        kg._launch_tma(gt.record_key("test", M, N, K, a.dtype, None), a, w.t(), out, "tf32", sa, sb)
    else:
        kg.matmul_fp8(a, w.t(), sa, sb, out)
    ref = (a.double() @ w.double().t()) * (0.75 * 1.5)
    assert rel_err(out, ref) < DTYPES["fp8"].tolerance


def test_fp8_rejects_row_major_b(device):
    a = signed((16, 32), 14, device).to(torch.float8_e4m3fn)
    b = signed((32, 16), 15, device).to(torch.float8_e4m3fn)
    one = torch.tensor(1.0, device=device)
    with pytest.raises(ValueError, match="column-major"):
        kg.matmul_fp8(a, b, one, one)


def test_unsupported_is_a_plain_exception():
    # kernels/ knows nothing of suite/: the workload maps Unsupported to a recorded Skip.
    assert issubclass(kg.Unsupported, Exception) and not issubclass(kg.Unsupported, Skip)


@pytest.mark.parametrize("bad", ["shape", "dtype", "precision", "out"])
def test_matmul_rejects_bad_arguments(bad, device):
    a, b = signed((8, 16), 16, device), signed((16, 8), 17, device)
    with pytest.raises(ValueError):
        if bad == "shape":
            kg.matmul(a, b[:15])
        elif bad == "dtype":
            kg.matmul(a, b.half())
        elif bad == "precision":
            kg.matmul(a, b, precision="bf16")
        else:
            kg.matmul(a, b, torch.empty((8, 9), device=device))


@pytest.mark.parametrize("M", [1, 2, 3, 5, 16, 17])
def test_linear_few_rows(M, device):
    # N = 40 gives 3 weight bands of 16 on the interpreter's 8 notional SMs: split K is taken.
    N, K = 40, 104
    x, w = signed((M, K), 18, device, torch.float16), signed((N, K), 19, device, torch.float16)
    out = poisoned(M, N, torch.float16, device)
    kg.linear(x, w, out)
    assert rel_err(out, x.double() @ w.double().t()) < DTYPES["fp16"].tolerance
    if INTERPRETING:
        assert kg.chosen_config("linear", M, N, K, torch.float16)["split_k"] > 1


@pytest.mark.skipif(not INTERPRETING, reason="on a GPU the autotuner tries TMA and cp.async loads itself")
def test_linear_tma_weight_loads(monkeypatch):
    tma_config = triton.Config({**ks._INTERPRET_SKINNY_CONFIG.kwargs, "USE_TMA": True}, num_warps=4, num_stages=2)
    monkeypatch.setattr(ks, "_INTERPRET_SKINNY_CONFIG", tma_config)
    M, N, K = 3, 40, 104  # rows of 104 halves: 16-byte aligned, a TMA descriptor can describe them
    x, w = signed((M, K), 32, "cpu", torch.float16), signed((N, K), 33, "cpu", torch.float16)
    out = poisoned(M, N, torch.float16, "cpu")
    kg.linear(x, w, out)
    assert rel_err(out, x.double() @ w.double().t()) < DTYPES["fp16"].tolerance
    assert kg.chosen_config("linear", M, N, K, torch.float16)["USE_TMA"]


def _labels(configs):
    return sorted(gt.config_label(c) for c in configs)


def test_sgemm_sizes_that_leave_sms_idle_take_the_small_tiles(monkeypatch):
    monkeypatch.setattr(gpu, "num_sms", lambda device: 132)
    c = torch.empty(1)

    def pruned(n):
        return [(cfg.kwargs["BM"], cfg.kwargs["BN"])
                for cfg in ksg._prune_sgemm(ksg._sgemm_configs(), {"M": n, "N": n, "c_ptr": c})]

    assert set(pruned(512)) == {(64, 64), (32, 64), (32, 32)}  # 64 tiles of 64x64 on 132 SMs
    assert (32, 32) not in pruned(1024) and (64, 128) in pruned(1024)  # 256 tiles: the large ones


def test_wide_skinny_buckets_load_x_by_tma_where_they_can(monkeypatch):
    M, N, K = 200, 8192, 8192
    x, w = torch.empty((M, K), dtype=torch.float16), torch.empty((N, K), dtype=torch.float16)
    args = {"M": M, "x_ptr": x, "w_ptr": w}
    monkeypatch.setattr(gpu, "has_tma", lambda device: True)
    tma = ks._prune_skinny(ks._SKINNY_CONFIGS, args)
    assert tma and all(c.kwargs["BM"] == 256 and c.kwargs["X_TMA"] for c in tma)
    unaligned = {**args, "x_ptr": torch.empty((M, K + 1), dtype=torch.float16)[:, :K]}  # rows not 16-byte aligned
    fallback = ks._prune_skinny(ks._SKINNY_CONFIGS, unaligned)
    assert fallback and not any(c.kwargs.get("X_TMA") for c in fallback)
    monkeypatch.setattr(gpu, "has_tma", lambda device: False)
    assert _labels(ks._prune_skinny(ks._SKINNY_CONFIGS, args)) == _labels(fallback)
    assert all(not c.kwargs["USE_TMA"] for c in fallback)


def test_linear_split_k_counters_rearm(device):
    # The last split of each band resets its arrival counter: a second call must be right too.
    M, N, K = 3, 40, 104
    x, w = signed((M, K), 20, device, torch.float16), signed((N, K), 21, device, torch.float16)
    for _ in range(2):
        out = poisoned(M, N, torch.float16, device)
        kg.linear(x, w, out)
        assert rel_err(out, x.double() @ w.double().t()) < DTYPES["fp16"].tolerance
    assert not gt._WORKSPACE[x.device][1].any()


def test_linear_many_rows_takes_the_tiled_gemm(device):
    M, N, K = ks.SKINNY_MAX_M + 3, 24, 40
    x, w = signed((M, K), 22, device, torch.float16), signed((N, K), 23, device, torch.float16)
    out = kg.linear(x, w)
    assert rel_err(out, x.double() @ w.double().t()) < DTYPES["fp16"].tolerance
    assert kg.chosen_config("linear", M, N, K, torch.float16)["kernel"].startswith("gemm_")


@interpreter_bf16_broken
def test_linear_bf16(device):
    M, N, K = 4, 40, 104
    x, w = signed((M, K), 24, device, torch.bfloat16), signed((N, K), 25, device, torch.bfloat16)
    assert rel_err(kg.linear(x, w), x.double() @ w.double().t()) < DTYPES["bf16"].tolerance


@settings(max_examples=6, deadline=None)
@given(M=st.integers(1, 70), N=st.integers(1, 70), K=st.integers(1, 70), half=st.booleans())
def test_matmul_sizes(M, N, K, half):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if half else torch.float32
    a, b = signed((M, K), M, device, dtype), signed((K, N), N, device, dtype)
    out = kg.matmul(a, b)
    assert rel_err(out, a.double() @ b.double()) < DTYPES["fp16" if half else "fp32"].tolerance


def test_empty_problems(device):
    a, b = signed((5, 0), 28, device), signed((0, 7), 29, device)
    assert torch.equal(kg.matmul(a, b), torch.zeros((5, 7), device=device))
    x, w = signed((0, 8), 30, device, torch.float16), signed((3, 8), 31, device, torch.float16)
    assert kg.linear(x, w).shape == (0, 3)


def test_chosen_config_is_json(device):
    a, b = signed((37, 45), 26, device), signed((45, 29), 27, device)
    kg.matmul(a, b)
    config = kg.chosen_config("matmul", 37, 29, 45, torch.float32, "ieee")
    assert config["kernel"] in ("sgemm_gluon", "gemm_fma", "gemm_pointer") and config["BM"] > 0
    json.dumps(config)


def test_flop_and_byte_model():
    assert kg.gemm_flops(3, 5, 7) == 2 * 3 * 5 * 7
    assert kg.gemm_bytes(3, 5, 7, 2, 2) == (3 * 7 + 7 * 5) * 2 + 3 * 5 * 2
    assert kg.gemm_bytes(3, 5, 7, 1, 2) == (3 * 7 + 7 * 5) + 3 * 5 * 2


# --- workload declarations ------------------------------------------------------------------

GEMM_WORKLOADS = ("gemm-square", "gemm-k-sweep", "gemm-shape-search", "gemm-skinny")


def test_workloads_registered_with_cases():
    workloads = all_workloads()
    for name in GEMM_WORKLOADS:
        w = workloads[name]
        assert w.family == "gemm"
        assert all(w.cases[mode] for mode in ("quick", "full", "interpret"))
    square = workloads["gemm-square"]
    assert {p["M"] for p in square.cases["full"]} == {256, 512, 1024, 2048, 4096, 8192, 16384}
    assert {"M": 8192, "N": 8192, "K": 8192} in square.cases["quick"]
    assert set(square.dtypes) == {"fp32", "tf32", "fp16", "bf16", "fp8"}
    assert {p["M"] for p in workloads["gemm-skinny"].cases["full"]} == set(wg.SKINNY_M)
    assert "bf16" in workloads["gemm-shape-search"].dtypes


def test_workload_flops_and_bytes():
    w = all_workloads()["gemm-square"]
    p = {"M": 8192, "N": 8192, "K": 8192}
    assert w.flops(p, "bf16") == 2 * 8192 ** 3
    assert w.bytes(p, "bf16") == 3 * 8192 ** 2 * 2
    assert w.bytes(p, "fp32") == w.bytes(p, "tf32") == 3 * 8192 ** 2 * 4
    assert w.bytes(p, "fp8") == 2 * 8192 ** 2 + 8192 ** 2 * 2 + 8
    skinny = all_workloads()["gemm-skinny"]
    p = {"M": 1, "N": 8192, "K": 8192}
    assert skinny.bytes(p, "bf16") == (8192 + 8192 * 8192 + 8192) * 2
    assert skinny.flops(p, "bf16") == 2 * 8192 * 8192


def test_skips_are_reasons():
    square = all_workloads()["gemm-square"]
    assert square.skip({"M": 16384, "N": 16384, "K": 16384}, "fp32", "cuda")
    assert square.skip({"M": 16384, "N": 16384, "K": 16384}, "bf16", "cuda") is None
    search = all_workloads()["gemm-shape-search"]
    assert sum(search.skip(p, "fp8", "cuda") is None for p in search.cases["full"]) == 9
    skinny = all_workloads()["gemm-skinny"]
    assert sum(skinny.skip(p, "fp16", "cuda") is None for p in skinny.cases["full"]) == 7
    assert not any(skinny.skip(p, "fp16", "cpu") for p in skinny.cases["interpret"])


def run_case(workload, params, dtype, device, seed=0):
    """What the runner does for one case: inputs, poisoned output, one call, check."""
    gen = torch.Generator(device=device).manual_seed(seed)
    inputs = workload.make_inputs(params, dtype, device, gen)
    inputs["out"].fill_(float("nan"))
    impl = next(i for i in workload.impls_for(dtype) if i.name == "triton")
    out = impl.prepare(inputs)()
    check = verify.check_output(workload, out, workload.reference(inputs, params, dtype), params, dtype)
    return check, impl.config(inputs) if impl.config else None


@pytest.mark.parametrize("name", GEMM_WORKLOADS)
def test_interpret_cases_end_to_end(name, device):
    workload = all_workloads()[name]
    for dtype in workload.dtypes:
        if dtype == "bf16" and INTERPRETING:
            continue  # triton#11584; the Triton impl raises Skip there (test below)
        if dtype == "fp8" and device == "cuda" and torch.cuda.get_device_capability() < (9, 0):
            continue
        for params in workload.cases["interpret"]:
            if workload.skip and workload.skip(params, dtype, device):
                continue
            check, config = run_case(workload, params, dtype, device)
            assert verify.problem(check) is None, (name, dtype, params, check)
            assert check["checked"] == check["elements"]  # every element of the output
            assert config is not None and "kernel" in config


@pytest.mark.skipif(not INTERPRETING, reason="interpreter-only skip")
def test_bf16_triton_skips_in_interpreter():
    w = all_workloads()["gemm-square"]
    inputs = w.make_inputs(w.cases["interpret"][0], "bf16", "cpu", torch.Generator().manual_seed(0))
    with pytest.raises(Skip):
        w.impls[0].prepare(inputs)


def test_vendor_rows_run_on_cpu():
    # The vendor closures (tf32 switch, scaled_mm layouts) as the runner calls them.
    for name, dtype in (("gemm-square", "tf32"), ("gemm-square", "fp32"), ("gemm-square", "fp8"),
                        ("gemm-skinny", "fp16")):
        w = all_workloads()[name]
        params = w.cases["interpret"][0]
        before = torch.backends.cuda.matmul.fp32_precision
        for impl in w.impls_for(dtype):
            if not impl.vendor:
                continue
            inputs = w.make_inputs(params, dtype, "cpu", torch.Generator().manual_seed(1))
            out = impl.prepare(inputs)()
            check = verify.check_output(w, out, w.reference(inputs, params, dtype), params, dtype)
            assert verify.problem(check) is None, (name, impl.name, check)
        assert torch.backends.cuda.matmul.fp32_precision == before


class TestWholeOutputCheck:
    """Every element is held to its own tolerance: a wrong tile fails however small a part it is."""

    P = {"M": 70, "N": 48, "K": 33}

    def setup_case(self, device):
        w = all_workloads()["gemm-square"]
        inputs = w.make_inputs(self.P, "fp32", device, torch.Generator(device=device).manual_seed(3))
        exact = (inputs["a"].double() @ inputs["b"].double()).float()
        return w, inputs, exact, w.reference(inputs, self.P, "fp32")

    def test_right_output_passes(self, device):
        w, inputs, exact, ref = self.setup_case(device)
        check = verify.check_output(w, exact, ref, self.P, "fp32")
        assert verify.problem(check) is None and check["max_excess"] < 0.1

    def test_unwritten_element_fails(self, device):
        w, inputs, exact, ref = self.setup_case(device)
        exact[20, 30] = float("nan")
        assert "NaN" in verify.problem(verify.check_output(w, exact, ref, self.P, "fp32"))

    def test_misplaced_tile_fails(self, device):
        w, inputs, exact, ref = self.setup_case(device)
        moved = exact.clone()
        moved[4:20, 2:18], moved[4:20, 18:34] = exact[4:20, 18:34], exact[4:20, 2:18]
        assert "tolerance" in verify.problem(verify.check_output(w, moved, ref, self.P, "fp32"))


def test_one_zeroed_tile_of_a_16384_square_bf16_output_fails():
    """The negative control at full size: a 16384 x 16384 bf16 result with one 128 x 256 tile left
    at zero, elsewhere the correctly rounded product. Its normwise error (under 2e-3) would pass
    the bf16 tolerance; the elementwise check does not. The reference is synthetic: values with
    the spread of a K = 16384 product of the sweep's inputs, and its root-sum-square scale."""
    n, K = 16384, 16384
    g = torch.Generator().manual_seed(5)
    rss = math.sqrt(K * (13 / 12) ** 2)  # sqrt(K E[a^2] E[b^2]) for magnitudes uniform in [0.5, 1.5)
    values = torch.randn((n, n), generator=g, dtype=torch.float32).mul_(rss)  # float32 keeps it in 1 GiB
    out = values.to(torch.bfloat16)
    out[4096:4096 + 128, 8192:8192 + 256] = 0
    expected = verify.Expected(values, rss)
    tol = DTYPES["bf16"].tolerance
    assert verify.rel_error(out, values) < tol  # the norm alone hides the tile
    check = verify.check(out, out, expected, tol)
    assert "tolerance" in verify.problem(check) and check["max_excess"] > 5
    out[4096:4096 + 128, 8192:8192 + 256] = values[4096:4096 + 128, 8192:8192 + 256].to(torch.bfloat16)
    assert verify.problem(verify.check(out, out, expected, tol)) is None  # the same output, tile written


# --- kernels compiled for sm_90 without a GPU -------------------------------------------------
# The installed Triton compiles them for an H100/H200 with its own ptxas, and the machine code is
# held to the design. The Gluon SGEMM (Gluon has no interpreter; its numbers are checked in
# tests/gpu/test_gemm_gpu.py): every main-loop multiply-add an FFMA (IEEE fp32, no tensor cores,
# nothing left as FMUL+FADD), operands from shared memory only as 128-bit loads, no register
# spills. The skinny kernel's wide buckets: both operands of the K loop arrive by TMA.

def _disassembled(compiled) -> str:
    tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        sass = subprocess.run([os.path.join(tools, "nvdisasm"), "-c", f.name], capture_output=True, text=True,
                              check=True).stdout
    return re.sub(r"/\*[0-9a-f]+\*/", "", sass)


def _skinny_sass(config: triton.Config) -> str:
    from triton.compiler import ASTSource

    signature = {name: "*bf16" for name in ("x_ptr", "w_ptr", "y_ptr")}
    signature.update({"partial_ptr": "*fp32", "arrivals_ptr": "*i32"})
    signature.update({name: "i32" for name in ("M", "N", "K", "stride_xm", "stride_wn", "stride_ym")})
    constexprs = {"X_TMA": False, **config.kwargs}  # the kernel's default, as a launch fills it
    signature.update({name: "constexpr" for name in constexprs})
    source = ASTSource(fn=ks._skinny_kernel, signature=signature, constexprs=constexprs,
                       attrs={(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 4, 7, 8, 9, 10)})
    return _disassembled(triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                        options={"num_warps": config.num_warps, "num_stages": config.num_stages}))


def _sgemm_sass(config: triton.Config) -> str:
    try:
        from triton.experimental.gluon._runtime import GluonASTSource
    except ImportError as e:  # a private name; its absence is a Triton change to follow
        pytest.fail(f"cannot compile Gluon offline with this Triton: {e}")
    signature = {name: "*fp32" for name in ("at_ptr", "b_ptr", "c_ptr")}
    signature.update({name: "i32" for name in ("M", "N", "K", "ld_at", "ld_b", "ld_c")})
    signature.update({name: "constexpr" for name in config.kwargs})
    source = GluonASTSource(fn=ksg._sgemm_kernel, signature=signature, constexprs=dict(config.kwargs),
                            attrs={(i,): [["tt.divisibility", 16]] for i in range(9)})
    options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    if config.maxnreg:
        options["maxnreg"] = config.maxnreg
    return _disassembled(triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options))


def _main_loop(sass: str, marker: str = "FFMA") -> list[str]:
    """Opcodes of the first backward branch's body that holds `marker` (the K loop)."""
    ops, labels = [], {}
    for line in sass.splitlines():
        if m := re.match(r"^(\.L_x_\d+):", line):
            labels[m.group(1)] = len(ops)
        elif m := re.match(r"\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);", line):
            ops.append(m.group(1) + m.group(2))
    for i, op in enumerate(ops):
        if (m := re.search(r"BRA\s+`\((\.L_x_\d+)\)", op)) and labels.get(m.group(1), i) < i:
            body = [o.split()[0] for o in ops[labels[m.group(1)]:i + 1]]
            if any(op.startswith(marker) for op in body):
                return body
    return []


# The compile runs in a fresh process: an interpreted launch earlier in this one (any test above)
# leaves triton.language's builtins patched by the interpreter, and a compile traced through them
# fails; and a @triton.jit kernel decorated with the interpreter on cannot be compiled at all.
# The child prints {tile label: SASS, or the first line of why it could not compile} as JSON.
_SASS_CHILD = """
import json
import kernels.gemm  # noqa: F401  (and with it sgemm and skinny) before conftest, through test_gemm, turns
from kernels import gemm_tuning as gt, sgemm as ksg  # the interpreter on
import test_gemm
sass = {}
jobs = [(gt.config_label(c), test_gemm._sgemm_sass, c) for c in ksg._sgemm_configs()]
jobs += [("skinny " + gt.config_label(c), test_gemm._skinny_sass, c) for c in test_gemm.SKINNY_SASS_CONFIGS]
for label, compile_it, c in jobs:
    try:
        sass[label] = compile_it(c)
    except BaseException as e:  # pytest.fail's Failed included: reported per tile by the parent
        sass[label] = {"error": (str(e).strip().splitlines() or [type(e).__name__])[0]}
print(json.dumps(sass))
"""


@pytest.fixture(scope="module")
def sgemm_sass() -> dict:
    here = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(str(d) for d in (here.parents[1], here.parent, here))
    p = subprocess.run([sys.executable, "-c", _SASS_CHILD], env=env, cwd=here.parents[1], capture_output=True,
                       text=True, timeout=900)
    if p.returncode != 0:
        pytest.fail(f"the compiling process failed (status {p.returncode}): {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# Every skinny tile that loads x by TMA, and for contrast the 128-row tile with x by pointer loads.
_SKINNY_POINTER_X = triton.Config({"BM": 128, "BN": 64, "BK": 64, "USE_TMA": True, "X_TMA": False},
                                  num_warps=4, num_stages=6)
SKINNY_SASS_CONFIGS = [c for c in ks._SKINNY_CONFIGS if c.kwargs.get("X_TMA")] + [_SKINNY_POINTER_X]


def _skinny_k_loop(config, sass_by_label) -> list[str]:
    sass = sass_by_label.get("skinny " + gt.config_label(config))
    if not isinstance(sass, str):
        pytest.fail(f"no SASS for this tile: {(sass or {}).get('error', 'the compiling process did not report it')}")
    loop = _main_loop(sass, "HGMMA")
    assert loop, "no K loop with warp-group MMAs found"
    return loop


@pytest.mark.parametrize("config", SKINNY_SASS_CONFIGS[:-1], ids=gt.config_label)
def test_wide_skinny_tiles_load_both_operands_by_tma(config, sgemm_sass):
    loop = _skinny_k_loop(config, sgemm_sass)
    assert loop.count("UTMALDG.2D") == 2  # one box of w, one of x per K step
    assert not [op for op in loop if op.startswith(("LDG", "LDGSTS"))]  # no loads through the threads


def test_pointer_loaded_x_shows_in_the_k_loop(sgemm_sass):
    # The check above can fail: with x by pointer loads the same loop issues cp.async copies.
    loop = _skinny_k_loop(_SKINNY_POINTER_X, sgemm_sass)
    assert loop.count("UTMALDG.2D") == 1 and any(op.startswith("LDGSTS") for op in loop)


@pytest.mark.parametrize("config", ksg._sgemm_configs(), ids=gt.config_label)
def test_sgemm_compiles_to_a_dense_ffma_loop(config, sgemm_sass):
    sass = sgemm_sass.get(gt.config_label(config))
    if not isinstance(sass, str):
        pytest.fail(f"no SASS for this tile: {(sass or {}).get('error', 'the compiling process did not report it')}")
    loop = _main_loop(sass)
    k = config.kwargs
    # A thread's block: 4 threads x WARPS_M warps share the M extent, 8 x WARPS_N the N extent.
    rows, cols = k["BM"] // (4 * k["WARPS_M"]), k["BN"] // (8 * k["WARPS_N"])
    assert loop.count("FFMA") == rows * cols * k["BK"]
    # Per k step its rows of A and columns of B arrive 4 at a time.
    assert loop.count("LDS.128") == (rows + cols) // 4 * k["BK"]
    assert not any(op.startswith(("FMUL", "FADD", "HMMA", "HGMMA")) for op in loop)
    assert sum(op.startswith("LDS") for op in loop) - loop.count("LDS.128") <= 4  # cp.async's no-op LDS
    assert " STL" not in sass and " LDL" not in sass, "registers spilled to local memory"
    assert loop.count("FFMA") / len(loop) > 0.8
