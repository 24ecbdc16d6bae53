"""GEMM kernels on real sizes, on a GPU (written for the H200; fp8 and TMA need Hopper).

Run on the device machine with `python -m pytest -q -s tests/gpu/test_gemm_gpu.py`: besides the
pass/fail checks, each test prints the configuration the launcher ran (`[gemm] ...` lines) with
every autotuning candidate's time in ms, which shows which tiles, warp-specialized or not, win.

Cases go through the gemm workloads' own inputs and references, and are called as the runner calls
them: the first call tunes, the checked one runs the chosen configuration on re-poisoned outputs.
"""
import json

import pytest
import torch

from gpu_helpers import after_tuning, checked
from kernels import gemm as kg
from kernels import skinny as ks
from suite import verify
from suite.dtypes import DTYPES
from suite.workloads import all_workloads

pytestmark = pytest.mark.gpu


def hopper() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (9, 0)


needs_hopper = pytest.mark.skipif(not hopper(), reason="needs a Hopper-class GPU (TMA, fp8)")


def rel_err(out, ref) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def show(what, config):
    print(f"\n[gemm] {what}: {json.dumps(config, sort_keys=True)}")


def run_case(workload_name, params, dtype, impl_name="triton", seed=0):
    """(verify field, config, inputs, output) of a workload's case, called as the runner calls it;
    the check must pass, every element of the output checked."""
    check, config, inputs, out = checked(all_workloads()[workload_name], impl_name, params, dtype, seed)
    assert verify.problem(check) is None, check
    assert check["checked"] == check["elements"] and check["finite"]
    return check["rel_err"], config, inputs, out


CUBE = {"M": 8192, "N": 8192, "K": 8192}


@needs_hopper
@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_tensor_cores_8192_take_tma_persistent(dtype):
    err, config, _, out = run_case("gemm-square", CUBE, dtype)
    show(f"{dtype} 8192^3", config)
    assert err < DTYPES[dtype].tolerance
    assert not out.isnan().any()
    assert config["kernel"] == "gemm_tma_persistent"
    # At least one candidate compiled and ran on this Triton build; the table shows the rest.
    assert any(ms is not None for ms in config["autotune_ms"].values())


@needs_hopper
def test_fp8_matches_scaled_mm():
    params = {"M": 4096, "N": 4096, "K": 4096}
    err, _, inputs, out = run_case("gemm-square", params, "fp8")
    vendor = torch._scaled_mm(inputs["a"], inputs["b"], scale_a=inputs["scale_a"], scale_b=inputs["scale_b"],
                              out_dtype=torch.bfloat16, use_fast_accum=True)
    assert err < DTYPES["fp8"].tolerance
    # Same rounding of the same products: the two bf16 results agree to a few bf16 ulps.
    assert rel_err(out, vendor.double()) < 1e-2


@needs_hopper
def test_tf32_8192():
    err, config, _, _ = run_case("gemm-square", CUBE, "tf32")
    show("tf32 8192^3", config)
    assert err < DTYPES["tf32"].tolerance
    # Real tf32 rounds the operands: the error sits well above fp32's.
    assert err > 1e-5
    assert "b_transposed_first" in config and set(config["b_layout_ms"]) == {"direct", "transpose_first"}


def test_fp32_ieee_cuda_cores():
    params = {"M": 2048, "N": 2048, "K": 2048}
    err, config, _, _ = run_case("gemm-square", params, "fp32")
    show("fp32 2048^3", config)
    assert err < DTYPES["fp32"].tolerance  # 1e-5: tf32's rounded operands would miss it 50-fold
    assert config["kernel"] == "sgemm_gluon"
    assert any(ms is not None for ms in config["autotune_ms"].values())


@pytest.mark.parametrize("M,N,K", [
    (1000, 1004, 1001),  # no tile multiple; K tail shorter than a K slice
    (998, 77, 130),      # rows of A^T and of B not 16-byte aligned: narrower cp.async pieces
    (1, 300, 64),        # one row
    (130, 129, 5),       # K shorter than one slice: the whole loop is the tail
])
def test_fp32_gluon_sgemm_ragged(M, N, K):
    g = torch.Generator(device="cuda").manual_seed(M + N + K)
    a = torch.randn((M, K), generator=g, device="cuda")
    b = torch.randn((K, N), generator=g, device="cuda")
    out = torch.empty((M, N), device="cuda")
    after_tuning(lambda: kg.matmul(a, b, out), out)
    config = kg.chosen_config("matmul", M, N, K, torch.float32, "ieee")
    show(f"fp32 {M}x{N}x{K}", config)
    assert config["kernel"] == "sgemm_gluon"
    assert not out.isnan().any()
    assert rel_err(out, a.double() @ b.double()) < DTYPES["fp32"].tolerance


def test_fp32_strided_b_falls_back_to_tl_dot():
    a = torch.randn((300, 200), device="cuda")
    b = torch.randn((400, 200), device="cuda")[::2].t()  # [200, 200] column-major view: strided rows
    out = torch.empty((300, 200), device="cuda")
    after_tuning(lambda: kg.matmul(a, b, out), out)
    config = kg.chosen_config("matmul", 300, 200, 200, torch.float32, "ieee")
    assert config["kernel"] == "gemm_fma"
    assert rel_err(out, a.double() @ b.double()) < DTYPES["fp32"].tolerance


@needs_hopper
def test_tma_partial_tiles_and_many_tiles_per_program():
    # Multiples of 16 (TMA-describable) but not of the tiles: descriptors clip the edges; 8*9
    # tiles of 128x128 or more exceed 132 programs' first wave for the smaller tiles.
    M, N, K = 1008, 1040, 528
    g = torch.Generator(device="cuda").manual_seed(1)
    a = torch.randn((M, K), generator=g, device="cuda").bfloat16()
    b = torch.randn((K, N), generator=g, device="cuda").bfloat16()
    out = torch.empty((M, N), device="cuda", dtype=torch.bfloat16)
    after_tuning(lambda: kg.matmul(a, b, out), out)
    config = kg.chosen_config("matmul", M, N, K, torch.bfloat16)
    show("bf16 1008x1040x528", config)
    assert config["kernel"] == "gemm_tma_persistent"
    assert rel_err(out, a.double() @ b.double()) < DTYPES["bf16"].tolerance


def test_unaligned_rows_take_the_portable_kernel():
    M, N, K = 300, 257, 1001  # rows of 1001 halves are not 16-byte aligned: no TMA descriptor
    g = torch.Generator(device="cuda").manual_seed(2)
    a = torch.randn((M, K), generator=g, device="cuda").half()
    b = torch.randn((K, N), generator=g, device="cuda").half()
    out = torch.empty((M, N), device="cuda", dtype=torch.float16)
    after_tuning(lambda: kg.matmul(a, b, out), out)
    assert kg.chosen_config("matmul", M, N, K, torch.float16)["kernel"] == "gemm_pointer"
    assert rel_err(out, a.double() @ b.double()) < DTYPES["fp16"].tolerance


@pytest.mark.parametrize("M", [1, 7, 16, 33, 64, 300])
def test_linear_decode_shapes(M):
    err, config, _, out = run_case("gemm-skinny", {"M": M, "N": 8192, "K": 8192}, "bf16")
    show(f"linear M={M} w=8192x8192", config)
    assert err < DTYPES["bf16"].tolerance
    assert not out.isnan().any()
    expected = "skinny" if M <= ks.SKINNY_MAX_M else ("gemm_tma" if hopper() else "gemm_")
    assert config["kernel"].startswith(expected)


def test_linear_split_k_narrow_weight_twice():
    # A 1024-row weight is 16 bands of 64: K is split so every SM streams, and the arrival
    # counters must be re-armed for the second call.
    M, N, K = 4, 1024, 8192
    g = torch.Generator(device="cuda").manual_seed(3)
    x = torch.randn((M, K), generator=g, device="cuda").bfloat16()
    w = torch.randn((N, K), generator=g, device="cuda").bfloat16()
    ref = x.double() @ w.double().t()
    out = torch.empty((M, N), device="cuda", dtype=torch.bfloat16)
    for _ in range(2):  # the tuned call, then twice the chosen one on a poisoned output
        after_tuning(lambda: kg.linear(x, w, out), out)
        assert not out.isnan().any() and rel_err(out, ref) < DTYPES["bf16"].tolerance
    config = kg.chosen_config("linear", M, N, K, torch.bfloat16)
    show("linear M=4 w=1024x8192", config)
    assert config["split_k"] > 1


def test_cuda_graph_replay():
    # The runner times closures inside CUDA graphs: launches (device-built descriptors, split-K
    # workspace, tf32 switch) must capture and replay right.
    g = torch.Generator(device="cuda").manual_seed(4)
    a = torch.randn((1024, 512), generator=g, device="cuda").bfloat16()
    b = torch.randn((512, 768), generator=g, device="cuda").bfloat16()
    x = torch.randn((3, 4096), generator=g, device="cuda").bfloat16()
    w = torch.randn((1024, 4096), generator=g, device="cuda").bfloat16()
    c, y = kg.matmul(a, b), kg.linear(x, w)  # tune outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        kg.matmul(a, b, c)
        kg.linear(x, w, y)
    c.fill_(float("nan"))
    y.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(c, a.double() @ b.double()) < DTYPES["bf16"].tolerance
    assert rel_err(y, x.double() @ w.double().t()) < DTYPES["bf16"].tolerance
