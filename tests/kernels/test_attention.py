"""Naive and fused attention against a float64 reference, and the attention workload's declaration.

Runs through Triton's interpreter on the CPU (fp16 only: the interpreter
mis-computes bf16 dots) and for real on a GPU. Shapes are tiny and ragged:
sequence lengths that are not multiples of the block, a length of 1, head
dims 16/32/64. On the CPU the fused kernel also runs its TMA (tensor
descriptor) and warp-specialized (one masked loop) forms at tiles small
enough for several blocks; on a GPU it runs every configuration it tunes over.
"""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import HAS_CUDA, interpreter_bf16_broken
from kernels import attention as ka
from suite import verify
from suite.dtypes import DTYPES
from suite.registry import Skip
from suite.workloads import all_workloads
from suite.workloads import attention as wa

FP16_TOL = DTYPES["fp16"].tolerance

if HAS_CUDA:
    # Not the Gluon kernel: it takes no ragged lengths (tests/gpu checks it, and its refusal).
    CONFIGS = [c for c in ka.flash_candidates(64, torch.cuda.get_device_capability()) if not c.gluon]
else:
    CONFIGS = [ka.FlashConfig(16, 16, 4, 1), ka.FlashConfig(32, 16, 4, 1),
               ka.FlashConfig(32, 16, 4, 1, tma=True), ka.FlashConfig(32, 16, 4, 1, tma=True, host_descriptors=False),
               ka.FlashConfig(32, 16, 4, 1, tma=True, warp_specialize=True),
               ka.FlashConfig(16, 16, 4, 1, tma=True, warp_specialize=True),
               ka.FlashConfig(16, 16, 4, 1, tma=True, warp_specialize=True, persistent=1),
               ka.FlashConfig(32, 32, 4, 1, tma=True, warp_specialize=True, persistent=2)]
PERSISTENT = [c for c in CONFIGS if c.persistent]

SHAPES = [(1, 2, 37, 16), (2, 1, 50, 64), (1, 1, 64, 32), (1, 1, 1, 16)]  # (B, H, S, D)


def reference(q, k, v, causal, diagonal=0, extra_zero_keys=0):
    """float64 softmax(q k^T / sqrt(D)) v. `diagonal` shifts the causal mask and
    `extra_zero_keys` appends keys scoring 0: the two ways a mask goes wrong."""
    q, k, v = q.double(), k.double(), v.double()
    if extra_zero_keys:
        pad = q.new_zeros(q.shape[:2] + (extra_zero_keys, q.shape[-1]))
        k, v = torch.cat([k, pad], dim=2), torch.cat([v, pad], dim=2)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        rows, keys = torch.arange(q.shape[2]), torch.arange(k.shape[2])
        s = s.masked_fill((keys[None, :] > rows[:, None] + diagonal).to(s.device), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def qkv(shape, device, dtype=torch.float16, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(shape, generator=g, device=device).to(dtype) for _ in range(3)]


def rel_err(out, ref) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def poisoned(q):
    return torch.full_like(q, math.nan)


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}H{}S{}D{}".format(*s))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_fused_matches_reference(shape, causal, cfg, device):
    q, k, v = qkv(shape, device)
    out = ka.flash_attention(q, k, v, causal, out=poisoned(q), config=cfg)
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    assert rel_err(out, reference(q, k, v, causal)) < FP16_TOL


@pytest.mark.parametrize("head_group", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("cfg", [CONFIGS[0], next(c for c in CONFIGS if c.warp_specialize)] + PERSISTENT,
                         ids=lambda c: c.name)
def test_causal_head_groups(head_group, cfg, device):
    """The causal grid's longest-first order, with head groups that do and do not divide
    B*H (5 heads) and one larger than it: every (query block, head) is computed once.
    Three or more query blocks per head (ragged) on either device."""
    S = 40 if device == "cpu" else 300
    q, k, v = qkv((1, 5, S, 16), device)
    out = poisoned(q)
    ka._launch_flash(q, k, v, out, True, 1 / math.sqrt(16), cfg, head_group=head_group)
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    assert rel_err(out, reference(q, k, v, True)) < FP16_TOL


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cfg", PERSISTENT, ids=lambda c: c.name)
def test_persistent_programs_walk_every_tile(cfg, causal, device):
    """More tiles than programs, so each program runs several; a ragged length, so a block
    reads rows of the next head (masked) and past the last one."""
    shape = (2, 3, 72, 16) if device == "cpu" else (2, 64, 520, 64)
    q, k, v = qkv(shape, device)
    kernel, grid, _, _ = ka._flash_launch(q, k, v, q, causal, 0.25, cfg)
    assert kernel is ka._flash_fwd_persistent_kernel
    assert grid[0] < shape[0] * shape[1] * math.ceil(shape[2] / cfg.block_m)
    out = ka.flash_attention(q, k, v, causal, out=poisoned(q), config=cfg)
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    assert rel_err(out, reference(q, k, v, causal)) < FP16_TOL


def test_candidates_offer_the_persistent_kernel_beside_the_per_tile_one():
    names = [c.name for c in ka.flash_candidates(128, (9, 0))]
    assert names[0] == "128x128-w8-s2-tma"  # the trusted baseline first
    assert "128x128-w4-s2-tma-ws" in names and "128x128-w4-s2-tma-ws-p1" in names


@pytest.mark.parametrize("head_dim, capability, offered", [(128, (9, 0), True), (64, (9, 0), True),
                                                           (32, (9, 0), False), (128, (10, 0), False),
                                                           (128, (8, 0), False)])
def test_gluon_kernel_offered_on_sm90_for_its_head_dims(head_dim, capability, offered):
    gluon = [c for c in ka.flash_candidates(head_dim, capability) if c.gluon]
    assert [c.name for c in gluon] == (["128x128-s2-gluon"] if offered else [])


@pytest.mark.parametrize("shape, why", [((1, 2, 1000, 128), "sequence length 1000, not a multiple of 128"),
                                        ((1, 2, 1024, 32), "head dim 32")])
def test_gluon_kernel_refuses_what_it_cannot_take(shape, why):
    q = torch.randn(shape, dtype=torch.float16)
    with pytest.raises(ValueError, match=f"does not take {why}"):
        ka.flash_attention(q, q, q, config=ka.FlashConfig(128, 128, 4, 2, tma=True, gluon=True))


def test_causal_head_group_fits_half_of_l2():
    # The H200 reports 60 MiB of L2; K and V of one head at S=4096, D=128, bf16 are 2 MiB.
    l2 = 60 << 20
    assert ka.causal_head_group(4096, 128, 2, 128, l2) == 15
    assert ka.causal_head_group(16384, 128, 2, 128, l2) == 3
    assert ka.causal_head_group(65536, 128, 2, 128, l2) == 1  # one head's K and V exceed it: still one
    assert ka.causal_head_group(512, 64, 2, 8, l2) == 8  # never more than the heads there are


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}H{}S{}D{}".format(*s))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_naive_matches_reference(shape, causal, device):
    q, k, v = qkv(shape, device)
    B, H, S, _ = shape
    probs = torch.full((B, H, S, S), math.nan, dtype=q.dtype, device=device)
    out = ka.naive_attention(q, k, v, causal, out=poisoned(q), probs=probs)
    assert torch.isfinite(out).all()
    assert rel_err(out, reference(q, k, v, causal)) < FP16_TOL
    # P really is the masked row softmax (rows sum to 1, nothing above the diagonal).
    assert torch.allclose(probs.double().sum(-1), torch.ones(B, H, S, dtype=torch.float64, device=device), atol=1e-2)
    if causal:
        assert (probs.triu(1) == 0).all()


@settings(max_examples=8, deadline=None)
@given(S=st.integers(min_value=1, max_value=70), D=st.sampled_from([16, 32]), causal=st.booleans())
def test_any_length(S, D, causal):
    device = "cuda" if HAS_CUDA else "cpu"
    q, k, v = qkv((1, 2, S, D), device, seed=S)
    ref = reference(q, k, v, causal)
    assert rel_err(ka.flash_attention(q, k, v, causal, out=poisoned(q)), ref) < FP16_TOL
    assert rel_err(ka.naive_attention(q, k, v, causal, out=poisoned(q)), ref) < FP16_TOL


@interpreter_bf16_broken
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_bf16(causal, device):
    q, k, v = qkv((2, 2, 77, 64), device, dtype=torch.bfloat16)
    ref = reference(q, k, v, causal)
    tol = DTYPES["bf16"].tolerance
    assert rel_err(ka.flash_attention(q, k, v, causal), ref) < tol
    assert rel_err(ka.naive_attention(q, k, v, causal), ref) < tol


def test_a_broken_mask_fails(device):
    """The tolerance catches each way a mask goes wrong, by a wide margin."""
    q, k, v = qkv((1, 2, 37, 16), device)
    right = reference(q, k, v, True)
    fused = ka.flash_attention(q, k, v, True)
    assert rel_err(fused, right) < FP16_TOL
    # No causal mask at all (the kernel's own output, run without it).
    assert rel_err(ka.flash_attention(q, k, v, False), right) > 10 * FP16_TOL
    # The diagonal off by one either way (rows from 1 on: row 0 has no key left when it hides the diagonal).
    for shift in (-1, 1):
        assert rel_err(reference(q, k, v, True, diagonal=shift)[:, :, 1:], right[:, :, 1:]) > 10 * FP16_TOL
    # Keys past the sequence end (zero-filled tail of the last block) left in the softmax.
    full = reference(q, k, v, False)
    assert rel_err(reference(q, k, v, False, extra_zero_keys=11), full) > 10 * FP16_TOL


def test_launchers_reject_bad_inputs(device):
    q, k, v = qkv((1, 1, 8, 16), device)
    with pytest.raises(ValueError, match="head dim"):
        ka.flash_attention(*qkv((1, 1, 8, 24), device))
    with pytest.raises(ValueError, match="dtype"):
        ka.naive_attention(q.float(), k.float(), v.float())
    with pytest.raises(ValueError, match="match q"):
        ka.flash_attention(q, k[:, :, :4], v)
    with pytest.raises(ValueError, match="contiguous"):
        ka.flash_attention(q.transpose(2, 3).contiguous().transpose(2, 3), k, v)
    with pytest.raises(ValueError, match="multiple of BLOCK_N"):
        ka.flash_attention(q, k, v, True, config=ka.FlashConfig(16, 32, 4, 1))
    with pytest.raises(ValueError, match="TMA"):
        ka.flash_attention(q, k, v, config=ka.FlashConfig(16, 16, 4, 1, warp_specialize=True))
    with pytest.raises(ValueError, match="square tiles"):
        ka.flash_attention(q, k, v, True, config=ka.FlashConfig(32, 16, 4, 1, tma=True, warp_specialize=True,
                                                                 persistent=1))
    with pytest.raises(ValueError, match="warp-specialized"):
        ka.flash_attention(q, k, v, config=ka.FlashConfig(16, 16, 4, 1, tma=True, persistent=1))


# ---------------------------------------------------------------- FLOP / byte model

def test_flops_count_two_matmuls_and_halve_for_causal():
    B, H, S, D = 4, 32, 4096, 128
    full = 4 * B * H * S * S * D  # Q K^T and P V, 2*S*S*D each per (b, h)
    assert ka.attention_flops(B, H, S, D, False) == full
    assert ka.attention_flops(B, H, S, D, True) * 2 == full  # exactly half, never the full count
    assert ka.attention_min_bytes(B, H, S, D, 2) == 4 * B * H * S * D * 2
    assert ka.naive_moved_bytes(B, H, S, D, 2) == ka.attention_min_bytes(B, H, S, D, 2) + 4 * B * H * S * S * 2


# ---------------------------------------------------------------- the workload declaration

W = all_workloads()["attention-fwd"]


def test_workload_declares_the_issue_cases():
    assert W.family == "attention" and set(W.dtypes) == {"bf16", "fp16"}
    target = {(4, 32, 4096, 128, c) for c in (False, True)}
    key = lambda p: (p["B"], p["H"], p["S"], p["D"], p["causal"])  # noqa: E731
    assert target <= {key(p) for p in W.cases["quick"]}
    assert target <= {key(p) for p in W.cases["full"]}
    full_lengths = {p["S"] for p in W.cases["full"]}
    assert min(full_lengths) == 512 and max(full_lengths) == 16384
    assert any(p["S"] % 128 for p in W.cases["full"]), "a ragged length in the full sweep"
    for p in W.cases["interpret"]:
        assert p["S"] % 16 and p["B"] * p["H"] * p["S"] <= 128, "interpreter cases stay tiny and ragged"
    names = [i.name for i in W.impls]
    assert names == ["triton-fused", "triton-naive", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "torch-naive"]


def test_workload_flops_and_bytes():
    p = {"B": 4, "H": 32, "S": 4096, "D": 128, "causal": True}
    assert W.flops(p, "bf16") == 2 * 4 * 32 * 4096 ** 2 * 128
    assert W.flops({**p, "causal": False}, "bf16") == 2 * W.flops(p, "bf16")
    assert W.bytes(p, "bf16") == 4 * 4 * 32 * 4096 * 128 * 2
    for impl in ("triton-naive", "torch-naive"):
        moved = W.moved_bytes(p, "bf16", impl)
        assert moved >= W.bytes(p, "bf16") + 4 * 4 * 32 * 4096 ** 2 * 2  # the S and P round trips
    for impl in ("triton-fused", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient"):
        assert W.moved_bytes(p, "bf16", impl) is None  # about the minimum
    # torch-naive's masked_fill_ is one more read and write of S.
    assert W.moved_bytes(p, "bf16", "torch-naive") > W.moved_bytes({**p, "causal": False}, "bf16", "torch-naive")


@pytest.mark.parametrize("params", W.cases["interpret"], ids=W.case_label)
def test_interpret_cases_run_end_to_end(params, device):
    """make_inputs -> poison -> prepare -> call -> check_view vs reference, as the runner does."""
    dtype = "fp16"
    inputs = W.make_inputs(params, dtype, device, torch.Generator(device=device).manual_seed(1))
    ref = W.reference(inputs, params, dtype)
    ran = []
    for impl in W.impls_for(dtype):
        try:
            fn = impl.prepare(inputs)
        except Skip as e:
            assert impl.vendor and str(e), f"{impl.name} skipped without a reason"
            continue
        verify.poison(inputs)
        check = verify.check_output(W, fn(), ref, params, dtype)
        assert verify.problem(check) is None, f"{impl.name}: {check}"
        if impl.config:
            assert isinstance(impl.config(inputs), dict)
        ran.append(impl.name)
    assert {"triton-fused", "triton-naive", "torch-naive"} <= set(ran)


def test_checked_rows_meet_every_block_of_every_head():
    # Every (batch, head) is checked, on rows spread so that every 16-row block has one.
    assert wa.checked_rows(40) == list(range(40))  # short sequences: every row
    for S in (100, 4096, 3000):
        rows = wa.checked_rows(S)
        assert rows[-1] == S - 1 and all(any(b <= r < b + 16 for r in rows) for b in range(0, S, 16))
        assert len(rows) <= S // 16 + 2


@pytest.fixture
def checked_case(device):
    params = {"B": 2, "H": 3, "S": 100, "D": 16, "causal": True}
    inputs = W.make_inputs(params, "fp16", device, torch.Generator(device=device).manual_seed(2))
    out = ka.flash_attention(inputs["q"], inputs["k"], inputs["v"], causal=True)
    ref = W.reference(inputs, params, "fp16")
    assert verify.problem(verify.check_output(W, out, ref, params, "fp16")) is None
    return params, out, ref


def test_one_head_written_to_the_wrong_place_fails(checked_case):
    params, out, ref = checked_case
    wrong = out.clone()
    wrong[1, 2] = out[1, 1]  # head 2 of batch 1 holds head 1's output
    assert "tolerance" in verify.problem(verify.check_output(W, wrong, ref, params, "fp16"))


def test_one_unwritten_tile_between_the_checked_rows_fails(checked_case):
    params, out, ref = checked_case
    rows = set(wa.checked_rows(params["S"]))
    gap = next(r for r in range(params["S"]) if r not in rows)
    hole = out.clone()
    hole[0, 1, gap] = math.nan  # an element no reference covers: the finiteness check sees it
    assert "NaN" in verify.problem(verify.check_output(W, hole, ref, params, "fp16"))
    zeroed = out.clone()
    zeroed[0, 0, 64:80] = 0  # a 16-row tile of one head left at zero
    assert "tolerance" in verify.problem(verify.check_output(W, zeroed, ref, params, "fp16"))


def test_triton_paths_skip_bf16_in_the_interpreter():
    if HAS_CUDA:
        pytest.skip("the interpreter skip applies to CPU tensors only")
    params = W.cases["interpret"][0]
    inputs = W.make_inputs(params, "bf16", "cpu", torch.Generator().manual_seed(0))
    for impl in W.impls[:2]:
        with pytest.raises(Skip, match="interpreter"):
            impl.prepare(inputs)


# ---------------------------------------------------------------- the generated code (offline, sm_90)

# What makes the persistent kernel fast is a property of the code Triton generates: its TMA
# producer walks the tiles itself, loading the next tile's Q (and K, V in its key loop) while
# the consumer warpgroups still compute. The Gluon kernel's is that each consumer computes its
# softmax while one of its MMAs is still in flight. Compiled in a fresh process: an interpreted
# launch earlier in this one leaves triton.language patched, and a compile traced through it fails.
_TTGIR_CHILD = """
import json, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.experimental.gluon import language as gl
from triton.experimental.gluon._runtime import GluonASTSource
from kernels import attention as ka, flash_gluon as fg
common = dict(HEAD_DIM=128, BLOCK_M=128, BLOCK_N=128, CAUSAL=False, EVEN=True)
kernels = {"persistent": (ka._flash_fwd_persistent_kernel, common),
           "per-tile": (ka._flash_fwd_kernel, dict(common, USE_TMA=True, WARP_SPEC=True, HOST_DESC=False))}
out = {}


def compile_to(name, source, options):
    try:
        out[name] = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ttgir"]
    except BaseException as e:
        out[name] = {"error": (str(e).strip().splitlines() or [type(e).__name__])[0]}


for name, (fn, constexprs) in kernels.items():
    signature = {"Q": "*bf16", "K": "*bf16", "V": "*bf16", "O": "*bf16", "seq_len": "i32", "qk_scale": "fp32",
                 "num_heads": "i32", "head_group": "i32", **{k: "constexpr" for k in constexprs}}
    compile_to(name, ASTSource(fn=fn, signature=signature, constexprs=constexprs,
                               attrs={(i,): [["tt.divisibility", 16]] for i in range(5)}),
               {"num_warps": 4, "num_stages": 2})


def desc(rows):
    return f"tensordesc<bf16[{rows}, 128],{gl.NVMMASharedLayout.get_default_for([rows, 128], gl.bfloat16)!r}>"


constexprs = {"CAUSAL": False, "STAGES": 2, "CONSUMER_REGS": fg.CONSUMER_REGS}
signature = {"q_desc": desc(fg.BLOCK // 2), "k_desc": desc(fg.BLOCK), "v_desc": desc(fg.BLOCK),
             "o_desc": desc(fg.BLOCK // 2), "seq_len": "i32", "qk_scale": "fp32", "num_heads": "i32",
             "head_group": "i32", **{k: "constexpr" for k in constexprs}}
compile_to("gluon", GluonASTSource(fn=fg._flash_fwd_gluon_kernel, signature=signature, constexprs=constexprs),
           {"num_warps": 4})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def flash_ttgir() -> dict:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(root)
    p = subprocess.run([sys.executable, "-c", _TTGIR_CHILD], env=env, cwd=root, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        pytest.fail(f"the compiling process failed (status {p.returncode}): {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _producer_walks_tiles(ttgir: str) -> bool:
    """In the warp-specialized region's producer (its default region): a loop (over tiles) whose
    own body issues TMA copies (Q) and holds a loop (over key blocks) that issues more (K, V)."""
    if "ttg.warp_specialize" not in ttgir or "default {" not in ttgir:
        return False
    producer = ttgir.split("default {", 1)[1].split("partition0(", 1)[0].splitlines()
    depth = lambda line: len(line) - len(line.lstrip())  # noqa: E731 -- regions nest by indentation
    for i, line in enumerate(producer):
        if "scf.for" not in line:
            continue
        body = [b for b in producer[i + 1:] if b.strip()]
        body = body[:next((j for j, b in enumerate(body) if depth(b) <= depth(line)), len(body))]
        own = [b for b in body if depth(b) == depth(line) + 2]
        inner = [j for j, b in enumerate(body) if depth(b) == depth(line) + 2 and "scf.for" in b]
        if inner and any("async_tma_copy" in b for b in own):
            nested = body[inner[0] + 1:]
            if any("async_tma_copy" in b and depth(b) > depth(body[inner[0]]) for b in nested):
                return True
    return False


def _compiled(flash_ttgir, name: str) -> str:
    ttgir = flash_ttgir[name]
    if not isinstance(ttgir, str):
        pytest.fail(f"the {name} kernel did not compile for sm_90: {ttgir['error']}")
    return ttgir


def test_persistent_kernel_producer_loads_ahead_across_tiles(flash_ttgir):
    ttgir = _compiled(flash_ttgir, "persistent")
    assert _producer_walks_tiles(ttgir)
    consumers = ttgir.split("partition0(", 1)[1].split("partition1(")
    assert len(consumers) == 2 and all(c.count("ttng.warp_group_dot") >= 2 for c in consumers)


def test_per_tile_kernel_producer_does_not_walk_tiles(flash_ttgir):
    # The check above can fail: the per-tile warp-specialized kernel's producer has one key loop.
    ttgir = _compiled(flash_ttgir, "per-tile")
    assert "ttg.warp_specialize" in ttgir and not _producer_walks_tiles(ttgir)


def _regions(ttgir: str) -> dict:
    """The warp-specialized region's partitions by name: "default", "partition0", ..."""
    body = ttgir.split("ttg.warp_specialize", 1)[1]
    parts = re.split(r"^\s*(default|partition\d+)\b", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _softmax_overlaps_an_mma(region: str) -> bool:
    """Whether the region computes an exponential while one of its MMAs is still in flight: after a
    wait that leaves one MMA pending and before the wait for it."""
    pending = False
    for line in region.splitlines():
        if "ttng.warp_group_dot_wait" in line:
            pending = "pendings = 1" in line
        elif pending and "math.exp2" in line:
            return True
    return False


def test_gluon_kernel_consumers_compute_softmax_under_an_mma(flash_ttgir):
    regions = _regions(_compiled(flash_ttgir, "gluon"))
    consumers = [r for r in regions.values() if "warp_group_dot" in r]
    assert len(regions) == 3 and len(consumers) == 2
    assert all(_softmax_overlaps_an_mma(c) for c in consumers)
    loader = next(r for r in regions.values() if "warp_group_dot" not in r)
    assert "async_tma_copy_global_to_local" in loader and "math.exp2" not in loader


def test_triton_kernel_consumers_do_not_overlap_softmax_and_mma(flash_ttgir):
    # The check above can fail: the persistent Triton kernel's consumers wait for each MMA.
    consumers = [r for r in _regions(_compiled(flash_ttgir, "persistent")).values() if "warp_group_dot" in r]
    assert len(consumers) == 2 and not any(_softmax_overlaps_an_mma(c) for c in consumers)
