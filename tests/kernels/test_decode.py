"""Decode attention, the layer-step kernels and the decode workloads, against float64.

Runs through Triton's interpreter on the CPU (fp16: the interpreter mis-computes
bf16) and for real on a GPU. Shapes are tiny and ragged: lengths that are not
multiples of the block, a length of 1, GQA groups, several splits.
"""
import math
import sys
import types
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import INTERPRETING  # noqa: F401  (sets TRITON_INTERPRET before kernels import)
from kernels import decode as kd
from suite import verify
from suite.dtypes import DTYPES
from suite.registry import Skip
from suite.workloads import all_workloads

TOL = DTYPES["fp16"].tolerance


def rel_err(out, ref) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def reference(q, k, v, lengths):
    """float64 attention of q [B,Hq,D] over the first lengths[b] tokens of k/v [B,Hkv,S,D]."""
    batch, q_heads, d = q.shape
    kv_heads = k.shape[1]
    out = []
    for b, n in enumerate(lengths):
        qb = q[b].double().view(kv_heads, q_heads // kv_heads, d)
        p = torch.softmax(qb @ k[b, :, :n].double().transpose(1, 2) / math.sqrt(d), dim=-1)
        out.append((p @ v[b, :, :n].double()).reshape(q_heads, d))
    return torch.stack(out)


def make(batch, q_heads, kv_heads, capacity, head_dim, lengths, device, seed=0, dtype=torch.float16):
    g = torch.Generator(device=device).manual_seed(seed)
    # q at twice the keys' scale: peaked attention, so chunk weights differ.
    q = torch.randn((batch, q_heads, head_dim), generator=g, device=device, dtype=dtype) * 2
    k = torch.randn((batch, kv_heads, capacity, head_dim), generator=g, device=device, dtype=dtype)
    v = torch.randn((batch, kv_heads, capacity, head_dim), generator=g, device=device, dtype=dtype)
    return q, k, v, torch.tensor(lengths, dtype=torch.int32, device=device)


# (batch, q_heads, kv_heads, capacity, head_dim, lengths, split_len): MHA, GQA
# groups 2 / 4 / 8, a length of 1, lengths off the block size, 1 to 9 splits,
# chunks of several blocks (the online rescaling) and of part of one.
CASES = [
    (3, 4, 2, 37, 16, [37, 1, 20], None),
    (3, 4, 2, 37, 16, [37, 1, 20], 5),
    (2, 2, 2, 83, 32, [83, 13], 9),
    (2, 8, 1, 70, 16, [3, 70], 16),
    (1, 4, 1, 130, 64, [129], 64),
    (2, 4, 2, 200, 16, [200, 131], 150),
    (2, 2, 2, 300, 16, [300, 77], None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}-H{c[1]}/{c[2]}-S{c[3]}-D{c[4]}-split{c[6]}")
def test_every_config_matches_reference(case, device):
    batch, hq, hkv, cap, d, lengths, split_len = case
    q, k, v, lens = make(batch, hq, hkv, cap, d, lengths, device)
    ref = reference(q, k, v, lengths)
    for config in kd.split_configs(hq // hkv):
        out = kd.decode_attention(q, k, v, lens, max_len=max(lengths), split_len=split_len, config=config)
        assert rel_err(out, ref) < TOL, config
    if split_len is not None:
        assert kd.last_config()["num_splits"] == math.ceil(max(lengths) / split_len)


def test_default_path_and_strided_q(device):
    """Autotuned (GPU) or default (interpreter) config, q a view into a fused QKV row."""
    batch, hq, hkv, cap, d = 2, 4, 2, 45, 32
    q, k, v, lens = make(batch, hq, hkv, cap, d, [45, 7], device)
    qkv = torch.zeros((batch, (hq + 2 * hkv) * d), device=device, dtype=q.dtype)
    qkv[:, :hq * d] = q.reshape(batch, -1)
    out = torch.full((batch, hq, d), float("nan"), device=device, dtype=q.dtype)
    kd.decode_attention(qkv[:, :hq * d].view(batch, hq, d), k, v, lens, out=out)
    assert rel_err(out, reference(q, k, v, [45, 7])) < TOL


def test_many_splits_merge_in_column_blocks(device):
    """70 chunks: the merge holds 128 rows, so it covers head_dim 128 in two column blocks."""
    q, k, v, lens = make(2, 2, 1, 140, 128, [140, 91], device)
    out = kd.decode_attention(q, k, v, lens, max_len=140, split_len=2)
    assert kd.last_config()["num_splits"] == 70
    assert rel_err(out, reference(q, k, v, [140, 91])) < TOL


def test_broken_merge_fails(device):
    """The tolerance catches a merge that ignores the chunks' log-sum-exps or drops a chunk."""
    q, k, v, lens = make(2, 4, 2, 60, 16, [60, 41], device)
    ref = reference(q, k, v, [60, 41])
    split_len, scale = 8, kd.LOG2E / math.sqrt(16)
    part_o, part_lse, _ = kd.split_pass(q, k, v, lens, scale, split_len, 8)

    def merged(lse):
        out = torch.empty_like(q)
        kd.merge_pass(part_o, lse, lens, split_len, out)
        return rel_err(out, ref)

    assert merged(part_lse) < TOL
    assert merged(torch.zeros_like(part_lse)) > 10 * TOL  # equal weights per chunk
    dropped = part_lse.clone()
    dropped[:, :, 7] = float("-inf")  # the last chunk of the longest sequence
    assert merged(dropped) > 10 * TOL


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_hypothesis_small_lengths(data):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = data.draw(st.integers(1, 3), "batch")
    kv_heads = data.draw(st.sampled_from([1, 2]), "kv_heads")
    group = data.draw(st.sampled_from([1, 2, 4]), "group")
    lengths = data.draw(st.lists(st.integers(1, 40), min_size=batch, max_size=batch), "lengths")
    split_len = data.draw(st.one_of(st.none(), st.integers(1, 20)), "split_len")
    cap = max(lengths) + data.draw(st.integers(0, 5), "slack")
    q, k, v, lens = make(batch, kv_heads * group, kv_heads, cap, 16, lengths, device, seed=len(lengths))
    out = kd.decode_attention(q, k, v, lens, max_len=max(lengths), split_len=split_len)
    assert rel_err(out, reference(q, k, v, lengths)) < TOL


@pytest.mark.parametrize("batch,kv_heads,max_len,sms", [
    (1, 32, 32768, 132), (32, 32, 4096, 132), (1, 8, 131072, 132), (256, 32, 4096, 132),
    (1, 8, 1, 132), (3, 2, 500, 1), (1, 1, 10**6, 132),
])
def test_plan_splits(batch, kv_heads, max_len, sms):
    splits, split_len = kd.plan_splits(batch, kv_heads, max_len, sms)
    assert split_len % kd.SPLIT_ALIGN == 0 and 1 <= splits <= kd.MAX_SPLITS
    assert (splits - 1) * split_len < max_len <= splits * split_len  # every split holds tokens
    if max_len >= 16 * kd.SPLIT_ALIGN and batch * kv_heads < sms:
        assert batch * kv_heads * splits >= sms  # one long sequence still covers the GPU


def test_bad_arguments(device):
    q, k, v, lens = make(2, 4, 2, 16, 16, [16, 3], device)
    with pytest.raises(ValueError, match="lengths"):
        kd.decode_attention(q, k, v, lens.long())
    with pytest.raises(ValueError, match="shape"):
        kd.decode_attention(q[:, :3], k, v, lens)
    with pytest.raises(ValueError, match="max_len"):
        kd.decode_attention(q, k, v, lens, max_len=17)
    with pytest.raises(ValueError, match="one query head"):
        kd.decode_attention(q, k, v, lens, config=kd.SPLIT_CONFIGS[-1])


def test_attention_model_counts_real_lengths():
    # 3 sequences of 10, 1 and 5 tokens, 4 query heads over 2 KV heads, D 8, 2-byte elements.
    assert kd.attention_bytes([10, 1, 5], 4, 2, 8, 2) == 2 * 16 * 2 * 8 * 2 + 2 * 3 * 4 * 8 * 2 + 4 * 3
    assert kd.attention_flops([10, 1, 5], 4, 8) == 4 * 16 * 4 * 8
    assert kd.split_bytes(3, 4, 8, 1) == 0
    assert kd.split_bytes(3, 4, 8, 5) == 2 * 3 * 4 * 5 * 9 * 4


# --- layer step ---------------------------------------------------------------

@pytest.fixture
def gemm_linear(monkeypatch):
    """kernels.gemm.linear, or a torch stand-in while the GEMM family's module is absent."""
    try:
        from kernels.gemm import linear
        return linear
    except ModuleNotFoundError as e:
        if e.name != "kernels.gemm":
            raise
    stub = types.ModuleType("kernels.gemm")
    stub.linear = lambda x, w, out=None: torch.matmul(x, w.T, out=out)
    monkeypatch.setitem(sys.modules, "kernels.gemm", stub)
    warnings.warn("kernels/gemm.py is missing: the layer-step tests use torch.matmul for linear")
    return stub.linear


def test_rms_norm_and_residual(device):
    g = torch.Generator(device=device).manual_seed(1)
    x, r = (torch.randn((3, 100), generator=g, device=device, dtype=torch.float16) for _ in range(2))
    w = 1 + 0.1 * torch.randn(100, generator=g, device=device, dtype=torch.float16)

    def norm(t):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-5) * w.double()

    assert rel_err(kd.rms_norm(x, w, 1e-5), norm(x.double())) < TOL
    h, y = kd.rms_norm(x, w, 1e-5, residual=r)
    assert rel_err(h, x.double() + r.double()) < TOL
    assert rel_err(y, norm(h.double())) < TOL
    assert rel_err(kd.rms_norm(x, torch.ones_like(w), 1e-5), norm(x.double())) > 10 * TOL  # weight matters


def test_silu_mul(device):
    gu = torch.randn((3, 2 * 1500), generator=torch.Generator(device=device).manual_seed(2), device=device,
                     dtype=torch.float16)
    g, u = gu.double().chunk(2, dim=-1)
    assert rel_err(kd.silu_mul(gu), torch.nn.functional.silu(g) * u) < TOL


def test_layer_step_matches_reference(device, gemm_linear):
    wl = all_workloads()["decode-layer"]
    for params in wl.cases["interpret"]:
        inp = wl.make_inputs(params, "fp16", device, torch.Generator(device=device).manual_seed(3))
        k_before = inp["k_cache"].clone()
        inp["out"].fill_(float("nan"))
        out = kd.layer_step(inp["x"], inp["weights"], inp["k_cache"], inp["v_cache"], inp["lengths"],
                            params["context"], inp["cfg"], out=inp["out"])
        check = verify.check_output(wl, out, wl.reference(inp, params, "fp16"), params, "fp16")
        assert verify.problem(check) is None and check["checked"] == check["elements"]
        pos = params["context"] - 1  # only the new token's position was written
        assert torch.equal(inp["k_cache"][:, :, :pos], k_before[:, :, :pos])
        assert not torch.equal(inp["k_cache"][:, :, pos], k_before[:, :, pos])


def test_layer_model():
    cfg = kd.PRESETS["llama-3-8b"]
    weights = 4096 * 6144 + 4096 * 4096 + 2 * 14336 * 4096 + 14336 * 4096
    assert kd.layer_flops(cfg, 2, 100) == 2 * 2 * weights + 4 * 2 * 100 * 32 * 128
    kv_token = 2 * 2 * 8 * 128
    assert kd.layer_bytes(cfg, 2, 100, 2) == 2 * (weights + 2 * 4096 + kv_token * 100 + 2 * 2 * 4096)


# --- workload declarations -----------------------------------------------------

def test_ragged_lengths_and_bytes():
    from suite.workloads.decode import context_lengths

    lengths = context_lengths(64, 4096, ragged=True)
    assert lengths == context_lengths(64, 4096, ragged=True)  # a pure function of the params
    assert lengths[0] == 4096 and min(lengths) >= 512 and len(set(lengths)) > 32
    assert any(n % 64 for n in lengths)
    wl = all_workloads()["decode-attention"]
    p = {"batch": 64, "q_heads": 32, "kv_heads": 8, "context": 4096, "head_dim": 128, "ragged": True}
    assert wl.bytes(p, "bf16") == 2 * sum(lengths) * 8 * 128 * 2 + 2 * 64 * 32 * 128 * 2 + 4 * 64
    assert wl.bytes(p, "bf16") < wl.bytes({**p, "ragged": False}, "bf16")
    assert wl.flops(p, "bf16") == 4 * sum(lengths) * 32 * 128
    # Masked SDPA reads the whole padded cache.
    assert wl.moved_bytes(p, "bf16", "sdpa-efficient") > wl.bytes({**p, "ragged": False}, "bf16")


def test_cases_declared():
    wl = all_workloads()["decode-attention"]
    quick = wl.cases["quick"]
    target = {"q_heads": 32, "kv_heads": 32, "head_dim": 128, "ragged": False}
    assert {**target, "batch": 32, "context": 4096} in quick and {**target, "batch": 1, "context": 32768} in quick
    assert any(c["ragged"] for c in quick) and any(c["q_heads"] != c["kv_heads"] for c in quick)
    assert wl.skip({**target, "batch": 256, "context": 131072}, "bf16", "cpu") is None  # no GPU to size against
    assert {i.name for i in wl.impls} == {"triton", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient"}


@pytest.mark.parametrize("name", ["decode-attention", "decode-layer"])
def test_interpret_cases_through_the_runner(name, gemm_linear, tmp_path):
    """The sweep runner on the interpret cases: inputs, poisoned out, verification, records."""
    if torch.cuda.is_available():
        pytest.skip("the interpret sweep runs on the CPU")
    from analysis.records import load
    from suite import env, runner, timing

    ctx = runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                         policy=timing.TimingPolicy(), run_id="test-run")
    tasks = runner.plan([all_workloads()[name]], "interpret")
    runner.run_sweep(tasks, ctx, tmp_path / "r.jsonl", resume=False, progress=False)
    recs = load(tmp_path / "r.jsonl")
    assert not [(r.impl, r.dtype, r.reason) for r in recs if r.status == "failed"]
    fp16_triton = [r for r in recs if r.impl == "triton" and r.dtype == "fp16"]
    assert len(fp16_triton) == len(all_workloads()[name].cases["interpret"])
    assert all(r.status == "ok" and r.verify["rel_err"] <= r.verify["tolerance"] and r.config
               for r in fp16_triton)
    assert all("interpreter" in r.reason for r in recs if r.impl == "triton" and r.dtype == "bf16")


def test_one_nan_or_wrong_sequence_fails_verification(device):
    """Every sequence is checked: one sequence NaN, or one holding another's result, fails."""
    wl = all_workloads()["decode-attention"]
    params = {"batch": 6, "q_heads": 4, "kv_heads": 2, "context": 70, "head_dim": 16, "ragged": True}
    inp = wl.make_inputs(params, "fp16", device, torch.Generator(device=device).manual_seed(8))
    out = kd.decode_attention(inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"], max_len=inp["max_len"])
    ref = wl.reference(inp, params, "fp16")
    good = verify.check_output(wl, out, ref, params, "fp16")
    assert verify.problem(good) is None and good["checked"] == good["elements"] == 6 * 4 * 16
    nan = out.clone()
    nan[4] = float("nan")  # one sequence of six
    assert "NaN" in verify.problem(verify.check_output(wl, nan, ref, params, "fp16"))
    swapped = out.clone()
    swapped[5] = out[3]  # sequence 5 holds sequence 3's attention
    assert "tolerance" in verify.problem(verify.check_output(wl, swapped, ref, params, "fp16"))


def test_a_prepared_layer_that_does_not_replay_the_append_fails_verification(gemm_linear, tmp_path, monkeypatch):
    """The cache slot each step appends to is poisoned before the verified call: a prepared step
    whose replay leaves out the append (launched once, never recorded) attends over NaN."""
    if torch.cuda.is_available():
        pytest.skip("the interpret sweep runs on the CPU")
    from analysis.records import load
    from suite import env, runner, timing

    real = kd.launch

    def launch(fn, grid, *args, **kwargs):
        if fn is kd._append_kv_kernel:
            fn[grid](*args, **kwargs)  # runs, but a prepare does not see it
        else:
            real(fn, grid, *args, **kwargs)

    monkeypatch.setattr(kd, "launch", launch)
    ctx = runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                         policy=timing.TimingPolicy(), run_id="test-run")
    wl = all_workloads()["decode-layer"]
    tasks = [t for t in runner.plan([wl], "interpret") if t.dtype == "fp16"]
    runner.run_sweep(tasks, ctx, tmp_path / "r.jsonl", resume=False, progress=False)
    by = {}
    for r in load(tmp_path / "r.jsonl"):
        by.setdefault(r.impl, []).append(r)
    assert by["triton"] and all(r.status == "ok" for r in by["triton"] + by["torch"])  # they append every call
    assert by["triton-prepared"] and all(r.status == "failed" and "NaN" in r.reason for r in by["triton-prepared"])
