"""Attention on a real GPU: bf16 at realistic sizes, every configuration the fused
kernel tunes over, the SDPA backends' availability handling, and the target
case (B=4, H=32, S=4096, D=128, bf16) end to end through the runner.

Run on the device with `-s` to see the target case's TFLOP/s table (lines
starting "attention-target").
"""
import math

import pytest
import torch

from conftest import HAS_CUDA
from gpu_helpers import checked, ctx  # noqa: F401  (ctx is a fixture)
from kernels import attention as ka
from suite import runner, verify
from suite.dtypes import DTYPES
from suite.registry import Skip
from suite.workloads import all_workloads

pytestmark = pytest.mark.gpu

W = all_workloads()["attention-fwd"]
BF16_TOL = DTYPES["bf16"].tolerance
SDPA = ("sdpa-flash", "sdpa-cudnn", "sdpa-efficient")


def _candidates(head_dim):
    """(config, causal) pairs: every candidate the tuner may pick for each masking."""
    if not HAS_CUDA:
        return []
    cap = torch.cuda.get_device_capability()
    return [pytest.param(c, causal, id=f"{c.name}-{'causal' if causal else 'full'}")
            for causal in (False, True) for c in ka.flash_candidates(head_dim, cap)]


def _case(B, H, S, D, causal):
    return {"B": B, "H": H, "S": S, "D": D, "causal": causal}


def _inputs(params, dtype="bf16", seed=0):
    return W.make_inputs(params, dtype, "cuda", torch.Generator(device="cuda").manual_seed(seed))


def _problem(out, inputs, params, dtype="bf16"):
    return verify.problem(verify.check_output(W, out, W.reference(inputs, params, dtype), params, dtype))


def _impl(name):
    return next(i for i in W.impls if i.name == name)


@pytest.mark.parametrize("cfg, causal", _candidates(128))
def test_every_fused_config_bf16(cfg, causal):
    params = _case(2, 8, 2048, 128, causal)
    inp = _inputs(params)
    inp["out"].fill_(math.nan)
    out = ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
    assert _problem(out, inp, params) is None


@pytest.mark.parametrize("cfg, causal", _candidates(64))
def test_every_fused_config_fp16_d64(cfg, causal):
    params = _case(2, 8, 1024, 64, causal)
    inp = _inputs(params, "fp16", seed=3)
    inp["out"].fill_(math.nan)
    out = ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
    assert _problem(out, inp, params, "fp16") is None


@pytest.mark.parametrize("cfg, causal", _candidates(64))
def test_every_fused_config_ragged(cfg, causal):
    """S = 1000: not a multiple of any block; TMA zero-fills the tail reads and clips the writes.
    The Gluon kernel refuses the length instead (its descriptors span all heads)."""
    params = _case(1, 4, 1000, 64, causal)
    inp = _inputs(params, seed=1)
    inp["out"].fill_(math.nan)
    if cfg.gluon:
        with pytest.raises(ValueError, match="not a multiple of 128"):
            ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
        assert torch.isnan(inp["out"]).all()  # nothing launched
        return
    out = ka.flash_attention(inp["q"], inp["k"], inp["v"], causal, out=inp["out"], config=cfg)
    assert _problem(out, inp, params) is None


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_tuned_fused_and_naive_bf16(causal):
    params = _case(2, 8, 2048, 128, causal)
    for name in ("triton-fused", "triton-naive", "torch-naive"):
        check, config, inp, _ = checked(W, name, params, "bf16", seed=2)
        assert verify.problem(check) is None, (name, check)
    cfg = ka.flash_attention_config(inp["q"], causal)
    assert cfg["tuning"] == "tuned" and cfg["name"] in cfg["tuning_ms"], cfg  # timed, agreed with the baseline
    print(f"\nattention-tuning causal={causal}: {cfg}")


@pytest.mark.parametrize("name", SDPA)
def test_sdpa_backend_runs_or_skips_with_a_reason(name):
    params = _case(2, 8, 2048, 128, True)
    inp = _inputs(params, seed=3)
    try:
        fn = _impl(name).prepare(inp)
    except Skip as e:
        assert str(e).startswith("SDPA") and len(str(e)) > 40, str(e)
        pytest.skip(f"{name}: {e}")
    assert _problem(fn(), inp, params) is None


@pytest.mark.parametrize("name", ("sdpa-flash", "sdpa-cudnn"))
def test_sdpa_refusal_is_a_recorded_skip(name):
    """The flash and cuDNN backends take only fp16/bf16: fp32 must skip, not fall back to another backend."""
    q = torch.randn(1, 2, 256, 64, device="cuda")
    with pytest.raises(Skip, match="SDPA"):
        _impl(name).prepare({"q": q, "k": q, "v": q, "out": torch.empty_like(q), "causal": False})


def test_sdpa_backends_launch_their_own_kernels():
    """Each backend row runs different CUDA kernels: the restriction to one backend is real."""
    params = _case(1, 8, 1024, 128, False)
    inp = _inputs(params, seed=4)
    kernels = {}
    for name in SDPA:
        try:
            fn = _impl(name).prepare(inp)
        except Skip:
            continue
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        kernels[name] = frozenset(e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
        print(f"\n{name}: {sorted(kernels[name])}")
    assert len(kernels) >= 2, f"fewer than two SDPA backends ran: {sorted(kernels)}"
    assert len(set(kernels.values())) == len(kernels), kernels


def test_naive_paths_skip_when_the_scores_do_not_fit():
    params = _case(4, 32, 16384, 128, True)  # S and P: 2 x 64 GiB in bf16
    q = torch.empty((4, 32, 16384, 128), dtype=torch.bfloat16, device="cuda")
    inp = {"q": q, "k": q, "v": q, "out": q, "causal": True}
    for name in ("triton-naive", "torch-naive"):
        with pytest.raises(Skip, match="GiB"):
            _impl(name).prepare(inp)
    assert params in W.cases["quick"]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_target_case_end_to_end(ctx, causal):
    """The target case through the runner: every implementation of it timed by one method, the
    fused kernel at 0.95x cuDNN or better, the naive path under HBM."""
    params = _case(4, 32, 4096, 128, causal)
    recs = []
    runner.run_task(runner.Task(W, params, "bf16"), ctx, recs.append)
    by = {r.impl: r for r in recs}
    for r in recs:
        rate = f"{r.flop_per_s / 1e12:7.1f} TFLOP/s {r.moved_bytes_per_s / 1e12:6.2f} TB/s moved" if r.seconds else ""
        print(f"\nattention-target causal={causal} {r.impl:15s} {r.status:7s} {rate} {r.reason[:120]}")
    assert by["triton-fused"].status == "ok", by["triton-fused"].reason
    assert by["triton-naive"].status == "ok", by["triton-naive"].reason
    for r in recs:
        assert r.status in ("ok", "skipped"), (r.impl, r.reason)
    print(f"\nattention-target causal={causal} config: {by['triton-fused'].config}")
    assert len({r.timing["method"] for r in recs if r.status == "ok"}) == 1
    assert all(r.verify["finite"] for r in recs if r.status == "ok")
    cudnn = by.get("sdpa-cudnn")
    if cudnn is not None and cudnn.status == "ok":
        ratio = by["triton-fused"].flop_per_s / cudnn.flop_per_s
        print(f"\nattention-target causal={causal} fused / cuDNN = {ratio:.3f}")
        assert ratio >= 0.95, f"fused at {ratio:.3f}x cuDNN, below 0.95x"
    # The naive path streams its S and P (4 GiB each) through HBM: never faster than HBM allows.
    assert by["triton-naive"].moved_bytes_per_s < 1.03 * 4.8e12
