"""Decode attention and the decode layer on a real GPU: bf16 at real sizes, every
split-kernel configuration, the SDPA backends, and the records the sweep writes.

Run on the device:  python -m pytest -m gpu tests/gpu/test_decode_gpu.py -rP
The lines starting "decode:" give bytes/s per implementation for the two target
cases of issue 6 and triton's ratio to the best SDPA backend (target >= 0.95).
"""
import pytest
import torch

from kernels import decode as kd
from suite import env, runner, timing
from suite.dtypes import DTYPES
from suite.workloads import all_workloads
from suite.telemetry import nvml_handle

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def ctx():
    return runner.Context(device="cuda:0", env=env.collect(0, command="test"), interpret=False,
                          policy=timing.TimingPolicy(budget_s=0.1), run_id="gpu-test", nvml=nvml_handle(0))


def attn_case(batch, q_heads, kv_heads, context, ragged=False, head_dim=128):
    return {"batch": batch, "q_heads": q_heads, "kv_heads": kv_heads, "context": context,
            "head_dim": head_dim, "ragged": ragged}


def run(ctx, workload, params, dtype="bf16"):
    recs = []
    runner.run_task(runner.Task(all_workloads()[workload], params, dtype), ctx, recs.append)
    for r in recs:
        rate = f"{r.bytes_per_s / 1e12:6.3f} TB/s  {r.seconds * 1e6:9.1f} us" if r.status == "ok" else ""
        print(f"decode: {r.label:32s} {r.impl:15s} {r.status:8s} {rate} {r.reason[:150]}")
    return {r.impl: r for r in recs}


@pytest.mark.parametrize("params", [attn_case(32, 32, 32, 4096), attn_case(1, 32, 32, 32768)],
                         ids=["B32-H32-S4096", "B1-H32-S32768"])
def test_target_cases(ctx, params):
    recs = run(ctx, "decode-attention", params)
    tri = recs["triton"]
    assert tri.status == "ok", tri.reason
    # The timer's own rule on the estimates it recorded: a graph only where it beat plain launches
    # by more than graph_gain. A ~0.5 ms kernel may go either way: the H200 timed B32 S4096 with
    # plain launches in benchmarks/results/logs/h200-session4-pytest-gpu-all.log.
    t = tri.timing
    assert t["method"] == timing.choose_method(t["eager_estimate_s"], t["graph_estimate_s"],
                                               ctx.policy.graph_gain)
    assert tri.config["num_splits"] >= 1
    assert tri.moved_bytes >= tri.bytes  # the partials on top of the minimum
    vendors = {n: r.bytes_per_s for n, r in recs.items() if r.vendor and r.status == "ok"}
    assert vendors, "no SDPA backend ran the target case"
    best = max(vendors, key=vendors.get)
    ratio = tri.bytes_per_s / vendors[best]
    print(f"decode: {tri.label}: triton / best SDPA ({best}) = {ratio:.3f}  (issue 6 target >= 0.95); "
          f"config {tri.config}")
    assert ratio > 0.8, "far below the best SDPA backend"


@pytest.mark.parametrize("group", [1, 4])
def test_every_config_bf16_ragged(group):
    """Each configuration the autotuner may pick, compiled by this Triton, on a ragged batch."""
    wl = all_workloads()["decode-attention"]
    params = attn_case(4, 32, 32 // group, 4096, ragged=True)
    inp = wl.make_inputs(params, "bf16", "cuda", torch.Generator(device="cuda").manual_seed(0))
    ref = wl.reference(inp, params, "bf16")
    for config in kd.split_configs(group):
        for split_len in (None, 4096):  # planned chunks and a merge; one chunk stored directly
            out = kd.decode_attention(inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"],
                                      max_len=inp["max_len"], split_len=split_len, config=config)
            err = ((wl.check_view(out, params).double() - ref).norm() / ref.norm()).item()
            assert err < DTYPES["bf16"].tolerance, (config, split_len, err)


def test_fp16_head_dim_64_autotuned():
    wl = all_workloads()["decode-attention"]
    params = attn_case(8, 32, 8, 2048, ragged=True, head_dim=64)
    inp = wl.make_inputs(params, "fp16", "cuda", torch.Generator(device="cuda").manual_seed(1))
    out = kd.decode_attention(inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"], max_len=inp["max_len"])
    ref = wl.reference(inp, params, "fp16")
    assert ((wl.check_view(out, params).double() - ref).norm() / ref.norm()).item() < DTYPES["fp16"].tolerance


def test_sdpa_backends_on_a_ragged_gqa_batch(ctx):
    recs = run(ctx, "decode-attention", attn_case(8, 32, 8, 4096, ragged=True))
    assert recs["triton"].status == "ok", recs["triton"].reason
    assert recs["sdpa-flash"].status == "skipped" and "mask" in recs["sdpa-flash"].reason
    # torch 2.11's memory-efficient backend refuses GQA (it needs equal head
    # counts; seen on the H200, 2026-11-30): then it must be a recorded skip.
    eff = recs["sdpa-efficient"]
    assert eff.status == "ok" or (eff.status == "skipped" and "num_heads" in eff.reason), eff.reason
    ran = [r for name, r in recs.items() if name.startswith("sdpa") and r.status == "ok"]
    assert ran, "no SDPA backend ran the ragged GQA batch"
    assert all(r.moved_bytes > r.bytes for r in ran)  # a masked padded batch reads the padding too


def test_sdpa_backends_on_a_uniform_gqa_batch(ctx):
    recs = run(ctx, "decode-attention", attn_case(16, 32, 8, 8192))
    assert recs["triton"].status == "ok", recs["triton"].reason
    assert all(r.status == "ok" or r.reason for r in recs.values())
    assert any(r.vendor and r.status == "ok" for r in recs.values()), "SDPA runs GQA through enable_gqa"


def test_layer_step(ctx):
    recs = run(ctx, "decode-layer", {"preset": "llama-3-8b", "batch": 4, "context": 1024})
    torch_rec, tri = recs["torch"], recs["triton"]
    assert torch_rec.status == "ok" and torch_rec.config["sdpa_backend"] in ("cudnn", "flash", "efficient")
    assert tri.status == "ok", tri.reason
    print(f"decode: layer B=4 ctx=1024: triton {tri.seconds * 1e6:.1f} us ({4 / tri.seconds:.0f} tokens/s), "
          f"torch {torch_rec.seconds * 1e6:.1f} us with SDPA {torch_rec.config['sdpa_backend']}")
