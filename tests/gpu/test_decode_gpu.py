"""Decode attention and the decode layer on a real GPU: bf16 at real sizes, every split-kernel
configuration, the SDPA backends, and the records the sweep writes.

Run on the device:  python -m pytest -m gpu tests/gpu/test_decode_gpu.py -rP
The lines starting "decode:" give bytes/s per implementation and triton's ratio to the best SDPA
backend.
"""
import pytest
import torch

from gpu_helpers import after_tuning, ctx  # noqa: F401  (ctx is a fixture)
from kernels import decode as kd
from suite import runner, timing, verify
from suite.workloads import all_workloads

pytestmark = pytest.mark.gpu


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
    ok = {n: r for n, r in recs.items() if r.status == "ok"}
    # One method for the case, and it is the one the recorded estimates give.
    estimates = {n: (r.timing["eager_estimate_s"], r.timing["graph_estimate_s"]) for n, r in ok.items()}
    assert {r.timing["method"] for r in ok.values()} == {timing.case_method(estimates, ctx.policy.graph_gain)[0]}
    assert tri.config["num_splits"] >= 1 and tri.config["tuned_at"]["batch"] == params["batch"]
    assert tri.moved_bytes >= tri.bytes  # the partials on top of the minimum
    assert tri.verify["checked"] == tri.verify["elements"]  # every sequence
    vendors = {n: r.bytes_per_s for n, r in ok.items() if r.vendor}
    assert vendors, "no SDPA backend ran the target case"
    best = max(vendors, key=vendors.get)
    ratio = tri.bytes_per_s / vendors[best]
    print(f"decode: {tri.label}: triton / best SDPA ({best}) = {ratio:.3f}; config {tri.config}")
    assert ratio > 0.9, "more than 10% below the best SDPA backend (it measured 0.96-0.98)"
    assert tri.bytes_per_s < 1.03 * 4.8e12  # beyond the H200's HBM: bytes miscounted


@pytest.mark.parametrize("group", [1, 4])
def test_every_config_bf16_ragged(group):
    """Each configuration the autotuner may pick, compiled by this Triton, on a ragged batch."""
    wl = all_workloads()["decode-attention"]
    params = attn_case(4, 32, 32 // group, 4096, ragged=True)
    inp = wl.make_inputs(params, "bf16", "cuda", torch.Generator(device="cuda").manual_seed(0))
    ref = wl.reference(inp, params, "bf16")
    for config in kd.split_configs(group):
        for split_len in (None, 4096):  # planned chunks and a merge; one chunk stored directly
            out = torch.full_like(inp["out"], float("nan"))
            kd.decode_attention(inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"],
                                max_len=inp["max_len"], split_len=split_len, config=config, out=out)
            torch.cuda.synchronize()
            check = verify.check_output(wl, out, ref, params, "bf16")
            assert verify.problem(check) is None, (config, split_len, check)


def test_fp16_head_dim_64_autotuned():
    wl = all_workloads()["decode-attention"]
    params = attn_case(8, 32, 8, 2048, ragged=True, head_dim=64)
    inp = wl.make_inputs(params, "fp16", "cuda", torch.Generator(device="cuda").manual_seed(1))
    out = inp["out"]
    after_tuning(lambda: kd.decode_attention(inp["q"], inp["k_cache"], inp["v_cache"], inp["lengths"],
                                             max_len=inp["max_len"], out=out), out)
    check = verify.check_output(wl, out, wl.reference(inp, params, "fp16"), params, "fp16")
    assert verify.problem(check) is None, check


def test_sdpa_backends_on_a_ragged_gqa_batch(ctx):
    recs = run(ctx, "decode-attention", attn_case(8, 32, 8, 4096, ragged=True))
    assert recs["triton"].status == "ok", recs["triton"].reason
    assert recs["sdpa-flash"].status == "skipped" and "mask" in recs["sdpa-flash"].reason
    # The memory-efficient backend may refuse GQA (it needs equal head counts): a recorded skip.
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
    assert tri.verify["checked"] == tri.verify["elements"]  # every sequence
    assert tri.launches is not None and 8 <= tri.launches <= 16  # norms, projections, attention, MLP
    print(f"decode: layer B=4 ctx=1024: triton {tri.seconds * 1e6:.1f} us ({4 / tri.seconds:.0f} tokens/s), "
          f"torch {torch_rec.seconds * 1e6:.1f} us with SDPA {torch_rec.config['sdpa_backend']}, "
          f"{tri.launches} and {torch_rec.launches} launches")
    # It ran at 1.14-1.16x torch on the H200.
    assert torch_rec.seconds / tri.seconds > 1.0
    prep = recs["triton-prepared"]
    assert prep.status == "ok" and prep.verify["checked"] == prep.verify["elements"], prep.reason


def test_prepared_layer_at_batch_1_runs_eagerly_near_its_graph_time(ctx):
    """The eager step with its launches prepared once (kernels.launch) against the same step
    replayed as a CUDA graph: the launchers' Python work is what a prepared step leaves out."""
    recs = run(ctx, "decode-layer", {"preset": "llama-3-8b", "batch": 1, "context": 8192})
    tri, prep = recs["triton"], recs["triton-prepared"]
    assert tri.status == "ok" and prep.status == "ok", (tri.reason, prep.reason)
    assert prep.verify["checked"] == prep.verify["elements"] and prep.launches == tri.launches
    e_tri, g_tri = tri.timing["eager_estimate_s"], tri.timing["graph_estimate_s"]
    e_prep, g_prep = prep.timing["eager_estimate_s"], prep.timing["graph_estimate_s"]
    print(f"decode: layer B=1 ctx=8192: triton eager {e_tri * 1e6:.1f} us / graph {g_tri * 1e6:.1f} us; "
          f"prepared eager {e_prep * 1e6:.1f} us / graph {g_prep * 1e6:.1f} us; {prep.config['launch']}")
    assert abs(g_prep / g_tri - 1) < 0.05  # the same kernels on the device
    assert e_prep / g_prep <= 1.5, "the prepared eager step is more than 1.5x its graph replay"
